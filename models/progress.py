"""Progress against the annual plan and the term target, rolled up through the unit tree."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Row, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from models.entities import Admission, Sex, Target, Unit
from models.periods import Period
from models.sql import leading_id, unindexed
from models.units import in_subtree, subtree_range


def percent(part: int, whole: int | None) -> Decimal | None:
    """Return part/whole as a percentage rounded half-up to one decimal; None without a target."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Breakdown:
    """Counted admissions of a period broken down as the reports do (each a subset of the total)."""

    women: int = 0
    minority: int = 0
    youth_union: int = 0
    under_30: int = 0  # younger than 30 in the year of admission

    def __add__(self, other: Breakdown) -> Breakdown:
        return Breakdown(self.women + other.women, self.minority + other.minority,
                         self.youth_union + other.youth_union, self.under_30 + other.under_30)


@dataclass(frozen=True)
class Progress:
    """Where one unit stands for one period."""

    unit: Unit
    period: Period
    admitted: int
    target: int | None
    as_of: date  # the day the figures are for
    breakdown: Breakdown = field(default_factory=Breakdown)

    @property
    def expected(self) -> int | None:
        """Return what the calendar expects by `as_of`, pro rata by days (None without a target)."""
        return self.period.expected(self.target, self.as_of)

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

    @property
    def months_left(self) -> int:
        """Return the calendar months still open (the current one included)."""
        return self.period.months_left(self.as_of)

    @property
    def needed_per_month(self) -> int | None:
        """Return how many a month are needed to reach the target in the months left (rounded up).

        None without a target or once the period is over; 0 when the target is reached.
        """
        if self.remaining is None or not self.months_left:
            return None
        return math.ceil(self.remaining / self.months_left)

    @property
    def forecast(self) -> int | None:
        """Return the period-end total at the pace so far (pro rata by days), or None before it starts."""
        elapsed = self.period.elapsed_days(self.as_of)
        if elapsed == 0:
            return None
        share = Decimal(self.admitted) * self.period.days / elapsed
        return int(share.quantize(Decimal("1"), rounding=ROUND_HALF_UP))

    @property
    def forecast_percent(self) -> Decimal | None:
        """Return the forecast as a percentage of the target, or None."""
        return None if self.forecast is None else percent(self.forecast, self.target)


async def _is_whole_tree(session: AsyncSession, unit: Unit) -> bool:
    """Tell whether `unit`'s subtree is every unit there is (the only root)."""
    if unit.parent_id is not None:
        return False
    roots = await session.scalar(select(func.count()).select_from(Unit).where(Unit.parent_id.is_(None)))
    return roots == 1


async def _in_scope(session: AsyncSession, unit: Unit, period: Period) -> list[ColumnElement[bool]]:
    """Return the conditions "counted, within `period`, in the subtree of `unit`", shaped for the indexes.

    The whole tree reads the date-first index (one period of rows) and needs no path condition;
    any smaller subtree reads its path range in the path-first index (every period of that
    subtree only), so the date conditions are kept away from the planner there.
    """
    if await _is_whole_tree(session, unit):
        return [_counted_in(period)]
    admitted_on = unindexed(Admission.admitted_on)
    return [
        in_subtree(Admission.unit_path, unit.path),
        admitted_on >= period.first_day,
        admitted_on <= period.last_day,
        Admission.withdrawn_at.is_(None),
    ]


async def count_admitted(session: AsyncSession, unit: Unit, period: Period) -> int:
    """Return the counted (not withdrawn) admissions of the subtree decided within `period`."""
    value = await session.scalar(
        select(func.count(Admission.unit_path)).where(*await _in_scope(session, unit, period))
    )
    return int(value or 0)


async def target_of(session: AsyncSession, unit: Unit, period: Period) -> int | None:
    """Return the unit's target for exactly this period, or None when none is set."""
    return await session.scalar(
        select(Target.value).where(
            Target.unit_id == unit.id, Target.start_year == period.start_year, Target.end_year == period.end_year
        )
    )


def _nearest(rows: Sequence[Row[Any]], ids: list[int]) -> Row[Any]:
    """Return the row of the deepest unit of `ids` (the unit first, then its ancestors), latest start first."""
    depth = {unit_id: i for i, unit_id in enumerate(ids)}
    return max(rows, key=lambda r: (depth[r.unit_id], r.starts_on))


def _path_ids(unit: Unit) -> list[int]:
    return [int(part) for part in unit.path.strip("/").split("/")]


async def _term_covering(session: AsyncSession, unit: Unit, today: date) -> tuple[Period, int | None] | None:
    """Return the term of `unit` or its nearest ancestor whose days cover `today`, and the unit's own target for it."""
    ids = _path_ids(unit)
    rows = (
        await session.execute(
            select(Target.unit_id, Target.start_year, Target.end_year, Target.starts_on, Target.ends_on,
                   Target.value).where(
                Target.unit_id.in_(ids),
                Target.end_year > Target.start_year,
                Target.starts_on <= today,
                Target.ends_on >= today,
            )
        )
    ).all()
    if not rows:
        return None
    nearest = _nearest(rows, ids)
    term = Period(nearest.start_year, nearest.end_year, nearest.starts_on, nearest.ends_on)
    own = next((r.value for r in rows if r.unit_id == unit.id and (r.start_year, r.end_year) == (
        term.start_year, term.end_year)), None)
    return term, own


async def stored_period(session: AsyncSession, unit: Unit, period: Period) -> Period:
    """Return `period` with the exact days stored on the term target of those years of `unit` or its
    nearest ancestor (a term named by its years, typed or on a button, keeps the dates it was set with);
    `period` itself when none is stored, and always for a calendar year."""
    if not period.is_term:
        return period
    ids = _path_ids(unit)
    rows = (await session.execute(
        select(Target.unit_id, Target.starts_on, Target.ends_on).where(
            Target.unit_id.in_(ids), Target.start_year == period.start_year, Target.end_year == period.end_year)
    )).all()
    if not rows:
        return period
    nearest = _nearest(rows, ids)
    return Period(period.start_year, period.end_year, nearest.starts_on, nearest.ends_on)


async def current_term(session: AsyncSession, unit: Unit, today: date) -> Period | None:
    """Return the term (multi-year target) of `unit` or its nearest ancestor that covers `today`."""
    found = await _term_covering(session, unit, today)
    return found[0] if found else None


async def term_progress(session: AsyncSession, unit: Unit, today: date) -> Progress | None:
    """Return where `unit` stands in the term covering `today` (None when no term does); two queries."""
    found = await _term_covering(session, unit, today)
    if found is None:
        return None
    term, target = found
    admitted = await count_admitted(session, unit, term)
    return Progress(unit=unit, period=term, admitted=admitted, target=target, as_of=today)


def _admission_year(period: Period) -> ColumnElement[int]:
    """Return an SQL expression for the admission year within `period` (date ranges, portable, no functions)."""
    if not period.is_term:
        return literal(period.start_year)
    whens = [(Admission.admitted_on < date(year + 1, 1, 1), year) for year in range(period.start_year, period.end_year)]
    return case(*whens, else_=period.end_year)


def _aggregates(period: Period) -> list[ColumnElement[int]]:
    """Return count and the breakdown sums over counted admissions, in Breakdown's field order."""

    def counted(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.count(Admission.unit_path).filter(condition)  # FILTER: cheaper than sum(CASE …)

    return [
        func.count(Admission.unit_path),  # covered by ix_admission_counted (NULL only in outer joins)
        counted(Admission.sex == Sex.FEMALE),
        counted(Admission.minority.is_(True)),
        counted(Admission.youth_union.is_(True)),
        counted(_admission_year(period) - Admission.birth_year < 30),
    ]


def _counted_in(period: Period) -> ColumnElement[bool]:
    return and_(
        Admission.admitted_on >= period.first_day,
        Admission.admitted_on <= period.last_day,
        Admission.withdrawn_at.is_(None),
    )


def _row_figures(row: Sequence[int]) -> tuple[int, Breakdown]:
    return int(row[0] or 0), Breakdown(*(int(v or 0) for v in row[1:5]))


async def breakdown_of(session: AsyncSession, unit: Unit, period: Period) -> tuple[int, Breakdown]:
    """Return (counted admissions, breakdown) of the subtree of `unit` within `period`, in one query."""
    row = (await session.execute(select(*_aggregates(period)).where(*await _in_scope(session, unit, period)))).one()
    return _row_figures(row)


async def targets_of(session: AsyncSession, unit_ids: Sequence[int], period: Period) -> dict[int, int]:
    """Return the targets set for exactly `period`, by unit id (units without one are absent)."""
    if not unit_ids:
        return {}
    found: dict[int, int] = {}
    ids = list(unit_ids)
    for i in range(0, len(ids), 5000):  # stay well under the databases' bound-parameter limits
        rows = await session.execute(
            select(Target.unit_id, Target.value).where(
                Target.unit_id.in_(ids[i:i + 5000]), Target.start_year == period.start_year,
                Target.end_year == period.end_year,
            )
        )
        found.update({unit_id: value for unit_id, value in rows})
    return found


async def progress_of(session: AsyncSession, unit: Unit, period: Period, today: date,
                      *, breakdown: bool = False) -> Progress:
    """Return where `unit` stands for `period` as of `today` (with the breakdowns when asked)."""
    figures = Breakdown()
    if breakdown:
        admitted, figures = await breakdown_of(session, unit, period)
    else:
        admitted = await count_admitted(session, unit, period)
    target = await target_of(session, unit, period)
    return Progress(unit=unit, period=period, admitted=admitted, target=target, as_of=today, breakdown=figures)


def schedule_order(progress: Progress) -> tuple[int, Decimal, str]:
    """Sort key: behind-schedule units first (most behind in share of target first), then by name."""
    if progress.behind and progress.target:
        return 0, Decimal(progress.gap or 0) / progress.target, progress.unit.name
    if progress.target is None:
        return 2, Decimal(0), progress.unit.name
    return 1, -(progress.percent or Decimal(0)), progress.unit.name


@dataclass(frozen=True)
class ProgressReport:
    """What /progress shows for one unit: the unit with breakdowns, and its children behind first."""

    main: Progress
    children: list[Progress]
    direct: int  # admissions recorded at the unit itself, outside every child
    parent: Unit | None = None  # the unit above (None at a root)


async def progress_report(session: AsyncSession, unit: Unit, period: Period, today: date) -> ProgressReport:
    """Return the unit's progress and its children's; the unit's totals are summed from the children.

    One scan of the subtree's counted admissions grouped by the child each belongs to (the id in
    the path segment after the unit's own path; 0 for admissions recorded at the unit itself),
    plus the children and the targets.
    """
    # The child an admission belongs to is the id right after the unit's own path (0: the unit itself).
    child_id = leading_id(func.substr(Admission.unit_path, len(unit.path) + 1)).label("child_id")
    rows = (await session.execute(
        select(child_id, *_aggregates(period)).where(*await _in_scope(session, unit, period)).group_by(child_id)
    )).all()
    figures_by_child = {int(row[0]): _row_figures(row[1:]) for row in rows}
    # The unit's children and the targets of the unit and its children, in one query; the parent
    # comes along (a view shows the way up).
    exact = and_(Target.unit_id == Unit.id, Target.start_year == period.start_year, Target.end_year == period.end_year)
    family = [Unit.parent_id == unit.id, Unit.id == unit.id]
    if unit.parent_id is not None:
        family.append(Unit.id == unit.parent_id)
    units = (await session.execute(select(Unit, Target.value).outerjoin(Target, exact).where(or_(*family)))).all()
    child_units = [child for child, _ in units if child.parent_id == unit.id]
    targets = {found.id: value for found, value in units if value is not None}
    direct, breakdown = figures_by_child.get(0, (0, Breakdown()))
    admitted = direct
    children = []
    for child in child_units:
        count, figures = figures_by_child.get(child.id, (0, Breakdown()))
        admitted += count
        breakdown = breakdown + figures
        target = targets.get(child.id)
        children.append(Progress(unit=child, period=period, admitted=count, target=target, as_of=today, breakdown=figures))
    children.sort(key=schedule_order)
    target = targets.get(unit.id)
    main = Progress(unit=unit, period=period, admitted=admitted, target=target, as_of=today, breakdown=breakdown)
    parent = next((found for found, _ in units if found.id == unit.parent_id), None)
    return ProgressReport(main=main, children=children, direct=direct, parent=parent)


async def subtree_progress(session: AsyncSession, unit: Unit, period: Period, today: date) -> list[Progress]:
    """Return the progress of every unit of the subtree, the unit itself first, then in tree order.

    One grouped query (by admission path) and one for the targets; rolled up in Python.
    """
    low, high = subtree_range(unit.path)
    units = list(await session.scalars(
        select(Unit).where(Unit.path >= low, Unit.path < high).order_by(Unit.path)
    ))
    rows = await session.execute(
        select(Admission.unit_path, *_aggregates(period))
        .where(*await _in_scope(session, unit, period))
        .group_by(Admission.unit_path)
    )
    totals: dict[str, tuple[int, Breakdown]] = {}
    for row in rows:
        count, breakdown = _row_figures(row[1:])
        parts = row[0].strip("/").split("/")
        for depth in range(len(parts), 0, -1):
            path = "/" + "/".join(parts[:depth]) + "/"
            if not path.startswith(unit.path):
                break
            old_count, old_breakdown = totals.get(path, (0, Breakdown()))
            totals[path] = (old_count + count, old_breakdown + breakdown)
    targets = await targets_of(session, [u.id for u in units], period)
    out = []
    for u in sorted(units, key=lambda u: (u.id != unit.id, _tree_key(u.path))):
        admitted, breakdown = totals.get(u.path, (0, Breakdown()))
        target = targets.get(u.id)
        out.append(Progress(unit=u, period=period, admitted=admitted, target=target, as_of=today, breakdown=breakdown))
    return out


def _tree_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in path.strip("/").split("/"))


async def monthly_admitted(session: AsyncSession, unit: Unit, period: Period) -> list[int]:
    """Return counted admissions of the subtree per calendar month of `period`, in order."""
    rows = await session.execute(
        select(Admission.admitted_on, func.count())
        .where(*await _in_scope(session, unit, period))
        .group_by(Admission.admitted_on)
    )
    months = [0] * period.months
    for day, count in rows:
        months[period.month_of(day)] += int(count)
    return months


@dataclass(frozen=True)
class AdmissionRow:
    """One counted admission as the export lists it."""

    unit_code: str
    unit_name: str
    full_name: str
    birth_year: int
    sex: Sex
    ethnicity: str | None
    minority: bool
    youth_union: bool | None
    decision_no: str | None
    admitted_on: date


async def admissions_in(session: AsyncSession, unit: Unit, period: Period) -> list[AdmissionRow]:
    """Return the counted admissions of the subtree within `period`, by date then unit."""
    rows = await session.execute(
        select(Unit.code, Unit.name, Admission.full_name, Admission.birth_year, Admission.sex, Admission.ethnicity,
               Admission.minority, Admission.youth_union, Admission.decision_no, Admission.admitted_on)
        .join(Unit, Unit.id == Admission.unit_id)
        .where(*await _in_scope(session, unit, period))
        .order_by(Admission.admitted_on, Unit.code, Admission.id)
    )
    return [AdmissionRow(*row) for row in rows]


def if_resolutions_admitted(progress: Progress, resolved: int) -> int | None:
    """Return the period's count if the candidates with a cell or committee resolution are admitted
    before it ends (the pipeline forecast beside the pace), or None once the period is over."""
    if progress.as_of is None or progress.as_of >= progress.period.last_day:
        return None
    return progress.admitted + resolved
