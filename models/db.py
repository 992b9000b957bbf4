"""Engines, sessions and schema migrations. Nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import fcntl
import hashlib
import os

from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from models.crypto import Keys, attach, keys_from_environment

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


READ_ONLY = "read_only"  # execution option of a transaction that never writes

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def _with_driver(url: str, drivers: dict[str, str]) -> URL:
    parsed = make_url(url)
    driver = drivers.get(parsed.get_backend_name())
    return parsed.set(drivername=driver) if driver else parsed


def async_url(url: str) -> URL:
    """Return the async-driver form of a database URL (aiosqlite, psycopg)."""
    return _with_driver(url, ASYNC_DRIVERS)


def sync_url(url: str) -> URL:
    """Return the synchronous-driver form of a database URL (used by Alembic)."""
    return _with_driver(url, SYNC_DRIVERS)


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file so that a fresh clone just works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


BUSY_TIMEOUT_MS = 10_000  # how long a SQLite writer waits for another one's lock before "database is locked"


def _sqlite_pragmas(busy_timeout_ms: int):  # type: ignore[no-untyped-def]
    def on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # The sqlite3 driver's own transaction handling would let a SAVEPOINT's RELEASE commit the
        # whole transaction; take control and emit BEGIN ourselves (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    return on_connect


def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
    # IMMEDIATE takes the write lock up front: concurrent transactions wait (busy_timeout) instead
    # of failing when a read turns into a write after another connection committed. A transaction
    # opened for reading only (see reading()) does not wait: in WAL mode it reads a snapshot even
    # while a long import holds the write lock.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def _install_pragmas(engine: Engine, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        event.listen(engine, "begin", _sqlite_begin)


def create_engine_for(url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, keys: Keys | None = None,
                      **kwargs: object) -> AsyncEngine:
    """Create the async engine for `url` (SQLite gets WAL, foreign keys and a busy timeout).

    `keys` seal and open the personal columns (models.crypto); None takes them from
    ADMISSIONS_BOT_KEY when it is set, else the engine has none and any personal column refuses."""
    ensure_sqlite_folder(url)
    kwargs.setdefault("hide_parameters", True)  # personal data never reaches logs or errors
    engine = create_async_engine(async_url(url), **kwargs)  # type: ignore[arg-type]
    _install_pragmas(engine.sync_engine, busy_timeout_ms)
    attach(engine.sync_engine.dialect, keys or keys_from_environment())
    return engine


def create_sync_engine_for(url: str, keys: Keys | None = None) -> Engine:
    """Create a synchronous engine for `url` (migrations, benchmarks); `keys` as for create_engine_for."""
    from sqlalchemy import create_engine

    ensure_sqlite_folder(url)
    engine = create_engine(sync_url(url), hide_parameters=True)
    _install_pragmas(engine)
    attach(engine.dialect, keys or keys_from_environment())
    return engine


def session_factory(engine: AsyncEngine, on_change: Callable[[], None] | None = None,
                    on_write: Callable[[], None] | None = None) -> async_sessionmaker[AsyncSession]:
    """Return a session factory whose sessions keep the data revision (models.revision).

    A commit that changed domain data increments it and then calls `on_change` (a cache in this
    process forgets what it held); any commit that wrote something calls `on_write`. Code outside
    tests opens sessions through `Database.reading()` / `Database.writing()`."""
    from models.revision import watch_changes

    sync_maker: sessionmaker[Session] = sessionmaker()
    watch_changes(sync_maker, on_change, on_write)
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=sync_maker)  # type: ignore[arg-type]


class Database:
    """The engine and the two ways to open a session: `reading()` and `writing()`.

    - `reading()`: a transaction that never writes; on SQLite it takes no write lock (a deferred
      BEGIN reads a WAL snapshot), so it never waits behind a long import.
    - `writing()`: one transaction, committed when the block ends and rolled back if it raises;
      on SQLite it takes the write lock up front (BEGIN IMMEDIATE), so two writers queue instead
      of failing half-way. A handler opens one per update.
    Query and command functions take the session and never commit.
    """

    def __init__(self, url: str, *, on_change: Callable[[], None] | None = None,
                 on_write: Callable[[], None] | None = None, keys: Keys | None = None,
                 updates_at_once: int | None = None, **engine_options: object) -> None:
        self.url = url
        if updates_at_once is not None and make_url(url).get_backend_name() == "postgresql":
            engine_options = {**pool_for(updates_at_once), **engine_options}
        self.engine = create_engine_for(url, keys=keys, **engine_options)
        self._sessions = session_factory(self.engine, on_change, on_write)

    @property
    def dialect(self) -> str:
        """Return the database kind: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """Open a session for reading only (no write lock on SQLite)."""
        async with self._sessions() as session:
            await session.connection(execution_options={READ_ONLY: True})
            yield session

    async def check_key(self) -> None:
        """Raise models.crypto.KeyProblem unless this database's key opens its data (models.keys)."""
        from models.keys import check_key

        async with self.reading() as session:
            await check_key(session)

    def writing(self) -> AbstractAsyncContextManager[AsyncSession]:
        """Open a session in one transaction: committed on success, rolled back on error."""
        return self._sessions.begin()

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Hold the lock `name` across processes for the block if nobody else holds it; yield whether it is held.

        A lock file beside a SQLite database (the kernel releases it when the process dies, even by
        kill -9); a session-level advisory lock on a dedicated connection on PostgreSQL (released
        when that connection ends). Used for "only one poller" and "one delivery of a run at a time".
        """
        if self.dialect == "sqlite":
            path = _lock_path(self.url, name)
            if path is None:  # an in-memory database lives in this process only
                yield True
                return
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                yield True
            finally:
                os.close(fd)  # closing releases the lock
            return
        key = advisory_key(name)
        async with self.engine.connect() as connection:
            held = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
            await connection.commit()
            try:
                yield held
            finally:
                if held:
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    await connection.commit()

    @asynccontextmanager
    async def serialised(self, chat_id: int) -> AsyncIterator[AsyncConnection | None]:
        """Take this chat's turn across processes for the block (PostgreSQL); yield the lock's connection.

        A transaction-level advisory lock (`pg_advisory_xact_lock`, two-key form: CHAT_LOCKS and the
        chat id folded to 32 bits; two chats sharing a key only wait for each other) on a connection
        of its own, held until the block ends and its transaction commits. Whatever the block
        writes on the yielded connection commits with the lock's release. A process that dies
        mid-block loses its connection, and with it the lock. SQLite has one process: None.
        """
        if self.dialect != "postgresql":
            yield None
            return
        async with self.engine.connect() as connection:
            await connection.execute(_CHAT_LOCK, {"space": CHAT_LOCKS, "key": (chat_id % (1 << 32)) - (1 << 31)})
            yield connection
            await connection.commit()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def insert_for(dialect: str) -> Any:
    """Return the INSERT construct of `dialect` ("sqlite" or "postgresql"): the one with ON CONFLICT."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


SPARE_CONNECTIONS = 4  # beside the updates: the scheduler's leadership, the poller's lock, a weekly run, a menu refresh


def pool_for(updates_at_once: int) -> dict[str, int]:
    """Return the pool options for handling `updates_at_once` updates together on PostgreSQL.

    Each holds its chat lock's connection (`serialised`) for the whole update and, meanwhile, a
    session's now and then: two each, so no update waits for a connection another one holds."""
    return {"pool_size": 2 * updates_at_once + SPARE_CONNECTIONS, "max_overflow": SPARE_CONNECTIONS}


_CHAT_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")
CHAT_LOCKS = 15  # first key of the per-chat advisory locks (the two-key space never meets advisory_key's)


def advisory_key(name: str) -> int:
    """Return the 64-bit PostgreSQL advisory lock key of a named lock ("poller", "scheduler")."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _lock_path(url: str, name: str) -> Path | None:
    """Return the lock file of `name` beside a SQLite database file (None for an in-memory one)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    path = Path(database).expanduser()
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)
    return path.with_name(f"{path.name}.{safe}.lock")


def is_busy(error: BaseException) -> bool:
    """Tell whether a database error means "another writer holds the lock, try again" (SQLite's busy timeout)."""
    orig = getattr(error, "orig", None) or error
    text = str(orig).lower()
    return "database is locked" in text or "database is busy" in text


def alembic_config(url: str, keys: Keys | None = None):  # type: ignore[no-untyped-def]
    """Return an Alembic Config pointing at the project's migrations and `url`.

    The keys travel in `attributes["keys"]` (never in the ini options, which Alembic may print);
    migrations/env.py gives them to its engine, and migration 0012 seals the data with them."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).render_as_string(hide_password=False))
    cfg.attributes["configure_logger"] = False
    cfg.attributes["keys"] = keys
    return cfg


def migrate(url: str, keys: Keys | None = None) -> None:
    """Create or upgrade the database at `url` to the newest schema (idempotent)."""
    from alembic import command

    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url, keys), "head")
