"""The edges of the pure calendar arithmetic and of the rules built on it (models/calendar.py and friends).

Each boundary is tested on both sides, so that `<=` for `<`, or 48 h for 47 h, fails a test.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from models.calendar import Calendar, Schedule, catch_up_candidate, next_run, week_bounds, week_start, weeks_between
from models.periods import Period
from models.progress import Progress

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
QUIET = (time(21, 0), time(6, 30))


def test_quiet_hours_start_at_their_first_minute_and_end_at_their_last() -> None:
    calendar = Calendar(TZ, QUIET)
    assert calendar.is_quiet(time(21, 0)) is True  # the boundary minute itself is quiet
    assert calendar.is_quiet(time(20, 59, 59)) is False
    assert calendar.is_quiet(time(6, 29, 59)) is True
    assert calendar.is_quiet(time(6, 30)) is False  # quiet hours end at 06:30 exactly
    daytime = Calendar(TZ, (time(12, 0), time(13, 0)))  # a range that does not wrap past midnight
    assert (daytime.is_quiet(time(12, 0)), daytime.is_quiet(time(13, 0)), daytime.is_quiet(time(11, 59))) == (
        True, False, False)
    assert Calendar(TZ, (time(8, 0), time(8, 0))).is_quiet(time(8, 0)) is False  # an empty range


def test_a_run_due_in_quiet_hours_or_on_a_holiday_moves_to_the_first_allowed_moment() -> None:
    calendar = Calendar(TZ, QUIET, ((date(2026, 9, 2), date(2026, 9, 2)),))
    at_nine = datetime(2026, 7, 3, 21, 0, tzinfo=TZ)
    assert calendar.next_allowed(at_nine) == datetime(2026, 7, 4, 6, 30, tzinfo=TZ)
    just_before = datetime(2026, 7, 3, 20, 59, tzinfo=TZ)
    assert calendar.next_allowed(just_before) == just_before
    holiday = datetime(2026, 9, 2, 10, 0, tzinfo=TZ)
    assert calendar.next_allowed(holiday) == datetime(2026, 9, 3, 6, 30, tzinfo=TZ)  # midnight is quiet too
    assert calendar.next_allowed(datetime(2026, 9, 1, 23, 0, tzinfo=TZ)) == datetime(2026, 9, 3, 6, 30, tzinfo=TZ)


def test_the_week_turns_at_monday_midnight_in_vietnam_not_in_utc() -> None:
    assert week_start(date(2026, 7, 5)) == date(2026, 6, 29)  # Sunday belongs to the week before
    assert week_start(date(2026, 7, 6)) == date(2026, 7, 6)
    low, high = week_bounds(date(2026, 7, 6), TZ)
    assert low == datetime(2026, 7, 5, 17, 0, tzinfo=timezone.utc)  # Monday 00:00 in UTC+7
    assert high - low == timedelta(days=7)
    sunday_evening_utc = datetime(2026, 7, 5, 17, 30, tzinfo=timezone.utc)  # already Monday 00:30 in Hà Nội
    assert week_start(sunday_evening_utc.astimezone(TZ).date()) == date(2026, 7, 6)


def test_next_run_is_strictly_after_and_the_catch_up_window_ends_exactly() -> None:
    friday = Schedule("reminder", "fri", time(16, 0))
    calendar = Calendar(TZ, QUIET)
    due = datetime(2026, 7, 3, 16, 0, tzinfo=TZ)
    assert next_run(friday, calendar, due - timedelta(seconds=1)) == (date(2026, 7, 3), due)
    assert next_run(friday, calendar, due) == (date(2026, 7, 10), due + timedelta(days=7))  # strictly after
    assert catch_up_candidate(friday, calendar, due + timedelta(hours=12), 12) == date(2026, 7, 3)
    assert catch_up_candidate(friday, calendar, due + timedelta(hours=12, seconds=1), 12) is None
    assert catch_up_candidate(friday, calendar, due, 0) is None  # no catch-up configured


def test_weeks_between_counts_whole_weeks_in_between() -> None:
    assert weeks_between(date(2026, 6, 15), date(2026, 7, 6)) == 2  # weeks of 22 and 29 June
    assert weeks_between(date(2026, 6, 21), date(2026, 7, 6)) == 2  # any day of the week counts as its week
    assert weeks_between(date(2026, 6, 22), date(2026, 7, 6)) == 1
    assert weeks_between(date(2026, 6, 29), date(2026, 7, 6)) == 0


def test_behind_schedule_only_below_the_expected_count() -> None:
    year = Period.year(2026)
    day = date(2026, 7, 2)  # 183 of 365 days: 90 × 183 / 365 = 45.1 → 45 expected
    assert year.expected(90, day) == 45
    on_track = Progress(unit=None, period=year, admitted=45, target=90, as_of=day)  # type: ignore[arg-type]
    behind = Progress(unit=None, period=year, admitted=44, target=90, as_of=day)  # type: ignore[arg-type]
    assert (on_track.gap, on_track.behind) == (0, False)
    assert (behind.gap, behind.behind) == (-1, True)


@pytest.mark.parametrize("hours, outcome", [(48, "withdrawn"), (48.0003, "too_late")])
async def test_undo_window_is_exactly_48_hours(sessions, hours: float, outcome: str) -> None:
    from models.admissions import AdmissionDraft, new_admission, withdraw_report
    from models.entities import AdmissionSource, Assignment, Person, Role, Sex, UnitKind
    from models.units import UnitRow, load_units, unit_by_code

    reported = datetime(2026, 7, 1, 9, 0, tzinfo=TZ)
    async with sessions.begin() as session:
        await load_units(session, [UnitRow(1, "NL", "Chi bộ thôn Nà Lạn", None, UnitKind.CELL)])
        cell = await unit_by_code(session, "NL")
        person = Person(telegram_id=1, display_name="Hoa", language="vi", registered_at=reported)
        session.add(person)
        await session.flush()
        session.add(Assignment(person_id=person.id, unit_id=cell.id, role=Role.SECRETARY))
        draft = AdmissionDraft(cell.id, "Lò Thị Hoa", 1998, Sex.FEMALE, date(2026, 7, 1))
        admission = new_admission(cell, draft, AdmissionSource.CHAT, reported, reported_by_id=person.id)
        session.add(admission)
        await session.flush()
        await session.refresh(person, ["assignments"])
        result, _ = await withdraw_report(session, person, admission.id, reported + timedelta(hours=hours),
                                          timedelta(hours=48))
    assert result.value == outcome
