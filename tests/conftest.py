"""Shared fixtures: a fresh database per test on SQLite, and on PostgreSQL when one is reachable.

PostgreSQL: 127.0.0.1:5432, trust auth, database `test` (override with TEST_POSTGRES_URL). The
suite creates its own throw-away database there and drops it at the end, so parallel runs do not
collide. When no server answers, every PostgreSQL case is skipped with a message saying so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models import Base
from models.crypto import KEY_ENV, new_secret_text
from models.db import create_engine_for, create_sync_engine_for, session_factory

# The key that seals personal data (models.crypto), for every engine, migration, bot and command-line
# subprocess of the run: given as the environment variable, so no test has to pass it around.
TEST_KEY = os.environ.setdefault(KEY_ENV, new_secret_text())

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


def _postgres_database() -> str | None:
    """Create (once per run) a throw-away PostgreSQL database; return its URL or None."""
    if "url" in _pg_state:
        return _pg_state["url"]
    _pg_state["url"] = None
    try:
        import psycopg

        name = f"admissions_test_{uuid.uuid4().hex[:10]}"
        base = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(base, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        _pg_state["url"] = base.rsplit("/", 1)[0] + f"/{name}"
        _pg_state["name"] = name
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        _pg_state["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return _pg_state["url"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the throw-away PostgreSQL database."""
    name = _pg_state.get("name")
    if not name:
        return
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:  # noqa: BLE001
        pass


def pytest_report_header(config: pytest.Config) -> str:
    """Say on which databases the suite runs."""
    url = _postgres_database()
    if url:
        return "databases: SQLite and PostgreSQL (" + POSTGRES_URL + ")"
    return f"databases: SQLite only — PostgreSQL at {POSTGRES_URL} not reachable ({_pg_state.get('error')})"


def reset_schema(url: str) -> None:
    """Drop and re-create every table (and Alembic's bookkeeping) in the database at `url`."""
    engine = create_sync_engine_for(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database (no tables) of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url = _postgres_database()
    if url is None:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({_pg_state.get('error')}); SQLite half ran")
    reset_schema(url)
    yield url
    reset_schema(url)


@pytest.fixture
def schema_url(database_url: str) -> str:
    """Return the URL of a database with the current schema (from the models)."""
    engine = create_sync_engine_for(database_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return database_url


@pytest.fixture
async def engine(schema_url: str) -> AsyncIterator[AsyncEngine]:
    """Yield an async engine on a database with the schema."""
    engine = create_engine_for(schema_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory; tests open `async with sessions.begin() as s`."""
    return session_factory(engine)


@pytest.fixture
def clock():  # type: ignore[no-untyped-def]
    """Return a controllable clock standing at 1 July 2026, 09:00 in Hà Nội."""
    from core.clock import FixedClock
    from tests.harness import DEFAULT_NOW

    return FixedClock(DEFAULT_NOW)


@pytest.fixture
def api_server():  # type: ignore[no-untyped-def]
    """Yield a running local Bot API server on 127.0.0.1."""
    from localapi.server import BotApiServer

    server = BotApiServer().start()
    yield server
    server.stop()


@pytest.fixture
async def harness(schema_url: str, api_server, clock):  # type: ignore[no-untyped-def]
    """Yield a running bot on the small test world (units and targets loaded, nobody registered)."""
    from tests.harness import BotHarness, make_config, seed_world

    bot = BotHarness(make_config(schema_url, api_server), api_server, clock)
    await bot.start()
    await seed_world(bot.sessions)
    yield bot
    await bot.stop()
