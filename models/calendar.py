"""Calendar arithmetic with no I/O: reporting weeks, quiet hours, holidays and weekly due times.

A reporting week runs Monday–Sunday in the bot's timezone. A weekly run (reminder, digest) has a
nominal time in each week; when that falls in quiet hours or on a holiday, the run is due at the
first allowed moment after it. Everything here is a pure function of its arguments, so the edges
(the boundary minute of quiet hours, a holiday range, the week boundary at Monday 00:00 local
time, the catch-up window) are unit-tested directly (tests/test_calendar.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def week_start(day: date) -> date:
    """Return the Monday of the week of `day`."""
    return day - timedelta(days=day.weekday())


def week_bounds(start: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Return [Monday 00:00, next Monday 00:00) of the week starting `start`, as aware datetimes in `tz`."""
    first = datetime.combine(start, time(0), tzinfo=tz)
    return first, datetime.combine(start + timedelta(days=7), time(0), tzinfo=tz)


def weeks_between(earlier: date, later: date) -> int:
    """Return how many whole reporting weeks lie strictly between the weeks of `earlier` and `later`."""
    return (week_start(later) - week_start(earlier)).days // 7 - 1


@dataclass(frozen=True)
class Schedule:
    """When a kind of run is due each week (local time)."""

    kind: str
    weekday: str
    at: time

    def nominal(self, week: date, tz: tzinfo) -> datetime:
        """Return the nominal due time in the week starting `week`."""
        return datetime.combine(week + timedelta(days=WEEKDAYS.index(self.weekday)), self.at, tzinfo=tz)


@dataclass(frozen=True)
class Calendar:
    """Where runs may not happen: quiet hours and holidays, in a timezone."""

    tz: tzinfo
    quiet_hours: tuple[time, time] | None = None
    holidays: tuple[tuple[date, date], ...] = ()

    def is_holiday(self, day: date) -> bool:
        """Tell whether `day` is a configured holiday."""
        return any(first <= day <= last for first, last in self.holidays)

    def is_quiet(self, moment: time) -> bool:
        """Tell whether a local time of day lies in quiet hours [start, end) (which may wrap past midnight)."""
        if self.quiet_hours is None:
            return False
        start, end = self.quiet_hours
        if start == end:
            return False
        if start < end:
            return start <= moment < end
        return moment >= start or moment < end

    def next_allowed(self, moment: datetime) -> datetime:
        """Return `moment`, or the first later moment outside quiet hours and holidays."""
        local = moment.astimezone(self.tz)
        for _ in range(3 * 366):
            if self.is_holiday(local.date()):
                local = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=self.tz)
                continue
            if self.is_quiet(local.time()):
                assert self.quiet_hours is not None
                end = self.quiet_hours[1]
                day = local.date() if local.time() < end else local.date() + timedelta(days=1)
                local = datetime.combine(day, end, tzinfo=self.tz)
                continue
            return local
        raise ValueError("no allowed time within three years: check reminders.holidays")


def next_run(schedule: Schedule, calendar: Calendar, after: datetime) -> tuple[date, datetime]:
    """Return (nominal day, allowed due time) of the first run due strictly after `after`."""
    week = week_start(after.astimezone(calendar.tz).date()) - timedelta(days=7)
    for _ in range(200):
        nominal = schedule.nominal(week, calendar.tz)
        due = calendar.next_allowed(nominal)
        if due > after:
            return nominal.date(), due
        week += timedelta(days=7)
    raise ValueError("no run within 200 weeks")


def latest_due(schedule: Schedule, calendar: Calendar, now: datetime) -> tuple[date, datetime] | None:
    """Return (nominal day, allowed due time) of the most recent run due at or before `now`."""
    week = week_start(now.astimezone(calendar.tz).date())
    for _ in range(60):
        nominal = schedule.nominal(week, calendar.tz)
        due = calendar.next_allowed(nominal)
        if due <= now:
            return nominal.date(), due
        week -= timedelta(days=7)
    return None


def catch_up_candidate(schedule: Schedule, calendar: Calendar, now: datetime, hours: int) -> date | None:
    """Return the nominal day of a run that was due within the last `hours` (the caller checks it ran)."""
    if hours <= 0:
        return None
    found = latest_due(schedule, calendar, now)
    if found is None:
        return None
    day, due = found
    return day if now - due <= timedelta(hours=hours) else None


@dataclass(frozen=True)
class TermStart:
    """The day of the year a term (nhiệm kỳ) begins: the congress, 1 July by default (core/config.py).

    A term "2025-2030" runs from this day of 2025 to the day before it in 2030 — five years. Never
    29 February, which most years do not have.
    """

    month: int
    day: int

    def __post_init__(self) -> None:
        if (self.month, self.day) == (2, 29):
            raise ValueError("not_term_start")
        date(2001, self.month, self.day)  # ValueError for a day that does not exist

    @classmethod
    def parse(cls, text: str) -> TermStart:
        """Parse `MM-DD`, e.g. `07-01`."""
        parts = str(text).strip().split("-")
        if len(parts) != 2 or not all(part.isdigit() and len(part) == 2 for part in parts):
            raise ValueError("not_term_start")
        return cls(int(parts[0]), int(parts[1]))

    def in_year(self, year: int) -> date:
        """Return this day in `year`."""
        return date(year, self.month, self.day)

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"
