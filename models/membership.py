"""Membership counts: full and probationary members of a unit's subtree (Tổng số đảng viên).

A unit's count is loaded from a file as of a day (`Unit.members_full`, `members_probationary`,
`members_as_of`: import-units, import-members); the bot then keeps it by counting, from that day
on, what the admissions record — so each event counts exactly once and a withdrawn report or a
corrected date changes the count with it, with no stored counter to drift:
- an admission decided after the day adds a probationary member;
- a recognition after the day moves one probationary member to full;
- a removal after the day takes one away (a probationary one, or a full one when the member was
  recognised by then).
A unit never loaded counts from zero. Query functions take an open session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import Action, Change, record
from models.entities import Admission, AuditChannel, Person, Unit
from models.people import Scope
from models.units import in_subtree

NEVER = date(1900, 1, 1)  # the "as of" of a unit whose count was never loaded


@dataclass(frozen=True)
class Membership:
    """Members of a subtree: full, probationary (dự bị), and the total."""

    full: int = 0
    probationary: int = 0

    @property
    def total(self) -> int:
        """Return full plus probationary members."""
        return self.full + self.probationary

    @property
    def known(self) -> bool:
        """Tell whether any member is counted."""
        return self.total > 0

    def __add__(self, other: Membership) -> Membership:
        return Membership(self.full + other.full, self.probationary + other.probationary)


def _count(condition):  # type: ignore[no-untyped-def]
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def membership(session: AsyncSession, unit: Unit) -> Membership:
    """Return the membership of `unit`'s subtree today (its loaded counts plus what happened since)."""
    base = (await session.execute(
        select(func.coalesce(func.sum(Unit.members_full), 0), func.coalesce(func.sum(Unit.members_probationary), 0))
        .where(in_subtree(Unit.path, unit.path)))).one()
    since = func.coalesce(Unit.members_as_of, literal(NEVER))
    removed = and_(Admission.removed_on.is_not(None), Admission.removed_on > since)
    recognised_before_removal = and_(Admission.recognized_on.is_not(None),
                                     Admission.recognized_on <= Admission.removed_on)
    row = (await session.execute(
        select(_count(Admission.admitted_on > since),
               _count(and_(Admission.recognized_on.is_not(None), Admission.recognized_on > since,
                           or_(Admission.removed_on.is_(None), Admission.recognized_on <= Admission.removed_on))),
               _count(and_(removed, ~recognised_before_removal)),
               _count(and_(removed, recognised_before_removal)))
        .select_from(Admission).join(Unit, Unit.id == Admission.unit_id)
        .where(in_subtree(Admission.unit_path, unit.path), Admission.withdrawn_at.is_(None)))).one()
    admitted, recognised, removed_probationary, removed_full = (int(n) for n in row)
    return Membership(full=int(base[0]) + recognised - removed_full,
                      probationary=int(base[1]) + admitted - recognised - removed_probationary)


async def set_membership(session: AsyncSession, unit: Unit, full: int, probationary: int, as_of: date) -> None:
    """Load `unit`'s own counts as of a day (what an import says); later admissions count on from it."""
    unit.members_full, unit.members_probationary, unit.members_as_of = full, probationary, as_of
    await session.flush()


# After the decision: the dates an admission's card records ------------------------------------

AFTER_DECISION = ("ceremony_on", "recognized_on", "removed_on")


class DateRefused(ValueError):
    """A date after the decision the rules refuse; args[0] is a catalog key (candidates.toml `error_…`)."""


async def set_after_decision(session: AsyncSession, admission: Admission, field: str, day: date, today: date,
                             person: Person, now: datetime) -> None:
    """Record the ceremony, recognition or removal day of a counted admission (its cell's secretary,
    a committee member or an admin above it); with its audit entry."""
    unit = await session.get(Unit, admission.unit_id)
    if field not in AFTER_DECISION or unit is None or not Scope(person).may_view(unit) \
            or admission.withdrawn_at is not None:
        raise DateRefused("not_allowed")
    if day > today:
        raise DateRefused("future_date")
    if day < admission.admitted_on:
        raise DateRefused("before_decision")
    if field == "recognized_on" and (admission.ceremony_on is None or day <= admission.ceremony_on):
        raise DateRefused("recognition_needs_ceremony")
    if admission.removed_on is not None or (field != "removed_on" and admission.recognized_on is not None):
        raise DateRefused("already_final")
    old = getattr(admission, field)
    setattr(admission, field, day)
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.CORRECT, subject="admission", person=person,
           subject_id=admission.id, unit=unit,
           changes=[Change(field, old.isoformat() if old else None, day.isoformat())])


async def awaiting_after_decision(session: AsyncSession, unit: Unit, since: date) -> list[Admission]:
    """Return the unit's counted admissions decided since `since` not yet recognised nor removed, oldest first."""
    rows = await session.scalars(
        select(Admission).where(Admission.unit_id == unit.id, Admission.withdrawn_at.is_(None),
                                Admission.recognized_on.is_(None), Admission.removed_on.is_(None),
                                Admission.admitted_on >= since)
        .order_by(Admission.admitted_on, Admission.id))
    return list(rows)
