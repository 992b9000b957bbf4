"""Migration 0008 fills assignment.started_at from the person's registration, on both databases."""

from __future__ import annotations

from datetime import datetime, timezone

from alembic import command
from sqlalchemy import text

from models.db import alembic_config, create_sync_engine_for, migrate


def test_existing_roles_started_when_the_person_registered(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "0006")
    registered = datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc)
    engine = create_sync_engine_for(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO unit (id, code, name, kind, parent_id, path, cell_count) "
                              "VALUES (1, 'C1', 'Chi bộ', 'cell', NULL, '/1/', 1)"))
            conn.execute(text("INSERT INTO person (id, telegram_id, display_name, language, registered_at, active) "
                              "VALUES (7, 1001, 'Hoa', 'vi', :at, :yes)"), {"at": registered, "yes": True})
            conn.execute(text("INSERT INTO assignment (person_id, unit_id, role) VALUES (7, 1, 'secretary')"))
        migrate(database_url)
        with engine.connect() as conn:
            started = conn.execute(text("SELECT started_at FROM assignment")).scalar_one()
    finally:
        engine.dispose()
    if isinstance(started, str):  # SQLite keeps the text as written
        started = datetime.fromisoformat(started)
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    assert started == registered
