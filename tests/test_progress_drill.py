"""/progress drill-down buttons, scope limits, the chart as a photo and the export as a document."""

from __future__ import annotations

import asyncio
import io
from datetime import date

from openpyxl import load_workbook

from core.clock import FixedClock
from models.entities import Role
from models.units import unit_by_code
from tests.harness import DEFAULT_NOW, add_history


def _button_data(bot, chat_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    message = bot.api.last_message(chat_id)
    return [b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row]


async def test_drill_down_and_back_up_edit_in_place_within_scope(harness) -> None:
    bot = harness
    await add_history(bot.sessions, "NL", 3, date(2026, 3, 1))
    await add_history(bot.sessions, "PC", 1, date(2026, 2, 1))
    await bot.register(2002, "PN", Role.COMMITTEE)
    first = (await bot.say(2002, "/progress"))[0]
    assert "cần <b>" in first["text"] and "Dự báo cuối năm" in first["text"] and "Trong đó: nữ 0" in first["text"]
    assert all(len(d.encode()) <= 64 for d in _button_data(bot, 2002))
    assert not any("⬆️" in b["text"] for row in first["reply_markup"]["inline_keyboard"] for b in row)
    edited = (await bot.tap(2002, "🔴 Đảng ủy xã Bộc Bố"))[0]
    assert "message_id" in edited  # editMessageText, not a new message
    assert "Đảng ủy xã Bộc Bố" in edited["text"] and "3/10 (30,0\u00a0%)" in edited["text"]
    assert "Nà Lạn" in edited["text"] and "Pác Cáp" not in edited["text"]
    cell = (await bot.tap(2002, "🟢 Chi bộ thôn Nà Lạn"))[0]
    assert "3/4 (75,0\u00a0%)" in cell["text"]
    up = (await bot.tap(2002, "⬆️"))[0]
    assert "Đảng ủy xã Bộc Bố" in up["text"].splitlines()[0]
    top = (await bot.tap(2002, "⬆️"))[0]
    assert "Huyện ủy Pác Nặm" in top["text"].splitlines()[0]
    assert len(bot.api.calls_to("sendMessage", 2002)) == 2  # the welcome and the first /progress only


async def test_forged_and_old_buttons_answer_politely(harness, api_server, clock, schema_url) -> None:
    bot = harness
    await bot.register(2001, "BT", Role.COMMITTEE)
    await bot.say(2001, "/progress")
    async with bot.sessions() as session:
        outside = await unit_by_code(session, "PN")
    message_id = bot.api.last_message(2001)["message_id"]
    for data in (f"prog:u:{outside.id}:2026", "prog:u:999999:2026", f"prog:chart:{outside.id}:2026",
                 f"prog:xlsx:{outside.id}:2026"):
        mark = bot.api.mark()
        await bot.settle(bot.api.push_callback(2001, message_id, data))
        assert bot.replies(2001, mark) == []  # no data, no new message
    answers = list(bot.api.callback_answers.values())
    assert answers and all(a.get("show_alert") for a in answers[-4:])
    assert "phạm vi" in answers[-1]["text"]
    assert "Huyện ủy" not in bot.last_text(2001)
    # After a restart the same (stateless) buttons still work.
    await bot.stop()
    await bot.start()
    edited = (await bot.tap(2001, "🔴 Chi bộ thôn Khuổi Pết"))
    assert "Chi bộ thôn Khuổi Pết" in edited[0]["text"]


async def test_secretary_sees_cell_with_chart_but_no_drill_down_or_export(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    reply = (await bot.say(1001, "/progress"))[0]
    data = _button_data(bot, 1001)
    assert [d.split(":")[1] for d in data] == ["chart"]
    assert "Đảng ủy xã Bộc Bố: 0/10" in reply["text"]
    assert "chỉ ủy viên" in (await bot.say(1001, "/export"))[0]["text"].lower()


async def test_chart_arrives_as_png_photo(harness) -> None:
    bot = harness
    await add_history(bot.sessions, "NL", 3, date(2026, 3, 1))
    await bot.register(2002, "PN", Role.COMMITTEE)
    await bot.say(2002, "/progress")
    sent = await bot.tap(2002, "📊")
    photo = next(p for p in sent if "photo" in p)
    assert "Huyện ủy Pác Nặm" in photo["caption"]
    file_id = bot.api.last_message(2002)["photo"][0]["file_id"]
    name, mime, content = bot.api.files[file_id]
    assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 10_000
    assert bot.api.last_message(2002)["photo"][0]["width"] >= 800
    sent = await bot.say(2002, "/chart term")
    assert any("nhiệm kỳ 2025-2030" in p.get("caption", "") for p in sent)


async def test_export_arrives_as_xlsx_with_numbers_and_csv_on_request(harness) -> None:
    bot = harness
    await add_history(bot.sessions, "NL", 3, date(2026, 3, 1))
    await add_history(bot.sessions, "PC", 1, date(2026, 2, 1))
    await bot.register(2002, "PN", Role.COMMITTEE)
    await bot.say(2002, "/progress")
    await bot.tap(2002, "📥")
    document = bot.api.last_message(2002)["document"]
    assert document["file_name"].endswith(".xlsx")
    book = load_workbook(io.BytesIO(bot.api.files[document["file_id"]][2]))
    summary = book["Tổng hợp"]
    headers = [c.value for c in summary[2]]
    # An annual plan is a "kế hoạch"; "chỉ tiêu" is the term target's word.
    assert headers[:7] == ["Mã đơn vị", "Tên đơn vị", "Cấp", "Kỳ", "Kế hoạch năm", "Đã kết nạp", "Tỷ lệ đạt (%)"]
    rows = {row[0]: row for row in summary.iter_rows(min_row=3, values_only=True)}
    assert [r[0] for r in summary.iter_rows(min_row=3, values_only=True)][0] == "PN"  # the unit itself first
    assert set(rows) == {"PN", "BT", "NN", "NL", "KP", "PC"}
    assert rows["PN"][4:7] == (90, 4, 4.4) and rows["BT"][4:7] == (10, 3, 30.0)
    assert rows["KP"][4:7] == (3, 0, 0.0) and isinstance(rows["PN"][5], int)
    assert rows["PN"][headers.index("Theo lịch đến nay")] == 45
    listing = list(book["Danh sách kết nạp"].iter_rows(min_row=2, values_only=True))
    assert len(listing) == 4 and listing[0][3] == 1990 and isinstance(listing[0][3], int)
    await bot.say(2002, "/export 2026 csv")
    document = bot.api.last_message(2002)["document"]
    text = bot.api.files[document["file_id"]][2].decode("utf-8-sig")
    assert document["file_name"] == "tien-do-PN-2026.csv" and "PN,Huyện ủy Pác Nặm,Huyện,2026,90,4,4.4,45" in text
    assert text.splitlines()[0].split(",")[4] == "Kế hoạch năm"
    await bot.say(2002, "/export term csv")
    text = bot.api.files[bot.api.last_message(2002)["document"]["file_id"]][2].decode("utf-8-sig")
    assert text.splitlines()[0].split(",")[4] == "Chỉ tiêu nhiệm kỳ" and "PN,Huyện ủy Pác Nặm,Huyện,2025-2030,400," in text


def test_cli_export_writes_xlsx_and_csv(schema_url, tmp_path) -> None:
    from bot.cli import main
    from models.db import create_engine_for, session_factory
    from tests.harness import seed_world

    async def seed() -> None:
        engine = create_engine_for(schema_url)
        await seed_world(session_factory(engine))
        await add_history(session_factory(engine), "KP", 2, date(2026, 4, 1))
        await engine.dispose()

    asyncio.run(seed())
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{schema_url}"\n', encoding="utf-8")
    clock = FixedClock(DEFAULT_NOW)
    out = tmp_path / "bt.xlsx"
    assert main(["--config", str(config), "export", "--unit", "BT", "--period", "2026", "--out", str(out)], clock) == 0
    rows = list(load_workbook(out)["Tổng hợp"].iter_rows(min_row=3, values_only=True))
    assert [(r[0], r[4], r[5]) for r in rows] == [("BT", 10, 2), ("NL", 4, 0), ("KP", 3, 2)]
    csv_out = tmp_path / "bt.csv"
    assert main(["--config", str(config), "export", "--unit", "BT", "--out", str(csv_out)], clock) == 0
    assert csv_out.read_text(encoding="utf-8-sig").splitlines()[1].startswith("BT,Đảng ủy xã Bộc Bố,")
    assert main(["--config", str(config), "export", "--unit", "NOPE", "--out", str(out)], clock) == 1


async def test_chart_renders_unit_names_with_dollars_and_odd_characters(harness) -> None:
    bot = harness
    odd = {"PN": "Huyện ủy $x_$ & <b>{0}</b> \\frac{", "BT": "Đảng ủy $$ 100% $\\alpha^$ #_~"}
    async with bot.sessions.begin() as session:
        for code, name in odd.items():
            (await unit_by_code(session, code)).name = name
    await add_history(bot.sessions, "NL", 3, date(2026, 3, 1))
    await bot.register(2002, "PN", Role.COMMITTEE)
    sent = await bot.say(2002, "/chart")
    photo = next(p for p in sent if "photo" in p)
    assert photo["caption"].startswith("Huyện ủy $x_$ &amp; &lt;b&gt;{0}&lt;/b&gt; \\frac{ — ")  # HTML caption
    name, mime, content = bot.api.files[bot.api.last_message(2002)["photo"][0]["file_id"]]
    assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 10_000


async def test_export_caption_is_in_the_readers_language(harness) -> None:
    from models.people import person_by_telegram_id

    bot = harness
    await bot.register(2002, "PN", Role.COMMITTEE)
    await bot.say(2002, "/export")
    caption = bot.api.last_message(2002)["caption"]
    assert caption.startswith("Tiến độ kết nạp đảng viên — Huyện ủy Pác Nặm (PN) — Kế hoạch năm 2026 — đến ngày ")
    async with bot.sessions.begin() as session:
        (await person_by_telegram_id(session, 2002)).language = "en"
    await bot.say(2002, "/export term csv")
    caption = bot.api.last_message(2002)["caption"]
    assert caption.startswith("New member admissions — Huyện ủy Pác Nặm (PN) — term target 2025-2030 — as of ")
    assert "Tiến độ" not in caption and "ngày" not in caption


async def test_many_children_come_in_pages_of_lines_and_buttons(harness) -> None:
    from models.entities import UnitKind
    from models.units import UnitRow, load_units

    bot = harness
    cells = [UnitRow(100 + i, f"C{i:02d}", f"Chi bộ thôn Mới {i:02d}", "NN", UnitKind.CELL) for i in range(24)]
    async with bot.sessions.begin() as session:
        await load_units(session, cells)
    await add_history(bot.sessions, "C05", 2, date(2026, 3, 1))
    await bot.register(2003, "NN", Role.COMMITTEE)
    nn = (await bot.say(2003, "/progress"))[0]
    children = [b for row in nn["reply_markup"]["inline_keyboard"] for b in row if b["text"][0] in "🔴🟢⚪"]
    assert len(children) == 10 and "1–10 trong 25" in nn["text"]
    assert sum(line[:1] != "" and line[:1] in "🔴🟢⚪" for line in nn["text"].splitlines()) == 10
    assert all(len(d.encode()) <= 64 for d in _button_data(bot, 2003))
    second = (await bot.tap(2003, "Trang sau ▶"))[0]
    assert "11–20 trong 25" in second["text"] and "message_id" in second  # editMessageText: edited in place
    last = (await bot.tap(2003, "Trang sau ▶"))[0]
    assert "21–25 trong 25" in last["text"]
    assert not any(b["text"] == "Trang sau ▶" for row in last["reply_markup"]["inline_keyboard"] for b in row)
    back = (await bot.tap(2003, "◀ Trang trước"))[0]
    assert "11–20 trong 25" in back["text"]
    # A forged page beyond the end shows the last page instead of failing.
    message_id = bot.api.last_message(2003)["message_id"]
    async with bot.sessions() as session:
        nn_unit = await unit_by_code(session, "NN")
    await bot.settle(bot.api.push_callback(2003, message_id, f"prog:u:{nn_unit.id}:2026:9999"))
    assert "21–25 trong 25" in bot.last_text(2003)
