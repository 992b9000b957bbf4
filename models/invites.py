"""Invites made by admins (in the chat or in a batch from the command line), with their audit entries.

The code itself is made and stored by models.people.issue_invite (one hashing, expiry and
alphabet for the CLI's `invite`, the chat's /invite and hand-overs). A batch is all or nothing:
every row is checked before the first invite is stored; a bad row is named by its file line
(the header is line 1), with the problem keys of the imports (`cli.problem.<key>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import Action, Change, record
from models.entities import Assignment, AuditChannel, Person, Role, Unit
from models.importing import ImportProblems, read_table
from models.people import issue_invite
from models.units import normal_code, unit_by_code

BATCH_COLUMNS = ("unit_code", "role")
BATCH_OPTIONAL = ("note",)
MAX_NOTE = 200  # characters of a batch row's note (Invite.note)
MAX_BATCH = 5_000  # invites in one file: a district's cells many times over


@dataclass(frozen=True)
class IssuedInvite:
    """An invite just made: what it is for, its code (shown once, never stored) and when it expires."""

    unit: Unit
    role: Role
    code: str
    expires_at: datetime
    note: str | None = None


def parse_role(text: str) -> Role | None:
    """Return the role named `secretary`, `committee` or `admin` (any case), else None."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        return None


async def invite_to(
    session: AsyncSession, unit: Unit, role: Role, *, by: Person | None, now: datetime, days: int,
    channel: AuditChannel, replaces: Assignment | None = None, note: str | None = None,
) -> IssuedInvite:
    """Make an invite for `role` at `unit` and record who made it (a hand-over when `replaces` is given)."""
    invite, code = await issue_invite(session, unit, role, now, days, created_by=by, replaces=replaces, note=note)
    changes = [Change("role", None, role.value)]
    if replaces is not None:
        changes.append(Change("replaces", None, str(replaces.id)))
    record(session, at=now, channel=channel, action=Action.HAND_OVER if replaces is not None else Action.INVITE,
           subject="invite", person=by, subject_id=invite.id, unit=unit, changes=changes)
    return IssuedInvite(unit, role, code, invite.expires_at, invite.note)


@dataclass(frozen=True)
class InviteRequest:
    """One row of a batch file: where, which role, and an optional note (a name to hand it to)."""

    line: int
    unit: Unit
    role: Role
    note: str | None


async def read_batch(session: AsyncSession, data: bytes) -> list[InviteRequest]:
    """Return the rows of a `unit_code,role[,note]` file, or raise ImportProblems naming every bad line."""
    table = read_table(data, BATCH_COLUMNS, BATCH_OPTIONAL)
    problems = list(table.problems)
    units: dict[str, Unit | None] = {}
    requests: list[InviteRequest] = []
    for row in table.rows:
        code, role_text, note = row.get("unit_code"), row.get("role"), row.get("note") or None
        if not code:
            problems.append((row.line, "missing_value", "unit_code"))
        elif normal_code(code) not in units:
            units[normal_code(code)] = await unit_by_code(session, code)
        unit = units.get(normal_code(code)) if code else None
        if code and unit is None:
            problems.append((row.line, "unknown_unit", code))
        role = parse_role(role_text) if role_text else None
        if not role_text:
            problems.append((row.line, "missing_value", "role"))
        elif role is None:
            problems.append((row.line, "bad_role", role_text))
        if note is not None and len(note) > MAX_NOTE:
            problems.append((row.line, "too_long", note[:40]))
        if unit is not None and role is not None and (note is None or len(note) <= MAX_NOTE):
            requests.append(InviteRequest(row.line, unit, role, note))
    if not table.rows and not problems:
        problems.append((2, "no_rows", ""))
    if len(table.rows) > MAX_BATCH:
        problems.append((table.rows[MAX_BATCH].line, "too_many_rows", str(MAX_BATCH)))
    if problems:
        raise ImportProblems(problems)
    return requests


async def invite_batch(
    session: AsyncSession, requests: Sequence[InviteRequest], *, now: datetime, days: int
) -> list[IssuedInvite]:
    """Make one invite per request, in file order (the caller's one transaction keeps all or none)."""
    return [await invite_to(session, r.unit, r.role, by=None, now=now, days=days, channel=AuditChannel.CLI,
                            note=r.note) for r in requests]
