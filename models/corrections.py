"""Corrections and withdrawals of saved admissions, beyond a secretary's /undo, each with a reason.

Who may change a report: a committee member or admin of a subtree holding its cell; its secretary
(who reported it) within CORRECTION_WINDOW of the report. Below admin, nothing whose decision date
lies in a closed period (models.locks) changes, neither from nor to it; an admin may, with the
reason every correction needs anyway. A correction is one transaction: the Admission's columns
(with their derived copies: name_key, minority, unit_path) and its audit entry (a move to another
cell: one entry under each cell, so that both subtrees' trails show it).
Counting reads those columns, and the session's commit bumps the data revision, so /progress,
charts, exports and digests follow at once (models.revision, core.cache).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.admissions import SUBJECT, person_key
from models.audit import Action, Change, record, valid_reason
from models.candidates import release_decision
from models.entities import Admission, AuditChannel, Role, Sex, Unit, UnitKind
from models.locks import Closed, PeriodClosed, ensure_open
from models.people import Scope
from models.units import in_subtree, unit_by_id
from models.values import check_age_at_decision, is_minority

CORRECTION_WINDOW = timedelta(days=30)  # a secretary corrects their own report this long after sending it
PAGE_SIZE = 10
# The fields a correction may change, in the card's order, and the Admission column each one is.
FIELDS = ("name", "birth_year", "sex", "ethnicity", "date", "decision", "youth", "cell")
COLUMN_OF = {"name": "full_name", "birth_year": "birth_year", "sex": "sex", "ethnicity": "ethnicity",
             "date": "admitted_on", "decision": "decision_no", "youth": "youth_union", "cell": "unit"}


class Refusal(enum.StrEnum):
    """Why a report cannot be seen or changed by this person (each a catalog key of reports.toml)."""

    NOT_ALLOWED = "not_allowed"  # missing, or outside the person's scope: the same answer, nothing revealed
    READ_ONLY = "read_only"  # seen (a secretary's cell) but not theirs to change
    TOO_OLD = "too_old"
    WITHDRAWN = "withdrawn"
    CLOSED = "closed"
    BAD_REASON = "bad_reason"
    BAD_VALUE = "bad_value"
    UNCHANGED = "unchanged"


class Refused(Exception):
    """The change was refused; `closed` names the lock when the period is closed."""

    def __init__(self, refusal: Refusal, closed: Closed | None = None):
        super().__init__(refusal.value)
        self.refusal = refusal
        self.closed = closed


def _secretary_cells(scope: Scope) -> list[int]:
    return [unit.id for unit in scope.units(Role.SECRETARY)]


def may_see(scope: Scope, unit: Unit) -> bool:
    """Tell whether the person sees the reports of `unit`: overseen by them, or their own cell."""
    return scope.may_oversee(unit) or unit.id in _secretary_cells(scope)


def change_refusal(scope: Scope, admission: Admission, unit: Unit, now: datetime) -> Refusal | None:
    """Return why the person may not correct or withdraw this report (None: they may)."""
    if not may_see(scope, unit):
        return Refusal.NOT_ALLOWED
    if admission.withdrawn_at is not None:
        return Refusal.WITHDRAWN
    if scope.may_oversee(unit):
        return None
    if admission.reported_by_id != scope.person.id:
        return Refusal.READ_ONLY
    return None if now - admission.reported_at <= CORRECTION_WINDOW else Refusal.TOO_OLD


@dataclass(frozen=True)
class ReportPage:
    """One page of /reports: its admissions (with their units), the page number and the page count."""

    rows: list[tuple[Admission, Unit]]
    page: int
    pages: int
    total: int


async def reports_page(session: AsyncSession, scope: Scope, page: int, within: Unit | None = None) -> ReportPage:
    """Return a page of the counted reports the person sees (optionally only `within` a unit), newest first."""
    if within is not None:
        areas = [in_subtree(Admission.unit_path, within.path)] if scope.may_oversee(within) else (
            [Admission.unit_id == within.id] if within.id in _secretary_cells(scope) else [])
    else:
        areas = [in_subtree(Admission.unit_path, unit.path) for unit in scope.units(Role.COMMITTEE, Role.ADMIN)]
        cells = _secretary_cells(scope)
        if cells:
            areas.append(Admission.unit_id.in_(cells))
    if not areas:
        return ReportPage([], 0, 0, 0)
    where = (or_(*areas), Admission.withdrawn_at.is_(None))
    total = int(await session.scalar(select(func.count()).select_from(Admission).where(*where)) or 0)
    pages = -(-total // PAGE_SIZE)
    page = min(max(page, 0), max(pages - 1, 0))
    rows = (await session.execute(
        select(Admission, Unit).join(Unit, Unit.id == Admission.unit_id).where(*where)
        .order_by(Admission.reported_at.desc(), Admission.admitted_on.desc(), Admission.id.desc()).offset(page * PAGE_SIZE).limit(PAGE_SIZE)
    )).all()
    return ReportPage([(a, u) for a, u in rows], page, pages, total)


async def report_in_scope(session: AsyncSession, scope: Scope, admission_id: int) -> tuple[Admission, Unit] | None:
    """Return the report and its cell if the person sees it, else None (missing looks the same)."""
    admission = await session.get(Admission, admission_id)
    unit = await unit_by_id(session, admission.unit_id) if admission is not None else None
    if admission is None or unit is None or not may_see(scope, unit):
        return None
    return admission, unit


async def cells_to_move_to(session: AsyncSession, scope: Scope) -> list[Unit]:
    """Return the cells a report may be moved to by this person (their overseen subtrees' cells, or their own)."""
    overseen = scope.units(Role.COMMITTEE, Role.ADMIN)
    cells: dict[int, Unit] = {}
    if overseen:
        rows = await session.scalars(
            select(Unit).where(Unit.kind == UnitKind.CELL, or_(*(in_subtree(Unit.path, u.path) for u in overseen)))
            .order_by(Unit.name))
        cells.update((unit.id, unit) for unit in rows)
    for unit in scope.units(Role.SECRETARY):
        cells.setdefault(unit.id, unit)
    return sorted(cells.values(), key=lambda unit: unit.name)


def as_text(value: object) -> str | None:
    """Return a column's value as the audit trail keeps it (dates ISO, yes/no as true/false)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Unit):
        return value.code
    return str(value.value if isinstance(value, enum.Enum) else value)


async def _ensure_open(session: AsyncSession, scope: Scope, unit: Unit, on: date) -> Closed | None:
    """Raise Refused if `on` is closed for `unit` below admin; return the lock an admin overrides, or None."""
    try:
        return await ensure_open(session, unit, on, scope)
    except PeriodClosed as closed:
        raise Refused(Refusal.CLOSED, closed.closed) from None


async def changeable_report(session: AsyncSession, scope: Scope, admission_id: int,
                            now: datetime) -> tuple[Admission, Unit, Closed | None]:
    """Return the report, its cell and the lock an admin overrides (None: open) if the person may
    change it now, or raise Refused (scope, window, lock)."""
    found = await report_in_scope(session, scope, admission_id)
    if found is None:
        raise Refused(Refusal.NOT_ALLOWED)
    admission, unit = found
    refusal = change_refusal(scope, admission, unit, now)
    if refusal is not None:
        raise Refused(refusal)
    return admission, unit, await _ensure_open(session, scope, unit, admission.admitted_on)


async def _checked(session: AsyncSession, scope: Scope, admission_id: int, now: datetime,
                   reason: str | None) -> tuple[Admission, Unit, str]:
    """Return the report, its cell and the cleaned reason, or raise Refused (scope, window, lock, reason)."""
    admission, unit, _ = await changeable_report(session, scope, admission_id, now)
    cleaned = valid_reason(reason)
    if cleaned is None:
        raise Refused(Refusal.BAD_REASON)
    return admission, unit, cleaned


async def correct_report(session: AsyncSession, scope: Scope, admission_id: int, field: str, value: object,
                         reason: str | None, now: datetime) -> tuple[Admission, Change]:
    """Change one field of a report, with its audit entry, in the caller's transaction; or raise Refused.

    `value` is already parsed by the rules of /report (models.values): a str, int, Sex, date, bool,
    or for "cell" the new cell's id. Everything is checked again here: scope, window, the lock on
    the old and the new decision date and cell, the age at the decision, the reason."""
    if field not in COLUMN_OF:
        raise Refused(Refusal.BAD_VALUE)
    admission, unit, cleaned = await _checked(session, scope, admission_id, now, reason)
    concerned = [unit]
    if field == "cell":
        target = await unit_by_id(session, int(value))  # type: ignore[call-overload]
        if target is None or target.id not in {cell.id for cell in await cells_to_move_to(session, scope)}:
            raise Refused(Refusal.NOT_ALLOWED)
        if target.id == unit.id:
            raise Refused(Refusal.UNCHANGED)
        await _ensure_open(session, scope, target, admission.admitted_on)
        change = Change("unit", unit.code, target.code)
        admission.unit_id, admission.unit_path = target.id, target.path
        concerned = [unit, target]  # both cells' subtrees see the move in their audit trail
    else:
        column = COLUMN_OF[field]
        if field == "sex":
            value = Sex(value)
        old = getattr(admission, column)
        if old == value:
            raise Refused(Refusal.UNCHANGED)
        try:
            if field == "birth_year":
                check_age_at_decision(int(value), admission.admitted_on)  # type: ignore[call-overload]
            if field == "date":
                assert isinstance(value, date)
                check_age_at_decision(admission.birth_year, value)
                await _ensure_open(session, scope, unit, value)
        except ValueError:
            raise Refused(Refusal.BAD_VALUE) from None
        change = Change(column, as_text(old), as_text(value))
        setattr(admission, column, value)
        if field in ("name", "birth_year"):  # the "same person" key covers both (models.admissions.person_key)
            admission.name_key = person_key(admission.full_name, admission.birth_year)
        if field == "ethnicity":
            admission.minority = is_minority(value)  # type: ignore[arg-type]
    for each in concerned:
        record(session, at=now, channel=AuditChannel.CHAT, action=Action.CORRECT, subject=SUBJECT,
               person=scope.person, subject_id=admission.id, unit=each, changes=[change], reason=cleaned)
    await session.flush()
    return admission, change


async def withdraw_with_reason(session: AsyncSession, scope: Scope, admission_id: int, reason: str | None,
                               now: datetime) -> Admission:
    """Withdraw a report (it stays, no longer counted), with its audit entry; or raise Refused."""
    admission, unit, cleaned = await _checked(session, scope, admission_id, now, reason)
    admission.withdrawn_at, admission.withdrawn_by_id = now, scope.person.id
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.WITHDRAW, subject=SUBJECT, person=scope.person,
           subject_id=admission.id, unit=unit, reason=cleaned)
    await release_decision(session, admission, scope.person, now)
    await session.flush()
    return admission
