"""People, their roles and scopes, and single-use invite codes."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from models.audit import Action, Change, record
from models.entities import Assignment, AuditChannel, Invite, Person, Role, Unit
from models.units import is_within

INVITE_CODE_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


def hash_code(code: str) -> str:
    """Return the SHA-256 hex digest under which an invite code is stored."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def new_invite_code() -> str:
    """Return a fresh code of Telegram's deep-link alphabet (22 characters, ≈ 128 bits) that does not
    begin with "-": such a code would read as an option on a command line, and a spreadsheet cell
    holding it gets a "'" in front (reports.exports.as_text), which a copy would carry along."""
    while True:
        code = secrets.token_urlsafe(16)
        if not code.startswith("-"):
            return code


async def issue_invite(
    session: AsyncSession, unit: Unit, role: Role, now: datetime, days: int, *, created_by: Person | None = None,
    replaces: Assignment | None = None, note: str | None = None,
) -> tuple[Invite, str]:
    """Store a single-use invite for `role` at `unit`; return it and its code (only the code's hash is kept).

    `created_by` is who made it in the chat (None: the command line); `replaces` is the assignment
    that ends when the invite is used (a hand-over)."""
    code = new_invite_code()
    invite = Invite(code_hash=hash_code(code), unit_id=unit.id, role=role, created_at=now,
                    expires_at=now + timedelta(days=days), created_by_id=created_by.id if created_by else None,
                    replaces_id=replaces.id if replaces else None, note=note[:200] if note else None)
    session.add(invite)
    await session.flush()
    return invite, code


async def create_invite(session: AsyncSession, unit: Unit, role: Role, now: datetime, days: int) -> str:
    """Store a single-use invite for `role` at `unit` and return the code (only its hash is kept)."""
    return (await issue_invite(session, unit, role, now, days))[1]


class InviteRejected(Exception):
    """The code cannot be used; `reason` is one of unknown, used, expired."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


async def redeem_invite(
    session: AsyncSession, code: str, telegram_id: int, display_name: str, language: str, now: datetime
) -> tuple[Person, Assignment]:
    """Register the Telegram user with the invite's unit and role; the code is then used up."""
    if not INVITE_CODE_RE.match(code or ""):
        raise InviteRejected("unknown")
    invite = await session.scalar(
        select(Invite).where(Invite.code_hash == hash_code(code)).options(selectinload(Invite.unit)).with_for_update()
    )
    if invite is None:
        raise InviteRejected("unknown")
    if invite.used_at is not None:
        raise InviteRejected("used")
    if invite.expires_at <= now:
        raise InviteRejected("expired")
    person = await person_by_telegram_id(session, telegram_id)
    if person is None:
        person = Person(
            telegram_id=telegram_id, display_name=display_name[:128], language=language, registered_at=now, active=True
        )
        session.add(person)
        await session.flush()
        await session.refresh(person, ["assignments"])
    # One row per (person, unit, role): a role held before and revoked is taken up again.
    assignment = await session.scalar(
        select(Assignment).where(Assignment.person_id == person.id, Assignment.unit_id == invite.unit_id,
                                 Assignment.role == invite.role).options(selectinload(Assignment.unit))
    )
    if assignment is None:
        assignment = Assignment(person_id=person.id, unit_id=invite.unit_id, role=invite.role, unit=invite.unit,
                                started_at=now)
        session.add(assignment)
    elif assignment.ended_at is not None:
        assignment.ended_at, assignment.started_at = None, now
    person.active, person.blocked_at = True, None
    invite.used_at, invite.used_by_id = now, person.id
    if invite.replaces_id is not None:
        await _end_replaced(session, invite, person, now)
    await session.flush()
    await session.refresh(person, ["assignments"])
    return person, assignment


async def _end_replaced(session: AsyncSession, invite: Invite, successor: Person, now: datetime) -> None:
    """End the role a hand-over invite replaces (unless its holder is the one redeeming it), with its audit entry."""
    old = await session.get(Assignment, invite.replaces_id, options=[selectinload(Assignment.unit)])
    if old is None or old.ended_at is not None or old.person_id == successor.id:
        return
    old.ended_at = now
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.HAND_OVER, subject="assignment",
           person=successor, subject_id=old.id, unit=old.unit,
           changes=[Change("ended_at", None, now.isoformat())], reason=None)


async def person_by_telegram_id(session: AsyncSession, telegram_id: int) -> Person | None:
    """Return the registered person with their assignments and units, or None."""
    result = await session.execute(
        select(Person)
        .where(Person.telegram_id == telegram_id)
        .options(joinedload(Person.assignments).joinedload(Assignment.unit))
    )
    return result.unique().scalar_one_or_none()


async def registered_people(session: AsyncSession) -> list[Person]:
    """Return everyone holding a role now, with their assignments and units (for their command menus)."""
    rows = await session.scalars(
        select(Person).where(Person.assignments.any()).options(selectinload(Person.assignments).selectinload(Assignment.unit)).order_by(Person.id)
    )
    return list(rows)


async def reactivate(session: AsyncSession, person_id: int) -> None:
    """Mark a person reachable again (they wrote to the bot after blocking it)."""
    person = await session.get(Person, person_id)
    if person is not None:
        person.active, person.blocked_at = True, None


@dataclass(frozen=True)
class Scope:
    """What a person may see and change, derived from their assignments."""

    person: Person

    def units(self, *roles: Role) -> list[Unit]:
        """Return the units the person holds any of `roles` for (all roles when none given)."""
        seen: dict[int, Unit] = {}
        for a in self.person.assignments:
            if not roles or a.role in roles:
                seen.setdefault(a.unit_id, a.unit)
        return sorted(seen.values(), key=lambda u: (u.path.count("/"), u.name))

    @property
    def roles(self) -> set[Role]:
        """Return the roles the person holds anywhere."""
        return {a.role for a in self.person.assignments}

    def reporting_cells(self) -> list[Unit]:
        """Return the cells the person reports for (secretary), or for which they may report (admin)."""
        return self.units(Role.SECRETARY)

    def may_report_for(self, unit: Unit) -> bool:
        """Tell whether the person may report admissions for `unit`."""
        if any(a.unit_id == unit.id for a in self.person.assignments if a.role == Role.SECRETARY):
            return True
        return any(is_within(unit.path, a.unit.path) for a in self.person.assignments if a.role == Role.ADMIN)

    def may_view(self, unit: Unit) -> bool:
        """Tell whether `unit` lies in the person's subtree (committee, admin) or is their cell."""
        return any(is_within(unit.path, a.unit.path) for a in self.person.assignments)

    def may_oversee(self, unit: Unit) -> bool:
        """Tell whether the person sees `unit` as a committee member or admin."""
        return any(
            is_within(unit.path, a.unit.path) for a in self.person.assignments if a.role in (Role.COMMITTEE, Role.ADMIN)
        )

    def may_export(self, unit: Unit) -> bool:
        """Tell whether the person may export `unit`'s subtree (as its committee member or admin)."""
        return self.may_oversee(unit)
