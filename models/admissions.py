"""Recording, finding and withdrawing admissions."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import Action, record
from models.entities import Admission, AdmissionSource, AuditChannel, Person, Sex, Unit
from models.locks import PeriodClosed, ensure_open
from models.people import Scope
from models.values import is_minority, name_key


@dataclass(frozen=True)
class AdmissionDraft:
    """The answers of one report, before it is saved."""

    unit_id: int
    full_name: str
    birth_year: int
    sex: Sex
    admitted_on: date
    ethnicity: str | None = None
    decision_no: str | None = None
    youth_union: bool | None = None


SUBJECT = "admission"  # the audit trail's name for an admission
def person_key(full_name: str, birth_year: int) -> str:
    """Return what identifies a person for duplicates: the name without diacritics and the birth year
    (stored only as its HMAC: models.base.NameKey)."""
    return folded_person_key(name_key(full_name), birth_year)


def folded_person_key(folded_name: str, birth_year: int) -> str:
    """Return person_key from a name already folded (models.values.name_key)."""
    return f"{folded_name}\x1f{int(birth_year)}"


class NotAllowed(Exception):
    """The person may not do this for that unit."""


async def likely_duplicates(session: AsyncSession, full_name: str, birth_year: int) -> list[Admission]:
    """Return counted admissions anywhere with the same name (diacritics aside) and birth year (by HMAC)."""
    rows = await session.scalars(
        select(Admission)
        .where(
            Admission.name_key == person_key(full_name, birth_year),
            Admission.birth_year == birth_year,
            Admission.withdrawn_at.is_(None),
        )
        .order_by(Admission.admitted_on)
    )
    return list(rows)


async def record_admission(
    session: AsyncSession, draft: AdmissionDraft, person: Person, now: datetime, report_ref: str
) -> tuple[Admission, bool]:
    """Save a chat report; returns (admission, created). A repeated `report_ref` returns the saved one."""
    existing = await session.scalar(select(Admission).where(Admission.report_ref == report_ref))
    if existing is not None:
        return existing, False
    unit = await session.get(Unit, draft.unit_id)
    if unit is None or not Scope(person).may_report_for(unit):
        raise NotAllowed(draft.unit_id)
    admission = new_admission(unit, draft, AdmissionSource.CHAT, now, reported_by_id=person.id, report_ref=report_ref)
    try:
        async with session.begin_nested():
            session.add(admission)
    except IntegrityError:
        existing = await session.scalar(select(Admission).where(Admission.report_ref == report_ref))
        if existing is None:
            raise
        return existing, False
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.CREATE, subject=SUBJECT, person=person,
           subject_id=admission.id, unit=unit)
    return admission, True


async def saved_report(session: AsyncSession, report_ref: str, person: Person) -> Admission | None:
    """Return the admission this person saved with this card (its idempotency key), or None."""
    return await session.scalar(
        select(Admission).where(Admission.report_ref == report_ref, Admission.reported_by_id == person.id))


def new_admission(
    unit: Unit, draft: AdmissionDraft, source: AdmissionSource, now: datetime,
    *, reported_by_id: int | None = None, report_ref: str | None = None,
) -> Admission:
    """Return an Admission of `unit` made of the draft's answers (not yet added to a session)."""
    return Admission(
        unit_id=unit.id,
        unit_path=unit.path,
        full_name=draft.full_name,
        name_key=person_key(draft.full_name, draft.birth_year),
        birth_year=draft.birth_year,
        sex=draft.sex,
        ethnicity=draft.ethnicity,
        minority=is_minority(draft.ethnicity),
        youth_union=draft.youth_union,
        decision_no=draft.decision_no,
        admitted_on=draft.admitted_on,
        source=source,
        reported_by_id=reported_by_id,
        reported_at=now,
        report_ref=report_ref,
    )


def imported_admission(unit: Unit, draft: AdmissionDraft, now: datetime) -> Admission:
    """Return an Admission for history loaded from a file (never counts as a weekly report)."""
    return new_admission(unit, draft, AdmissionSource.IMPORT, now)


class UndoOutcome(enum.StrEnum):
    """What /undo found, or what its ✅ did (each a catalog key of undo.toml)."""

    WITHDRAWN = "withdrawn"
    NOTHING = "nothing"
    TOO_LATE = "too_late"
    ALREADY = "already"
    NOT_ALLOWED = "not_allowed"
    CLOSED = "closed"


async def latest_report(session: AsyncSession, person: Person) -> Admission | None:
    """Return the person's own most recent counted chat report, or None."""
    return await session.scalar(
        select(Admission)
        .where(Admission.reported_by_id == person.id, Admission.withdrawn_at.is_(None))
        .order_by(Admission.reported_at.desc(), Admission.id.desc())
        .limit(1)
    )


async def withdraw_report(
    session: AsyncSession, person: Person, admission_id: int, now: datetime, window: timedelta
) -> tuple[UndoOutcome, Admission | None]:
    """Withdraw this admission if it is the person's own report, for a unit they still report for,
    younger than `window`, not in a closed period (below admin) and not withdrawn yet; checked and
    done in the caller's transaction, with its audit entry.

    The UPDATE repeats "not withdrawn" in its WHERE, so of two concurrent ✅ only one withdraws.
    NOT_ALLOWED comes without the admission: its name is not the person's to see. CLOSED: the
    caller reads the lock with models.locks.closed_for."""
    admission = await session.get(Admission, admission_id)
    if admission is None or admission.reported_by_id != person.id:
        return UndoOutcome.NOT_ALLOWED, None
    unit = await session.get(Unit, admission.unit_id)
    if unit is None or not Scope(person).may_report_for(unit):
        return UndoOutcome.NOT_ALLOWED, None
    if admission.withdrawn_at is not None:
        return UndoOutcome.ALREADY, admission
    if now - admission.reported_at > window:
        return UndoOutcome.TOO_LATE, admission
    try:
        await ensure_open(session, unit, admission.admitted_on, Scope(person))
    except PeriodClosed:
        return UndoOutcome.CLOSED, admission
    result = await session.execute(
        update(Admission)
        .where(Admission.id == admission_id, Admission.withdrawn_at.is_(None))
        .values(withdrawn_at=now, withdrawn_by_id=person.id)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return UndoOutcome.ALREADY, admission
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.WITHDRAW, subject=SUBJECT, person=person,
           subject_id=admission.id, unit=unit)  # /undo: within its window, no reason asked
    from models.candidates import release_decision  # candidates build on admissions, not the other way

    await release_decision(session, admission, person, now)
    return UndoOutcome.WITHDRAWN, admission
