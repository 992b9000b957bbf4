"""The audit trail: every creation, correction, withdrawal, import, export, lock and revocation.

Entries are only inserted, in the same transaction as the change they describe (so a change and
its entry commit or vanish together); the database refuses to update or delete them (triggers on
audit_entry, see models.entities). Query functions take a session and never commit.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import AuditChannel, AuditEntry, Person, Unit
from models.units import in_subtree

REASON_MIN, REASON_MAX = 3, 500  # characters of a correction's, withdrawal's or unlock's reason


class Action(enum.StrEnum):
    """What was done (the `action` column)."""

    CREATE = "create"
    CORRECT = "correct"
    WITHDRAW = "withdraw"
    IMPORT = "import"
    EXPORT = "export"
    INVITE = "invite"
    REVOKE = "revoke"
    HAND_OVER = "hand_over"
    LOCK = "lock"
    UNLOCK = "unlock"


@dataclass(frozen=True)
class Change:
    """One field's old and new value, as text (None: empty)."""

    field: str
    old: str | None
    new: str | None


def valid_reason(text: str | None) -> str | None:
    """Return the reason stripped if it is 3–500 characters long, else None."""
    reason = " ".join((text or "").split())
    return reason if REASON_MIN <= len(reason) <= REASON_MAX else None


def record(
    session: AsyncSession, *, at: datetime, channel: AuditChannel, action: Action, subject: str,
    person: Person | None = None, subject_id: int | None = None, unit: Unit | None = None,
    changes: Sequence[Change] = (), reason: str | None = None,
) -> list[AuditEntry]:
    """Add the audit entries of one act (one per changed field, or one when no field changed)."""
    rows = [Change(field="", old=None, new=None)] if not changes else list(changes)
    entries = [
        AuditEntry(
            at=at, person_id=person.id if person is not None else None, channel=channel, action=action.value,
            subject=subject, subject_id=subject_id, unit_id=unit.id if unit is not None else None,
            unit_path=unit.path if unit is not None else None, field=change.field or None,
            old_value=change.old, new_value=change.new, reason=reason,
        )
        for change in rows
    ]
    session.add_all(entries)
    return entries


async def entries_of_subject(session: AsyncSession, subject: str, subject_id: int) -> list[AuditEntry]:
    """Return the history of one thing (a report card's history), oldest first."""
    rows = await session.scalars(
        select(AuditEntry).where(AuditEntry.subject == subject, AuditEntry.subject_id == subject_id)
        .order_by(AuditEntry.at, AuditEntry.id)
    )
    return list(rows)


async def entries_within(
    session: AsyncSession, unit: Unit, since: datetime | None = None, until: datetime | None = None
) -> list[AuditEntry]:
    """Return the entries about `unit`'s subtree, oldest first, from `since` and before `until`."""
    query = select(AuditEntry).where(in_subtree(AuditEntry.unit_path, unit.path))
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return list(await session.scalars(query.order_by(AuditEntry.at, AuditEntry.id)))
