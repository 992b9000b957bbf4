"""Recording, finding and withdrawing admissions."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import Admission, AdmissionSource, Person, Sex, Unit
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


class NotAllowed(Exception):
    """The person may not do this for that unit."""


async def likely_duplicates(session: AsyncSession, full_name: str, birth_year: int) -> list[Admission]:
    """Return counted admissions anywhere with the same name (diacritics aside) and birth year."""
    rows = await session.scalars(
        select(Admission)
        .where(
            Admission.name_key == name_key(full_name),
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
        name_key=name_key(draft.full_name),
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
    """What /undo found."""

    WITHDRAWN = "withdrawn"
    NOTHING = "nothing"
    TOO_LATE = "too_late"


async def withdraw_latest(
    session: AsyncSession, person: Person, now: datetime, window: timedelta
) -> tuple[UndoOutcome, Admission | None]:
    """Withdraw the person's own most recent counted report if it is younger than `window`."""
    latest = await session.scalar(
        select(Admission)
        .where(Admission.reported_by_id == person.id, Admission.withdrawn_at.is_(None))
        .order_by(Admission.reported_at.desc(), Admission.id.desc())
        .limit(1)
    )
    if latest is None:
        return UndoOutcome.NOTHING, None
    if now - latest.reported_at > window:
        return UndoOutcome.TOO_LATE, latest
    latest.withdrawn_at, latest.withdrawn_by_id = now, person.id
    await session.flush()
    return UndoOutcome.WITHDRAWN, latest
