"""Personal data at rest, keys, rotation, backups, exports that leave the bot, and /start brute force."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, text

from bot.cli import main as cli_main
from core.i18n import Texts
from models.audit import Action
from models.crypto import KEY_ENV, KeyProblem, Keys, keys_from_environment, new_secret_text
from models.entities import AuditEntry, Role
from reports.exports import as_text
from tests.harness import BotHarness, add_history

SECRETARY, COMMITTEE = 1001, 2002
NAME, FOLDED = "Lò Thị Hoa", "Lo Thi Hoa"
SECRETARY_NAME = "Hoàng Văn Páo"


@pytest.fixture
async def reported(harness):  # type: ignore[no-untyped-def]
    """A bot where a secretary reported Lò Thị Hoa and a committee member follows the district."""
    await harness.register(SECRETARY, "NL", Role.SECRETARY, first_name=SECRETARY_NAME)
    await harness.register(COMMITTEE, "PN", Role.COMMITTEE)
    assert "Đã lưu" in (await harness.report_one_line(
        SECRETARY, f"/report {NAME}, 1998, nữ, 15/05/2026, Tày, 125-QĐ/ĐU"))[-1]["text"]
    return harness


def _sqlite_files(bot: BotHarness) -> list[Path]:
    database = Path(bot.config.database.url.removeprefix("sqlite:///"))
    return [p for p in (database, database.with_name(database.name + "-wal")) if p.exists()]


async def _progress(bot: BotHarness) -> str:
    return (await bot.say(COMMITTEE, "/progress"))[-1]["text"]


async def _export(bot: BotHarness, words: str = "") -> bytes:
    await bot.say(COMMITTEE, f"/export {words}".strip())
    document = bot.api.last_message(COMMITTEE)["document"]
    return bot.api.files[document["file_id"]][2]


def _listing(xlsx: bytes) -> list[tuple]:
    return list(load_workbook(io.BytesIO(xlsx))["Danh sách kết nạp"].iter_rows(min_row=2, values_only=True))


async def test_the_database_file_holds_no_name_and_everything_still_works(reported, database_url) -> None:
    bot = reported
    # A half-filled report is in the conversation store too.
    await bot.say(SECRETARY, "/report")
    await bot.say(SECRETARY, "Giàng Thị Mỷ")
    if database_url.startswith("sqlite"):
        for path in _sqlite_files(bot):
            content = path.read_bytes()
            for plain in (NAME, FOLDED, FOLDED.lower(), SECRETARY_NAME, "Giàng Thị Mỷ", "Tày"):
                assert plain.encode("utf-8") not in content, (plain, path.name)
    async with bot.sessions() as session:
        stored = (await session.execute(text("SELECT full_name, name_key, ethnicity FROM admission"))).one()
        drafts = list((await session.execute(text("SELECT data FROM stored_state"))).scalars())
    assert all(value.startswith("e1:") for value in (stored[0], stored[2], *drafts)) and drafts
    assert stored[1] == keys_from_environment().name_key("lo thi hoa\x1f1998")  # HMAC, not the name
    await bot.say(SECRETARY, "/cancel")
    # /progress, the export and the duplicate warning read through the key.
    assert "1/90" in await _progress(bot)
    assert [row[2] for row in _listing(await _export(bot))] == [NAME]
    card = (await bot.say(SECRETARY, f"/report {FOLDED}, 1998, nu, 20/05/2026"))[-1]["text"]
    assert "trùng" in card and NAME in card
    card = (await bot.say(SECRETARY, f"/report {FOLDED}, 1999, nu, 20/05/2026"))[-1]["text"]
    assert "trùng" not in card  # the birth year is part of the keyed hash


async def test_every_export_is_audited_and_its_caption_says_personal_data(reported) -> None:
    bot = reported
    await _export(bot)
    await _export(bot, "term csv")
    caption = bot.api.last_message(COMMITTEE)["caption"]
    assert "dữ liệu cá nhân" in caption
    async with bot.sessions() as session:
        entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == Action.EXPORT.value)
                                              .order_by(AuditEntry.id)))
        committee = (await session.execute(text("SELECT id FROM person WHERE telegram_id = :t"),
                                           {"t": COMMITTEE})).scalar_one()
    assert [(e.new_value, e.person_id, e.channel.value, e.subject) for e in entries] == [
        ("2026 xlsx", committee, "chat", "export"), ("2025-2030 csv", committee, "chat", "export")]
    assert entries[0].at == bot.clock.now() and entries[0].unit_path == "/1/"


def _texts() -> Texts:
    return Texts.load()


async def _start_fails_with(bot: BotHarness, reason: str) -> None:
    await bot.stop()
    with pytest.raises(KeyProblem) as raised:
        await bot.start()
    assert raised.value.reason == reason
    await bot.stop()


async def test_another_key_or_none_stops_with_a_bilingual_message(reported, monkeypatch, tmp_path, capsys) -> None:
    bot = reported
    original = os.environ[KEY_ENV]
    monkeypatch.setenv(KEY_ENV, new_secret_text())
    await _start_fails_with(bot, "wrong")
    config = _config_file(tmp_path, bot.config.database.url, tmp_path / "absent.key")
    assert await asyncio.to_thread(cli_main, ["--config", str(config), "export", "--unit", "PN",
                                              "--out", str(tmp_path / "x.xlsx")]) == 1
    err = capsys.readouterr().err
    assert _texts().get("security.key_wrong", "vi") in err and _texts().get("security.key_wrong", "en") in err
    assert not (tmp_path / "x.xlsx").exists()
    monkeypatch.delenv(KEY_ENV)
    await _start_fails_with(bot, "missing")
    assert await asyncio.to_thread(cli_main, ["--config", str(config), "invite", "NL", "secretary"]) == 1
    err = capsys.readouterr().err
    assert "Không có khóa mã hóa" in err and "No key for the personal data" in err and "absent.key" in err
    monkeypatch.setenv(KEY_ENV, original)  # the right key again: the data is all there
    await bot.start()
    assert "1/90" in await _progress(bot)


def _config_file(folder: Path, url: str, key_file: Path) -> Path:
    path = folder / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n\n[security]\nkey_file = "{key_file}"\n', encoding="utf-8")
    return path


async def test_rotate_key_then_only_the_new_key_opens_the_data(reported, monkeypatch, tmp_path, capsys) -> None:
    bot = reported
    before = await _progress(bot)
    await _export(bot)  # an audit entry with a sealed value, to be re-sealed
    await bot.stop()
    new_key = tmp_path / "new.key"
    config = _config_file(tmp_path, bot.config.database.url, tmp_path / "unused.key")
    assert await asyncio.to_thread(cli_main, ["--config", str(config), "rotate-key", "--new-key-file",
                                              str(new_key)]) == 0
    out = capsys.readouterr()
    assert "ĐÃ TẠO KHÓA MÃ HÓA MỚI" in out.err and "Đã mã hóa lại" in out.out and "Re-encrypted" in out.out
    assert new_key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyProblem):  # the old key is still in the environment: it no longer opens the data
        await bot.start()
    await bot.stop()
    monkeypatch.setenv(KEY_ENV, new_key.read_text().strip())
    await bot.start()
    assert await _progress(bot) == before
    assert [row[2] for row in _listing(await _export(bot))] == [NAME]
    async with bot.sessions() as session:  # the audit trail was re-sealed, and is insert-only again
        assert "2026 xlsx" in list(await session.scalars(select(AuditEntry.new_value)))
    with pytest.raises(Exception, match="never"):
        async with bot.sessions.begin() as session:
            await session.execute(text("UPDATE audit_entry SET field = 'x'"))


async def test_backup_then_restore_into_an_empty_database_gives_the_same_progress_and_export(
        reported, tmp_path, capsys, api_server, clock) -> None:
    bot = reported
    if not bot.config.database.url.startswith("sqlite"):
        pytest.skip("the PostgreSQL backup is pg_dump's; this test restores SQLite files")
    before, export = await _progress(bot), _listing(await _export(bot))
    config = _config_file(tmp_path, bot.config.database.url, tmp_path / "unused.key")
    backup = tmp_path / "backup.db"
    assert await asyncio.to_thread(cli_main, ["--config", str(config), "backup", str(backup)]) == 0  # bot running
    assert NAME.encode() not in backup.read_bytes()
    assert await asyncio.to_thread(cli_main, ["--config", str(config), "backup", str(backup)]) == 1  # never overwrites
    assert await asyncio.to_thread(cli_main, ["--config", str(config), "restore", str(backup)]) == 1  # holds data
    assert "--force" in capsys.readouterr().err
    await bot.stop()
    other = tmp_path / "other"
    other.mkdir()
    restored_url = f"sqlite:///{other / 'restored.db'}"
    assert await asyncio.to_thread(cli_main, ["--config", str(_config_file(other, restored_url, other / "k")),
                                              "restore", str(backup)]) == 0
    from dataclasses import replace

    from core.config import DatabaseSettings

    again = BotHarness(replace(bot.config, database=DatabaseSettings(url=restored_url)), api_server, clock)
    await again.start()
    try:
        assert await _progress(again) == before
        assert _listing(await _export(again)) == export
    finally:
        await again.stop()


async def test_restore_refuses_a_backup_the_key_does_not_open(reported, tmp_path, monkeypatch, capsys) -> None:
    bot = reported
    if not bot.config.database.url.startswith("sqlite"):
        pytest.skip("SQLite files")
    config = _config_file(tmp_path, bot.config.database.url, tmp_path / "unused.key")
    backup = tmp_path / "backup.db"
    assert await asyncio.to_thread(cli_main, ["--config", str(config), "backup", str(backup)]) == 0
    monkeypatch.setenv(KEY_ENV, new_secret_text())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert await asyncio.to_thread(cli_main, ["--config", str(_config_file(empty, f"sqlite:///{empty / 'x.db'}",
                                                                          empty / "k")), "restore", str(backup)]) == 1
    err = capsys.readouterr().err
    assert "không mở được bản sao lưu" in err and "does not open the backup" in err
    assert not (empty / "x.db").exists()


@pytest.mark.parametrize("typed, shown", [
    ("=1+1", "'=1+1"), ("+84", "'+84"), ("-5", "'-5"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("a=b", "a=b"), ("125-QĐ/ĐU", "125-QĐ/ĐU"), ("", ""), (-5, -5), (3.5, 3.5)])
def test_a_cell_that_would_be_a_formula_is_written_as_text(typed, shown) -> None:
    assert as_text(typed) == shown


async def test_formula_like_names_units_and_decisions_come_out_as_text(harness, tmp_path) -> None:
    from models.units import UnitRow, load_units
    from models.entities import UnitKind

    bot = harness
    async with bot.sessions.begin() as session:
        await load_units(session, [UnitRow(8, "SUM", "@SUM(A1)", "BT", UnitKind.CELL, ("=cmd|' /C calc'!A0",))])
    await add_history(bot.sessions, "SUM", 1, date(2026, 3, 1))
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE, "PN", Role.COMMITTEE)
    # The chat's own rules refuse such names and decision numbers (a decision begins with a letter or digit) ...
    for line in ('/report =HYPERLINK("http://x","y"), 1998, nữ, 15/05/2026',
                 "/report Lò Thị Hoa, 1998, nữ, 15/05/2026, Tày, =1+1",
                 "/report Lò Thị Hoa, 1998, nữ, 15/05/2026, Tày, -1+1"):
        assert "chưa đúng" in (await bot.say(SECRETARY, line))[-1]["text"], line
    # ... but rows written around them (older data, another tool) are escaped all the same.
    from models.admissions import AdmissionDraft, imported_admission
    from models.entities import Sex
    from models.units import unit_by_code

    async with bot.sessions.begin() as session:
        unit = await unit_by_code(session, "NL")
        session.add(imported_admission(unit, AdmissionDraft(
            unit.id, '=HYPERLINK("http://x","y")', 1998, Sex.FEMALE, date(2026, 5, 15), ethnicity="+Tày",
            decision_no="=1+1"), bot.clock.now()))
    listing = _listing(await _export(bot))
    assert "'@SUM(A1)" in [row[1] for row in listing]
    [row] = [row for row in listing if row[0] == "NL"]
    assert (row[2], row[5], row[8]) == ("'=HYPERLINK(\"http://x\",\"y\")", "'+Tày", "'=1+1")
    book = load_workbook(io.BytesIO(await _export(bot)))
    cells = [c for sheet in book for row in sheet.iter_rows() for c in row if c.value is not None]
    assert not [c for c in cells if c.data_type == "f"]  # no formula anywhere
    summary = list(csv.reader(io.StringIO((await _export(bot, "csv")).decode("utf-8-sig"))))
    assert ["SUM", "'@SUM(A1)"] == summary[[r[0] for r in summary].index("SUM")][:2]


async def test_start_brute_force_five_wrong_codes_then_a_polite_wait_across_restarts(harness) -> None:
    from models.people import create_invite
    from models.units import unit_by_code

    bot = harness
    user = 4242
    bot.api.add_user(user, "Khách")
    for attempt in range(5):  # the fifth is still checked
        reply = (await bot.say(user, f"/start WRONGCODE{attempt:02d}xxxxxxxxxxx"))[-1]["text"]
        assert "Mã mời không đúng" in reply, attempt
    await bot.stop()
    await bot.start()  # a restart forgets nothing
    async with bot.sessions.begin() as session:
        code = await create_invite(session, await unit_by_code(session, "NL"), Role.SECRETARY, bot.clock.now(), 14)
    reply = (await bot.say(user, f"/start {code}"))[-1]["text"]
    assert "đợi khoảng 60 phút" in reply  # the sixth is refused without being checked, even a good code
    async with bot.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM person WHERE telegram_id = :t"),
                                      {"t": user})).scalar_one() == 0
    bot.clock.advance(timedelta(minutes=59))
    assert "đợi khoảng 1 phút" in (await bot.say(user, f"/start {code}"))[-1]["text"]
    bot.clock.advance(timedelta(minutes=1))  # an hour after the first wrong code: checked again
    assert "Chào mừng" in (await bot.say(user, f"/start {code}"))[-1]["text"]
    other = 4343  # the limit is per person
    bot.api.add_user(other, "Người khác")
    assert "Mã mời không đúng" in (await bot.say(other, "/start WRONGCODEzzxxxxxxxxxxxxx"))[-1]["text"]


def test_keys_are_derived_apart_and_a_changed_value_never_opens() -> None:
    keys = Keys.from_text(new_secret_text())
    assert keys.encryption != keys.hashing and len(keys.encryption) == len(keys.hashing) == 32
    sealed = keys.encrypt(NAME)
    assert sealed != keys.encrypt(NAME) and keys.decrypt(sealed) == NAME  # a fresh nonce each time
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    for bad in (flipped, NAME, "e1:", "e1:%%%"):
        with pytest.raises(KeyProblem):
            keys.decrypt(bad)
    with pytest.raises(KeyProblem):
        Keys.from_text(new_secret_text()).decrypt(sealed)
    assert "Keys(<hidden>)" == repr(keys)
    with pytest.raises(KeyProblem):
        Keys.from_text("c2hvcnQ=")  # 5 bytes, not 32


def test_the_security_section_is_read_and_checked(tmp_path) -> None:
    from core.config import ConfigError, parse_config

    assert parse_config({"security": {"key_file": "k/x.key"}}, environ={}).security.key_file == Path("k/x.key")
    assert parse_config({}, environ={}).security.key_file == Path("data/secret.key")
    with pytest.raises(ConfigError, match="security.key"):
        parse_config({"security": {"key": "x"}}, environ={})


async def test_postgresql_backup_with_pg_dump_restores_into_an_empty_database(reported, tmp_path, capsys) -> None:
    import shutil
    import uuid

    import psycopg

    bot = reported
    url = bot.config.database.url
    if not url.startswith("postgresql") or shutil.which("pg_dump") is None:
        pytest.skip("PostgreSQL with pg_dump installed")
    config = _config_file(tmp_path, url, tmp_path / "unused.key")
    backup = tmp_path / "backup.dump"
    assert await asyncio.to_thread(cli_main, ["--config", str(config), "backup", str(backup)]) == 0  # bot running
    assert NAME.encode() not in backup.read_bytes()
    name = f"restored_{uuid.uuid4().hex[:8]}"
    server = url.rsplit("/", 1)[0]
    with psycopg.connect(server + "/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        (tmp_path / "other").mkdir()
        other = _config_file(tmp_path / "other", f"{server}/{name}", tmp_path / "unused.key")
        assert await asyncio.to_thread(cli_main, ["--config", str(other), "restore", str(backup)]) == 0
        out = [tmp_path / "a.csv", tmp_path / "b.csv"]
        for cfg, path in zip((config, other), out):
            assert await asyncio.to_thread(cli_main, ["--config", str(cfg), "export", "--unit", "PN",
                                                      "--out", str(path)]) == 0
        assert out[0].read_bytes() == out[1].read_bytes() and b"1" in out[1].read_bytes()
        assert await asyncio.to_thread(cli_main, ["--config", str(other), "restore", str(backup)]) == 1  # holds data
    finally:
        with psycopg.connect(server + "/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_invite_code_never_begins_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A code beginning with "-" reads as an option on a command line and gets "'" in a spreadsheet cell."""
    import models.people

    drawn = iter(["-dashFirst0123456789ab", "_underscore0123456789a"])
    monkeypatch.setattr(models.people.secrets, "token_urlsafe", lambda _: next(drawn))
    assert models.people.new_invite_code() == "_underscore0123456789a"
    monkeypatch.undo()
    codes = [models.people.new_invite_code() for _ in range(2000)]  # ≈ 31 would begin with "-" otherwise
    assert not any(code.startswith("-") for code in codes) and all(len(code) == 22 for code in codes)
    assert as_text(codes[0]) == codes[0]
