"""The people of an admin's subtree (/people): who holds which role where, when they last reported,
and revoking a role.

`roots` are the units an admin administers (models.people.Scope.units(Role.ADMIN)); everything
here reads or changes only assignments whose unit lies in one of their subtrees. Ended assignments
(revoked, or handed over) are listed too, so the admin sees who lost access; a person's past
reports are never touched: they stay counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models.audit import Action, Change, record
from models.entities import Admission, AdmissionSource, Assignment, AuditChannel, Person, Role, Unit, UnitKind
from models.reminders import WeeklyCheckIn
from models.units import in_subtree, is_within


def outermost(units: Sequence[Unit]) -> list[Unit]:
    """Return the units not lying inside another of `units` (an admin of a district and of one of its
    communes administers the district's subtree once)."""
    return [u for u in units if not any(o.id != u.id and is_within(u.path, o.path) for o in units)]


def _within(column, roots: Sequence[Unit]):  # type: ignore[no-untyped-def]
    return or_(*(in_subtree(column, root.path) for root in roots))


class Status:
    """What /people says of a role holder (catalog suffixes `people.status_<value>`)."""

    ACTIVE = "active"
    AWAY = "away"
    BLOCKED = "blocked"
    REVOKED = "revoked"


@dataclass(frozen=True)
class RosterLine:
    """One role held (or once held) in the subtree, with what /people shows of its holder."""

    assignment_id: int
    person_id: int
    name: str
    role: Role
    unit: Unit
    status: str
    away_until: date | None
    last_seen: datetime | None  # the latest chat report or weekly check-in of the person


def _aware(value: object) -> datetime | None:
    """Return an aggregate's datetime with its zone (SQLite gives aggregates back as naive text)."""
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo("UTC"))


async def last_seen(session: AsyncSession, person_ids: Sequence[int]) -> dict[int, datetime]:
    """Return, per person, the time of their latest report in the chat or weekly check-in."""
    seen: dict[int, datetime] = {}
    if not person_ids:
        return seen
    ids = list(person_ids)
    reports = select(Admission.reported_by_id, func.max(Admission.reported_at)).where(
        Admission.reported_by_id.in_(ids), Admission.source == AdmissionSource.CHAT).group_by(Admission.reported_by_id)
    checks = select(WeeklyCheckIn.person_id, func.max(WeeklyCheckIn.created_at)).where(
        WeeklyCheckIn.person_id.in_(ids)).group_by(WeeklyCheckIn.person_id)
    for query in (reports, checks):
        for person_id, value in (await session.execute(query)).all():
            at = _aware(value)
            if person_id is not None and at is not None and (person_id not in seen or at > seen[person_id]):
                seen[person_id] = at
    return seen


def status_of(person: Person, assignment: Assignment, day: date) -> str:
    """Return the holder's status: revoked (the role ended), blocked the bot, away, or active."""
    if assignment.ended_at is not None:
        return Status.REVOKED
    if not person.active:
        return Status.BLOCKED
    if person.away_until is not None and person.away_until >= day:
        return Status.AWAY
    return Status.ACTIVE


async def roster(session: AsyncSession, roots: Sequence[Unit], day: date) -> list[RosterLine]:
    """Return every role held or once held in the subtrees of `roots` (unordered: the caller sorts)."""
    if not roots:
        return []
    rows = (await session.execute(
        select(Assignment, Person, Unit).join(Person, Person.id == Assignment.person_id)
        .join(Unit, Unit.id == Assignment.unit_id).where(_within(Unit.path, roots))
    )).all()
    seen = await last_seen(session, sorted({person.id for _, person, _ in rows}))
    return [RosterLine(a.id, p.id, p.display_name, a.role, u, status_of(p, a, day), p.away_until, seen.get(p.id))
            for a, p, u in rows]


async def cells_without_secretary(session: AsyncSession, roots: Sequence[Unit]) -> list[Unit]:
    """Return the cells of the subtrees with nobody holding the secretary's role now."""
    if not roots:
        return []
    held = exists().where(Assignment.unit_id == Unit.id, Assignment.role == Role.SECRETARY,
                          Assignment.ended_at.is_(None))
    return list(await session.scalars(select(Unit).where(Unit.kind == UnitKind.CELL, _within(Unit.path, roots), ~held)))


@dataclass(frozen=True)
class Card:
    """A person as an admin sees them: their roles within the admin's subtrees, held or ended."""

    person: Person
    assignments: list[Assignment]


async def card_of(session: AsyncSession, person_id: int, roots: Sequence[Unit]) -> Card | None:
    """Return the person with their roles in the subtrees of `roots`, or None when they hold none there."""
    if not roots:
        return None
    person = await session.get(Person, person_id)
    if person is None:
        return None
    assignments = list(await session.scalars(
        select(Assignment).join(Unit, Unit.id == Assignment.unit_id)
        .where(Assignment.person_id == person_id, _within(Unit.path, roots))
        .options(selectinload(Assignment.unit)).order_by(Assignment.id)
    ))
    return Card(person, assignments) if assignments else None


async def secretary_in_scope(session: AsyncSession, assignment_id: int, roots: Sequence[Unit]) -> Assignment | None:
    """Return the secretary's role held now with this id, if its cell lies in the subtrees of `roots`."""
    assignment = await session.get(Assignment, assignment_id, options=[selectinload(Assignment.unit),
                                                                       selectinload(Assignment.person)])
    if (assignment is None or assignment.role != Role.SECRETARY or assignment.ended_at is not None
            or not any(is_within(assignment.unit.path, root.path) for root in roots)):
        return None
    return assignment


async def revoke(session: AsyncSession, person_id: int, roots: Sequence[Unit], *, by: Person,
                 now: datetime) -> list[Assignment]:
    """End the person's roles held now in the subtrees of `roots`, one audit entry each; return them.

    Their roles elsewhere stay; their reports stay counted."""
    card = await card_of(session, person_id, roots)
    ended = [a for a in (card.assignments if card else []) if a.ended_at is None]
    for assignment in ended:
        assignment.ended_at = now
        record(session, at=now, channel=AuditChannel.CHAT, action=Action.REVOKE, subject="assignment", person=by,
               subject_id=assignment.id, unit=assignment.unit,
               changes=[Change("ended_at", None, now.isoformat())])
    await session.flush()
    return ended
