"""/progress and /undo over HTTP, for each role, within scope."""

from __future__ import annotations

from datetime import date, timedelta

from models.entities import Role
from models.units import unit_by_code
from tests.harness import add_history


async def test_committee_sees_year_term_schedule_and_children_behind_first(harness) -> None:
    bot = harness
    await add_history(bot.sessions, "NL", 3, date(2026, 3, 1))
    await add_history(bot.sessions, "PC", 1, date(2026, 2, 1))
    await add_history(bot.sessions, "KP", 5, date(2025, 5, 1))  # the term before: 2020-2025 ended on 30/6/2025
    await add_history(bot.sessions, "KP", 5, date(2025, 7, 1))  # the first day of the 2025-2030 term
    await bot.register(2002, "PN", Role.COMMITTEE)
    text = (await bot.say(2002, "/progress"))[0]["text"]
    assert "Huyện ủy Pác Nặm" in text
    assert "4/90 (4,4\u00a0%)" in text  # year 2026
    assert "9/400 (2,3\u00a0%)" in text  # term 2025-2030
    # 1 July is day 182 of 365: 90 * 182/365 = 44.9 -> 45 expected
    assert "cần 45" in text and "chậm tiến độ 41" in text
    lines = text.splitlines()
    bt = next(i for i, l in enumerate(lines) if "Bộc Bố" in l)
    nn = next(i for i, l in enumerate(lines) if "Nhạn Môn" in l)
    # Bộc Bố 3/10 is 30 %, Nhạn Môn 1/8 is 12.5 %: Nhạn Môn is further behind, so it comes first
    assert nn < bt
    assert "1/8 (12,5\u00a0%)" in lines[nn] and "3/10 (30,0\u00a0%)" in lines[bt]


async def test_secretary_sees_cell_and_parent(harness) -> None:
    bot = harness
    await add_history(bot.sessions, "NL", 3, date(2026, 3, 1))
    await bot.register(1001, "NL", Role.SECRETARY)
    text = (await bot.say(1001, "/progress"))[0]["text"]
    assert "Chi bộ thôn Nà Lạn" in text and "3/4 (75,0\u00a0%)" in text
    assert "Đảng ủy xã Bộc Bố: 3/10 (30,0\u00a0%) kế hoạch năm 2026" in text
    assert "Nhạn Môn" not in text


async def test_committee_of_a_commune_sees_only_its_subtree(harness) -> None:
    bot = harness
    await bot.register(2001, "BT", Role.COMMITTEE)
    text = (await bot.say(2001, "/progress"))[0]["text"]
    assert "Bộc Bố" in text and "Nà Lạn" in text and "Khuổi Pết" in text
    assert "Pác Cáp" not in text and "Huyện ủy" not in text


async def test_progress_for_term_and_other_year_and_bad_argument(harness) -> None:
    bot = harness
    await add_history(bot.sessions, "NL", 2, date(2025, 9, 1))
    await add_history(bot.sessions, "NL", 1, date(2025, 6, 30))  # still the 2020-2025 term
    await bot.register(3001, "PN", Role.ADMIN)
    term = (await bot.say(3001, "/progress term"))[0]["text"]
    assert "nhiệm kỳ 2025-2030 (01/07/2025–30/06/2030)" in term and "2/400 (0,5\u00a0%)" in term
    year = (await bot.say(3001, "/progress 2025"))[0]["text"]
    assert "Năm 2025: <b>3</b> (chưa giao kế hoạch)" in year  # 3 admitted in 2025, no plan for that year
    assert "Kỳ chưa đúng" in (await bot.say(3001, "/progress hôm qua"))[0]["text"]


async def test_units_without_target_show_so_without_error(harness) -> None:
    bot = harness
    await bot.register(3001, "PN", Role.ADMIN)
    text = (await bot.say(3001, "/progress 2024"))[0]["text"]
    assert "chưa giao kế hoạch" in text


async def test_undo_shows_the_report_and_withdraws_only_on_the_check_mark(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.report_one_line(1001, "/report Lò Văn Nam, 1995, nam, 16/05/2026")
    asked = (await bot.say(1001, "/undo"))[-1]
    assert "Lò Văn Nam" in asked["text"] and "Chi bộ thôn Nà Lạn" in asked["text"] and "16/05/2026" in asked["text"]
    labels = [b["text"] for row in asked["reply_markup"]["inline_keyboard"] for b in row]
    assert labels[0].startswith("✅") and labels[1].startswith("❌")
    assert all(len(b["callback_data"].encode()) <= 64 for row in asked["reply_markup"]["inline_keyboard"] for b in row)
    assert len(await bot.counted_admissions()) == 2  # nothing withdrawn by /undo alone
    assert "Đã giữ lại" in (await bot.tap(1001, "❌"))[-1]["text"]
    assert len(await bot.counted_admissions()) == 2
    await bot.say(1001, "/undo")
    withdraw_id, withdraw_data = bot.api.find_button(1001, "✅")
    text = (await bot.tap(1001, "✅"))[-1]["text"]
    assert "Đã rút lại" in text and "Lò Văn Nam" in text
    counted = await bot.counted_admissions()
    assert [a.full_name for a in counted] == ["Lò Thị Hoa"]
    assert len(await bot.all_admissions()) == 2  # kept in the audit trail
    assert "1/4 (25,0\u00a0%)" in (await bot.say(1001, "/progress"))[-1]["text"]
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(1001, withdraw_id, withdraw_data))  # the same ✅ again
    assert "đã được rút lại trước đó" in bot.replies(1001, mark)[-1]["text"]
    assert [a.full_name for a in await bot.counted_admissions()] == ["Lò Thị Hoa"]  # not the next one
    bot.clock.advance(timedelta(hours=49))
    text = (await bot.say(1001, "/undo"))[-1]["text"]
    assert "quá 48 giờ" in text and "Ban Tổ chức" in text
    assert len(await bot.counted_admissions()) == 1


async def test_undo_check_mark_late_after_48_hours_withdraws_nothing(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.say(1001, "/undo")
    bot.clock.advance(timedelta(hours=49))  # the question stayed unanswered
    assert "quá 48 giờ" in (await bot.tap(1001, "✅"))[-1]["text"]
    assert len(await bot.counted_admissions()) == 1


async def test_undo_never_touches_someone_elses_report(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(1002, "KP", Role.SECRETARY)
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    text = (await bot.say(1002, "/undo"))[-1]["text"]
    assert "chưa có báo cáo" in text and "Ban Tổ chức" in text
    [admission] = await bot.counted_admissions()
    message_id = bot.api.last_message(1002)["message_id"]
    for data in (f"undo:withdraw:{admission.id}", f"undo:keep:{admission.id}"):  # forged by the other secretary
        mark = bot.api.mark()
        await bot.settle(bot.api.push_callback(1002, message_id, data))
        assert "chính mình" in bot.last_text(1002) and "Lò Thị Hoa" not in bot.last_text(1002)
        assert not [r for r in bot.replies(1002, mark) if "sự cố" in r["text"]]
    assert len(await bot.counted_admissions()) == 1


async def test_undo_after_leaving_the_cell_withdraws_nothing(harness) -> None:
    from models.entities import Assignment
    from models.people import person_by_telegram_id

    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.say(1001, "/undo")
    async with bot.sessions.begin() as session:  # no longer the secretary of Nà Lạn
        person = await person_by_telegram_id(session, 1001)
        for assignment in list(person.assignments):
            await session.delete(assignment)
        session.add(Assignment(person_id=person.id, unit_id=(await unit_by_code(session, "KP")).id,
                               role=Role.SECRETARY))
    assert "chính mình" in (await bot.tap(1001, "✅"))[-1]["text"]
    assert len(await bot.counted_admissions()) == 1
