"""Files through the chat: an admin's CSV/XLSX upload → preview → ✅ / ❌, /template, over HTTP."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from bot.cli import main as cli_main
from models.entities import AuditChannel, AuditEntry, Role, Target, Unit
from models.units import unit_by_code
from tests.harness import BotHarness, documents_sent, send_document

ADMIN, OTHER_ADMIN, SECRETARY, COMMITTEE = 3001, 3002, 1001, 2001
ADMISSIONS = "unit_code,full_name,birth_year,gender,admitted_on\n"


def _buttons(message: dict) -> list[str]:
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard") or [] for b in row]


async def _admin(bot: BotHarness, user: int = ADMIN, unit: str = "BT") -> None:
    await bot.register(user, unit, Role.ADMIN)


async def _audit(bot: BotHarness) -> list[AuditEntry]:
    async with bot.sessions() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "import")))


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_workbook_reads_as_the_csv_of_its_data_sheet_row_for_row() -> None:
    from datetime import datetime

    from models.importing import recognise, xlsx_to_csv

    book = Workbook()
    book.active.title = "Hướng dẫn"
    book.active.append(["Cột", "Ý nghĩa"])
    book.active.append(["unit_code", "Mã đơn vị"])
    data = book.create_sheet("admissions")
    data.append([])  # a blank first row: the header is on row 2, the rows keep their numbers
    data.append(["unit_code", "full_name", "birth_year", "gender", "admitted_on", "decision_no"])
    data.append(["NL", "Lò Thị\nHoa", 1998.0, "nữ", datetime(2026, 5, 15), "01"])
    data.append(["KP", "Hà Văn Nam", 1995, "nam", date(2026, 6, 1), None])
    out = io.BytesIO()
    book.save(out)
    assert xlsx_to_csv(out.getvalue(), recognise).decode().splitlines() == [
        "", "unit_code,full_name,birth_year,gender,admitted_on,decision_no",
        "NL,Lò Thị Hoa,1998,nữ,2026-05-15,01", "KP,Hà Văn Nam,1995,nam,2026-06-01"]


async def test_admissions_csv_preview_then_import_once_and_seen_in_progress(harness) -> None:
    bot = harness
    await _admin(bot)
    data = (ADMISSIONS + "NL,Lò Thị Hoa,1998,nữ,15/05/2026\nkp,Hà Văn Nam,1995,nam,2026-06-01\n").encode()
    preview = (await send_document(bot, ADMIN, "ket-nap.csv", data))[-1]
    assert "ket-nap.csv" in preview["text"] and "Đọc được 2 dòng" in preview["text"]
    assert "thêm mới 2, thay đổi 0, giữ nguyên 0" in preview["text"]
    assert _buttons(preview) == ["✅ Nạp", "❌ Hủy"]
    assert all(len(b["callback_data"].encode()) <= 64 for row in preview["reply_markup"]["inline_keyboard"] for b in row)
    assert await bot.counted_admissions() == []  # nothing before ✅
    message_id, data_ok = bot.api.find_button(ADMIN, "✅")
    pending = dict(bot.application.user_data[ADMIN]["files_pending"])

    done = await bot.tap(ADMIN, "✅")
    assert any("Đã nạp — danh sách đã kết nạp: 2 dòng — thêm mới 2" in r.get("text", "") for r in done)
    assert len(await bot.counted_admissions()) == 2
    assert "2/10" in (await bot.say(ADMIN, "/progress"))[0]["text"]  # Bộc Bố: 2 of its plan of 10

    # The same ✅ again (a replayed press) imports nothing and says so.
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(ADMIN, message_id, data_ok))
    answers = bot.api.calls_to("answerCallbackQuery", since=mark)
    assert "đã được nạp rồi" in answers[-1].params.get("text", "")
    assert len(await bot.counted_admissions()) == 2
    # A crash between the import's commit and the user_data flush would leave the upload pending:
    # the audit entry, written in the import's transaction, still stops a second import.
    bot.application.user_data[ADMIN]["files_pending"] = pending
    # ... stored too: on PostgreSQL each update reads the sender's state afresh from the database.
    await bot.application.persistence.update_user_data(ADMIN, bot.application.user_data[ADMIN])
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(ADMIN, message_id, data_ok))
    assert any("đã được nạp rồi" in r.get("text", "") for r in bot.replies(ADMIN, mark))
    assert len(await bot.counted_admissions()) == 2
    entries = await _audit(bot)
    assert len(entries) == 1
    entry = entries[0]
    async with bot.sessions() as session:
        bt = await unit_by_code(session, "BT")
    assert entry.channel == AuditChannel.FILE and entry.field == "admissions" and entry.person_id is not None
    assert entry.unit_id == bt.id  # filed at the lowest unit holding every row: Nà Lạn and Khuổi Pết are Bộc Bố's
    assert json.loads(entry.new_value) == {"total": 2, "created": 2, "changed": 0, "unchanged": 0}

    # The same file again: both rows are already there, left as they are.
    again = (await send_document(bot, ADMIN, "ket-nap.csv", data))[-1]
    assert "thêm mới 0, thay đổi 0, giữ nguyên 2" in again["text"]


async def test_bad_rows_and_rows_outside_the_subtree_are_named_by_line_and_nothing_is_offered(harness) -> None:
    bot = harness
    await _admin(bot)
    data = (ADMISSIONS + "NL,Lò Thị Hoa,1998,nữ,15/05/2026\n"
            "PC,Hà Văn Nam,1995,nam,01/06/2026\n"  # Pác Cáp is Nhạn Môn's: outside this admin's subtree
            "NL,Lò Văn Ba,98,nam,01/06/2026\n"
            "ZZ,Lò Văn Tư,1990,nam,01/06/2026\n").encode()
    preview = (await send_document(bot, ADMIN, "ket-nap.csv", data))[-1]
    text = preview["text"]
    assert "Đọc được 4 dòng" in text and "Có 3 dòng lỗi" in text
    assert "dòng 3: mã 'PC' không thuộc các đơn vị đồng chí quản lý" in text
    assert "dòng 4: năm sinh '98' phải có 4 chữ số" in text
    assert "dòng 5: mã 'ZZ' không thuộc các đơn vị đồng chí quản lý" in text  # told like PC: nothing revealed
    assert "Nhạn Môn" not in text and "Pác Cáp" not in text
    assert "thêm mới 1" in text  # the one good row, counted
    assert _buttons(preview) == []  # a file with bad rows imports nothing: no ✅
    assert await bot.counted_admissions() == []

    # The district admin may import Pác Cáp: the same row is good for them.
    await _admin(bot, OTHER_ADMIN, "PN")
    ok = (await send_document(bot, OTHER_ADMIN, "pc.csv", (ADMISSIONS + "PC,Hà Văn Nam,1995,nam,01/06/2026\n").encode()))
    assert "thêm mới 1" in ok[-1]["text"] and _buttons(ok[-1])[0].startswith("✅")


async def test_many_bad_rows_fit_one_message_and_come_whole_as_a_csv(harness) -> None:
    bot = harness
    await _admin(bot)
    rows = "".join(f"NL,Người {chr(65 + i % 26)},19x{i},nữ,15/05/2026\n" for i in range(300))
    mark = bot.api.mark()
    sent = await send_document(bot, ADMIN, "nhieu.csv", (ADMISSIONS + rows).encode())
    texts = [r["text"] for r in sent if "text" in r]
    assert all(len(t) <= 4096 for t in texts)
    assert "dòng 2:" in texts[-1] and "dòng 21:" in texts[-1] and "dòng 22:" not in texts[-1]
    assert "và 280 lỗi nữa" in texts[-1]
    (name, content), = documents_sent(bot, ADMIN, mark)
    assert name == "loi-admissions.csv"
    lines = content.decode("utf-8-sig").splitlines()
    assert len(lines) == 301 and lines[-1].startswith("301,")

    # Exactly SHOWN_PROBLEMS (20) bad rows: all in the message, no document.
    rows = "".join(f"NL,Người {chr(65 + i)},19x{i},nữ,15/05/2026\n" for i in range(20))
    mark = bot.api.mark()
    text = (await send_document(bot, ADMIN, "hai-muoi.csv", (ADMISSIONS + rows).encode()))[-1]["text"]
    assert "dòng 21:" in text and "lỗi nữa" not in text and documents_sent(bot, ADMIN, mark) == []


async def test_units_xlsx_counts_new_changed_unchanged_and_imports_on_the_check_mark(harness) -> None:
    bot = harness
    await _admin(bot)
    data = _xlsx([["code", "name", "parent_code", "kind"],
                  ["NL", "Chi bộ thôn Nà Lạn mới", "BT", "cell"],  # renamed
                  ["KP", "Chi bộ thôn Khuổi Pết", "BT", "cell"],  # as it is
                  [None, None, None, None],
                  ["NM", "Chi bộ thôn Nà Mòn", "BT", "cell"],  # new, on row 5
                  ["PC", "Chi bộ Pác Cáp", "BT", "cell"]])  # another commune's cell, moved here: refused
    preview = (await send_document(bot, ADMIN, "don-vi.xlsx", data))[-1]
    assert "dòng 6: mã 'PC' không thuộc" in preview["text"] and _buttons(preview) == []
    data = _xlsx([["code", "name", "parent_code", "kind"],
                  ["NL", "Chi bộ thôn Nà Lạn mới", "BT", "cell"],
                  ["KP", "Chi bộ thôn Khuổi Pết", "BT", "cell"],
                  [None, None, None, None],
                  ["NM", "Chi bộ thôn Nà Mòn", "BT", "cell"]])
    preview = (await send_document(bot, ADMIN, "don-vi.xlsx", data))[-1]
    assert "danh sách đơn vị" in preview["text"] and "Đọc được 3 dòng" in preview["text"]
    assert "thêm mới 1, thay đổi 1, giữ nguyên 1" in preview["text"]
    async with bot.sessions() as session:
        assert await unit_by_code(session, "NM") is None
    await bot.tap(ADMIN, "✅")
    async with bot.sessions() as session:
        new = await unit_by_code(session, "NM")
        bt = await unit_by_code(session, "BT")
        assert new is not None and new.parent_id == bt.id
        assert (await unit_by_code(session, "NL")).name == "Chi bộ thôn Nà Lạn mới"
        assert bt.cell_count == 3


async def test_cancel_changes_nothing_and_its_check_mark_is_refused_afterwards(harness) -> None:
    bot = harness
    await _admin(bot)
    data = b"unit_code,period,target\nNL,2026,7\n"
    preview = (await send_document(bot, ADMIN, "chi-tieu.csv", data))[-1]
    assert "thay đổi 1" in preview["text"]
    message_id, data_ok = bot.api.find_button(ADMIN, "✅")
    outside = (await send_document(bot, ADMIN, "nn.csv", b"unit_code,period,target\nNN,2026,9\n"))[-1]["text"]
    assert "dòng 2: mã 'NN' không thuộc các đơn vị đồng chí quản lý" in outside  # another commune's
    # That newer upload replaced the pending one: its ✅ no longer imports.
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(ADMIN, message_id, data_ok))
    assert "không còn hiệu lực" in bot.api.calls_to("answerCallbackQuery", since=mark)[-1].params["text"]
    await send_document(bot, ADMIN, "chi-tieu.csv", data)
    message_id, data_ok = bot.api.find_button(ADMIN, "✅")
    cancelled = await bot.tap(ADMIN, "❌")
    assert any("Đã hủy; không có gì thay đổi" in r.get("text", "") for r in cancelled)
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(ADMIN, message_id, data_ok))
    assert "không còn hiệu lực" in bot.api.calls_to("answerCallbackQuery", since=mark)[-1].params["text"]
    async with bot.sessions() as session:
        nl = await unit_by_code(session, "NL")
        values = list(await session.scalars(select(Target.value).where(Target.unit_id == nl.id)))
    assert values == [4]
    assert await _audit(bot) == []


async def test_a_check_mark_pressed_by_someone_else_is_refused(harness) -> None:
    bot = harness
    await _admin(bot)
    await _admin(bot, OTHER_ADMIN, "BT")
    await send_document(bot, ADMIN, "chi-tieu.csv", b"unit_code,period,target\nNL,2026,7\n")
    _, data_ok = bot.api.find_button(ADMIN, "✅")
    own = bot.api.last_message(OTHER_ADMIN)["message_id"]  # a message of the other admin's own chat
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(OTHER_ADMIN, own, data_ok))
    assert "không còn hiệu lực" in bot.api.calls_to("answerCallbackQuery", since=mark)[-1].params["text"]
    await bot.settle(bot.api.push_callback(OTHER_ADMIN, own, data_ok.replace(":ok:", ":no:")))
    async with bot.sessions() as session:
        nl = await unit_by_code(session, "NL")
        assert list(await session.scalars(select(Target.value).where(Target.unit_id == nl.id))) == [4]
    await bot.tap(ADMIN, "✅")  # the owner's preview is still pending, and works
    async with bot.sessions() as session:
        assert list(await session.scalars(select(Target.value).where(Target.unit_id == nl.id))) == [7]


async def test_the_pending_file_survives_a_restart(harness) -> None:
    bot = harness
    await _admin(bot)
    await send_document(bot, ADMIN, "ket-nap.csv", (ADMISSIONS + "NL,Lò Thị Hoa,1998,nữ,15/05/2026\n").encode())
    await bot.stop()
    await bot.start()
    done = await bot.tap(ADMIN, "✅")
    assert any("Đã nạp" in r.get("text", "") for r in done)
    assert len(await bot.counted_admissions()) == 1


async def test_a_check_mark_after_the_data_changed_checks_again(harness) -> None:
    bot = harness
    await _admin(bot)
    data = b"code,name,parent_code,kind\nNM,Chi bo Na Mon,BT,cell\n"
    assert "thêm mới 1" in (await send_document(bot, ADMIN, "dv.csv", data))[-1]["text"]
    async with bot.sessions.begin() as session:  # meanwhile the operator loads the same unit
        from models.importing import import_units
        await import_units(session, "code,name,parent_code,kind\nNM,Chi bộ thôn Nà Mòn,BT,cell\n")
    answers = await bot.tap(ADMIN, "✅")
    assert any("Số liệu đã thay đổi" in r.get("text", "") for r in answers)
    assert "thêm mới 0, thay đổi 1, giữ nguyên 0" in answers[-1]["text"]
    async with bot.sessions() as session:
        assert (await unit_by_code(session, "NM")).name == "Chi bộ thôn Nà Mòn"  # not yet
    await bot.tap(ADMIN, "✅")
    async with bot.sessions() as session:
        assert (await unit_by_code(session, "NM")).name == "Chi bo Na Mon"
    assert len(await _audit(bot)) == 1


async def test_big_files_other_formats_and_unknown_headers_get_a_clear_reply(harness) -> None:
    bot = harness
    await _admin(bot)
    big = ADMISSIONS.encode() + b"#" * (5 * 1024 * 1024 + 1 - len(ADMISSIONS))
    assert "lớn quá 5 MB" in (await send_document(bot, ADMIN, "lon.csv", big))[-1]["text"]
    fits = ADMISSIONS.encode() + b"\n" * (5 * 1024 * 1024 - len(ADMISSIONS))  # exactly 5 MB: taken
    assert "Đọc được 0 dòng" in (await send_document(bot, ADMIN, "vua.csv", fits))[-1]["text"]
    # A document that says it is small but is not: the bytes are checked after the download too.
    sneaky = bot.api.push_document(9999, "lon.csv", big)["message"]  # stored by someone unregistered
    sneaky["from"] = bot.api.history(ADMIN)[0]["message"]["from"]
    sneaky["chat"] = bot.api.history(ADMIN)[0]["message"]["chat"]
    sneaky["document"]["file_size"] = 100
    mark = bot.api.mark()
    await bot.settle(bot.api.push_update({"message": sneaky}))
    assert "không tải được tệp này" in bot.replies(ADMIN, mark)[-1]["text"]
    for name in ("bao-cao.pdf", "danh-sach.docx", "khong-duoi"):
        assert "chỉ nhận tệp CSV (UTF-8) hoặc Excel .xlsx" in (await send_document(bot, ADMIN, name, b"%PDF-1.4"))[-1]["text"]
    unknown = (await send_document(bot, ADMIN, "la.csv", "họ tên,năm sinh\nLò Thị Hoa,1998\n".encode()))[-1]["text"]
    assert "không nhận ra loại tệp" in unknown and "unit_code,period,target" in unknown and "/template" in unknown
    broken = (await send_document(bot, ADMIN, "hong.xlsx", b"not a workbook"))[-1]["text"]
    assert "không đọc được tệp Excel" in broken
    missing = (await send_document(bot, ADMIN, "thieu.csv", b"unit_code,full_name,birth_year,gender\n"))[-1]["text"]
    assert "dòng 1: thiếu cột 'admitted_on'" in missing
    assert await _audit(bot) == []


async def test_secretaries_and_committee_members_are_refused_politely(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE, "BT", Role.COMMITTEE)
    data = (ADMISSIONS + "NL,Lò Thị Hoa,1998,nữ,15/05/2026\n").encode()
    for user in (SECRETARY, COMMITTEE):
        refusal = (await send_document(bot, user, "ket-nap.csv", data))[-1]
        assert "Chỉ Ban Tổ chức (quản trị) mới nạp được" in refusal["text"] and _buttons(refusal) == []
        assert "Chỉ Ban Tổ chức" in (await bot.say(user, "/template"))[-1]["text"]
    assert not bot.api.calls_to("getFile")  # a refused file is not even downloaded
    assert await bot.counted_admissions() == []


async def test_templates_have_the_contract_headers_and_import_back_when_filled_in(harness) -> None:
    bot = harness
    await _admin(bot)
    mark = bot.api.mark()
    await bot.say(ADMIN, "/template")
    sent = dict(documents_sent(bot, ADMIN, mark))
    assert set(sent) == {"mau-don-vi.xlsx", "mau-ke-hoach-chi-tieu.xlsx", "mau-da-ket-nap.xlsx"}
    headers = {
        "mau-don-vi.xlsx": ["code", "name", "parent_code", "kind", "villages", "members_full", "members_probationary"],
        "mau-ke-hoach-chi-tieu.xlsx": ["unit_code", "period", "target"],
        "mau-da-ket-nap.xlsx": ["unit_code", "full_name", "birth_year", "gender", "admitted_on", "ethnicity",
                                "decision_no", "ceremony_on", "recognized_on"],
    }
    rows = {
        "mau-don-vi.xlsx": ["NM", "Chi bộ thôn Nà Mòn", "BT", "cell", "Nà Mòn", 38, 2],
        "mau-ke-hoach-chi-tieu.xlsx": ["NM", 2026, 2],
        "mau-da-ket-nap.xlsx": ["NM", "Lò Thị Hoa", 1998, "nữ", date(2026, 5, 15), "Tày", "125-QĐ/ĐU"],
    }
    for name in ("mau-don-vi.xlsx", "mau-ke-hoach-chi-tieu.xlsx", "mau-da-ket-nap.xlsx"):
        book = load_workbook(io.BytesIO(sent[name]))
        data_sheet, guide = book.worksheets
        assert [c.value for c in data_sheet[1]] == headers[name] and data_sheet.max_row == 1
        assert "Ý nghĩa" in [c.value for c in guide[1]]
        assert [r[0] for r in guide.iter_rows(min_row=2, values_only=True)] == headers[name]
        data_sheet.append(rows[name])
        out = io.BytesIO()
        book.save(out)
        preview = (await send_document(bot, ADMIN, name, out.getvalue()))[-1]
        assert "Đọc được 1 dòng" in preview["text"] and "thêm mới 1" in preview["text"], preview["text"]
        await bot.tap(ADMIN, "✅")
    (admission,) = await bot.counted_admissions()
    assert (admission.full_name, admission.admitted_on, admission.decision_no) == ("Lò Thị Hoa", date(2026, 5, 15),
                                                                                   "125-QĐ/ĐU")
    assert "Nà Mòn: 1/2" in (await bot.say(ADMIN, "/progress"))[0]["text"].replace("Chi bộ thôn ", "")
    assert [e.field for e in await _audit(bot)] == ["units", "targets", "admissions"]


def test_the_command_line_import_is_audited_too(schema_url: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{schema_url}"\n', encoding="utf-8")
    units = tmp_path / "units.csv"
    units.write_text("code,name,parent_code,kind\nPN,Huyện ủy Pác Nặm,,district\nBT,Đảng ủy xã Bộc Bố,PN,committee\n",
                     encoding="utf-8")
    assert cli_main(["--config", str(config), "import-units", "--dry-run", str(units)]) == 0  # writes nothing
    assert "Xem trước: 2 dòng — thêm mới 2, thay đổi 0, giữ nguyên 0; chưa ghi gì." in capsys.readouterr().out
    assert cli_main(["--config", str(config), "import-units", str(units)]) == 0
    targets = tmp_path / "targets.xlsx"  # the command line takes the chat's XLSX too
    targets.write_bytes(_xlsx([["unit_code", "period", "target"], ["BT", 2026, 10], ["PN", "2025-2030", 400]]))
    assert cli_main(["--config", str(config), "import-targets", str(targets)]) == 0
    from models.db import create_sync_engine_for

    engine = create_sync_engine_for(schema_url)
    with engine.connect() as conn:
        entry, second = conn.execute(select(AuditEntry.channel, AuditEntry.field, AuditEntry.new_value,
                                            AuditEntry.unit_id, AuditEntry.person_id).order_by(AuditEntry.id)).all()
        pn = conn.execute(select(Unit.id).where(Unit.code == "PN")).scalar_one()
    engine.dispose()
    assert entry == (AuditChannel.CLI, "units", json.dumps({"changed": 0, "created": 2, "total": 2, "unchanged": 0}),
                     pn, None)
    assert second[:2] == (AuditChannel.CLI, "targets") and json.loads(second[2])["created"] == 2


