"""Working days and the legal deadlines of the admission process (pure: no I/O, no clock).

A working day is a weekday that is neither one of Vietnam's public holidays (the `holidays`
package's Vietnam calendar: New Year, the lunar Tết days, Hùng Kings, 30/4, 1/5, National Day,
with its observed and substituted days off) nor a day of the configured `[reminders] holidays`.

"Within N working days of X" means by the N-th working day after X (X itself not counted).
The deadlines (configurable in `[pipeline]`, core/config.py):
- cell resolution (chi_bo) → decision: 60 working days;
- decision → ceremony: 30 working days;
- probation: 12 months from the ceremony (to the same day of the month, or the month's last day);
- end of probation → the cell's recognition vote: 30 working days.
"""

from __future__ import annotations

import functools
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta

import holidays as holiday_calendars


@functools.lru_cache(maxsize=1)
def _vietnam() -> holiday_calendars.HolidayBase:
    # Years are filled in on first look-up (the package expands on demand); built once per process.
    return holiday_calendars.country_holidays("VN")


@dataclass(frozen=True)
class WorkCalendar:
    """Vietnam's working days, less the configured extra holidays (inclusive date ranges)."""

    extra_holidays: tuple[tuple[date, date], ...] = ()

    def is_public_holiday(self, day: date) -> bool:
        """Tell whether `day` is a public holiday or a configured one."""
        return day in _vietnam() or any(first <= day <= last for first, last in self.extra_holidays)

    def is_working_day(self, day: date) -> bool:
        """Tell whether `day` is a weekday and no holiday."""
        return day.weekday() < 5 and not self.is_public_holiday(day)

    def add_working_days(self, start: date, count: int) -> date:
        """Return the `count`-th working day after `start` (`start` itself not counted; 0: `start`)."""
        if count < 0:
            raise ValueError("count must not be negative")
        day = start
        while count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count -= 1
        return day

    def working_days_between(self, first: date, last: date) -> int:
        """Return how many working days lie after `first` up to and including `last` (0 if last ≤ first)."""
        n, day = 0, first
        while day < last:
            day += timedelta(days=1)
            n += self.is_working_day(day)
        return n


def add_months(day: date, months: int) -> date:
    """Return the same day `months` later, or the last day of that month when it is shorter."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    month += 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


@dataclass(frozen=True)
class DeadlineRules:
    """The time limits of the process, in working days (months for probation)."""

    decision_working_days: int = 60
    ceremony_working_days: int = 30
    probation_months: int = 12
    recognition_working_days: int = 30


def decision_due(calendar: WorkCalendar, rules: DeadlineRules, cell_resolution_on: date) -> date:
    """Return the last day for the admission decision after the cell's resolution."""
    return calendar.add_working_days(cell_resolution_on, rules.decision_working_days)


def ceremony_due(calendar: WorkCalendar, rules: DeadlineRules, admitted_on: date) -> date:
    """Return the last day for the admission ceremony after the decision."""
    return calendar.add_working_days(admitted_on, rules.ceremony_working_days)


def probation_ends(rules: DeadlineRules, ceremony_on: date) -> date:
    """Return the day probation ends, counted from the ceremony."""
    return add_months(ceremony_on, rules.probation_months)


def recognition_due(calendar: WorkCalendar, rules: DeadlineRules, ceremony_on: date) -> date:
    """Return the last day for the recognition vote after probation ends."""
    return calendar.add_working_days(probation_ends(rules, ceremony_on), rules.recognition_working_days)
