"""/people over HTTP: the list by unit, paging, the card, revoke, hand-over, scope and forged buttons."""

from __future__ import annotations

from sqlalchemy import select, update

from models.entities import Assignment, AuditEntry, Person, Role
from models.people import person_by_telegram_id
from tests.invite_steps import counts, forge, invite_code

ADMIN_BT, ADMIN_NN = 3002, 3003
HOA, NAM, LAN = 1001, 1002, 2001  # secretary of Nà Lạn, secretary of Pác Cáp, committee member of Bộc Bố


async def _world(bot) -> None:  # type: ignore[no-untyped-def]
    await bot.register(ADMIN_BT, "BT", Role.ADMIN, first_name="Quản trị Bộc Bố")
    await bot.register(ADMIN_NN, "NN", Role.ADMIN, first_name="Quản trị Nhạn Môn")
    await bot.register(HOA, "NL", Role.SECRETARY, first_name="Hoa")
    await bot.register(NAM, "PC", Role.SECRETARY, first_name="Nam")
    await bot.register(LAN, "BT", Role.COMMITTEE, first_name="Lan")


async def _ids(bot, telegram_id: int) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        person = await person_by_telegram_id(session, telegram_id)
        return person.id, [a.id for a in person.assignments]


async def test_people_lists_by_unit_with_role_status_last_report_and_cells_without_secretary(harness) -> None:
    bot = harness
    await _world(bot)
    await bot.report_one_line(HOA, "/report Lò Thị Mai, 1998, nữ, 15/05/2026")
    async with bot.sessions.begin() as session:  # Lan blocked the bot (as a weekly run would have found)
        await session.execute(update(Person).where(Person.telegram_id == LAN).values(active=False))
    text = (await bot.say(ADMIN_BT, "/people"))[0]["text"]
    lines = text.splitlines()
    assert "Đảng ủy xã Bộc Bố" in lines[0]
    bt, nl = lines.index("<b>Đảng ủy xã Bộc Bố</b>"), lines.index("<b>Chi bộ thôn Nà Lạn</b>")
    assert bt < nl  # grouped by unit, the commune before its cells
    assert "Lan — cấp ủy viên · ⛔ đã chặn bot" in text
    assert "Hoa — bí thư chi bộ · ✅ đang dùng · báo cáo gần nhất 01/07/2026" in text
    assert "⚠️ Chưa có bí thư (1 chi bộ):" in text and "• Chi bộ thôn Khuổi Pết" in text
    assert "Nam" not in text and "Pác Cáp" not in text and "Nhạn Môn" not in text  # another commune's
    # Hoa goes away: her status says until when
    await bot.say(HOA, "/away 5")
    assert "🏖 vắng đến 05/07/2026" in (await bot.say(ADMIN_BT, "/people"))[0]["text"]


async def test_people_pages_ten_at_a_time(harness) -> None:
    bot = harness
    await bot.register(ADMIN_BT, "BT", Role.ADMIN, first_name="An")
    for i in range(11):
        await bot.register(5000 + i, "KP", Role.COMMITTEE, first_name=f"Ủy viên {i:02d}")
    first = (await bot.say(ADMIN_BT, "/people"))[0]
    assert "Người 1–10 / 12" in first["text"] and "Ủy viên 08" in first["text"] and "Ủy viên 09" not in first["text"]
    assert "Chưa có bí thư" not in first["text"]  # the vacant cells come at the end of the list
    second = (await bot.tap(ADMIN_BT, "Sau ▶"))[0]
    assert "Người 11–12 / 12" in second["text"] and "11. Ủy viên 09" in second["text"] and "12. Ủy viên 10" in second["text"]
    assert "Chưa có bí thư (2 chi bộ)" in second["text"]
    back = (await bot.tap(ADMIN_BT, "◀ Trước"))[0]
    assert back["text"] == first["text"]


async def test_revoke_asks_then_the_person_is_a_stranger_and_their_reports_stay_counted(harness) -> None:
    bot = harness
    await _world(bot)
    await bot.report_one_line(HOA, "/report Lò Thị Mai, 1998, nữ, 15/05/2026")
    await bot.say(ADMIN_BT, "/people")
    card = (await bot.tap(ADMIN_BT, "3. Hoa"))[0]["text"]
    assert "Hoa" in card and "bí thư chi bộ, Chi bộ thôn Nà Lạn: ✅ đang dùng" in card
    ask = (await bot.tap(ADMIN_BT, "🚫"))[0]["text"]
    assert "Thu hồi quyền của đồng chí Hoa" in ask and "vẫn được tính" in ask
    async with bot.sessions() as session:  # nothing before ✅
        assert (await person_by_telegram_id(session, HOA)).assignments
    done = (await bot.tap(ADMIN_BT, "✅"))[0]["text"]
    assert "Đã thu hồi quyền của đồng chí Hoa" in done
    stranger = await bot.say(HOA, "/report Lò Văn Tú, 1999, nam, 16/05/2026")
    assert len(stranger) == 1 and "chưa đăng ký" in stranger[0]["text"]
    assert len(await bot.counted_admissions()) == 1
    assert "Hoa — bí thư chi bộ · 🚫 đã thu hồi" in (await bot.say(ADMIN_BT, "/people"))[0]["text"]
    async with bot.sessions() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "revoke"))
        admin, _ = await _ids(bot, ADMIN_BT)
    assert entry.person_id == admin and entry.subject == "assignment" and entry.field == "ended_at"
    # Re-invited later: the same role is taken up again, not a second row
    await bot.register(HOA, "NL", Role.SECRETARY, first_name="Hoa")
    assert "/report" in (await bot.say(HOA, "/help"))[0]["text"]
    async with bot.sessions() as session:
        rows = list(await session.scalars(select(Assignment).join(Person).where(Person.telegram_id == HOA)))
    assert len(rows) == 1 and rows[0].ended_at is None


async def test_hand_over_new_secretary_redeems_old_one_loses_access_reports_still_counted(harness) -> None:
    bot = harness
    await _world(bot)
    _, (hoa_role,) = await _ids(bot, HOA)
    await bot.report_one_line(HOA, "/report Lò Thị Mai, 1998, nữ, 15/05/2026")
    await bot.say(ADMIN_BT, "/people")
    await bot.tap(ADMIN_BT, "3. Hoa")
    replies = await bot.tap(ADMIN_BT, "🔁")
    assert "đồng chí Hoa sẽ thôi làm bí thư Chi bộ thôn Nà Lạn" in replies[0]["text"] and replies[1]["photo"]
    code = invite_code(replies)
    assert "/report" in (await bot.say(HOA, "/help"))[0]["text"]  # nothing ends before the code is used
    bot.api.add_user(1009, "Tú")
    assert "bí thư Chi bộ thôn Nà Lạn" in (await bot.say(1009, f"/start {code}"))[0]["text"]
    assert "chưa đăng ký" in (await bot.say(HOA, "/progress"))[0]["text"]
    progress = (await bot.say(1009, "/progress"))[0]["text"]
    assert "1/4 (25,0\u00a0%)" in progress  # Hoa's report still counts for the cell
    async with bot.sessions() as session:
        entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "hand_over")))
    ended = [e for e in entries if e.subject == "assignment"]  # besides the invite's own entries (role, replaces)
    assert {e.subject for e in entries} == {"invite", "assignment"}
    assert len(ended) == 1 and ended[0].subject_id == hoa_role and ended[0].field == "ended_at"


async def test_an_admin_of_another_commune_cannot_see_or_touch_these_people(harness) -> None:
    bot = harness
    await _world(bot)
    hoa, (hoa_role,) = await _ids(bot, HOA)
    admin_bt, _ = await _ids(bot, ADMIN_BT)
    text = (await bot.say(ADMIN_NN, "/people"))[0]["text"]
    assert "Nam" in text and "Hoa" not in text and "Lan" not in text and "Bộc Bố" not in text
    await bot.say(HOA, "/help")
    before = await counts(bot)
    for presser in (ADMIN_NN, HOA):
        for data in (f"ppl:c:{hoa}", f"ppl:r:{hoa}", f"ppl:rc:{hoa}", f"ppl:h:{hoa_role}", f"ppl:rc:{admin_bt}",
                     "ppl:h:999999", "ppl:c:999999"):
            answer, replies = await forge(bot, presser, data)
            assert answer["show_alert"] and "ngoài phạm vi" in answer["text"], (presser, data)
            assert replies == [] and "Hoa" not in answer["text"], (presser, data)
    answer, replies = await forge(bot, HOA, "ppl:p:0")
    assert answer["show_alert"] and replies == []
    assert "Chỉ cán bộ Ban Tổ chức" in (await bot.say(HOA, "/people"))[0]["text"]
    assert await counts(bot) == before
    async with bot.sessions() as session:
        assert (await person_by_telegram_id(session, HOA)).assignments  # still a secretary


async def test_an_admin_cannot_revoke_themselves_and_a_handed_over_role_is_not_offered_again(harness) -> None:
    bot = harness
    await _world(bot)
    admin_bt, _ = await _ids(bot, ADMIN_BT)
    await bot.say(ADMIN_BT, "/people")
    card = (await bot.tap(ADMIN_BT, "2. Quản trị"))[0]
    assert "Đây là đồng chí" in card["text"] and "🚫" not in str(card["reply_markup"])
    answer, _ = await forge(bot, ADMIN_BT, f"ppl:rc:{admin_bt}")
    assert answer["show_alert"]
    async with bot.sessions() as session:
        assert (await person_by_telegram_id(session, ADMIN_BT)).assignments
    # The committee member's card offers no hand-over (only a secretary's role is handed over)
    await bot.say(ADMIN_BT, "/people")
    assert "🔁" not in str((await bot.tap(ADMIN_BT, "1. Lan"))[0]["reply_markup"])
