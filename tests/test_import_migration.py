"""Migration 0007: stored unit codes take their normal form (NFKC, upper-case), or the upgrade stops."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from models.db import alembic_config, create_sync_engine_for


def _units(url: str, codes: list[str]) -> None:
    command.upgrade(alembic_config(url), "0006")
    engine = create_sync_engine_for(url)
    with engine.begin() as conn:
        for unit_id, code in enumerate(codes, start=1):
            conn.execute(text("INSERT INTO unit (id, code, name, kind, parent_id, path, cell_count) "
                              "VALUES (:id, :code, 'x', 'committee', NULL, :path, 0)"),
                         {"id": unit_id, "code": code, "path": f"/{unit_id}/"})
    engine.dispose()


def _stored(url: str) -> tuple[dict[int, str], str]:
    engine = create_sync_engine_for(url)
    with engine.connect() as conn:
        codes = dict(conn.execute(text("SELECT id, code FROM unit")).all())
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    return codes, version


def test_upgrade_upper_cases_codes_with_nfkc(database_url: str) -> None:
    _units(database_url, ["pn", "ＢＢ", "Bb-Kp", "NC", "đu/1"])
    command.upgrade(alembic_config(database_url), "0007")
    assert _stored(database_url) == ({1: "PN", 2: "BB", 3: "BB-KP", 4: "NC", 5: "ĐU/1"}, "0007")


def test_codes_that_would_collide_stop_the_upgrade_and_change_nothing(database_url: str) -> None:
    _units(database_url, ["pn", "PN", "ＰＮ", "bb", "X"])
    with pytest.raises(Exception, match=r"(?s)'PN': 'pn' \(unit id 1\), 'PN' \(unit id 2\), 'ＰＮ' \(unit id 3\).*Nothing"):
        command.upgrade(alembic_config(database_url), "0007")
    assert _stored(database_url) == ({1: "pn", 2: "PN", 3: "ＰＮ", 4: "bb", 5: "X"}, "0006")
