"""Locked periods (khóa sổ): a unit's subtree closed for admissions decided on or before a day.

A lock set on a unit covers every unit below it; a cell's books are closed up to the latest day
any lock on it or an ancestor names. Below admin nobody may report, correct, withdraw or import an
admission whose decision date is on or before that day; an admin of the subtree may, with a reason.
Weekly check-ins are not admissions and are never affected.

Books are closed only up to today (`lock_books` refuses a later day) and only forward: a lock is
moved to an earlier day (days reopened) only by removing it with a reason (`open_books`) and
locking again, so every reopened day has a reason in the audit trail.

Concurrency: a check that precedes a write (`ensure_open`) holds a KEY SHARE row lock on the
unit and its ancestors until its transaction ends, and `lock_books` / `open_books` take an UPDATE
row lock on the locked unit first; so on PostgreSQL a report and a lock of the same subtree
commit one after the other, and a report checked before a lock committed is not saved after it
unseen. SQLite needs nothing more: its writers already queue (BEGIN IMMEDIATE, models.db), and the
row-lock clauses are not rendered there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import Action, Change, record
from models.entities import AuditChannel, Person, Role, Unit, UnitLock
from models.people import Scope
from models.units import in_subtree, is_within

AUDIT_FIELD = "closed_until"
SUBJECT = "unit"


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


class LockRefused(Exception):
    """A lock cannot be set as asked; `reason` is one of future, earlier, same (locks.toml keys)."""

    def __init__(self, reason: str, current: date | None = None):
        super().__init__(reason)
        self.reason = reason
        self.current = current


def ancestor_ids(unit: Unit) -> list[int]:
    """Return the ids of the unit and its ancestors, read from its materialised path."""
    return [int(part) for part in unit.path.strip("/").split("/") if part]


async def closed_for(session: AsyncSession, unit: Unit, *, hold: bool = False) -> Closed | None:
    """Return the latest lock covering `unit` (set on it or an ancestor), or None.

    With `hold`, first take KEY SHARE row locks on the unit and its ancestors (see the module note)."""
    ids = ancestor_ids(unit)
    if hold:
        await session.execute(select(Unit.id).where(Unit.id.in_(ids)).with_for_update(read=True, key_share=True))
    row = (await session.execute(
        select(UnitLock, Unit).join(Unit, Unit.id == UnitLock.unit_id)
        .where(UnitLock.unit_id.in_(ids))
        .order_by(UnitLock.closed_until.desc()).limit(1)
    )).first()
    return Closed(until=row[0].closed_until, locked_unit=row[1]) if row is not None else None


async def lock_of(session: AsyncSession, unit: Unit) -> UnitLock | None:
    """Return the lock set on `unit` itself, or None."""
    return await session.get(UnitLock, unit.id)


async def locks_within(session: AsyncSession, unit: Unit) -> list[tuple[UnitLock, Unit]]:
    """Return the locks set on `unit` and the units below it, by the locked unit's path."""
    rows = await session.execute(
        select(UnitLock, Unit).join(Unit, Unit.id == UnitLock.unit_id)
        .where(in_subtree(Unit.path, unit.path)).order_by(Unit.path)
    )
    return [(lock, locked) for lock, locked in rows]


def may_override(scope: Scope, unit: Unit) -> bool:
    """Tell whether the person is an admin of a subtree holding `unit` (may change closed periods)."""
    return any(is_within(unit.path, a.unit.path) for a in scope.person.assignments if a.role == Role.ADMIN)


async def ensure_open(session: AsyncSession, unit: Unit, decided_on: date, scope: Scope | None, *,
                      hold: bool = True) -> Closed | None:
    """Raise PeriodClosed if `decided_on` is closed for `unit` and the person may not override.

    Returns the lock an admin overrides (the caller then requires a reason), or None when open.
    `scope` None is the command line, which the operator runs: it may override like an admin.
    Holds row locks until the transaction ends (module note) unless `hold` is False: a check made
    early, only to tell the person at once (the check before the write holds them)."""
    closed = await closed_for(session, unit, hold=hold)
    if closed is None or decided_on > closed.until:
        return None
    if scope is None or may_override(scope, unit):
        return closed
    raise PeriodClosed(closed)


async def _held(session: AsyncSession, unit: Unit) -> UnitLock | None:
    """Take the UPDATE row lock on `unit` (module note) and return its own lock, or None."""
    await session.execute(select(Unit.id).where(Unit.id == unit.id).with_for_update())
    return await session.get(UnitLock, unit.id, populate_existing=True)


async def set_lock(session: AsyncSession, unit: Unit, until: date, person_id: int | None, now: datetime) -> date | None:
    """Close `unit`'s books up to `until`; return the day it was closed up to before (None: open)."""
    lock = await _held(session, unit)
    before = lock.closed_until if lock is not None else None
    if lock is None:
        session.add(UnitLock(unit_id=unit.id, closed_until=until, set_by_id=person_id, set_at=now))
    else:
        lock.closed_until, lock.set_by_id, lock.set_at = until, person_id, now
    await session.flush()
    return before


async def remove_lock(session: AsyncSession, unit: Unit) -> date | None:
    """Open `unit`'s books again; return the day they were closed up to (None: they were open)."""
    lock = await _held(session, unit)
    if lock is None:
        return None
    before = lock.closed_until
    await session.delete(lock)
    await session.flush()
    return before


def refusal(current: date | None, until: date, today: date) -> LockRefused | None:
    """Return why `unit`'s own lock at `current` cannot become `until` today, or None."""
    if until > today:
        return LockRefused("future", current)
    if current is not None and until == current:
        return LockRefused("same", current)
    if current is not None and until < current:
        return LockRefused("earlier", current)
    return None


async def lock_books(session: AsyncSession, unit: Unit, until: date, *, person: Person | None, now: datetime,
                     today: date, channel: AuditChannel) -> date | None:
    """Close `unit`'s books up to `until` and record it in the audit trail, in the caller's transaction.

    Raises LockRefused (nothing changed) for a day after `today`, the day already locked, or an
    earlier one (that reopens days: open_books first, with a reason). Returns the previous day or None.
    `person` None is the command line."""
    current = await _held(session, unit)
    problem = refusal(current.closed_until if current else None, until, today)
    if problem is not None:
        raise problem
    before = await set_lock(session, unit, until, person.id if person else None, now)
    record(session, at=now, channel=channel, action=Action.LOCK, subject=SUBJECT, subject_id=unit.id, unit=unit,
           person=person, changes=[Change(AUDIT_FIELD, before.isoformat() if before else None, until.isoformat())])
    return before


async def open_books(session: AsyncSession, unit: Unit, *, person: Person | None, now: datetime, reason: str,
                     channel: AuditChannel) -> date | None:
    """Remove the lock set on `unit` itself, recording it with its reason; return the day it named
    (None: there was none, nothing recorded). A lock inherited from an ancestor stays."""
    before = await remove_lock(session, unit)
    if before is not None:
        record(session, at=now, channel=channel, action=Action.UNLOCK, subject=SUBJECT, subject_id=unit.id, unit=unit,
               person=person, changes=[Change(AUDIT_FIELD, before.isoformat(), None)], reason=reason)
    return before
