"""Periods of targets: a calendar year (annual plan) or a five-year term from the congress.

Pure date arithmetic — no I/O: which days a period has, how far into it a day is, the pro-rata
share of a target expected by then, and the months a chart or a forecast counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from models.calendar import TermStart

_YEARS_RE = re.compile(r"^(\d{4})(?:-(\d{4}))?$")
_DATES_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class Period:
    """A calendar year (an annual plan) or a term: named by its years, measured by its days.

    A term "2025-2030" runs from the congress (the configured TermStart, 1 July by default) for five
    years: 1/7/2025–30/6/2030. A stored term target may give other exact dates; they win.
    """

    start_year: int
    end_year: int
    first_day: date
    last_day: date

    @classmethod
    def parse(cls, text: str, term_start: TermStart) -> Period:
        """Parse `2026`, `2025-2030` (from `term_start`) or exact dates `2025-07-01..2030-06-30`."""
        text = (text or "").strip()
        dates = _DATES_RE.match(text)
        if dates:
            try:
                first, last = date.fromisoformat(dates.group(1)), date.fromisoformat(dates.group(2))
            except ValueError:
                raise ValueError("not_period") from None
            return cls.between(first, last)
        match = _YEARS_RE.match(text)
        if not match:
            raise ValueError("not_period")
        start = int(match.group(1))
        end = int(match.group(2) or start)
        _check_years(start, end)
        return cls.year(start) if end == start else cls.term(start, end, term_start)

    @classmethod
    def year(cls, year: int) -> Period:
        """Return the calendar year `year`."""
        return cls(year, year, date(year, 1, 1), date(year, 12, 31))

    @classmethod
    def term(cls, start_year: int, end_year: int, term_start: TermStart) -> Period:
        """Return the term from `term_start` of `start_year` to the day before it in `end_year`."""
        return cls(start_year, end_year, term_start.in_year(start_year),
                   term_start.in_year(end_year) - timedelta(days=1))

    @classmethod
    def between(cls, first: date, last: date) -> Period:
        """Return the period of these exact days: a term, or a whole calendar year (annual plans stay calendar years)."""
        if last < first:
            raise ValueError("not_period")
        _check_years(first.year, last.year)
        if first.year == last.year:
            if (first, last) != (date(first.year, 1, 1), date(first.year, 12, 31)):
                raise ValueError("not_period")
            return cls.year(first.year)
        return cls(first.year, last.year, first, last)

    @property
    def is_term(self) -> bool:
        """Tell whether this spans several years."""
        return self.end_year > self.start_year

    @property
    def days(self) -> int:
        """Return the number of days in the period."""
        return (self.last_day - self.first_day).days + 1

    def elapsed_days(self, today: date) -> int:
        """Return the days of the period up to and including `today` (0 before, all after)."""
        if today < self.first_day:
            return 0
        if today > self.last_day:
            return self.days
        return (today - self.first_day).days + 1

    def expected(self, target: int | None, today: date) -> int | None:
        """Return the pro-rata share of `target` the calendar expects by `today` (rounded half-up)."""
        if target is None:
            return None
        share = Decimal(target) * self.elapsed_days(today) / self.days
        return int(share.quantize(Decimal("1"), rounding=ROUND_HALF_UP))

    @property
    def months(self) -> int:
        """Return the calendar months the period touches (12 for a year, 60 for a term from 1 July)."""
        return _month_index(self.last_day, self.first_day) + 1

    def month_of(self, day: date) -> int:
        """Return the position (0-based) of `day`'s month among the period's months."""
        return _month_index(day, self.first_day)

    def months_left(self, today: date) -> int:
        """Return the calendar months still open on `today`, the current one included (0 after the end)."""
        if today > self.last_day:
            return 0
        if today < self.first_day:
            return self.months
        return _month_index(self.last_day, today) + 1

    def month_ends(self) -> list[date]:
        """Return the last day of every month of the period, in order (the last one the period's last day)."""
        ends = []
        year, month = self.first_day.year, self.first_day.month
        for _ in range(self.months):
            following = date(year + (month == 12), month % 12 + 1, 1)
            ends.append(min(following - timedelta(days=1), self.last_day))
            year, month = following.year, following.month
        return ends

    def label(self) -> str:
        """Return `2026` or `2025-2030`."""
        return str(self.start_year) if not self.is_term else f"{self.start_year}-{self.end_year}"

    def __str__(self) -> str:
        return self.label()


def _check_years(start: int, end: int) -> None:
    if end < start or not 1930 <= start <= 2200 or end - start > 10:
        raise ValueError("not_period")


def _month_index(day: date, origin: date) -> int:
    """Return how many calendar months `day`'s month lies after `origin`'s."""
    return (day.year - origin.year) * 12 + day.month - origin.month
