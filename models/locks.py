"""Locked periods (khóa sổ): a unit's subtree closed for admissions decided on or before a day.

A lock set on a unit covers every unit below it; a cell's books are closed up to the latest day
any lock on it or an ancestor names. Below admin nobody may report, correct, withdraw or import an
admission whose decision date is on or before that day; an admin of the subtree may, with a reason.
Weekly check-ins are not admissions and are never affected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import Role, Unit, UnitLock
from models.people import Scope
from models.units import is_within


@dataclass(frozen=True)
class Closed:
    """The books of `unit` are closed up to `until`, by a lock on `locked_unit`."""

    until: date
    locked_unit: Unit


class PeriodClosed(Exception):
    """The admission's decision date lies in a closed period (and the person may not override)."""

    def __init__(self, closed: Closed):
        super().__init__(closed.until.isoformat())
        self.closed = closed


def ancestor_ids(unit: Unit) -> list[int]:
    """Return the ids of the unit and its ancestors, read from its materialised path."""
    return [int(part) for part in unit.path.strip("/").split("/") if part]


async def closed_for(session: AsyncSession, unit: Unit) -> Closed | None:
    """Return the latest lock covering `unit` (set on it or an ancestor), or None."""
    row = (await session.execute(
        select(UnitLock, Unit).join(Unit, Unit.id == UnitLock.unit_id)
        .where(UnitLock.unit_id.in_(ancestor_ids(unit)))
        .order_by(UnitLock.closed_until.desc()).limit(1)
    )).first()
    return Closed(until=row[0].closed_until, locked_unit=row[1]) if row is not None else None


async def lock_of(session: AsyncSession, unit: Unit) -> UnitLock | None:
    """Return the lock set on `unit` itself, or None."""
    return await session.get(UnitLock, unit.id)


def may_override(scope: Scope, unit: Unit) -> bool:
    """Tell whether the person is an admin of a subtree holding `unit` (may change closed periods)."""
    return any(is_within(unit.path, a.unit.path) for a in scope.person.assignments if a.role == Role.ADMIN)


async def ensure_open(session: AsyncSession, unit: Unit, decided_on: date, scope: Scope | None) -> Closed | None:
    """Raise PeriodClosed if `decided_on` is closed for `unit` and the person may not override.

    Returns the lock an admin overrides (the caller then requires a reason), or None when open.
    `scope` None is the command line, which the operator runs: it may override like an admin."""
    closed = await closed_for(session, unit)
    if closed is None or decided_on > closed.until:
        return None
    if scope is None or may_override(scope, unit):
        return closed
    raise PeriodClosed(closed)


async def set_lock(session: AsyncSession, unit: Unit, until: date, person_id: int | None, now: datetime) -> date | None:
    """Close `unit`'s books up to `until`; return the day it was closed up to before (None: open)."""
    lock = await session.get(UnitLock, unit.id)
    before = lock.closed_until if lock is not None else None
    if lock is None:
        session.add(UnitLock(unit_id=unit.id, closed_until=until, set_by_id=person_id, set_at=now))
    else:
        lock.closed_until, lock.set_by_id, lock.set_at = until, person_id, now
    await session.flush()
    return before


async def remove_lock(session: AsyncSession, unit: Unit) -> date | None:
    """Open `unit`'s books again; return the day they were closed up to (None: they were open)."""
    lock = await session.get(UnitLock, unit.id)
    if lock is None:
        return None
    before = lock.closed_until
    await session.delete(lock)
    await session.flush()
    return before
