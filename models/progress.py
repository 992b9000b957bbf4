"""Progress against the annual plan and the term target, rolled up through the unit tree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import Admission, Target, Unit
from models.units import children_of, in_subtree

_PERIOD_RE = re.compile(r"^(\d{4})(?:-(\d{4}))?$")


@dataclass(frozen=True)
class Period:
    """A calendar year or an inclusive span of years (a term)."""

    start_year: int
    end_year: int

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse `2026` or `2025-2030`."""
        match = _PERIOD_RE.match((text or "").strip())
        if not match:
            raise ValueError("not_period")
        start = int(match.group(1))
        end = int(match.group(2) or start)
        if end < start or not 1930 <= start <= 2200 or end - start > 10:
            raise ValueError("not_period")
        return cls(start, end)

    @classmethod
    def year(cls, year: int) -> Period:
        """Return the calendar year `year`."""
        return cls(year, year)

    @property
    def is_term(self) -> bool:
        """Tell whether this spans several years."""
        return self.end_year > self.start_year

    @property
    def first_day(self) -> date:
        """Return 1 January of the first year."""
        return date(self.start_year, 1, 1)

    @property
    def last_day(self) -> date:
        """Return 31 December of the last year."""
        return date(self.end_year, 12, 31)

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

    def label(self) -> str:
        """Return `2026` or `2025-2030`."""
        return str(self.start_year) if not self.is_term else f"{self.start_year}-{self.end_year}"

    def __str__(self) -> str:
        return self.label()


def percent(part: int, whole: int | None) -> Decimal | None:
    """Return part/whole as a percentage rounded half-up to one decimal; None without a target."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Progress:
    """Where one unit stands for one period."""

    unit: Unit
    period: Period
    admitted: int
    target: int | None
    expected: int | None  # what the calendar expects by today, pro rata by days

    @property
    def percent(self) -> Decimal | None:
        """Return admitted/target in percent, or None when there is no (or a zero) target."""
        return percent(self.admitted, self.target)

    @property
    def gap(self) -> int | None:
        """Return how many ahead (+) or behind (−) the calendar the unit is."""
        return None if self.expected is None else self.admitted - self.expected

    @property
    def behind(self) -> bool:
        """Tell whether the unit is behind schedule (chậm tiến độ)."""
        return self.gap is not None and self.gap < 0

    @property
    def remaining(self) -> int | None:
        """Return how many are still needed to reach the target (0 when reached)."""
        return None if self.target is None else max(self.target - self.admitted, 0)


def expected_by(target: int | None, period: Period, today: date) -> int | None:
    """Return the pro-rata share of `target` the calendar expects by `today` (rounded half-up)."""
    if target is None:
        return None
    share = Decimal(target) * period.elapsed_days(today) / period.days
    return int(share.quantize(Decimal("1"), rounding=ROUND_HALF_UP))


async def count_admitted(session: AsyncSession, unit: Unit, period: Period) -> int:
    """Return the counted (not withdrawn) admissions of the subtree decided within `period`."""
    value = await session.scalar(
        select(func.count())
        .select_from(Admission)
        .where(
            in_subtree(Admission.unit_path, unit.path),
            Admission.admitted_on >= period.first_day,
            Admission.admitted_on <= period.last_day,
            Admission.withdrawn_at.is_(None),
        )
    )
    return int(value or 0)


async def target_of(session: AsyncSession, unit: Unit, period: Period) -> int | None:
    """Return the unit's target for exactly this period, or None when none is set."""
    return await session.scalar(
        select(Target.value).where(
            Target.unit_id == unit.id, Target.start_year == period.start_year, Target.end_year == period.end_year
        )
    )


async def current_term(session: AsyncSession, unit: Unit, today: date) -> Period | None:
    """Return the term (multi-year target) of `unit` or its nearest ancestor that covers `today`."""
    ids = [int(part) for part in unit.path.strip("/").split("/")]
    rows = (
        await session.execute(
            select(Target.unit_id, Target.start_year, Target.end_year).where(
                Target.unit_id.in_(ids),
                Target.end_year > Target.start_year,
                Target.start_year <= today.year,
                Target.end_year >= today.year,
            )
        )
    ).all()
    if not rows:
        return None
    depth = {unit_id: i for i, unit_id in enumerate(ids)}
    nearest = max(rows, key=lambda r: (depth[r.unit_id], r.start_year))
    return Period(nearest.start_year, nearest.end_year)


async def progress_of(session: AsyncSession, unit: Unit, period: Period, today: date) -> Progress:
    """Return where `unit` stands for `period` as of `today`."""
    admitted = await count_admitted(session, unit, period)
    target = await target_of(session, unit, period)
    return Progress(unit=unit, period=period, admitted=admitted, target=target, expected=expected_by(target, period, today))


def schedule_order(progress: Progress) -> tuple[int, Decimal, str]:
    """Sort key: behind-schedule units first (most behind in share of target first), then by name."""
    if progress.behind and progress.target:
        return 0, Decimal(progress.gap or 0) / progress.target, progress.unit.name
    if progress.target is None:
        return 2, Decimal(0), progress.unit.name
    return 1, -(progress.percent or Decimal(0)), progress.unit.name


async def children_progress(session: AsyncSession, unit: Unit, period: Period, today: date) -> list[Progress]:
    """Return each child unit's progress, behind-schedule first."""
    lines = [await progress_of(session, child, period, today) for child in await children_of(session, unit)]
    return sorted(lines, key=schedule_order)
