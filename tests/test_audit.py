"""The audit trail: entries for chat reports and /undo, never updated or deleted, the CLI's `audit`, the export's sheet."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from models.audit import Action, Change, record
from models.entities import AuditChannel, AuditEntry, Role
from models.units import unit_by_code
from tests.harness import TZ, seed_world

SECRETARY, SECRETARY_PC, COMMITTEE_PN, COMMITTEE_BT = 1001, 1003, 2002, 2001
COLUMNS = ["at", "person", "channel", "action", "subject", "subject_id", "unit_code", "field", "old", "new", "reason"]


async def entries(bot) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


async def test_a_chat_report_and_its_undo_are_audited(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY, first_name="Hoa")
    await bot.report_one_line(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    [admission] = await bot.all_admissions()
    [created] = await entries(bot)
    assert (created.action, created.subject, created.subject_id, created.channel) == (
        "create", "admission", admission.id, AuditChannel.CHAT)
    assert (created.unit_path, created.person_id, created.at) == (admission.unit_path, admission.reported_by_id,
                                                                  bot.clock.now())
    await bot.say(SECRETARY, "/undo")
    found_id, data = bot.api.find_button(SECRETARY, "✅")
    await bot.tap(SECRETARY, "✅")
    _, withdrawn = await entries(bot)
    assert (withdrawn.action, withdrawn.subject_id, withdrawn.person_id) == ("withdraw", admission.id,
                                                                             admission.reported_by_id)
    await bot.settle(bot.api.push_callback(SECRETARY, found_id, data))  # a second ✅: no second entry
    assert len(await entries(bot)) == 2


async def test_the_database_refuses_to_update_or_delete_audit_entries(sessions) -> None:
    async with sessions.begin() as session:
        [entry] = record(session, at=datetime(2026, 7, 1, tzinfo=TZ), channel=AuditChannel.CLI, action=Action.CORRECT,
                         subject="admission", subject_id=1, changes=[Change("birth_year", "1998", "1997")],
                         reason="Ghi nhầm")
        await session.flush()
        entry_id = entry.id
    for statement in (update(AuditEntry).where(AuditEntry.id == entry_id).values(new_value="2000"),
                      delete(AuditEntry).where(AuditEntry.id == entry_id),
                      text("UPDATE audit_entry SET reason = 'khác'"), text("DELETE FROM audit_entry")):
        with pytest.raises(DBAPIError):
            async with sessions.begin() as session:
                await session.execute(statement)
    async with sessions() as session:
        [kept] = list(await session.scalars(select(AuditEntry)))
    assert (kept.new_value, kept.reason) == ("1997", "Ghi nhầm")


async def _correct_birth_year(bot, user: int, value: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    await bot.say(user, "/reports")
    await bot.tap(user, "15/05/2026 · Lò Thị Hoa")
    await bot.tap(user, "✏️")
    await bot.tap(user, "Năm sinh")
    await bot.say(user, value)
    await bot.say(user, reason)
    await bot.tap(user, "✅")


async def test_the_export_has_an_audit_sheet_of_the_scope_and_period(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY, first_name="Hoa")
    await bot.register(SECRETARY_PC, "PC", Role.SECRETARY, first_name="Lan")
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE, first_name="Minh")
    await bot.report_one_line(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.report_one_line(SECRETARY_PC, "/report Hà Văn Nam, 1995, nam, 10/05/2026")  # another commune
    await _correct_birth_year(bot, COMMITTEE_BT, "1997", "Ghi nhầm năm sinh")
    await bot.say(COMMITTEE_BT, "/export")
    document = bot.api.last_message(COMMITTEE_BT)["document"]
    book = load_workbook(io.BytesIO(bot.api.files[document["file_id"]][2]))
    rows = list(book["audit"].iter_rows(values_only=True))
    assert rows[0] == ("Thời điểm", "Người thực hiện", "Kênh", "Thao tác", "Đối tượng", "Mã đối tượng", "Mã đơn vị",
                       "Trường", "Giá trị cũ", "Giá trị mới", "Lý do")
    assert [row[1:5] + row[6:] for row in rows[1:]] == [
        ("Hoa", "chat", "create", "admission", "NL", None, None, None, None),
        ("Minh", "chat", "correct", "admission", "NL", "birth_year", "1998", "1997", "Ghi nhầm năm sinh"),
        ("Minh", "chat", "export", "export", "BT", "period", None, "2026 xlsx", None),  # this very export
    ]  # Hà Văn Nam's report, in Nhạn Môn, is not Bộc Bố's
    assert rows[1][0] == "2026-07-01 09:00:00"  # in [bot] timezone
    await bot.say(COMMITTEE_BT, "/export 2025")  # a period in which nothing was changed
    document = bot.api.last_message(COMMITTEE_BT)["document"]
    book = load_workbook(io.BytesIO(bot.api.files[document["file_id"]][2]))
    assert len(list(book["audit"].iter_rows(values_only=True))) == 1


def test_the_audit_command_prints_the_subtrees_entries_as_csv(schema_url, tmp_path, capsys) -> None:
    from bot.cli import main
    from core.clock import FixedClock
    from models.db import create_engine_for, session_factory
    from tests.harness import DEFAULT_NOW

    async def seed() -> None:
        engine = create_engine_for(schema_url)
        sessions = session_factory(engine)
        await seed_world(sessions)
        async with sessions.begin() as session:
            nl, pc = await unit_by_code(session, "NL"), await unit_by_code(session, "PC")
            record(session, at=datetime(2026, 3, 1, 8, 0, tzinfo=TZ), channel=AuditChannel.CHAT, action=Action.CREATE,
                   subject="admission", subject_id=7, unit=nl)
            record(session, at=datetime(2026, 6, 2, 10, 30, tzinfo=TZ), channel=AuditChannel.CHAT,
                   action=Action.CORRECT, subject="admission", subject_id=7, unit=nl,
                   changes=[Change("full_name", "Lò Thi Hoa", "Lò Thị Hoa")], reason="Sai dấu, theo lý lịch")
            record(session, at=datetime(2026, 6, 3, tzinfo=TZ), channel=AuditChannel.CLI, action=Action.CREATE,
                   subject="admission", subject_id=8, unit=pc)
        await engine.dispose()

    asyncio.run(seed())
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{schema_url}"\n', encoding="utf-8")
    clock = FixedClock(DEFAULT_NOW)
    assert main(["--config", str(config), "audit", "--unit", "BT"], clock) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [COLUMNS,
                    ["2026-03-01 08:00:00", "", "chat", "create", "admission", "7", "NL", "", "", "", ""],
                    ["2026-06-02 10:30:00", "", "chat", "correct", "admission", "7", "NL", "full_name", "Lò Thi Hoa",
                     "Lò Thị Hoa", "Sai dấu, theo lý lịch"]]
    assert main(["--config", str(config), "audit", "--unit", "PN", "--since", "2026-06-02"], clock) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    # ... and the first printing itself: names left the bot, so it was recorded as an export of BT.
    assert [(row[0], row[6]) for row in rows[1:]] == [("2026-06-02 10:30:00", "NL"), ("2026-06-03 00:00:00", "PC"),
                                                      ("2026-07-01 09:00:00", "BT")]
    assert rows[-1][1:6] + rows[-1][7:] == ["", "cli", "export", "export", "", "period", "", "audit since - csv", ""]
    assert main(["--config", str(config), "audit", "--unit", "PN", "--since", "2026-06-04"], clock) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert [(row[3], row[6]) for row in rows[1:]] == [("export", "BT"), ("export", "PN")]  # only the printings
    assert main(["--config", str(config), "audit", "--unit", "NOPE"], clock) == 1
    assert "NOPE" in capsys.readouterr().err
