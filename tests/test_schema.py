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


def test_upgrades_from_the_first_schema_keep_data_and_count_cells(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from models.db import alembic_config

    command.upgrade(alembic_config(database_url), "0001")  # every later migration runs over data
    engine = create_sync_engine_for(database_url)
    try:
        with engine.begin() as conn:
            for unit_id, kind, parent, path in ((1, "district", None, "/1/"), (2, "committee", 1, "/1/2/"),
                                                (3, "cell", 2, "/1/2/3/"), (4, "cell", 2, "/1/2/4/"),
                                                (5, "committee", 1, "/1/5/"), (6, "cell", 5, "/1/5/6/"),
                                                (10, "cell", 1, "/1/10/")):
                conn.execute(text("INSERT INTO unit (id, code, name, kind, parent_id, path) "
                                  "VALUES (:id, :code, :code, :kind, :parent, :path)"),
                             {"id": unit_id, "code": f"U{unit_id}", "kind": kind, "parent": parent, "path": path})
            # Rows that point at units: an upgrade must keep them (and not trip over them).
            conn.execute(text("INSERT INTO village (unit_id, name, position) VALUES (3, 'Nà Lạn', 0)"))
            conn.execute(text("INSERT INTO target (unit_id, start_year, end_year, value) VALUES (1, 2026, 2026, 9)"))
        migrate(database_url)
        with engine.connect() as conn:
            counts = dict(conn.execute(text("SELECT id, cell_count FROM unit")).all())
            kept = conn.execute(text("SELECT (SELECT count(*) FROM village), (SELECT count(*) FROM target)")).one()
    finally:
        engine.dispose()
    assert counts == {1: 4, 2: 2, 3: 1, 4: 1, 5: 1, 6: 1, 10: 1}
    assert tuple(kept) == (1, 1)
