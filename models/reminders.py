"""The weekly cycle: check-ins, who reported, and who is due a reminder or a digest.

A reporting week runs Monday–Sunday in the configured timezone (models.calendar). A cell has
reported for a week when an admission for it was reported in the chat that week (not withdrawn;
imported history never counts) or its secretary checked in "no new admissions this week".
What was sent to whom is the sent-log's business (models.sentlog).

Query and command functions take an open session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import Date, ForeignKey, Index, UniqueConstraint, delete, func, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.entities import Admission, AdmissionSource, Assignment, Person, Role, Target, Unit, UnitKind
from models.calendar import week_bounds, week_start
from models.periods import Period
from models.sql import unindexed
from models.units import in_subtree



class WeeklyCheckIn(Base):
    """A secretary's "no new admissions this week" for one cell and week (deleted when undone)."""

    __tablename__ = "weekly_check_in"
    __table_args__ = (UniqueConstraint("unit_id", "week_start"), Index("ix_weekly_check_in_week", "week_start", "unit_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)
    week_start: Mapped[date] = mapped_column(Date)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


# Who reported ---------------------------------------------------------------------------------


async def reported_cell_ids(
    session: AsyncSession, week: date, tz: tzinfo, cell_ids: Iterable[int] | None = None
) -> set[int]:
    """Return the ids of cells that reported in the week starting `week` (chat report or check-in)."""
    low, high = week_bounds(week, tz)
    chat = select(Admission.unit_id).where(
        Admission.source == AdmissionSource.CHAT,
        Admission.withdrawn_at.is_(None),
        Admission.reported_at >= low,
        Admission.reported_at < high,
    )
    checked = select(WeeklyCheckIn.unit_id).where(WeeklyCheckIn.week_start == week)
    ids = list(cell_ids) if cell_ids is not None else None
    if ids is not None:
        chat = chat.where(Admission.unit_id.in_(ids))
        checked = checked.where(WeeklyCheckIn.unit_id.in_(ids))
    found = set(await session.scalars(chat.distinct()))
    found.update(await session.scalars(checked))
    return found


async def cells_of_subtree(session: AsyncSession, unit: Unit) -> list[Unit]:
    """Return the cells in the subtree of `unit`, by name."""
    rows = await session.scalars(
        select(Unit).where(in_subtree(Unit.path, unit.path), Unit.kind == UnitKind.CELL).order_by(Unit.name)
    )
    return list(rows)


async def reporting_rate(session: AsyncSession, unit: Unit, week_start: date, *, tz: tzinfo) -> tuple[int, int]:
    """Return (cells in the subtree of `unit` that reported in that week, cells in the subtree).

    The cells are counted once, when units are loaded (Unit.cell_count); the reports are the
    week's range of ix_admission_chat_reports (a week holds few), filtered by path afterwards.
    """
    cells = unit.cell_count  # kept by models.units.load_units
    if not cells:
        return 0, 0
    reported = await _reported_in_subtree(session, unit, week_start, tz)
    return len(reported), int(cells)


async def _reported_in_subtree(session: AsyncSession, unit: Unit, week: date, tz: tzinfo) -> set[int]:
    low, high = week_bounds(week, tz)
    # Chat reports are always for a secretary's cell (handlers/report.py offers only those).
    chat = (
        select(Admission.unit_id)
        .where(
            in_subtree(unindexed(Admission.unit_path), unit.path),  # drive from the week's reports
            Admission.source == AdmissionSource.CHAT,
            Admission.withdrawn_at.is_(None),
            Admission.reported_at >= low,
            Admission.reported_at < high,
        )
        .distinct()
    )
    checked = (
        select(WeeklyCheckIn.unit_id)
        .join(Unit, Unit.id == WeeklyCheckIn.unit_id)
        .where(in_subtree(unindexed(Unit.path), unit.path), unindexed(Unit.kind) == UnitKind.CELL,
               WeeklyCheckIn.week_start == week)
    )
    return set(await session.scalars(union(chat, checked)))  # one round trip


async def last_reported_weeks(session: AsyncSession, unit: Unit, before: date, tz: tzinfo) -> dict[int, date]:
    """Return, per cell of the subtree, the start of the latest week before `before` in which it reported."""
    low, _ = week_bounds(before, tz)
    latest: dict[int, date] = {}
    chat = await session.execute(
        select(Admission.unit_id, func.max(Admission.reported_at))
        .where(
            in_subtree(Admission.unit_path, unit.path),
            Admission.source == AdmissionSource.CHAT,
            Admission.withdrawn_at.is_(None),
            Admission.reported_at < low,
        )
        .group_by(Admission.unit_id)
    )
    for unit_id, at in chat.all():
        if at is not None:
            if at.tzinfo is None:  # aggregates bypass the column type on SQLite
                at = datetime.fromisoformat(str(at)).replace(tzinfo=ZoneInfo("UTC"))
            latest[unit_id] = week_start(at.astimezone(tz).date())
    checked = await session.execute(
        select(WeeklyCheckIn.unit_id, func.max(WeeklyCheckIn.week_start))
        .join(Unit, Unit.id == WeeklyCheckIn.unit_id)
        .where(in_subtree(Unit.path, unit.path), WeeklyCheckIn.week_start < before)
        .group_by(WeeklyCheckIn.unit_id)
    )
    for unit_id, week in checked.all():
        if isinstance(week, str):
            week = date.fromisoformat(week)
        if week is not None and (unit_id not in latest or week > latest[unit_id]):
            latest[unit_id] = week
    return latest


async def secretary_since(session: AsyncSession, unit: Unit, tz: tzinfo) -> dict[int, date]:
    """Return, per cell of the subtree that has a secretary, the start of the week its first secretary began."""
    rows = await session.execute(
        select(Assignment.unit_id, func.min(func.coalesce(Assignment.started_at, Person.registered_at)))
        .join(Person, Person.id == Assignment.person_id)
        .join(Unit, Unit.id == Assignment.unit_id)
        .where(Assignment.role == Role.SECRETARY, Assignment.ended_at.is_(None), Unit.kind == UnitKind.CELL,
               in_subtree(Unit.path, unit.path))
        .group_by(Assignment.unit_id)
    )
    since: dict[int, date] = {}
    for unit_id, at in rows.all():
        if at is None:
            continue
        if not isinstance(at, datetime):  # aggregates bypass the column type on SQLite
            at = datetime.fromisoformat(str(at))
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo("UTC"))
        since[unit_id] = week_start(at.astimezone(tz).date())
    return since


# Check-ins ------------------------------------------------------------------------------------


async def check_in(session: AsyncSession, cell: Unit, person: Person, week: date, now: datetime) -> bool:
    """Record "no new admissions" for `cell` and `week`; return False when it was already recorded."""
    existing = await session.scalar(
        select(WeeklyCheckIn).where(WeeklyCheckIn.unit_id == cell.id, WeeklyCheckIn.week_start == week)
    )
    if existing is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(WeeklyCheckIn(unit_id=cell.id, week_start=week, person_id=person.id, created_at=now))
    except IntegrityError:
        return False
    return True


async def checked_in_ids(session: AsyncSession, week: date, cell_ids: Sequence[int]) -> set[int]:
    """Return which of `cell_ids` checked in for `week`."""
    if not cell_ids:
        return set()
    rows = await session.scalars(
        select(WeeklyCheckIn.unit_id).where(WeeklyCheckIn.week_start == week, WeeklyCheckIn.unit_id.in_(list(cell_ids)))
    )
    return set(rows)


async def undo_check_in(session: AsyncSession, cell: Unit, week: date) -> bool:
    """Remove the check-in of `cell` for `week`; return whether there was one."""
    result = await session.execute(
        delete(WeeklyCheckIn).where(WeeklyCheckIn.unit_id == cell.id, WeeklyCheckIn.week_start == week)
    )
    return bool(result.rowcount)


# Recipients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellStanding:
    """A cell's count against its annual plan (cells are leaves, so the count is the cell's own)."""

    unit_id: int
    name: str
    admitted: int
    target: int | None
    period: Period
    as_of: date

    @property
    def expected(self) -> int | None:
        """Return what the calendar expects of the cell by `as_of`."""
        return self.period.expected(self.target, self.as_of)

    @property
    def behind(self) -> bool:
        """Tell whether the cell is behind the calendar's share of its plan."""
        return self.expected is not None and self.admitted < self.expected


@dataclass(frozen=True)
class DueSecretary:
    """A secretary to remind, with the cells of theirs that have not reported this week."""

    person_id: int
    telegram_id: int
    language: str
    cells: tuple[CellStanding, ...]


async def cell_standings(session: AsyncSession, cell_ids: Sequence[int], day: date) -> dict[int, CellStanding]:
    """Return each cell's admissions this calendar year against its annual plan, in bulk."""
    if not cell_ids:
        return {}
    period = Period.year(day.year)
    ids = list(cell_ids)
    names: dict[int, str] = {}
    counts: dict[int, int] = {}
    targets: dict[int, int] = {}
    for chunk in _chunks(ids, 500):
        names.update((await session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(chunk)))).all())
        counts.update(
            (
                await session.execute(
                    select(Admission.unit_id, func.count())
                    .where(
                        Admission.unit_id.in_(chunk),
                        Admission.withdrawn_at.is_(None),
                        Admission.admitted_on >= period.first_day,
                        Admission.admitted_on <= period.last_day,
                    )
                    .group_by(Admission.unit_id)
                )
            ).all()
        )
        targets.update(
            (
                await session.execute(
                    select(Target.unit_id, Target.value).where(
                        Target.unit_id.in_(chunk), Target.start_year == day.year, Target.end_year == day.year
                    )
                )
            ).all()
        )
    return {
        i: CellStanding(i, names.get(i, ""), int(counts.get(i, 0)), targets.get(i), period, day)
        for i in ids
    }


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def due_secretaries(session: AsyncSession, day: date, tz: tzinfo) -> tuple[list[DueSecretary], int]:
    """Return active, not-away secretaries with a cell that has not reported in the week of `day`,
    and how many secretaries were left out because they are away."""
    week = week_start(day)
    rows = (
        await session.execute(
            select(Person.id, Person.telegram_id, Person.language, Person.away_until, Assignment.unit_id)
            .join(Assignment, (Assignment.person_id == Person.id) & Assignment.ended_at.is_(None))
            .join(Unit, Unit.id == Assignment.unit_id)
            .where(Assignment.role == Role.SECRETARY, Person.active.is_(True), Unit.kind == UnitKind.CELL)
            .order_by(Person.id, Assignment.unit_id)
        )
    ).all()
    reported = await reported_cell_ids(session, week, tz)
    pending: dict[int, list[int]] = {}
    people: dict[int, tuple[int, str]] = {}
    away: set[int] = set()
    for person_id, telegram_id, language, away_until, unit_id in rows:
        if away_until is not None and day <= away_until:
            away.add(person_id)
            continue
        if unit_id in reported:
            continue
        people[person_id] = (telegram_id, language)
        pending.setdefault(person_id, []).append(unit_id)
    standings = await cell_standings(session, sorted({u for units in pending.values() for u in units}), day)
    due = [
        DueSecretary(pid, people[pid][0], people[pid][1], tuple(standings[u] for u in units))
        for pid, units in pending.items()
    ]
    return due, len(away)


async def committee_members(session: AsyncSession) -> list[tuple[Person, list[Unit]]]:
    """Return active committee members with the units they follow."""
    rows = (
        await session.execute(
            select(Person, Unit)
            .join(Assignment, (Assignment.person_id == Person.id) & Assignment.ended_at.is_(None))
            .join(Unit, Unit.id == Assignment.unit_id)
            .where(Assignment.role == Role.COMMITTEE, Person.active.is_(True))
            .order_by(Person.id, Unit.path)
        )
    ).all()
    grouped: dict[int, tuple[Person, list[Unit]]] = {}
    for person, unit in rows:
        grouped.setdefault(person.id, (person, []))[1].append(unit)
    return list(grouped.values())


@dataclass(frozen=True)
class SecretaryNote:
    """A secretary of the subtree to mention in a digest (blocked the bot, or away)."""

    display_name: str
    cell_name: str
    since: date | None  # blocked on (local date) or away until


async def blocked_secretaries(session: AsyncSession, unit: Unit, tz: tzinfo) -> list[SecretaryNote]:
    """Return secretaries of the subtree who blocked the bot."""
    rows = await session.execute(
        select(Person.display_name, Unit.name, Person.blocked_at)
        .join(Assignment, (Assignment.person_id == Person.id) & Assignment.ended_at.is_(None))
        .join(Unit, Unit.id == Assignment.unit_id)
        .where(Assignment.role == Role.SECRETARY, Person.active.is_(False), in_subtree(Unit.path, unit.path))
        .order_by(Unit.name, Person.display_name)
    )
    return [SecretaryNote(n, c, at.astimezone(tz).date() if at else None) for n, c, at in rows.all()]


async def away_secretaries(session: AsyncSession, unit: Unit, day: date) -> list[SecretaryNote]:
    """Return secretaries of the subtree who paused reminders over `day`."""
    rows = await session.execute(
        select(Person.display_name, Unit.name, Person.away_until)
        .join(Assignment, (Assignment.person_id == Person.id) & Assignment.ended_at.is_(None))
        .join(Unit, Unit.id == Assignment.unit_id)
        .where(
            Assignment.role == Role.SECRETARY,
            Person.away_until.is_not(None),
            Person.away_until >= day,
            in_subtree(Unit.path, unit.path),
        )
        .order_by(Unit.name, Person.display_name)
    )
    return [SecretaryNote(n, c, until) for n, c, until in rows.all()]
