"""/reports and its ✏️ correct / 🗑 withdraw conversation over HTTP: audit rows, reasons, counting, scope, locks."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from models.admissions import person_key
from models.audit import Action
from models.crypto import keys_from_environment
from models.entities import Admission, AuditChannel, AuditEntry, Role
from models.locks import set_lock
from models.people import person_by_telegram_id
from models.units import unit_by_code
from tests.harness import add_history

SECRETARY, OTHER_SECRETARY, COMMITTEE_BT, ADMIN_BT, ADMIN_NN, COMMITTEE_PN = 1001, 1002, 2001, 3001, 3002, 2002
LINE = "/report Lò Thị Hoa, 1998, nữ, 15/05/2026, Tày"
CARD_LABEL = "15/05/2026 · Lò Thị Hoa"


async def reported(bot, user: int = SECRETARY, line: str = LINE) -> Admission:  # type: ignore[no-untyped-def]
    """Save a one-line report as the secretary and return it."""
    saved = await bot.report_one_line(user, line)
    assert "Đã lưu" in saved[-1]["text"]
    return max(await bot.all_admissions(), key=lambda a: a.id)


async def open_card(bot, user: int, label: str = CARD_LABEL) -> str:  # type: ignore[no-untyped-def]
    """Send /reports and tap the report's button; return the card's text."""
    await bot.say(user, "/reports")
    return (await bot.tap(user, label))[-1]["text"]


async def start_correction(bot, user: int, field_label: str) -> str:  # type: ignore[no-untyped-def]
    """From an open card, tap ✏️ then the field; return the question's text."""
    await bot.tap(user, "✏️")
    return (await bot.tap(user, field_label))[-1]["text"]


async def correct(bot, user: int, field_label: str, value: str | None, reason: str,  # type: ignore[no-untyped-def]
                  button: str | None = None, label: str = CARD_LABEL) -> str:
    """Correct one field through the chat (typed value or a button), give the reason, tap ✅; return the outcome."""
    await open_card(bot, user, label)
    await start_correction(bot, user, field_label)
    if button is not None:
        await bot.tap(user, button)
    else:
        await bot.say(user, value or "")
    confirm = (await bot.say(user, reason))[-1]
    assert "xác nhận" in confirm["text"].lower(), confirm["text"]
    answers = await bot.tap(user, "✅")
    return answers[0]["text"]


def alerts(bot, since: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Return the texts of the callback answers since `since`."""
    return [c.params.get("text") or "" for c in bot.api.calls_to("answerCallbackQuery", since=since)]


async def audit_of(bot, admission_id: int) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.subject == "admission",
                                                                   AuditEntry.subject_id == admission_id)
                                          .order_by(AuditEntry.id)))


async def progress_text(bot, user: int, argument: str = "") -> str:  # type: ignore[no-untyped-def]
    return (await bot.say(user, f"/progress {argument}".strip()))[0]["text"]


async def person_id(bot, telegram_id: int) -> int:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        person = await person_by_telegram_id(session, telegram_id)
        assert person is not None
        return person.id


async def test_a_committee_members_correction_is_saved_with_its_audit_row_and_shown_in_the_history(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    admission = await reported(bot)
    card = await open_card(bot, COMMITTEE_BT)
    assert "Lò Thị Hoa" in card and "1998" in card and "Lịch sử" in card and "Báo cáo" in card
    question = await start_correction(bot, COMMITTEE_BT, "Năm sinh")
    assert "1998" in question
    assert "4 chữ số" in (await bot.say(COMMITTEE_BT, "97"))[-1]["text"]  # /report's rule and its text
    assert "lý do" in (await bot.say(COMMITTEE_BT, "1997"))[-1]["text"].lower()
    await bot.say(COMMITTEE_BT, "Ghi nhầm năm sinh theo lý lịch")
    answers = await bot.tap(COMMITTEE_BT, "✅")
    assert "Đã sửa" in answers[0]["text"]
    assert "1998 → 1997" in answers[-1]["text"] and "Ghi nhầm năm sinh theo lý lịch" in answers[-1]["text"]
    [saved] = await bot.counted_admissions()
    assert saved.birth_year == 1997 and saved.full_name == "Lò Thị Hoa"
    create, change = await audit_of(bot, admission.id)
    assert (create.action, create.person_id, create.channel) == (Action.CREATE.value, await person_id(bot, SECRETARY),
                                                                 AuditChannel.CHAT)
    assert (change.action, change.field, change.old_value, change.new_value, change.reason) == (
        Action.CORRECT.value, "birth_year", "1998", "1997", "Ghi nhầm năm sinh theo lý lịch")
    assert (change.person_id, change.channel, change.unit_path) == (await person_id(bot, COMMITTEE_BT),
                                                                    AuditChannel.CHAT, saved.unit_path)


async def test_every_field_is_read_by_the_rules_of_report(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    await reported(bot)
    assert "Đã sửa" in await correct(bot, COMMITTEE_BT, "Họ và tên", "lò thị hoà", "Sai dấu tên")
    label = "15/05/2026 · Lò Thị Hoà"
    assert "Đã sửa" in await correct(bot, COMMITTEE_BT, "Giới tính", None, "Bấm nhầm", button="Nam", label=label)
    assert "Đã sửa" in await correct(bot, COMMITTEE_BT, "Dân tộc", "nung", "Nhầm dân tộc", label=label)
    assert "Đã sửa" in await correct(bot, COMMITTEE_BT, "Số quyết định", "126-QĐ/ĐU", "Sai số", label=label)
    assert "Đã sửa" in await correct(bot, COMMITTEE_BT, "Đoàn viên", None, "Là đoàn viên", button="Có", label=label)
    [saved] = await bot.counted_admissions()
    assert (saved.full_name, saved.name_key, saved.sex.value, saved.ethnicity, saved.minority) == (
        "Lò Thị Hoà", keys_from_environment().name_key(person_key("Lò Thị Hoà", saved.birth_year)), "male", "Nùng", True)
    assert (saved.decision_no, saved.youth_union) == ("126-QĐ/ĐU", True)
    # A date in the future is refused with /report's text, and nothing changes.
    await open_card(bot, COMMITTEE_BT, label)
    await start_correction(bot, COMMITTEE_BT, "Ngày quyết định")
    assert "tương lai" in (await bot.say(COMMITTEE_BT, "02/07/2026"))[-1]["text"]
    await bot.say(COMMITTEE_BT, "/cancel")
    assert (await bot.counted_admissions())[0].admitted_on == date(2026, 5, 15)


async def test_a_reason_needs_3_to_500_characters(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    admission = await reported(bot)
    await open_card(bot, COMMITTEE_BT)
    await bot.tap(COMMITTEE_BT, "🗑")
    assert "3 đến 500 ký tự" in (await bot.say(COMMITTEE_BT, "ab"))[-1]["text"]
    assert "3 đến 500 ký tự" in (await bot.say(COMMITTEE_BT, "x" * 501))[-1]["text"]
    assert "xác nhận" in (await bot.say(COMMITTEE_BT, "abc"))[-1]["text"].lower()
    await bot.tap(COMMITTEE_BT, "❌")
    assert len(await bot.counted_admissions()) == 1 and len(await audit_of(bot, admission.id)) == 1
    await open_card(bot, COMMITTEE_BT)
    await bot.tap(COMMITTEE_BT, "🗑")
    assert "xác nhận" in (await bot.say(COMMITTEE_BT, "y" * 500))[-1]["text"].lower()
    await bot.tap(COMMITTEE_BT, "✅")
    assert await bot.counted_admissions() == []
    withdrawal = (await audit_of(bot, admission.id))[-1]
    assert (withdrawal.action, withdrawal.reason) == (Action.WITHDRAW.value, "y" * 500)


async def test_a_withdrawal_changes_progress_at_once(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    await reported(bot)
    assert "1/10 (10,0\u00a0%)" in await progress_text(bot, COMMITTEE_BT)
    await open_card(bot, COMMITTEE_BT)
    await bot.tap(COMMITTEE_BT, "🗑")
    await bot.say(COMMITTEE_BT, "Báo cáo trùng")
    assert "Đã rút" in (await bot.tap(COMMITTEE_BT, "✅"))[0]["text"]
    assert "0/10 (0,0\u00a0%)" in await progress_text(bot, COMMITTEE_BT)
    assert "Chưa có báo cáo" in (await bot.say(COMMITTEE_BT, "/reports"))[-1]["text"]


async def test_moving_a_report_to_another_cell_or_year_moves_it_in_progress(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_PN, "PN", Role.COMMITTEE)
    await reported(bot)
    text = await progress_text(bot, COMMITTEE_PN)
    assert "1/10 (10,0\u00a0%)" in text and "0/8 (0,0\u00a0%)" in text
    assert "Đã sửa" in await correct(bot, COMMITTEE_PN, "Chi bộ", None, "Nhầm chi bộ", button="Chi bộ thôn Pác Cáp")
    [moved] = await bot.counted_admissions()
    async with bot.sessions() as session:
        pac_cap = await unit_by_code(session, "PC")
    assert (moved.unit_id, moved.unit_path) == (pac_cap.id, pac_cap.path)
    text = await progress_text(bot, COMMITTEE_PN)
    assert "0/10 (0,0\u00a0%)" in text and "1/8 (12,5\u00a0%)" in text
    async with bot.sessions() as session:
        na_lan = await unit_by_code(session, "NL")
    moves = (await audit_of(bot, moved.id))[-2:]  # one under each cell: both communes' trails show it
    assert [(e.field, e.old_value, e.new_value, e.unit_path) for e in moves] == [
        ("unit", "NL", "PC", na_lan.path), ("unit", "NL", "PC", pac_cap.path)]
    card = await open_card(bot, COMMITTEE_PN)
    assert card.count("NL → PC") == 1
    # Another year: out of 2026, into 2025.
    label = "15/05/2026 · Lò Thị Hoa"
    assert "Đã sửa" in await correct(bot, COMMITTEE_PN, "Ngày quyết định", "20/12/2025", "Nhầm năm", label=label)
    assert "0/8 (0,0\u00a0%)" in await progress_text(bot, COMMITTEE_PN)
    assert "Năm 2025: <b>1</b>" in await progress_text(bot, COMMITTEE_PN, "2025")


async def test_a_cell_outside_the_correctors_scope_is_refused(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    await reported(bot)
    await open_card(bot, COMMITTEE_BT)
    await start_correction(bot, COMMITTEE_BT, "Chi bộ")
    labels = [b["text"] for row in bot.api.last_message(COMMITTEE_BT)["reply_markup"]["inline_keyboard"] for b in row]
    assert "Chi bộ thôn Pác Cáp" not in labels and "Chi bộ thôn Khuổi Pết" in labels
    assert "Không có chi bộ này" in (await bot.say(COMMITTEE_BT, "PC"))[-1]["text"]  # typed: another commune's
    async with bot.sessions() as session:
        pac_cap = await unit_by_code(session, "PC")
    message_id = bot.api.last_message(COMMITTEE_BT)["message_id"]
    await bot.settle(bot.api.push_callback(COMMITTEE_BT, message_id, f"rep:v:{pac_cap.id}"))  # forged
    assert "Không có chi bộ này" in bot.last_text(COMMITTEE_BT)
    assert (await bot.counted_admissions())[0].unit_path != pac_cap.path


async def test_a_secretary_corrects_own_report_within_30_days_only(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    admission = await reported(bot)
    bot.clock.advance(timedelta(days=30))
    assert "Đã sửa" in await correct(bot, SECRETARY, "Năm sinh", "1997", "Ghi nhầm năm sinh")
    bot.clock.advance(timedelta(minutes=1))
    await open_card(bot, SECRETARY)
    card = bot.api.last_message(SECRETARY)
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert not any(label.startswith(("✏️", "🗑")) for label in labels)  # the card is read-only now
    mark = bot.api.mark()  # and its buttons, forged, are refused
    await bot.settle(bot.api.push_callback(SECRETARY, card["message_id"], f"rep:e:{admission.id}"))
    assert any("quá 30 ngày" in text for text in alerts(bot, mark))
    await bot.settle(bot.api.push_callback(SECRETARY, card["message_id"], f"rep:f:{admission.id}:birth_year"))
    assert "quá 30 ngày" in bot.last_text(SECRETARY)
    assert (await bot.counted_admissions())[0].birth_year == 1997


async def test_a_secretary_cannot_see_or_correct_another_cells_report(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(OTHER_SECRETARY, "KP", Role.SECRETARY)
    other = await reported(bot, OTHER_SECRETARY, "/report Hà Văn Nam, 1995, nam, 10/05/2026")
    assert "Hà Văn Nam" not in str(await bot.say(SECRETARY, "/reports"))
    message_id = bot.api.last_message(SECRETARY)["message_id"]
    for forged in (f"rep:c:{other.id}", f"rep:e:{other.id}", f"rep:f:{other.id}:name", f"rep:w:{other.id}"):
        mark = bot.api.mark()
        await bot.settle(bot.api.push_callback(SECRETARY, message_id, forged))
        assert any("không có quyền" in text for text in alerts(bot, mark)), forged
        assert "Hà Văn Nam" not in str(bot.replies(SECRETARY, mark))
    [kept] = await bot.counted_admissions()
    assert kept.full_name == "Hà Văn Nam" and len(await audit_of(bot, other.id)) == 1


async def test_a_commune_cannot_see_or_touch_another_communes_reports(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "PC", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    await bot.register(ADMIN_BT, "BT", Role.ADMIN)
    await bot.register(ADMIN_NN, "NN", Role.ADMIN)
    admission = await reported(bot)
    async with bot.sessions() as session:
        nhan_mon = await unit_by_code(session, "NN")
    assert "Lò Thị Hoa" in str(await bot.say(ADMIN_NN, "/reports"))
    for outsider in (COMMITTEE_BT, ADMIN_BT):
        assert "Chưa có báo cáo" in (await bot.say(outsider, "/reports"))[-1]["text"]
        message_id = bot.api.last_message(outsider)["message_id"]
        for forged in (f"rep:c:{admission.id}", f"rep:e:{admission.id}", f"rep:f:{admission.id}:cell",
                       f"rep:w:{admission.id}", f"rep:l:{nhan_mon.id}:0"):
            mark = bot.api.mark()
            await bot.settle(bot.api.push_callback(outsider, message_id, forged))
            assert any("không có quyền" in text for text in alerts(bot, mark)), forged
            assert "Lò Thị Hoa" not in str(bot.replies(outsider, mark)) + str(alerts(bot, mark))
        mark = bot.api.mark()  # buttons of the conversation, pressed outside it: stale, nothing happens
        for forged in (f"rep:ok:{admission.id}", f"rep:no:{admission.id}", "rep:v:male"):
            await bot.settle(bot.api.push_callback(outsider, message_id, forged))
        assert "Lò Thị Hoa" not in str(bot.replies(outsider, mark))
    [kept] = await bot.counted_admissions()
    assert kept.birth_year == 1998 and len(await audit_of(bot, admission.id)) == 1


async def test_the_progress_drill_down_opens_the_units_reports(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_PN, "PN", Role.COMMITTEE)
    await reported(bot)
    await bot.say(COMMITTEE_PN, "/progress")
    await bot.tap(COMMITTEE_PN, "🔴 Đảng ủy xã Nhạn Môn")
    assert "Chưa có báo cáo" in (await bot.tap(COMMITTEE_PN, "📋"))[-1]["text"]
    await bot.say(COMMITTEE_PN, "/progress")
    await bot.tap(COMMITTEE_PN, "🔴 Đảng ủy xã Bộc Bố")
    assert "Lò Thị Hoa" in str(await bot.tap(COMMITTEE_PN, "📋"))


async def test_reports_are_listed_ten_a_page_newest_first(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    names = ["An", "Bình", "Cường", "Dũng", "Giang", "Hải", "Khánh", "Lâm", "Minh", "Nga", "Oanh", "Phúc"]
    for i, given in enumerate(names):
        await reported(bot, line=f"/report Lò Văn {given}, 1990, nam, {i + 1}/05/2026")
        bot.clock.advance(timedelta(minutes=1))
    first = (await bot.say(COMMITTEE_BT, "/reports"))[-1]
    labels = [b["text"] for row in first["reply_markup"]["inline_keyboard"] for b in row]
    assert "1–10 trong 12" in first["text"] and labels[0].endswith("Lò Văn Phúc · Chi bộ thôn Nà Lạn")
    assert labels[-1] == "▶" and len(labels) == 11
    second = (await bot.tap(COMMITTEE_BT, "▶"))[-1]
    labels = [b["text"] for row in second["reply_markup"]["inline_keyboard"] for b in row]
    assert "11–12 trong 12" in second["text"] and labels == [
        "02/05/2026 · Lò Văn Bình · Chi bộ thôn Nà Lạn", "01/05/2026 · Lò Văn An · Chi bộ thôn Nà Lạn", "◀"]


async def test_a_closed_period_refuses_a_secretary_and_lets_an_admin_correct_with_a_reason(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    await bot.register(ADMIN_BT, "BT", Role.ADMIN)
    admission = await reported(bot)
    async with bot.sessions.begin() as session:
        await set_lock(session, await unit_by_code(session, "BT"), date(2026, 5, 15), None, bot.clock.now())
    for below_admin in (SECRETARY, COMMITTEE_BT):
        await open_card(bot, below_admin)
        refusal = await start_correction(bot, below_admin, "Năm sinh")
        assert "khóa sổ đến ngày 15/05/2026" in refusal and "Đảng ủy xã Bộc Bố" in refusal
        await open_card(bot, below_admin)
        await bot.tap(below_admin, "🗑")
        assert "khóa sổ đến ngày 15/05/2026" in bot.last_text(below_admin)
    mark = bot.api.mark()
    await bot.say(SECRETARY, "/undo")
    await bot.tap(SECRETARY, "✅")
    assert "khóa sổ đến ngày 15/05/2026" in str(bot.replies(SECRETARY, mark))
    assert (await bot.counted_admissions())[0].birth_year == 1998
    # The admin of the locked unit may still correct, knowingly, with the reason it always needs.
    await open_card(bot, ADMIN_BT)
    assert "Đồng chí sửa với quyền quản trị" in await start_correction(bot, ADMIN_BT, "Năm sinh")
    await bot.say(ADMIN_BT, "/cancel")
    assert "Đã sửa" in await correct(bot, ADMIN_BT, "Năm sinh", "1997", "Sửa sau khóa sổ theo lý lịch gốc")
    change = (await audit_of(bot, admission.id))[-1]
    assert (change.person_id, change.old_value, change.new_value, change.reason) == (
        await person_id(bot, ADMIN_BT), "1998", "1997", "Sửa sau khóa sổ theo lý lịch gốc")


async def test_a_lock_the_day_before_the_decision_leaves_it_open(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await reported(bot)
    async with bot.sessions.begin() as session:
        await set_lock(session, await unit_by_code(session, "BT"), date(2026, 5, 14), None, bot.clock.now())
    assert "Đã sửa" in await correct(bot, SECRETARY, "Năm sinh", "1997", "Ghi nhầm năm sinh")
    # … but moving the decision date into the closed period is refused.
    await open_card(bot, SECRETARY)
    await start_correction(bot, SECRETARY, "Ngày quyết định")
    await bot.say(SECRETARY, "14/05/2026")
    await bot.say(SECRETARY, "Nhầm ngày")
    assert "khóa sổ đến ngày 14/05/2026" in (await bot.tap(SECRETARY, "✅"))[0]["text"]
    assert (await bot.counted_admissions())[0].admitted_on == date(2026, 5, 15)


async def test_a_correction_in_progress_survives_a_restart(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    await reported(bot)
    await open_card(bot, COMMITTEE_BT)
    await start_correction(bot, COMMITTEE_BT, "Năm sinh")
    await bot.say(COMMITTEE_BT, "1996")
    await bot.stop()
    await bot.start()
    await bot.say(COMMITTEE_BT, "Ghi nhầm năm sinh")
    assert "Đã sửa" in (await bot.tap(COMMITTEE_BT, "✅"))[0]["text"]
    assert (await bot.counted_admissions())[0].birth_year == 1996


async def test_a_one_word_name_or_a_date_like_decision_number_is_pointed_out_before_the_reason(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await reported(bot)
    await open_card(bot, SECRETARY)
    await start_correction(bot, SECRETARY, "Họ và tên")
    assert "chỉ có một từ" in (await bot.say(SECRETARY, "hoa"))[-1]["text"]
    await bot.say(SECRETARY, "/cancel")
    await open_card(bot, SECRETARY)
    await start_correction(bot, SECRETARY, "Số quyết định")
    assert "không giống số quyết định" in (await bot.say(SECRETARY, "15/05/2026"))[-1]["text"]
    await bot.say(SECRETARY, "Đúng như văn bản")
    await bot.tap(SECRETARY, "✅")
    assert (await bot.counted_admissions())[0].decision_no == "15/05/2026"


async def test_a_secretary_sees_the_cells_other_reports_but_corrects_only_own(harness) -> None:
    bot = harness
    await add_history(bot.sessions, "NL", 1, date(2026, 3, 1), name="Lịch Sử")  # loaded from a file
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    card = await open_card(bot, SECRETARY, "01/03/2026 · Lịch Sử A")
    labels = [b["text"] for row in bot.api.last_message(SECRETARY)["reply_markup"]["inline_keyboard"] for b in row]
    assert "Lịch Sử A" in card and not any(label.startswith(("✏️", "🗑")) for label in labels)
    [imported] = await bot.counted_admissions()
    message_id = bot.api.last_message(SECRETARY)["message_id"]
    await bot.settle(bot.api.push_callback(SECRETARY, message_id, f"rep:w:{imported.id}"))
    assert "chỉ sửa được báo cáo do chính mình gửi" in bot.last_text(SECRETARY)
    assert len(await bot.counted_admissions()) == 1


async def test_an_english_speaking_committee_member_corrects_in_english(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    bot.api.add_user(COMMITTEE_BT, "Jane", language_code="en")
    await bot.register(COMMITTEE_BT, "BT", Role.COMMITTEE)
    await reported(bot)
    await bot.say(COMMITTEE_BT, "/reports")
    card = (await bot.tap(COMMITTEE_BT, CARD_LABEL))[-1]["text"]
    assert "Admission report" in card and "History" in card
    await bot.tap(COMMITTEE_BT, "🗑")
    assert "3 to 500 characters" in (await bot.say(COMMITTEE_BT, "ab"))[-1]["text"]
    assert "Confirm?" in (await bot.say(COMMITTEE_BT, "Reported twice"))[-1]["text"]
    answers = await bot.tap(COMMITTEE_BT, "✅")
    assert "is withdrawn" in answers[0]["text"] and "Withdrew the report" in answers[-1]["text"]
