"""Deadline reminders after the decision (ceremony, probation, recognition), end to end.

Dates around Tết Đinh Mùi (4–10/2/2027, from the holidays package): a decision on Friday
8/1/2027 has its ceremony due on 26/2/2027 (30 working days; 19/2 without Tết), so the
"due within 5 working days" reminder belongs to Friday 19/2, not Thursday 18/2.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime

from sqlalchemy import select

from models.admissions import AdmissionDraft, imported_admission
from models.deadlines import Deadline, Warnings, deadline_of
from models.entities import DeadlineNotice, Role, Sex
from models.units import unit_by_code
from models.workdays import DeadlineRules, WorkCalendar, recognition_due
from tests.harness import TZ, run_weekly
from tests.test_reminders import completed, sent_to

CAL, RULES, WARN = WorkCalendar(), DeadlineRules(), Warnings()
DECIDED = date(2027, 1, 8)


def test_which_deadline_applies_on_which_day() -> None:
    def on(day: date, ceremony: date | None = None):  # type: ignore[no-untyped-def]
        return deadline_of(CAL, RULES, WARN, day, DECIDED, ceremony)

    assert on(date(2027, 2, 18)) is None  # 6 working days before the due day
    assert on(date(2027, 2, 19)) == (Deadline.CEREMONY_SOON, date(2027, 2, 26))  # 5
    assert on(date(2027, 2, 26)) == (Deadline.CEREMONY_SOON, date(2027, 2, 26))  # the due day itself
    assert on(date(2027, 2, 27)) == (Deadline.CEREMONY_OVERDUE, date(2027, 2, 26))
    # probation: 12 months from the ceremony of 10/3/2026; warned 30 days before, not 31
    assert on(date(2027, 2, 7), date(2026, 3, 10)) is None
    assert on(date(2027, 2, 8), date(2026, 3, 10)) == (Deadline.PROBATION_ENDS, date(2027, 3, 10))
    vote = recognition_due(CAL, RULES, date(2026, 3, 10))
    assert on(vote, date(2026, 3, 10)) == (Deadline.PROBATION_ENDS, date(2027, 3, 10))
    assert on(date.fromordinal(vote.toordinal() + 1), date(2026, 3, 10)) == (Deadline.RECOGNITION_OVERDUE, vote)


async def _admit(bot, code: str, name: str, decided: date, ceremony: date | None = None) -> None:  # type: ignore[no-untyped-def]
    async with bot.sessions.begin() as session:
        unit = await unit_by_code(session, code)
        admission = imported_admission(unit, AdmissionDraft(unit.id, name, 1995, Sex.MALE, decided),
                                       datetime(2027, 1, 9, tzinfo=TZ))
        admission.ceremony_on = ceremony
        session.add(admission)


async def test_ceremony_reminders_fire_on_the_right_working_day_after_tet_and_only_once(harness) -> None:
    bot = harness
    bot.clock.set(datetime(2027, 2, 18, 9, 0, tzinfo=TZ))
    await bot.register(1001, "NL", Role.SECRETARY, "Hoa")  # gets a weekly reminder: deadlines go in it
    await bot.register(1002, "KP", Role.SECRETARY, "Nam")  # checks in: deadlines go alone
    await bot.register(1003, "PC", Role.SECRETARY, "Lan")  # nothing due
    await _admit(bot, "NL", "Lò Văn Tâm", DECIDED)
    await _admit(bot, "KP", "Hà Thị Mai", DECIDED)
    await bot.say(1002, "/checkin")
    mark = bot.api.mark()
    summary = await run_weekly(bot.application, "deadlines", date(2027, 2, 18))  # Thursday: too early
    assert summary.recipients == 0 and summary.nobody_reason == "no_deadlines"
    assert sent_to(bot, 1001, mark) == sent_to(bot, 1002, mark) == []

    bot.clock.set(datetime(2027, 2, 19, 16, 0, tzinfo=TZ))  # Friday: within 5 working days of 26/2
    assert (await run_weekly(bot.application, "reminder", date(2027, 2, 19))).sent == 2  # Hoa and Lan
    [reminder] = sent_to(bot, 1001, mark)
    assert "Nhắc việc tuần" in reminder
    assert "Lễ kết nạp đồng chí Lò Văn Tâm: hạn 26/02/2027, còn 5 ngày làm việc." in reminder
    assert not [t for t in sent_to(bot, 1003, mark) if "Thời hạn" in t]
    deadlines = await run_weekly(bot.application, "deadlines", date(2027, 2, 19))
    assert (deadlines.recipients, deadlines.sent) == (1, 1)  # only Nam: Hoa had hers in the reminder
    alone = [t for t in sent_to(bot, 1002, mark) if "Thời hạn" in t]
    assert len(alone) == 1 and "Lễ kết nạp đồng chí Hà Thị Mai: hạn 26/02/2027" in alone[0]
    assert "Nhắc việc tuần" not in alone[0]

    # once per deadline: a restart and the next runs of the same deadline send nothing more
    await bot.stop()
    await bot.start()
    mark = bot.api.mark()
    assert (await run_weekly(bot.application, "deadlines", date(2027, 2, 26))).recipients == 0
    # the day after the due day is another deadline (overdue): said once more, then never again
    first = await run_weekly(bot.application, "deadlines", date(2027, 3, 1))
    assert first.sent == 2
    assert "quá hạn</b> từ 26/02/2027" in sent_to(bot, 1001, mark)[-1]
    assert (await run_weekly(bot.application, "deadlines", date(2027, 3, 8))).recipients == 0
    async with bot.sessions() as session:
        kinds = sorted(n.deadline for n in await session.scalars(select(DeadlineNotice)))
    assert kinds == ["ceremony_overdue", "ceremony_overdue", "ceremony_soon", "ceremony_soon"]


async def test_a_deadline_due_after_this_weeks_message_waits_for_the_next_one(harness) -> None:
    """A second run in a week skips whoever had their message: a deadline due meanwhile is not
    recorded as delivered, and goes out with the next week's message."""
    bot = harness
    bot.clock.set(datetime(2027, 2, 16, 9, 0, tzinfo=TZ))
    await bot.register(1002, "KP", Role.SECRETARY, "Nam")
    await bot.say(1002, "/checkin")
    await _admit(bot, "KP", "Đã Quá Hạn", date(2026, 11, 2))  # its ceremony long overdue
    mark = bot.api.mark()
    assert (await run_weekly(bot.application, "deadlines", date(2027, 2, 16))).sent == 1
    await _admit(bot, "KP", "Hà Thị Mai", DECIDED)  # ceremony due 26/2: within 5 working days from 19/2
    bot.clock.set(datetime(2027, 2, 19, 16, 0, tzinfo=TZ))
    assert (await run_weekly(bot.application, "deadlines", date(2027, 2, 19))).sent == 0  # had this week's
    async with bot.sessions() as session:
        assert [n.deadline for n in await session.scalars(select(DeadlineNotice))] == ["ceremony_overdue"]
    bot.clock.set(datetime(2027, 2, 22, 9, 0, tzinfo=TZ))
    await bot.say(1002, "/checkin")
    assert (await run_weekly(bot.application, "deadlines", date(2027, 2, 22))).sent == 1
    assert "Lễ kết nạp đồng chí Hà Thị Mai: hạn 26/02/2027" in sent_to(bot, 1002, mark)[-1]


async def test_probation_and_recognition_reminders_and_what_stops_them(harness) -> None:
    bot = harness
    bot.clock.set(datetime(2027, 2, 8, 9, 0, tzinfo=TZ))
    await bot.register(1001, "NL", Role.SECRETARY)
    await _admit(bot, "NL", "Lò Văn Tâm", date(2026, 2, 2), ceremony=date(2026, 3, 10))
    await _admit(bot, "NL", "Cũ Lịch Sử", date(2024, 1, 5))  # history older than two years: never reminded
    await bot.say(1001, "/checkin")
    mark = bot.api.mark()
    assert (await run_weekly(bot.application, "deadlines", date(2027, 2, 7))).recipients == 0  # 31 days before
    assert (await run_weekly(bot.application, "deadlines", date(2027, 2, 8))).sent == 1
    [text] = sent_to(bot, 1001, mark)
    assert "Đồng chí Lò Văn Tâm hết thời gian dự bị ngày 10/03/2027" in text and "Cũ Lịch Sử" not in text
    vote = recognition_due(CAL, RULES, date(2026, 3, 10))
    after = date.fromordinal(vote.toordinal() + 7)
    assert (await run_weekly(bot.application, "deadlines", after)).sent == 1
    assert "<b>quá hạn</b> từ " + vote.strftime("%d/%m/%Y") in sent_to(bot, 1001, mark)[-1]
    # a recognised member is reminded of nothing
    await _admit(bot, "NL", "Đã Công Nhận", date(2026, 2, 2), ceremony=date(2026, 3, 10))
    async with bot.sessions.begin() as session:
        from models.entities import Admission

        [row] = [a for a in await session.scalars(select(Admission)) if a.full_name == "Đã Công Nhận"]
        row.recognized_on = date(2027, 3, 20)
    assert (await run_weekly(bot.application, "deadlines", date.fromordinal(after.toordinal() + 7))).recipients == 0


async def test_the_scheduled_reminder_run_sends_the_deadlines_alone_after_it(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await _admit(bot, "NL", "Lò Văn Tâm", date(2026, 5, 20))  # ceremony due 2/7/2026: within 5 working days
    await bot.say(1001, "/checkin")  # reported this week: no weekly reminder for Hoa
    await bot.stop()
    bot.clock.set(datetime(2026, 7, 3, 18, 0, tzinfo=TZ))  # two hours after Friday 16:00: caught up on start
    mark = bot.api.mark()
    await bot.start()
    await completed(bot, "deadlines", date(2026, 6, 29))
    for _ in range(200):
        if sent_to(bot, 1001, mark):
            break
        await asyncio.sleep(0.01)
    [text] = sent_to(bot, 1001, mark)
    assert "Lễ kết nạp đồng chí Lò Văn Tâm" in text and "Nhắc việc tuần" not in text


def test_remind_now_kind_deadlines_as_of_a_day(database_url: str, api_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from models.db import create_sync_engine_for
    from models.entities import Admission, Unit
    from tests.test_reminders_cli import TOKEN, UNITS, add_person, run

    (tmp_path / "config.toml").write_text(
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{api_server.base_url}"\n'
        f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    (tmp_path / "units.csv").write_text(UNITS, encoding="utf-8")
    assert run(tmp_path, "init").returncode == 0
    assert run(tmp_path, "import-units", "units.csv").returncode == 0
    api_server.state.add_user(1001)
    add_person(database_url, 1001, "C1", Role.SECRETARY)
    engine = create_sync_engine_for(database_url)
    with engine.begin() as conn:
        unit_id, path = conn.execute(select(Unit.id, Unit.path).where(Unit.code == "C1")).one()
        conn.execute(insert(Admission).values(
            unit_id=unit_id, unit_path=path, full_name="Lò Văn Tâm", name_key="lo van tam", birth_year=1995,
            sex="male", minority=False, admitted_on=DECIDED, source="import",
            reported_at=datetime(2027, 1, 9, tzinfo=TZ)))
    engine.dispose()
    early = run(tmp_path, "remind-now", "--kind", "deadlines", "--as-of", "2027-02-18")
    assert early.returncode == 0, early.stderr
    assert "không có thời hạn nào cần nhắc" in early.stdout
    due = run(tmp_path, "remind-now", "--kind", "deadlines", "--as-of", "2027-02-19")
    assert due.returncode == 0 and "Nhắc thời hạn" in due.stdout and "đã gửi 1" in due.stdout, due.stdout
    texts = [c.params["text"] for c in api_server.state.calls_to("sendMessage", 1001, 0) if c.ok]
    assert len(texts) == 1 and "Lò Văn Tâm: hạn 26/02/2027" in texts[0]
