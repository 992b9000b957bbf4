"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models import Base
from models.db import create_sync_engine_for, migrate


def test_migrations_match_models_and_are_idempotent(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)  # a second run changes nothing and does not fail
    engine = create_sync_engine_for(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"
