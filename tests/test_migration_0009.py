"""Migration 0009 gives every target its days (terms from 1 July, five years), and downgrades, on both databases."""

from __future__ import annotations

from datetime import date

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from models.db import alembic_config, create_sync_engine_for, migrate


def _day(value: object) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]


def test_targets_get_their_days_and_the_downgrade_keeps_them(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "0008")
    engine = create_sync_engine_for(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO unit (id, code, name, kind, parent_id, path, cell_count) "
                              "VALUES (1, 'D', 'Huyện', 'district', NULL, '/1/', 0)"))
            conn.execute(text("INSERT INTO target (id, unit_id, start_year, end_year, value) "
                              "VALUES (1, 1, 2026, 2026, 90), (2, 1, 2025, 2030, 400), (3, 1, 2020, 2025, 380)"))
        migrate(database_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, starts_on, ends_on FROM target ORDER BY id")).all()
            columns = {c["name"]: c["nullable"] for c in inspect(conn).get_columns("target")}
            indexes = {i["name"] for i in inspect(conn).get_indexes("target")}
        assert [(i, _day(a), _day(b)) for i, a, b in rows] == [
            (1, date(2026, 1, 1), date(2026, 12, 31)),  # an annual plan stays the calendar year
            (2, date(2025, 7, 1), date(2030, 6, 30)),  # five years from the congress, not six
            (3, date(2020, 7, 1), date(2025, 6, 30)),
        ]
        assert columns["starts_on"] is False and columns["ends_on"] is False
        assert "ix_target_unit_id" in indexes
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("INSERT INTO target (unit_id, start_year, end_year, starts_on, ends_on, value) "
                              "VALUES (1, 2030, 2035, '2035-06-30', '2030-07-01', 1)"))
        command.downgrade(config, "0008")
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT id, start_year, end_year, value FROM target ORDER BY id")).all()
            names = {c["name"] for c in inspect(conn).get_columns("target")}
        assert [tuple(r) for r in kept] == [(1, 2026, 2026, 90), (2, 2025, 2030, 400), (3, 2020, 2025, 380)]
        assert not names & {"starts_on", "ends_on"}
        migrate(database_url)  # and up again
    finally:
        engine.dispose()
