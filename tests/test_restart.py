"""Restarts: a half-filled report resumes; repeated updates are processed once."""

from __future__ import annotations

from models.entities import Role


async def test_half_filled_report_resumes_after_crash_and_restart(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report")
    await bot.say(1001, "Lò Thị Hoa")
    await bot.say(1001, "1998")
    await bot.crash()
    await bot.start()
    # the sex buttons from before the restart still work, and the answers are still there
    await _finish_from_sex(bot)


async def test_repeated_update_is_not_processed_twice(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.tap(1001, "Không")  # the Youth Union question, asked on the card
    message_id, data = bot.api.find_button(1001, "✅")
    update = bot.api.push_callback(1001, message_id, data)
    await bot.settle(update)
    await bot.crash()  # as if the process died before Telegram learnt the update was handled
    await bot.start()
    mark = bot.api.mark()
    again = dict(update)
    bot.api.push_update(again)  # Telegram delivers the same update_id again
    nudge = bot.api.push_text(1001, "/help")
    await bot.settle(nudge)
    assert len(await bot.counted_admissions()) == 1
    sent = [c for c in bot.api.calls[mark:] if c.method in ("editMessageText", "sendMessage") and c.chat_id == 1001]
    assert len(sent) == 1  # only the /help answer


async def test_failure_mid_save_leaves_nothing_half_written_and_no_error_text(harness, monkeypatch) -> None:
    import handlers.report

    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.tap(1001, "Không")  # the Youth Union question, asked on the card
    message_id, data = bot.api.find_button(1001, "✅")

    async def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away: SECRET-DETAIL")

    monkeypatch.setattr(handlers.report, "progress_of", broken)
    replies = await bot.tap(1001, "✅")
    assert any("sự cố" in r["text"] for r in replies)
    assert all("SECRET-DETAIL" not in r["text"] and "RuntimeError" not in r["text"] for r in replies)
    assert await bot.all_admissions() == []  # the insert was rolled back with the transaction
    monkeypatch.undo()
    # the card is still there and the draft was kept: the second tap saves exactly once
    await bot.settle(bot.api.push_callback(1001, message_id, data))
    assert len(await bot.counted_admissions()) == 1


async def test_abandoned_draft_is_forgotten_at_restart(harness) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from models.entities import StoredState

    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report")
    await bot.say(1001, "Lò Thị Hoa")
    await bot.say(1001, "1998")
    await bot.stop()
    bot.clock.advance(timedelta(days=3))
    await bot.start()
    async with bot.sessions() as session:
        stored = " ".join(await session.scalars(select(StoredState.data)))
    assert "Lò Thị Hoa" not in stored  # the name is no longer kept anywhere
    assert "/report" in (await bot.tap(1001, "Nữ"))[-1]["text"]  # polite: start again
    assert "họ và tên" in (await bot.say(1001, "/report"))[-1]["text"]


async def test_a_draft_saved_before_live_questions_were_kept_still_takes_its_buttons(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    for answer in ("/report", "Lò Thị Hoa", "1998"):
        await bot.say(1001, answer)
    del bot.application.user_data[1001]["report"]["live"]  # as a draft persisted by the version before
    assert "Dân tộc" in (await bot.tap(1001, "Nữ"))[-1]["text"]
    assert "Ngày quyết định" in (await bot.tap(1001, "Tày"))[-1]["text"]


async def test_a_question_sent_by_a_run_that_died_before_persisting_still_takes_its_buttons(harness) -> None:
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    for answer in ("/report", "Lò Thị Hoa", "1998"):
        await bot.say(1001, answer)
    asked = bot.api.last_message(1001)["message_id"]
    # The copy a killed run sent before its state was saved: the draft never recorded it.
    lost = await bot.application.bot.send_message(1001, "Giới tính?", reply_markup=InlineKeyboardMarkup(
        [[InlineKeyboardButton("Nữ", callback_data="report:sex:female")]]))
    assert lost.message_id > asked
    assert "Dân tộc" in (await bot.tap(1001, "Nữ", lost.message_id))[-1]["text"]
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(1001, asked, "report:sex:male"))  # the recorded, answered one
    assert "câu hỏi mới nhất" in bot.api.calls_to("answerCallbackQuery", since=mark)[-1].params.get("text", "")
    await bot.tap(1001, "Tày")
    await bot.say(1001, "15/05/2026")
    await bot.tap(1001, "Bỏ qua")
    await bot.tap(1001, "Không")
    await bot.tap(1001, "✅")
    [saved] = await bot.counted_admissions()
    assert saved.sex.value == "female"


async def test_a_step_whose_record_failed_still_resumes_after_a_restart(harness, monkeypatch) -> None:
    """On PostgreSQL the step's state commits with its processed-record: when that fails, it is written again."""
    from tests.harness import fail_first_record

    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report")
    failures = fail_first_record(monkeypatch)
    await bot.say(1001, "Lò Thị Hoa")
    assert len(failures) == 1
    await bot.crash()
    await bot.start()
    await bot.say(1001, "1998")  # the name's step is where it was left: the year is the next answer
    await _finish_from_sex(bot)


async def _finish_from_sex(bot) -> None:  # type: ignore[no-untyped-def]
    """Answer the rest of Lò Thị Hoa's report from the sex question on, and save it."""
    assert "Dân tộc" in (await bot.tap(1001, "Nữ"))[-1]["text"]
    await bot.tap(1001, "Tày")
    await bot.say(1001, "15/05/2026")
    await bot.tap(1001, "Bỏ qua")
    card = (await bot.tap(1001, "Có"))[-1]["text"]
    assert "Lò Thị Hoa" in card and "1998" in card
    await bot.tap(1001, "✅")
    assert [a.full_name for a in await bot.counted_admissions()] == ["Lò Thị Hoa"]


async def test_a_save_redelivered_after_its_state_was_lost_answers_saved_and_saves_once(harness) -> None:
    """Killed after the admission committed but before the step's state and record did: Telegram
    delivers the ✅ again to a conversation still at the card; it is saved once, and said so plainly."""
    from sqlalchemy import delete, select

    from models.entities import ProcessedUpdate, StoredState

    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.tap(1001, "Không")  # the Youth Union question, asked on the card
    async with bot.sessions() as session:
        before = [(row.kind, row.key, row.data) for row in await session.scalars(select(StoredState))]
    message_id, data = bot.api.find_button(1001, "✅")
    update = bot.api.push_callback(1001, message_id, data)
    await bot.settle(update)
    async with bot.sessions.begin() as session:  # what the kill would have left: the card's state, no record
        await session.execute(delete(StoredState))
        session.add_all(StoredState(kind=kind, key=key, data=value) for kind, key, value in before)
        await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.update_id == update["update_id"]))
    await bot.crash()  # and the restart reads it
    await bot.start()
    mark = bot.api.mark()
    await bot.settle(bot.api.push_update(dict(update)))
    assert len(await bot.counted_admissions()) == 1
    answers = [c for c in bot.api.calls[mark:] if c.chat_id == 1001 and c.method in ("editMessageText", "sendMessage")]
    assert answers and all(c.params["text"].startswith("✅ Đã lưu: đồng chí Lò Thị Hoa") for c in answers)
    assert not any("sự cố" in c.params["text"] for c in answers)  # the same card again is no error
