"""Migration 0012 seals a database made by the previous schema in place, and its downgrade opens it again."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models.crypto import Keys, keys_from_environment, new_secret_text
from models.db import alembic_config, create_sync_engine_for, migrate

PLAIN = {
    "admission": ("Lò Thị Hoa", "Tày"),
    "person": "Hoàng Văn Páo",
    "draft": '{"draft": {"full_name": "Giàng Thị Mỷ"}}',
    "audit": ("Lò Thị Hoa", "Lo Thi Hoa", "sai chính tả"),
}


def _fill_previous_schema(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO unit (id, code, name, kind, parent_id, path, cell_count) "
                          "VALUES (1, 'NL', 'Chi bộ thôn Nà Lạn', 'cell', NULL, '/1/', 1)"))
        conn.execute(text("INSERT INTO person (id, telegram_id, display_name, language, registered_at, active) "
                          "VALUES (1, 1001, :name, 'vi', '2026-07-01 02:00:00+00:00', true)"), {"name": PLAIN["person"]})
        conn.execute(text(
            "INSERT INTO admission (id, unit_id, unit_path, full_name, name_key, birth_year, sex, ethnicity, minority, "
            "admitted_on, source, reported_at) VALUES (1, 1, '/1/', :name, 'lo thi hoa', 1998, 'female', :eth, true, "
            "'2026-05-15', 'chat', '2026-07-01 02:00:00+00:00')"),
            {"name": PLAIN["admission"][0], "eth": PLAIN["admission"][1]})
        conn.execute(text("INSERT INTO stored_state (kind, key, data) VALUES ('user_data', '1001', :data)"),
                     {"data": PLAIN["draft"]})
        conn.execute(text(
            "INSERT INTO audit_entry (id, at, channel, action, subject, subject_id, field, old_value, new_value, reason) "
            "VALUES (1, '2026-07-01 02:00:00+00:00', 'chat', 'correct', 'admission', 1, 'full_name', :old, :new, :why)"),
            dict(zip(("old", "new", "why"), PLAIN["audit"])))


def _stored(engine) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {
            "admission": tuple(conn.execute(text("SELECT full_name, ethnicity, name_key FROM admission")).one()),
            "person": tuple(conn.execute(text("SELECT display_name FROM person")).one()),
            "draft": tuple(conn.execute(text("SELECT data FROM stored_state")).one()),
            "audit": tuple(conn.execute(text("SELECT old_value, new_value, reason FROM audit_entry")).one()),
        }


def test_0012_seals_every_personal_value_and_the_downgrade_opens_them(database_url: str) -> None:
    keys = keys_from_environment()
    assert keys is not None
    config = alembic_config(database_url)
    command.upgrade(config, "0011")
    engine = create_sync_engine_for(database_url)
    try:
        _fill_previous_schema(engine)
        migrate(database_url)
        stored = _stored(engine)
        full_name, ethnicity, name_key = stored["admission"]
        assert [keys.decrypt(v) for v in (full_name, ethnicity)] == list(PLAIN["admission"])
        assert name_key == keys.name_key("lo thi hoa\x1f1998")
        assert keys.decrypt(stored["person"][0]) == PLAIN["person"]
        assert keys.decrypt(stored["draft"][0]) == PLAIN["draft"]
        assert tuple(keys.decrypt(v) for v in stored["audit"]) == PLAIN["audit"]
        sealed = [v for row in stored.values() for v in row if v != name_key]
        assert all(v.startswith("e1:") and "Hoa" not in v and "Páo" not in v for v in sealed)
        with engine.connect() as conn:
            assert keys.opens(conn.execute(text("SELECT value FROM key_check")).scalar_one())
        with pytest.raises(DBAPIError), engine.begin() as conn:  # the audit trail is insert-only again
            conn.execute(text("UPDATE audit_entry SET reason = 'x'"))
        # Another key cannot take the downgrade: nothing changes.
        with pytest.raises(Exception):
            command.downgrade(alembic_config(database_url, Keys.from_text(new_secret_text())), "0011")
        assert _stored(engine)["person"] == stored["person"]
        command.downgrade(config, "0011")
        assert _stored(engine) == {"admission": (*PLAIN["admission"], "lo thi hoa"), "person": (PLAIN["person"],),
                                   "draft": (PLAIN["draft"],), "audit": PLAIN["audit"]}
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_entry"))
        migrate(database_url)  # and up again
        assert keys.decrypt(_stored(engine)["person"][0]) == PLAIN["person"]
    finally:
        engine.dispose()


def test_0012_without_a_key_stops_before_changing_anything(database_url: str, monkeypatch) -> None:
    from models.crypto import KEY_ENV

    command.upgrade(alembic_config(database_url), "0011")
    engine = create_sync_engine_for(database_url)
    try:
        _fill_previous_schema(engine)
        monkeypatch.delenv(KEY_ENV)
        with pytest.raises(RuntimeError, match="needs the encryption key"):
            migrate(database_url)
        assert _stored(engine)["person"] == (PLAIN["person"],)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0011"
    finally:
        engine.dispose()
