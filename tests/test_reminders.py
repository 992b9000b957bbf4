"""Weekly reminders, check-ins, /away, /schedule and digests, end to end through the fake Bot API.

The clock stands at Wednesday 1 July 2026, 09:00 (week 29/06–05/07). Runs are started directly
with run_weekly or by restarting the bot (catch-up); nothing waits for real scheduled times.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

import services.delivery as delivery
import services.weekly as weekly
from tests.harness import run_weekly
from models.entities import Person, Role
from models.reminders import WeeklyCheckIn, reporting_rate
from models.sentlog import SentReminder, run_completed, stored_schedules
from models.units import unit_by_code
from tests.harness import TZ, add_history


def sent_to(bot, chat_id: int, since: int = 0) -> list[str]:  # type: ignore[no-untyped-def]
    """Return the texts the bot delivered to a chat with sendMessage."""
    return [c.params.get("text", "") for c in bot.api.calls_to("sendMessage", chat_id, since) if c.ok]


async def rate(bot, code: str, week: date) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return await reporting_rate(session, await unit_by_code(session, code), week, tz=TZ)


async def person(bot, telegram_id: int) -> Person:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return await session.scalar(select(Person).where(Person.telegram_id == telegram_id))


@pytest.fixture
def no_sleep(harness, monkeypatch):  # type: ignore[no-untyped-def]
    """Record the retry waits instead of sleeping."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    services = harness.application.services
    monkeypatch.setattr(harness.application, "services", replace(services, sleep=record))
    return waits


async def test_only_secretaries_of_cells_without_a_report_this_week_are_reminded(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY, "Hoa")  # reports in the chat this week
    await bot.register(1002, "KP", Role.SECRETARY, "Nam")  # checks in "no new admissions"
    await bot.register(1003, "PC", Role.SECRETARY, "Lan")  # only imported history: still due
    await bot.register(1004, "PC", Role.SECRETARY, "Tú")  # away
    await bot.register(2001, "BT", Role.COMMITTEE, "Ủy viên")  # never reminded
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    assert "Đã ghi nhận" in (await bot.say(1002, "/checkin"))[0]["text"]
    await add_history(bot.sessions, "PC", 2, date(2026, 6, 30))
    assert "đến hết ngày 08/07/2026" in (await bot.say(1004, "/away 8"))[0]["text"]

    mark = bot.api.mark()
    summary = await run_weekly(bot.application, "reminder")
    assert (summary.recipients, summary.sent, summary.skipped, summary.away) == (1, 1, 0, 1)
    assert sent_to(bot, 1001, mark) == sent_to(bot, 1002, mark) == sent_to(bot, 1004, mark) == []
    assert sent_to(bot, 2001, mark) == []
    [text] = sent_to(bot, 1003, mark)
    assert "Nhắc việc tuần 29/06–05/07/2026" in text and "đồng chí" in text
    assert "Chi bộ thôn Pác Cáp: đã kết nạp 2/5 (40,0\u00a0%) kế hoạch năm 2026" in text
    labels = [b["text"] for row in bot.api.last_message(1003)["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["📝 Báo cáo ngay", "✅ Tuần này không có kết nạp mới"]

    again = await run_weekly(bot.application, "reminder")  # a repeated remind-now
    assert (again.sent, again.skipped) == (0, 1)
    assert len(sent_to(bot, 1003, mark)) == 1
    # the next week starts afresh: the chat report and the check-in were last week's
    bot.clock.advance(timedelta(days=7))
    assert (await run_weekly(bot.application, "reminder")).sent == 3
    bot.clock.set(datetime(2026, 7, 16, 9, 0, tzinfo=TZ))  # the pause ended with 8 July
    assert (await run_weekly(bot.application, "reminder")).sent == 4


async def test_reminder_buttons_check_in_undo_and_start_a_report(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(1002, "KP", Role.SECRETARY)
    await run_weekly(bot.application, "reminder")
    week = date(2026, 6, 29)
    reply = (await bot.tap(1001, "✅ Tuần này"))[0]
    assert "Đã ghi nhận: Chi bộ thôn Nà Lạn không có kết nạp mới trong tuần 29/06–05/07/2026" in reply["text"]
    assert await rate(bot, "BT", week) == (1, 2)
    assert await rate(bot, "PN", week) == (1, 3)
    assert "Đã hoàn tác" in (await bot.tap(1001, "↩️ Hoàn tác"))[0]["text"]
    assert await rate(bot, "BT", week) == (0, 2)
    assert "họ và tên" in (await bot.tap(1001, "📝 Báo cáo ngay"))[0]["text"]
    await bot.say(1001, "/cancel")
    # another secretary cannot check in someone else's cell with a forged button
    async with bot.sessions() as session:
        nl = await unit_by_code(session, "NL")
    message_id, _ = bot.api.find_button(1002, "✅ Tuần này")
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(1002, message_id, f"remind:checkin:{nl.id}:20260629"))
    assert "không thuộc chi bộ" in bot.replies(1002, mark)[0]["text"]
    assert await rate(bot, "BT", week) == (0, 2)
    # last week's button, tapped a week later, does not check in the new week
    bot.clock.advance(timedelta(days=7))
    assert "tuần trước" in (await bot.tap(1001, "✅ Tuần này"))[0]["text"]
    assert await rate(bot, "BT", date(2026, 7, 6)) == (0, 2)
    assert "Đã ghi nhận" in (await bot.say(1001, "/checkin"))[0]["text"]
    assert "đã xác nhận tuần này rồi" in (await bot.say(1001, "/checkin"))[0]["text"]
    assert "Đã hoàn tác" in (await bot.say(1001, "/checkin huy"))[0]["text"]
    assert "chưa xác nhận" in (await bot.say(1001, "/checkin huy"))[0]["text"]


async def test_checkin_is_for_secretaries_and_away_takes_1_to_90_days(harness) -> None:
    bot = harness
    await bot.register(2001, "BT", Role.COMMITTEE)
    await bot.register(1001, "NL", Role.SECRETARY)
    assert "dành cho bí thư chi bộ" in (await bot.say(2001, "/checkin"))[0]["text"]
    for bad in ("/away abc", "/away 91", "/away -3", "/away 2 3"):
        text = (await bot.say(1001, bad))[0]["text"]
        assert "Số ngày chưa đúng" in text and "/away 14" in text, bad
    assert (await person(bot, 1001)).away_until is None
    assert "Nhắc việc đang bật" in (await bot.say(1001, "/away"))[0]["text"]
    await bot.say(1001, "/away 90")
    assert (await person(bot, 1001)).away_until == date(2026, 9, 28)
    assert "tạm dừng đến hết ngày 28/09/2026" in (await bot.say(1001, "/away"))[0]["text"]
    assert (await run_weekly(bot.application, "reminder")).sent == 0
    assert "bật lại" in (await bot.say(1001, "/away 0"))[0]["text"]
    assert (await run_weekly(bot.application, "reminder")).sent == 1


async def test_schedule_is_for_admins_and_a_change_wins_and_rebuilds_the_job(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(3001, "PN", Role.ADMIN)
    assert "Chỉ quản trị" in (await bot.say(1001, "/schedule reminder thu 09:00"))[0]["text"]
    shown = (await bot.say(3001, "/schedule"))[0]["text"]
    assert "Thứ Sáu lúc 16:00 (theo tệp cấu hình); lần tới: 03/07/2026 16:00" in shown
    assert "Thứ Hai lúc 07:30" in shown and "21:00–06:30" in shown
    [job] = bot.application.job_queue.get_jobs_by_name("weekly:reminder")
    assert job.data["as_of"] == "2026-07-03"
    assert "Chưa hiểu" in (await bot.say(3001, "/schedule reminder someday 16:00"))[0]["text"]
    assert "Giờ chưa đúng" in (await bot.say(3001, "/schedule reminder fri 25:00"))[0]["text"]
    changed = (await bot.say(3001, "/schedule reminder t5 09:15"))[0]["text"]
    assert "Đã lưu lịch mới" in changed and "Thứ Năm lúc 09:15 (đã đổi trong bot); lần tới: 02/07/2026 09:15" in changed
    [job] = bot.application.job_queue.get_jobs_by_name("weekly:reminder")
    assert job.data["as_of"] == "2026-07-02"
    # the stored schedule survives a restart and still wins over the file
    await bot.stop()
    await bot.start()
    [job] = bot.application.job_queue.get_jobs_by_name("weekly:reminder")
    assert job.data["as_of"] == "2026-07-02"


async def test_an_admin_below_the_root_can_neither_see_nor_change_the_global_schedule(harness) -> None:
    bot = harness
    await bot.register(3002, "BT", Role.ADMIN)  # admin of a commune, not of the district (the root)
    for command in ("/schedule reminder thu 09:00", "/schedule digest t2 06:00", "/schedule"):
        assert "Chỉ quản trị" in (await bot.say(3002, command))[0]["text"], command
    async with bot.sessions() as session:
        assert await stored_schedules(session) == {}
    [job] = bot.application.job_queue.get_jobs_by_name("weekly:reminder")
    assert job.data["as_of"] == "2026-07-03"


async def test_a_run_missed_while_down_is_caught_up_once_on_start(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.stop()
    bot.clock.set(datetime(2026, 7, 3, 18, 0, tzinfo=TZ))  # two hours after Friday 16:00
    mark = bot.api.mark()
    await bot.start()
    await bot.api.until(lambda: sent_to(bot, 1001, mark))
    await completed(bot, "reminder", date(2026, 6, 29))
    async with bot.sessions() as session:
        rows = list(await session.scalars(select(SentReminder)))
    assert [(r.kind, r.week_start, r.status) for r in rows] == [("reminder", date(2026, 6, 29), "sent")]
    [job] = bot.application.job_queue.get_jobs_by_name("weekly:reminder")
    assert job.data["as_of"] == "2026-07-10"  # the next regular run is next week's
    await bot.stop()
    await bot.start()  # a second restart does not catch up again
    assert bot.application.job_queue.get_jobs_by_name("weekly:reminder:catch-up") == ()
    await bot.say(1001, "/help")
    assert len(sent_to(bot, 1001, mark)) == 2  # the reminder and the /help answer


async def test_a_run_due_on_a_holiday_moves_to_the_next_allowed_morning(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.stop()
    holiday = ((date(2026, 7, 3), date(2026, 7, 3)),)  # Friday 3 July
    bot.config = replace(bot.config, reminders=replace(bot.config.reminders, holidays=holiday))
    await bot.start()
    [job] = bot.application.job_queue.get_jobs_by_name("weekly:reminder")
    assert (job.data["as_of"], job.data["due"]) == ("2026-07-03", "2026-07-04T06:30:00+07:00")
    await bot.stop()
    bot.clock.set(datetime(2026, 7, 4, 6, 0, tzinfo=TZ))  # quiet hours, nothing due yet
    mark = bot.api.mark()
    await bot.start()
    assert bot.application.job_queue.get_jobs_by_name("weekly:reminder:catch-up") == ()
    await bot.stop()
    bot.clock.set(datetime(2026, 7, 4, 8, 0, tzinfo=TZ))  # the bot was down at 06:30: caught up
    await bot.start()
    await bot.api.until(lambda: sent_to(bot, 1001, mark))
    assert "Nhắc việc tuần 29/06–05/07/2026" in sent_to(bot, 1001, mark)[0]
    await completed(bot, "reminder", date(2026, 6, 29))


async def completed(bot, kind: str, week: date) -> None:  # type: ignore[no-untyped-def]
    """Wait until the run of `kind` for `week` is recorded as completed."""
    for _ in range(500):
        async with bot.sessions() as session:
            if await run_completed(session, kind, week):
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the {kind} run of {week} did not complete")


async def test_restart_in_the_middle_of_a_run_sends_nobody_twice(harness, monkeypatch) -> None:
    bot = harness
    ids = [1001, 1002, 1003, 1004, 1005, 1006]
    for user_id, code in zip(ids, ["NL", "NL", "KP", "KP", "PC", "PC"]):
        await bot.register(user_id, code, Role.SECRETARY)
    monkeypatch.setattr(delivery, "WORKERS", 1)
    real_finish = delivery.record
    finished = []

    async def crash_on_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        if len(finished) == 2:
            raise RuntimeError("power cut")  # the message has left, its outcome is never written
        finished.append(args)
        await real_finish(*args, **kwargs)

    monkeypatch.setattr(delivery, "record", crash_on_third)
    mark = bot.api.mark()
    with pytest.raises(RuntimeError):
        await run_weekly(bot.application, "reminder")
    assert sum(len(sent_to(bot, i, mark)) for i in ids) == 3
    await bot.crash()
    monkeypatch.setattr(delivery, "record", real_finish)
    bot.clock.advance(timedelta(minutes=5))
    await bot.start()
    summary = await run_weekly(bot.application, "reminder")
    assert (summary.sent, summary.skipped, summary.uncertain) == (3, 3, 1)
    assert [len(sent_to(bot, i, mark)) for i in ids] == [1] * 6


async def test_blocked_secretary_is_marked_inactive_and_not_retried(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY, "Hoa")
    await bot.register(1002, "KP", Role.SECRETARY, "Nam")
    bot.api.block(1001)
    mark = bot.api.mark()
    summary = await run_weekly(bot.application, "reminder")
    assert (summary.sent, summary.blocked, summary.failed) == (1, 1, 0)
    assert len(bot.api.calls_to("sendMessage", 1001, mark)) == 1  # one 403, no retry
    blocked = await person(bot, 1001)
    assert blocked.active is False and blocked.blocked_at == bot.clock.now()
    bot.clock.advance(timedelta(days=7))
    assert (await run_weekly(bot.application, "reminder")).recipients == 1
    assert len(bot.api.calls_to("sendMessage", 1001, mark)) == 1
    bot.api.unblock(1001)
    await bot.say(1001, "/help")  # writing again re-activates
    assert (await person(bot, 1001)).active is True


async def test_429_retry_after_and_5xx_are_retried_with_backoff(harness, no_sleep) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    mark = bot.api.mark()
    bot.api.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    bot.api.fail_next("sendMessage", 502, "Bad Gateway", times=2)
    summary = await run_weekly(bot.application, "reminder")
    assert (summary.sent, summary.failed) == (1, 0)
    codes = [c.response.get("error_code", 200) for c in bot.api.calls_to("sendMessage", 1001, mark)]
    assert codes == [429, 502, 502, 200]
    assert no_sleep == [0.5, 1.0]  # the 429 was waited out by PTB's rate limiter, 5xx by our backoff
    # a server that keeps failing: given up after the bounded attempts, tried again by the next run
    bot.clock.advance(timedelta(days=7))
    bot.api.fail_next("sendMessage", 500, "Internal Server Error", times=delivery.MAX_ATTEMPTS)
    failed = await run_weekly(bot.application, "reminder")
    assert (failed.sent, failed.failed) == (0, 1)
    async with bot.sessions() as session:
        row = await session.scalar(select(SentReminder).where(SentReminder.week_start == date(2026, 7, 6)))
        assert (row.status, row.attempts) == ("failed", delivery.MAX_ATTEMPTS)
    retried = await run_weekly(bot.application, "reminder")
    assert (retried.sent, retried.skipped) == (1, 0)


async def test_own_retry_after_handling_when_the_rate_limiter_gives_up(harness, no_sleep) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    bot.application.bot._rate_limiter = None  # as if PTB's limiter had run out of retries
    bot.api.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    summary = await run_weekly(bot.application, "reminder")
    assert summary.sent == 1 and no_sleep == [7.0]


async def test_digest_numbers_for_each_committee_member(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY, "Hoa")
    await bot.register(1002, "KP", Role.SECRETARY, "Nam")
    await bot.register(1003, "PC", Role.SECRETARY, "Lan")
    await bot.register(1004, "NL", Role.SECRETARY, "Tú")
    await bot.register(2001, "BT", Role.COMMITTEE)
    await bot.register(2002, "PN", Role.COMMITTEE)
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.say(1002, "/checkin")
    await bot.say(1004, "/away 14")
    async with bot.sessions.begin() as session:  # Pác Cáp last reported in the week of 8 June
        pc = await unit_by_code(session, "PC")
        session.add(WeeklyCheckIn(unit_id=pc.id, week_start=date(2026, 6, 8), created_at=bot.clock.now()))
    bot.api.block(1003)
    await run_weekly(bot.application, "reminder")  # Lan blocked the bot: 403 marks her inactive
    # Monday 6 July: "last week" is the week of 29 June
    mark = bot.api.mark()
    summary = await run_weekly(bot.application, "digest", date(2026, 7, 6))
    assert summary.sent == 2
    [district] = sent_to(bot, 2002, mark)
    assert "Tổng hợp tuần 29/06–05/07/2026 — Huyện ủy Pác Nặm" in district
    assert "Kế hoạch năm 2026: <b>1/90 (1,1\u00a0%)</b>" in district
    assert "Chỉ tiêu nhiệm kỳ 2025-2030: <b>1/400 (0,3\u00a0%)</b>" in district
    assert "Báo cáo tuần trước: 2/3 chi bộ (66,7\u00a0%)" in district
    # 6 July is day 187 of 365: Nà Lạn 4 × 187/365 → 2 expected, Khuổi Pết → 2, Pác Cáp → 3
    assert "Chi bộ chậm tiến độ (3)" in district
    assert "🔴 Chi bộ thôn Nà Lạn: 1/4, theo lịch cần 2" in district
    assert "🔕 Chi bộ thôn Pác Cáp: 3 tuần chưa báo cáo" in district
    assert "Nà Lạn: 0" not in district and "Khuổi Pết: " + "tuần" not in district
    assert "Bí thư đã chặn bot" in district and "• Lan — Chi bộ thôn Pác Cáp" in district
    assert "Bí thư đang đi vắng (1)" in district and "• Tú — Chi bộ thôn Nà Lạn, đến hết 14/07/2026" in district
    [commune] = sent_to(bot, 2001, mark)
    assert "Đảng ủy xã Bộc Bố" in commune and "Báo cáo tuần trước: 2/2 chi bộ (100,0\u00a0%)" in commune
    assert "Pác Cáp" not in commune and "Lan" not in commune
    assert (await run_weekly(bot.application, "digest", date(2026, 7, 6))).sent == 0  # re-sent to nobody


async def test_a_units_digest_is_built_once_per_run_for_all_its_committee_members(harness, monkeypatch) -> None:
    bot = harness
    await bot.register(2001, "BT", Role.COMMITTEE)
    await bot.register(2003, "BT", Role.COMMITTEE)
    built = []
    real_section = weekly.digest_section

    async def counted(session, tr, unit, *args):  # type: ignore[no-untyped-def]
        built.append(unit.id)
        return await real_section(session, tr, unit, *args)

    monkeypatch.setattr(weekly, "digest_section", counted)
    mark = bot.api.mark()
    assert (await run_weekly(bot.application, "digest", date(2026, 7, 6))).sent == 2
    assert len(built) == 1
    [first] = sent_to(bot, 2001, mark)
    assert sent_to(bot, 2003, mark) == [first] and "Đảng ủy xã Bộc Bố" in first


def test_a_long_digest_is_cut_between_lines_never_inside_a_tag() -> None:
    from core.text import shorten

    lines = ["📊 <b>Tổng hợp tuần</b>", "<b>Chi bộ chậm tiến độ (3):</b>", "🔴 Chi bộ thôn <b>Nà Lạn</b>: 1/4"]
    text = "\n".join(lines)
    assert shorten(text, len(text), "(rút gọn)") == text
    assert text[:71].endswith("<b")  # a plain cut at 71 characters would split a tag of the last line
    cut = shorten(text, 71, "(rút gọn)")
    assert cut == "\n".join([*lines[:2], "(rút gọn)"])
    assert len(cut) <= 71 and cut.count("<b>") == cut.count("</b>")


def test_quiet_hours_and_holidays_move_a_run_to_the_next_allowed_time() -> None:
    from datetime import time

    from models.calendar import Calendar, Schedule, catch_up_candidate, latest_due, next_run

    quiet = (time(21, 0), time(6, 30))
    calendar = Calendar(TZ, quiet, ((date(2027, 2, 5), date(2027, 2, 11)), (date(2026, 9, 2), date(2026, 9, 2))))
    at = lambda *a: datetime(*a, tzinfo=TZ)  # noqa: E731
    assert calendar.next_allowed(at(2026, 7, 3, 22, 0)) == at(2026, 7, 4, 6, 30)
    assert calendar.next_allowed(at(2026, 7, 4, 3, 0)) == at(2026, 7, 4, 6, 30)
    assert calendar.next_allowed(at(2026, 7, 4, 6, 30)) == at(2026, 7, 4, 6, 30)
    assert calendar.next_allowed(at(2026, 9, 2, 16, 0)) == at(2026, 9, 3, 6, 30)
    friday = Schedule("reminder", "fri", time(16, 0))
    assert next_run(friday, calendar, at(2026, 7, 1, 9, 0)) == (date(2026, 7, 3), at(2026, 7, 3, 16, 0))
    assert next_run(friday, calendar, at(2026, 7, 3, 16, 0)) == (date(2026, 7, 10), at(2026, 7, 10, 16, 0))
    # Tết: Friday 5 February 2027 is a holiday up to the 11th; the run moves to the 12th at 06:30
    assert next_run(friday, calendar, at(2027, 2, 1, 9, 0)) == (date(2027, 2, 5), at(2027, 2, 12, 6, 30))
    late = Schedule("reminder", "fri", time(22, 0))  # due in quiet hours: next morning
    assert next_run(late, calendar, at(2026, 7, 1, 9, 0)) == (date(2026, 7, 3), at(2026, 7, 4, 6, 30))
    assert latest_due(friday, calendar, at(2026, 7, 3, 15, 59))[0] == date(2026, 6, 26)
    assert catch_up_candidate(friday, calendar, at(2026, 7, 4, 3, 59), 12) == date(2026, 7, 3)
    assert catch_up_candidate(friday, calendar, at(2026, 7, 4, 4, 1), 12) is None
    assert catch_up_candidate(friday, calendar, at(2026, 7, 3, 17, 0), 0) is None
    # a late run is caught up counting from its moved (allowed) time
    assert catch_up_candidate(late, calendar, at(2026, 7, 4, 18, 0), 12) == date(2026, 7, 3)


@pytest.mark.parametrize("last_week, silent", [(date(2026, 6, 15), True), (date(2026, 6, 22), False)])
async def test_silent_from_exactly_two_whole_weeks_without_a_report(harness, last_week: date, silent: bool) -> None:
    bot = harness
    await bot.register(2001, "NN", Role.COMMITTEE)
    async with bot.sessions.begin() as session:  # Pác Cáp's last report: that week's check-in
        pc = await unit_by_code(session, "PC")
        session.add(WeeklyCheckIn(unit_id=pc.id, week_start=last_week, created_at=bot.clock.now()))
    mark = bot.api.mark()
    await run_weekly(bot.application, "digest", date(2026, 7, 6))  # weeks of 22 and 29 June in between
    [digest] = sent_to(bot, 2001, mark)
    assert ("🔕 Chi bộ thôn Pác Cáp: 2 tuần chưa báo cáo" in digest) is silent
    assert "Chi bộ thôn Pác Cáp: 1 tuần" not in digest


async def test_a_cell_that_reported_or_checked_in_this_week_is_not_silent(harness) -> None:
    bot = harness
    bot.clock.set(datetime(2026, 6, 1, 9, 0, tzinfo=TZ))  # secretaries since the week of 1 June
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(1002, "KP", Role.SECRETARY)
    await bot.register(1003, "PC", Role.SECRETARY)
    await bot.register(2002, "PN", Role.COMMITTEE)
    bot.clock.set(datetime(2026, 7, 8, 9, 0, tzinfo=TZ))  # Wednesday of the week of 6 July
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.say(1002, "/checkin")
    mark = bot.api.mark()
    await run_weekly(bot.application, "digest", date(2026, 7, 8))
    [digest] = sent_to(bot, 2002, mark)
    assert "Nà Lạn: chưa báo cáo" not in digest and "Khuổi Pết: chưa báo cáo" not in digest
    # Pác Cáp never reported: measured from its secretary's first week (1 June), 4 whole weeks before this one
    assert "Chi bộ im lặng từ hai tuần trở lên (1)" in digest
    assert "🔕 Chi bộ thôn Pác Cáp: chưa báo cáo tuần nào trong 4 tuần từ khi có bí thư" in digest


@pytest.mark.parametrize("digest_day, silent", [(date(2026, 7, 13), False), (date(2026, 7, 20), True)])
async def test_never_reported_counts_from_the_first_secretary_not_from_the_beginning(
        harness, digest_day: date, silent: bool) -> None:
    bot = harness
    await bot.register(1003, "PC", Role.SECRETARY)  # Wednesday 1 July: the week of 29 June is a grace week
    await bot.register(2001, "NN", Role.COMMITTEE)
    await bot.register(2002, "BT", Role.COMMITTEE)  # Bộc Bố's cells have no secretary at all
    mark = bot.api.mark()
    await run_weekly(bot.application, "digest", digest_day)
    [commune] = sent_to(bot, 2001, mark)
    assert ("🔕 Chi bộ thôn Pác Cáp: chưa báo cáo tuần nào trong 2 tuần từ khi có bí thư" in commune) is silent
    assert "Pác Cáp: chưa báo cáo tuần nào trong 1 tuần" not in commune
    [unstaffed] = sent_to(bot, 2002, mark)
    assert "im lặng" not in unstaffed  # nobody to report: not silent
    assert "Chi bộ chưa có bí thư dùng bot (2): Chi bộ thôn Khuổi Pết, Chi bộ thôn Nà Lạn" in unstaffed


def test_silent_weeks_edges() -> None:
    from services.digests import SILENT_WEEKS, silent_weeks

    monday = date(2026, 7, 6)
    assert silent_weeks(None, None, monday) is None  # no secretary: nobody to report
    assert silent_weeks(monday, None, monday) == 0  # reported this week
    assert silent_weeks(date(2026, 6, 29), None, monday) == 0
    assert silent_weeks(None, date(2026, 6, 15), monday) == SILENT_WEEKS  # 22 and 29 June without a report
    assert silent_weeks(date(2026, 6, 8), date(2026, 6, 29), monday) == 3  # the last report wins


async def test_an_empty_run_says_why_nobody_got_anything(harness) -> None:
    from core.i18n import Texts

    bot = harness
    texts = Texts.load()
    # nobody registered: no committee for the digest, no secretary due for the reminder
    assert (await run_weekly(bot.application, "digest")).nobody_reason == "no_committee"
    assert (await run_weekly(bot.application, "reminder")).nobody_reason == "all_reported"
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(1002, "KP", Role.SECRETARY)
    await bot.say(1001, "/checkin")
    await bot.say(1002, "/away 7")
    away = await run_weekly(bot.application, "reminder")
    assert (away.recipients, away.away, away.nobody_reason) == (0, 1, "all_away")
    await bot.say(1002, "/away 0")
    sent = await run_weekly(bot.application, "reminder")
    assert (sent.sent, sent.nobody_reason) == (1, None)
    again = await run_weekly(bot.application, "reminder")
    assert (again.sent, again.skipped, again.nobody_reason) == (0, 1, "already_sent")
    for reason in ("no_committee", "all_reported", "all_away", "already_sent"):
        for lang in ("vi", "en"):
            assert texts.get(f"weekly.nobody_{reason}", lang), (reason, lang)


async def add_cells(bot) -> None:  # type: ignore[no-untyped-def]
    """Add cells whose names code-point order misplaces: "Đông" after "Yên", "Khuổi" before "Khâu"."""
    from models.entities import UnitKind
    from models.units import UnitRow, load_units
    from tests.harness import WORLD_UNITS

    extra = [UnitRow(8, "DX", "Chi bộ thôn Đông Xá", "BT", UnitKind.CELL, ("Đông Xá",)),
             UnitRow(9, "YB", "Chi bộ thôn Yên Bình", "BT", UnitKind.CELL, ("Yên Bình",)),
             UnitRow(10, "KM", "Chi bộ thôn Khâu Mạ", "BT", UnitKind.CELL, ("Khâu Mạ",))]
    async with bot.sessions.begin() as session:
        await load_units(session, [*WORLD_UNITS, *extra])


VIETNAMESE_ORDER = ["Đông Xá", "Khâu Mạ", "Khuổi Pết", "Nà Lạn", "Yên Bình"]


def in_order(text: str, names: list[str]) -> bool:
    return sorted(names, key=text.index) == names and all(n in text for n in names)


async def test_digest_lists_and_checkin_replies_are_in_vietnamese_order(harness) -> None:
    bot = harness
    await add_cells(bot)
    bot.clock.set(datetime(2026, 6, 1, 9, 0, tzinfo=TZ))
    for user_id, code in ((1001, "YB"), (1002, "KP"), (1003, "NL"), (1004, "KM"), (1005, "DX")):
        await bot.register(user_id, code, Role.SECRETARY, f"Bí thư {code}")
    await bot.register(1006, "YB", Role.SECRETARY, "Ánh")  # a second secretary of Yên Bình, and of Đông Xá
    await bot.register(1006, "DX", Role.SECRETARY, "Ánh")
    await bot.register(2001, "BT", Role.COMMITTEE)
    bot.clock.set(datetime(2026, 7, 8, 9, 0, tzinfo=TZ))
    for user_id in (1001, 1005):
        await bot.say(user_id, "/away 10")
    mark = bot.api.mark()
    await run_weekly(bot.application, "digest", date(2026, 7, 8))
    [digest] = sent_to(bot, 2001, mark)
    silent = digest.split("im lặng", 1)[1].split("\n\n", 1)[0]
    assert in_order(silent, VIETNAMESE_ORDER), silent
    away = digest.split("đi vắng", 1)[1]
    assert in_order(away, ["Đông Xá", "Yên Bình"]), away
    reply = (await bot.say(1006, "/checkin"))[0]["text"]
    assert "Chi bộ thôn Đông Xá, Chi bộ thôn Yên Bình không có kết nạp mới" in reply
    labels = [b["text"] for row in bot.api.last_message(1006)["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["↩️ Hoàn tác: Chi bộ thôn Đông Xá", "↩️ Hoàn tác: Chi bộ thôn Yên Bình"]
