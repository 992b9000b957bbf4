"""Which deadlines of the admission process a cell's secretary is to be reminded of, and which were.

Per counted admission not yet recognised nor removed (models.workdays has the arithmetic):
- CEREMONY_SOON: no ceremony recorded and the ceremony is due within `ceremony_warn_working_days`
  working days (the due day itself included);
- CEREMONY_OVERDUE: no ceremony recorded and its due day has passed;
- PROBATION_ENDS: probation ends within `probation_warn_days` days (or has ended) and the
  recognition vote is not overdue yet;
- RECOGNITION_OVERDUE: probation has ended and the recognition vote's due day has passed.
Each is sent once per admission (DeadlineNotice, unique per admission and deadline): once
delivered it is never repeated, across restarts. An admission decided more than HISTORY_YEARS
ago is history: a file of old admissions loaded without ceremony dates must not read as hundreds
of overdue ceremonies. Query functions take an open session and never commit.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import Admission, DeadlineNotice
from models.units import in_subtree
from models.workdays import DeadlineRules, WorkCalendar, add_months, ceremony_due, probation_ends, recognition_due

DEADLINES = "deadlines"  # the sent-log kind of a run of deadline reminders alone
HISTORY_YEARS = 2


class Deadline(enum.StrEnum):
    """A deadline a secretary is reminded of (the DeadlineNotice.deadline key)."""

    CEREMONY_SOON = "ceremony_soon"
    CEREMONY_OVERDUE = "ceremony_overdue"
    PROBATION_ENDS = "probation_ends"
    RECOGNITION_OVERDUE = "recognition_overdue"


@dataclass(frozen=True)
class Warnings:
    """How early to warn."""

    ceremony_working_days: int = 5
    probation_days: int = 30


@dataclass(frozen=True)
class Notice:
    """One deadline to remind a cell's secretary of."""

    admission_id: int
    unit_id: int
    full_name: str
    deadline: Deadline
    due: date  # the day the ceremony / the recognition vote is due, or probation ends


def deadline_of(calendar: WorkCalendar, rules: DeadlineRules, warn: Warnings, today: date, admitted_on: date,
                ceremony_on: date | None) -> tuple[Deadline, date] | None:
    """Return the deadline an admission is to be reminded of today, with its day, or None (pure)."""
    if ceremony_on is None:
        due = ceremony_due(calendar, rules, admitted_on)
        if today > due:
            return Deadline.CEREMONY_OVERDUE, due
        if calendar.working_days_between(today, due) <= warn.ceremony_working_days:
            return Deadline.CEREMONY_SOON, due
        return None
    ends = probation_ends(rules, ceremony_on)
    vote_due = recognition_due(calendar, rules, ceremony_on)
    if today > vote_due:
        return Deadline.RECOGNITION_OVERDUE, vote_due
    if (ends - today).days <= warn.probation_days:
        return Deadline.PROBATION_ENDS, ends
    return None


async def pending_notices(session: AsyncSession, today: date, calendar: WorkCalendar, rules: DeadlineRules,
                          warn: Warnings, unit_path: str | None = None) -> list[Notice]:
    """Return the deadlines due for a reminder today that were not delivered before."""
    found = await due_deadlines(session, today, calendar, rules, warn, unit_path)
    if not found:
        return []
    sent = set((await session.execute(
        select(DeadlineNotice.admission_id, DeadlineNotice.deadline)
        .where(DeadlineNotice.admission_id.in_([n.admission_id for n in found])))).all())
    return [n for n in found if (n.admission_id, n.deadline.value) not in sent]


async def due_deadlines(session: AsyncSession, today: date, calendar: WorkCalendar, rules: DeadlineRules,
                        warn: Warnings, unit_path: str | None = None) -> list[Notice]:
    """Return every deadline standing today (optionally in one subtree), delivered or not."""
    oldest = add_months(today, -12 * HISTORY_YEARS)
    query = (select(Admission.id, Admission.unit_id, Admission.full_name, Admission.admitted_on, Admission.ceremony_on)
             .where(Admission.withdrawn_at.is_(None), Admission.recognized_on.is_(None),
                    Admission.removed_on.is_(None), Admission.admitted_on >= oldest, Admission.admitted_on <= today)
             .order_by(Admission.admitted_on, Admission.id))
    if unit_path is not None:
        query = query.where(in_subtree(Admission.unit_path, unit_path))
    out = []
    for admission_id, unit_id, full_name, admitted_on, ceremony_on in (await session.execute(query)).all():
        found = deadline_of(calendar, rules, warn, today, admitted_on, ceremony_on)
        if found is not None:
            out.append(Notice(admission_id, unit_id, full_name, found[0], found[1]))
    return out


async def mark_notified(session: AsyncSession, notices: Iterable[Notice], now: datetime) -> None:
    """Record these deadlines as delivered (a repeat of one already recorded is ignored)."""
    for notice in notices:
        try:
            async with session.begin_nested():
                session.add(DeadlineNotice(admission_id=notice.admission_id, deadline=notice.deadline.value,
                                           sent_at=now))
        except IntegrityError:
            pass
