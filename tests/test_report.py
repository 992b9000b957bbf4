"""/report over HTTP: guided and one-line, buttons, invalid answers, cancel, duplicates, scope."""

from __future__ import annotations

from datetime import date

import pytest

from models.entities import Assignment, Role, Sex
from models.people import person_by_telegram_id
from models.units import unit_by_code

SECRETARY = 1001


@pytest.fixture
async def secretary(harness):  # type: ignore[no-untyped-def]
    await harness.register(SECRETARY, "NL", Role.SECRETARY, first_name="Hoa")
    return harness


async def fill_guided(bot, *, name: str = "Lò Thị Hoa") -> None:
    """Answer every step up to the card, using buttons where there are some."""
    assert "họ và tên" in (await bot.say(SECRETARY, "/report"))[-1]["text"]
    assert "Năm sinh" in (await bot.say(SECRETARY, name))[-1]["text"]
    assert "Giới tính" in (await bot.say(SECRETARY, "1998"))[-1]["text"]
    assert "Dân tộc" in (await bot.tap(SECRETARY, "Nữ"))[-1]["text"]
    assert "Ngày quyết định" in (await bot.tap(SECRETARY, "Tày"))[-1]["text"]
    assert "Số quyết định" in (await bot.say(SECRETARY, "15/05/2026"))[-1]["text"]
    assert "đoàn viên" in (await bot.say(SECRETARY, "125-QĐ/ĐU"))[-1]["text"]
    card = (await bot.tap(SECRETARY, "Có"))[-1]["text"]
    assert "Phiếu báo cáo" in card


async def test_guided_report_saves_only_after_confirm(secretary) -> None:
    bot = secretary
    await fill_guided(bot)
    assert await bot.all_admissions() == []  # nothing stored before ✅
    card = bot.api.last_message(SECRETARY)
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert labels[0].startswith("✅") and any(l.startswith("✏️") for l in labels) and any(l.startswith("❌") for l in labels)
    text = (await bot.tap(SECRETARY, "✅"))[-1]["text"]
    assert "Đã lưu" in text
    assert "Chi bộ thôn Nà Lạn: 1/4 (25,0\u00a0%) kế hoạch năm 2026" in text
    assert "Đảng ủy xã Bộc Bố: 1/10 (10,0\u00a0%) kế hoạch năm 2026" in text
    [saved] = await bot.counted_admissions()
    assert (saved.full_name, saved.birth_year, saved.sex, saved.ethnicity, saved.minority) == (
        "Lò Thị Hoa", 1998, Sex.FEMALE, "Tày", True)
    assert (saved.admitted_on, saved.decision_no, saved.youth_union) == (date(2026, 5, 15), "125-QĐ/ĐU", True)


async def test_card_buttons_are_removed_and_second_tap_does_not_save_twice(secretary) -> None:
    bot = secretary
    await fill_guided(bot)
    found_id, data = bot.api.find_button(SECRETARY, "✅")
    await bot.tap(SECRETARY, "✅")
    await bot.settle(bot.api.push_callback(SECRETARY, found_id, data))  # an impatient second tap
    assert len(await bot.counted_admissions()) == 1


def labels_of(message: dict) -> list[str]:
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def message_by_id(bot, message_id: int) -> dict:  # type: ignore[no-untyped-def]
    [message] = [m for m in bot.api.messages(SECRETARY) if m["message_id"] == message_id]
    return message


async def test_one_line_report_asks_the_youth_union_question_on_the_card_before_save(secretary) -> None:
    bot = secretary
    card = (await bot.say(SECRETARY, "/report Lo Thi Hoa, 1998, nu, 15/05/2026"))[-1]
    assert "Phiếu báo cáo" in card["text"] and "Lo Thi Hoa" in card["text"] and "Nữ" in card["text"]
    assert "15/05/2026" in card["text"] and "đoàn viên" in card["text"]
    labels = labels_of(card)
    assert labels[:2] == ["Có", "Không"] and not any(label.startswith("✅") for label in labels)  # no ✅ yet
    card = (await bot.tap(SECRETARY, "Có"))[-1]
    assert "Đoàn viên: <b>Có</b>" in card["text"] and labels_of(card)[0].startswith("✅")
    await bot.tap(SECRETARY, "✅")
    [saved] = await bot.counted_admissions()
    assert saved.full_name == "Lo Thi Hoa" and saved.sex == Sex.FEMALE and saved.youth_union is True


async def test_each_question_is_a_new_message_and_an_answered_one_shows_its_answer(secretary) -> None:
    bot = secretary
    for answer in ("/report", "Lò Thị Hoa", "1998"):
        await bot.say(SECRETARY, answer)
    sex_question = bot.api.last_message(SECRETARY)
    replies = await bot.tap(SECRETARY, "Nữ")
    assert "Dân tộc" in replies[-1]["text"]
    answered = message_by_id(bot, sex_question["message_id"])
    assert answered["text"] == "Giới tính: Nữ ✓" and not labels_of(answered)  # edited, buttons gone
    newest = bot.api.last_message(SECRETARY)
    assert newest["message_id"] > sex_question["message_id"] and "Dân tộc" in newest["text"]


async def test_an_old_today_button_after_rejected_dates_changes_nothing(secretary) -> None:
    """The phone trial: an old «Hôm nay» far up made that message the decision question; a date typed
    next was saved as the decision number."""
    bot = secretary
    for answer in ("/report", "Lò Thị Hoa", "1998"):
        await bot.say(SECRETARY, answer)
    await bot.tap(SECRETARY, "Nữ")
    await bot.tap(SECRETARY, "Tày")
    old_today, data = bot.api.find_button(SECRETARY, "Hôm nay")
    for bad in ("32/05/2026", "hôm qua"):
        replies = await bot.say(SECRETARY, bad)
        assert "Ví dụ" in replies[-1]["text"] and "Hôm nay" in labels_of(replies[-1])  # asked again below
    assert not labels_of(message_by_id(bot, old_today))  # the old question lost its button
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(SECRETARY, old_today, data))  # a stale keyboard still shows it
    toast = bot.api.calls_to("answerCallbackQuery", since=mark)[-1].params.get("text", "")
    assert "câu hỏi mới nhất" in toast
    assert [r for r in bot.replies(SECRETARY, mark)] == []  # nothing asked, nothing edited
    old_sex, sex_data = next((m["message_id"], "report:sex:male") for m in bot.api.messages(SECRETARY)
                             if m["text"].startswith("Giới tính"))
    await bot.settle(bot.api.push_callback(SECRETARY, old_sex, sex_data))  # a button of an earlier step
    assert "Số quyết định" in (await bot.say(SECRETARY, "15/05/2026"))[-1]["text"]  # still the date step
    await bot.tap(SECRETARY, "Bỏ qua")
    await bot.tap(SECRETARY, "Không")
    await bot.tap(SECRETARY, "✅")
    [saved] = await bot.counted_admissions()
    assert (saved.admitted_on, saved.decision_no, saved.sex) == (date(2026, 5, 15), None, Sex.FEMALE)


@pytest.mark.parametrize(("typed", "fragment"), [("15/05/2026", "giống một ngày"), ("QĐ/ĐU", "không có chữ số")])
async def test_a_decision_number_like_a_date_or_without_digit_is_questioned(secretary, typed: str, fragment: str) -> None:
    bot = secretary
    for answer in ("/report", "Lò Thị Hoa", "1998"):
        await bot.say(SECRETARY, answer)
    await bot.tap(SECRETARY, "Nữ")
    await bot.tap(SECRETARY, "Tày")
    await bot.say(SECRETARY, "15/05/2026")
    doubt = (await bot.say(SECRETARY, typed))[-1]
    assert fragment in doubt["text"] and "125-QĐ/ĐU" in doubt["text"]
    assert labels_of(doubt) == [f"Giữ «{typed}»", "Gõ lại"]
    assert "Số quyết định" in (await bot.tap(SECRETARY, "Gõ lại"))[-1]["text"]
    assert "đoàn viên" in (await bot.say(SECRETARY, "125-QĐ/ĐU"))[-1]["text"]  # a usual number: no question
    await bot.tap(SECRETARY, "Có")
    await bot.tap(SECRETARY, "✏️")
    await bot.tap(SECRETARY, "Số quyết định")
    await bot.say(SECRETARY, typed)
    card = (await bot.tap(SECRETARY, "Giữ"))[-1]["text"]  # kept on purpose
    assert f"Số quyết định: <b>{typed}</b>" in card
    await bot.tap(SECRETARY, "✅")
    [saved] = await bot.counted_admissions()
    assert saved.decision_no == typed


async def test_one_line_decision_like_a_date_is_questioned_too(secretary) -> None:
    bot = secretary
    doubt = (await bot.say(SECRETARY, "/report Lò Thị Hoa; 1998; nữ; 15/05/2026; Tày; 15/05/2026"))[-1]
    assert "giống một ngày" in doubt["text"]
    card = (await bot.tap(SECRETARY, "Gõ lại")) and (await bot.say(SECRETARY, "7-QĐ/ĐU"))[-1]["text"]
    assert "Phiếu báo cáo" in card and "7-QĐ/ĐU" in card


async def test_names_are_capitalised_and_a_one_word_name_is_confirmed(secretary) -> None:
    bot = secretary
    await bot.say(SECRETARY, "/report")
    assert "Lò Thị Hoa" in (await bot.say(SECRETARY, "lò thị hoa"))[-1]["text"]  # "Năm sinh của đồng chí Lò Thị Hoa?"
    await bot.say(SECRETARY, "/report")
    ask = (await bot.say(SECRETARY, "hoa"))[-1]
    assert "một từ" in ask["text"] and labels_of(ask) == ["Giữ «Hoa»", "Gõ lại"]
    assert "họ và tên" in (await bot.tap(SECRETARY, "Gõ lại"))[-1]["text"]
    await bot.say(SECRETARY, "Hoa")
    assert "Năm sinh của đồng chí Hoa" in (await bot.tap(SECRETARY, "Giữ"))[-1]["text"]
    card = (await bot.say(SECRETARY, "/report LÒ THỊ MAI, 1998, nữ, 15/05/2026"))[-1]["text"]
    assert "Lò Thị Mai" in card
    ask = (await bot.say(SECRETARY, "/report mai, 1998, nữ, 15/05/2026"))[-1]
    assert "một từ" in ask["text"]
    assert "Mai" in (await bot.tap(SECRETARY, "Giữ"))[-1]["text"]


def test_name_and_decision_rules() -> None:
    from models.values import capitalise_name, decision_doubt, is_one_word, parse_date

    assert capitalise_name("lò thị hoa") == "Lò Thị Hoa"
    assert capitalise_name("LÒ THỊ HOA") == "Lò Thị Hoa"
    assert capitalise_name("đặng văn ân") == "Đặng Văn Ân"
    assert capitalise_name("h'hen niê") == "H'Hen Niê" and capitalise_name("bru-vân") == "Bru-Vân"
    assert capitalise_name("McDonald nguyễn") == "McDonald Nguyễn"  # mixed case kept
    assert capitalise_name("Lo Thi Hoa") == "Lo Thi Hoa"
    assert is_one_word("Hoa") and is_one_word("Bru-Vân") and not is_one_word("Lò Hoa")
    assert decision_doubt("15/05/2026") == "date" and decision_doubt("2026-05-15") == "date"
    assert decision_doubt("31/02/2026") == "date"  # shaped like a date, even an impossible one
    assert decision_doubt("QĐ/ĐU") == "no_digit"
    assert decision_doubt("125-QĐ/ĐU") is None and decision_doubt("7") is None
    assert parse_date("1/12/26") == date(2026, 12, 1) and parse_date("01/06/2026") == date(2026, 6, 1)


async def test_one_line_accepts_semicolons_and_two_digit_years(secretary) -> None:
    card = (await secretary.say(SECRETARY, "/report Lò Thị Hoa; 1998; nữ; 1/6/26"))[-1]["text"]
    assert "Phiếu báo cáo" in card and "01/06/2026" in card and "Lò Thị Hoa" in card


@pytest.mark.parametrize(
    ("line", "missing"),
    [("Lò Thị Hoa, 1998", "Giới tính"), ("Lò Thị Hoa", "Năm sinh"), ("Lò Thị Hoa, 1998, nữ", "Ngày quyết định"),
     ("Lò Thị Hoa, , nữ, 15/05/2026", "Năm sinh"), ("Lò Thị Hoa; 1998; nữ;", "Ngày quyết định")],
)
async def test_one_line_with_a_missing_field_names_it(secretary, line: str, missing: str) -> None:
    text = (await secretary.say(SECRETARY, f"/report {line}"))[-1]["text"]
    assert f"thiếu mục «{missing}»" in text and "Lò Thị Hoa, 1998, nữ, 15/05/2026" in text
    assert "chưa gửi nội dung" not in text


async def test_duplicate_warning_says_where_only_inside_the_reporters_scope(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(1002, "PC", Role.SECRETARY)  # another commune's cell
    await bot.report_one_line(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    own = (await bot.say(SECRETARY, "/report Lo Thi Hoa, 1998, nu, 20/05/2026"))[-1]["text"]
    assert "trùng" in own and "Chi bộ thôn Nà Lạn" in own and "15/05/2026" in own
    other = (await bot.say(1002, "/report Lò Thị Hoa, 1998, nữ, 20/05/2026"))[-1]["text"]
    assert "trùng" in other and "đơn vị khác" in other and "Ban Tổ chức" in other
    assert "Nà Lạn" not in other and "15/05/2026" not in other


async def test_one_line_with_ethnicity_and_decision(secretary) -> None:
    card = (await secretary.say(SECRETARY, "/report Lò Văn Nam, 1990, nam, 2026-06-01, tay, 12-QĐ/ĐU"))[-1]["text"]
    assert "Tày" in card and "12-QĐ/ĐU" in card and "01/06/2026" in card


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("Lò Thị Hoa, 2015, nữ, 15/05/2026", "18 tuổi"),
        ("Lò Thị Hoa, 1998, nữ, 31/02/2026", "không có trên lịch"),
        ("Lò Thị Hoa, 1998, nữ, 15/05/2027", "tương lai"),
        ("Lò Thị Hoa, 1998, x, 15/05/2026", "Nam"),
        ("Hoa 2, 1998, nữ, 15/05/2026", "chữ số"),
        ("Lò Thị Hoa, 1998", "Ví dụ"),
        ("Lò Thị Hoa, 1998, nữ, 15/05/2026, Tày, 1-QĐ, x", "nhiều nhất 6"),
    ],
)
async def test_one_line_errors_say_what_to_send(secretary, line: str, fragment: str) -> None:
    text = (await secretary.say(SECRETARY, f"/report {line}"))[-1]["text"]
    assert fragment in text and "/report" in text
    assert await secretary.all_admissions() == []


@pytest.mark.parametrize(
    ("step_answers", "bad", "fragment"),
    [
        ([], "Hoa 123", "chữ số"),
        ([], "x" * 5000, "quá dài"),
        ([], "😀😀😀", "chữ cái"),
        ([], "   ", "chưa gửi"),
        (["Lò Thị Hoa"], "2015", "18 tuổi"),
        (["Lò Thị Hoa"], "1890", "chưa hợp lý"),
        (["Lò Thị Hoa"], "abcd", "4 chữ số"),
    ],
)
async def test_invalid_answers_repeat_the_step(secretary, step_answers, bad: str, fragment: str) -> None:
    bot = secretary
    await bot.say(SECRETARY, "/report")
    for answer in step_answers:
        await bot.say(SECRETARY, answer)
    replies = await bot.say(SECRETARY, bad)
    assert len(replies) == 1 and fragment in replies[0]["text"] and "Ví dụ" in replies[0]["text"]
    # the step repeats: a good answer now moves on
    good = "1998" if step_answers else "Lò Thị Hoa"
    assert (await bot.say(SECRETARY, good))[-1]["text"]
    assert await bot.all_admissions() == []


async def test_invalid_and_future_dates_repeat_the_date_step(secretary) -> None:
    bot = secretary
    for answer in ("/report", "Lò Thị Hoa", "1998"):
        await bot.say(SECRETARY, answer)
    await bot.tap(SECRETARY, "Nữ")
    await bot.tap(SECRETARY, "Kinh")
    assert "tương lai" in (await bot.say(SECRETARY, "02/07/2026"))[-1]["text"]
    assert "không có trên lịch" in (await bot.say(SECRETARY, "30/02/2026"))[-1]["text"]
    assert "ngày/tháng/năm" in (await bot.say(SECRETARY, "hôm qua"))[-1]["text"]
    assert "Số quyết định" in (await bot.tap(SECRETARY, "Hôm nay"))[-1]["text"]
    await bot.tap(SECRETARY, "Bỏ qua")
    await bot.tap(SECRETARY, "Không")
    await bot.tap(SECRETARY, "✅")
    [saved] = await bot.counted_admissions()
    assert saved.admitted_on == date(2026, 7, 1) and saved.decision_no is None and saved.youth_union is False
    assert saved.minority is False


async def test_sticker_or_photo_gets_a_polite_reply(secretary) -> None:
    bot = secretary
    await bot.say(SECRETARY, "/report")
    update = bot.api.push_update({"message": {"message_id": 99, "date": 0, "chat": {"id": SECRETARY, "type": "private"},
                                              "from": {"id": SECRETARY, "is_bot": False, "first_name": "Hoa"},
                                              "sticker": {"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1,
                                                          "is_animated": False, "is_video": False, "type": "regular"}}})
    await bot.settle(update)
    assert "chưa gửi" in bot.last_text(SECRETARY)


async def test_other_ethnicity_typed_and_text_instead_of_buttons(secretary) -> None:
    bot = secretary
    for answer in ("/report", "Lò Thị Hoa", "1998", "nu"):
        await bot.say(SECRETARY, answer)
    assert "tên dân tộc" in (await bot.tap(SECRETARY, "Dân tộc khác"))[-1]["text"]
    assert "Ngày quyết định" in (await bot.say(SECRETARY, "San Chay"))[-1]["text"]
    await bot.say(SECRETARY, "15/05/2026")
    await bot.say(SECRETARY, "125-QĐ/ĐU")
    assert "«Có» hoặc «Không»" in (await bot.say(SECRETARY, "có lẽ"))[-1]["text"]
    card = (await bot.say(SECRETARY, "khong"))[-1]["text"]
    assert "Sán Chay" in card
    assert "nút" in (await bot.say(SECRETARY, "lưu đi"))[-1]["text"]


async def test_edit_a_field_from_the_card(secretary) -> None:
    bot = secretary
    await fill_guided(bot)
    assert "sửa mục nào" in (await bot.tap(SECRETARY, "✏️"))[-1]["text"]
    await bot.tap(SECRETARY, "Năm sinh")
    card = (await bot.say(SECRETARY, "1996"))[-1]["text"]
    assert "Phiếu báo cáo" in card and "1996" in card
    await bot.tap(SECRETARY, "✅")
    [saved] = await bot.counted_admissions()
    assert saved.birth_year == 1996 and saved.full_name == "Lò Thị Hoa"


@pytest.mark.parametrize("how", ["command", "button"])
async def test_cancel_stores_nothing(secretary, how: str) -> None:
    bot = secretary
    await fill_guided(bot)
    reply = await (bot.say(SECRETARY, "/cancel") if how == "command" else bot.tap(SECRETARY, "❌"))
    assert "Đã hủy" in reply[-1]["text"]
    assert await bot.all_admissions() == []
    assert "Không có thao tác" in (await bot.say(SECRETARY, "/cancel"))[-1]["text"]


async def test_cancel_works_at_first_step(secretary) -> None:
    await secretary.say(SECRETARY, "/report")
    assert "Đã hủy" in (await secretary.say(SECRETARY, "/cancel"))[-1]["text"]


async def test_likely_duplicate_is_flagged_on_the_card(secretary) -> None:
    bot = secretary
    await bot.report_one_line(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    card = (await bot.say(SECRETARY, "/report Lo Thi Hoa, 1998, nu, 20/05/2026"))[-1]["text"]
    assert "trùng" in card and "Lò Thị Hoa" in card
    card = (await bot.say(SECRETARY, "/report Lò Thị Hoa, 1999, nữ, 20/05/2026"))[-1]["text"]
    assert "trùng" not in card


async def test_secretary_of_two_cells_chooses_and_cannot_forge_another(harness) -> None:
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    await bot.register(SECRETARY, "KP", Role.SECRETARY)
    reply = (await bot.say(SECRETARY, "/report"))[-1]
    buttons = [b["text"] for row in reply["reply_markup"]["inline_keyboard"] for b in row]
    assert sorted(buttons) == ["Chi bộ thôn Khuổi Pết", "Chi bộ thôn Nà Lạn"]
    async with bot.sessions() as session:
        other = await unit_by_code(session, "PC")
    message_id = bot.api.last_message(SECRETARY)["message_id"]
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(SECRETARY, message_id, f"report:cell:{other.id}"))
    assert "không có quyền" in bot.replies(SECRETARY, mark)[-1]["text"]
    await bot.say(SECRETARY, "/report")
    assert "Khuổi Pết" in (await bot.tap(SECRETARY, "Chi bộ thôn Khuổi Pết"))[-1]["text"]


async def test_committee_member_cannot_report(harness) -> None:
    await harness.register(2001, "BT", Role.COMMITTEE)
    assert "Chỉ bí thư" in (await harness.say(2001, "/report"))[-1]["text"]


async def test_stale_button_after_conversation_is_answered_politely(secretary) -> None:
    bot = secretary
    await fill_guided(bot)
    found_id, data = bot.api.find_button(SECRETARY, "✅")
    await bot.tap(SECRETARY, "❌")
    await bot.settle(bot.api.push_callback(SECRETARY, found_id, data))
    answers = bot.api.calls_to("answerCallbackQuery")
    assert "không còn hiệu lực" in answers[-1].params.get("text", "")
    assert await bot.all_admissions() == []


async def test_removed_assignment_cannot_save(secretary) -> None:
    bot = secretary
    await fill_guided(bot)
    async with bot.sessions.begin() as session:
        person = await person_by_telegram_id(session, SECRETARY)
        for assignment in list(person.assignments):
            await session.delete(assignment)
        session.add(Assignment(person_id=person.id, unit_id=(await unit_by_code(session, "BT")).id, role=Role.COMMITTEE))
    text = (await bot.tap(SECRETARY, "✅"))[-1]["text"]
    assert "không có quyền" in text
    assert await bot.all_admissions() == []


async def test_report_now_button_elsewhere_starts_the_conversation(secretary) -> None:
    bot = secretary
    message = bot.api.last_message(SECRETARY)
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(SECRETARY, message["message_id"], "report:start"))
    assert "họ và tên" in bot.replies(SECRETARY, mark)[-1]["text"]
    assert "Năm sinh" in (await bot.say(SECRETARY, "Lò Thị Hoa"))[-1]["text"]


async def test_an_older_cards_buttons_do_not_act_on_the_newer_draft(secretary) -> None:
    bot = secretary
    await bot.say(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.tap(SECRETARY, "Không")  # the Youth Union question, asked on the card
    old_card = bot.api.last_message(SECRETARY)["message_id"]
    await bot.say(SECRETARY, "/report Lò Văn Nam, 1995, nam, 16/05/2026")
    await bot.tap(SECRETARY, "Không")  # the Youth Union question, asked on the card
    for label in ("✅", "❌"):
        found_id, data = bot.api.find_button(SECRETARY, label, old_card)
        await bot.settle(bot.api.push_callback(SECRETARY, found_id, data))
        assert "không còn hiệu lực" in bot.api.calls_to("answerCallbackQuery")[-1].params.get("text", "")
    assert await bot.all_admissions() == []
    await bot.tap(SECRETARY, "✅")  # the newer card still saves its own draft
    assert [a.full_name for a in await bot.counted_admissions()] == ["Lò Văn Nam"]


async def test_too_young_at_the_decision_date_is_refused(secretary) -> None:
    bot = secretary
    text = (await bot.say(SECRETARY, "/report Lò Thị Hoa, 2007, nữ, 15/05/2024"))[-1]["text"]
    assert "chưa đủ 18 tuổi khi kết nạp" in text
    for answer in ("/report", "Lò Thị Hoa", "2008"):
        await bot.say(SECRETARY, answer)
    await bot.tap(SECRETARY, "Nữ")
    await bot.tap(SECRETARY, "Tày")
    assert "chưa đủ 18 tuổi khi kết nạp" in (await bot.say(SECRETARY, "01/01/2025"))[-1]["text"]
    assert "Số quyết định" in (await bot.say(SECRETARY, "01/06/2026"))[-1]["text"]  # the step repeated
    assert await bot.all_admissions() == []


async def test_forged_ethnicity_button_is_answered_without_error(secretary) -> None:
    bot = secretary
    for answer in ("/report", "Lò Thị Hoa", "1998"):
        await bot.say(SECRETARY, answer)
    message_id = (await bot.tap(SECRETARY, "Nữ")) and bot.api.last_message(SECRETARY)["message_id"]
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(SECRETARY, message_id, "report:eth:9"))
    assert all("sự cố" not in r.get("text", "") for r in bot.replies(SECRETARY, mark))
    assert "Ngày quyết định" in (await bot.tap(SECRETARY, "Tày"))[-1]["text"]  # still at the same step


async def test_edited_message_is_not_taken_as_an_answer(secretary) -> None:
    bot = secretary
    await bot.say(SECRETARY, "/report")
    await bot.say(SECRETARY, "Lò Thị Hoa")
    mark = bot.api.mark()
    update = bot.api.push_update({"edited_message": {
        "message_id": 1, "date": 0, "edit_date": 1, "chat": {"id": SECRETARY, "type": "private"},
        "from": {"id": SECRETARY, "is_bot": False, "first_name": "Hoa"}, "text": "1999"}})
    await bot.settle(update)
    assert bot.replies(SECRETARY, mark) == []
    assert "Giới tính" in (await bot.say(SECRETARY, "1998"))[-1]["text"]
    await bot.tap(SECRETARY, "Nữ")
    await bot.tap(SECRETARY, "Tày")
    await bot.say(SECRETARY, "15/05/2026")
    await bot.tap(SECRETARY, "Bỏ qua")
    assert "1998" in (await bot.tap(SECRETARY, "Có"))[-1]["text"]


async def test_group_chats_get_no_personal_data(secretary) -> None:
    bot = secretary
    group = -100123
    update = bot.api.push_update({"message": {
        "message_id": 5, "date": 0, "chat": {"id": group, "type": "group", "title": "Chi bộ"},
        "from": {"id": SECRETARY, "is_bot": False, "first_name": "Hoa"}, "text": "/progress",
        "entities": [{"type": "bot_command", "offset": 0, "length": 9}]}})
    await bot.settle(update)
    sent = [c for c in bot.api.calls if c.chat_id == group and c.method == "sendMessage"]
    assert len(sent) == 1 and "tin nhắn riêng" in sent[0].params["text"]
    assert "/4" not in sent[0].params["text"]
