"""The candidate pipeline of a cell (tạo nguồn → nghị quyết đảng ủy), before the admission decision.

Rules these functions keep (each raises CandidateError with a catalog key, changes nothing then):
- stages only move forward (Stage order, models.entities.STAGES), each with a day no earlier than the
  stage before it and not in the future;
- a candidate who left the pipeline (exit_reason set) neither advances nor leaves again; only one
  who went working away (đi làm ăn xa) comes back, at the stage they had reached;
- the decision is not a stage: `link_admission` ties the Admission the report saved to the
  candidate, once, and the candidate leaves the pipeline as admitted;
- writes need `Scope.may_report_for` (the cell's secretary, or an admin above it); reads `may_view`.
Query and command functions take an open session and never commit. Every change has its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core.collation import vietnamese_key
from models.admissions import person_key
from models.audit import Action, Change, record
from models.entities import (
    STAGES,
    Admission,
    AuditChannel,
    Candidate,
    CandidateStage,
    ExitReason,
    Person,
    Sex,
    Stage,
    Unit,
    UnitKind,
)
from models.people import Scope
from models.units import in_subtree
from models.values import fold, is_minority

SUBJECT = "candidate"


class CandidateError(ValueError):
    """A change the pipeline's rules refuse; args[0] is a catalog key (candidates.toml `error_…`)."""


@dataclass(frozen=True)
class CandidateDraft:
    """The answers about a new candidate, before they are saved."""

    full_name: str
    birth_year: int
    sex: Sex
    stage: Stage = Stage.NGUON
    reached_on: date | None = None  # None: today
    ethnicity: str | None = None
    youth_union: bool | None = None
    mentor_name: str | None = None


def next_stage(stage: Stage) -> Stage | None:
    """Return the stage after `stage`, or None after the last (then comes the decision)."""
    index = STAGES.index(stage)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None


def _check_day(day: date, today: date, after: date | None) -> None:
    if day > today:
        raise CandidateError("future_date")
    if after is not None and day < after:
        raise CandidateError("before_previous")


def _require(person: Person | None, unit: Unit) -> None:
    if person is not None and not Scope(person).may_report_for(unit):
        raise CandidateError("not_allowed")


def new_candidate(unit: Unit, draft: CandidateDraft, person: Person | None, now: datetime, today: date) -> Candidate:
    """Return a Candidate of `unit` at the draft's stage with its first history line (not yet added)."""
    reached = draft.reached_on or today
    _check_day(reached, today, None)
    candidate = Candidate(
        unit_id=unit.id, unit_path=unit.path, full_name=draft.full_name,
        name_key=person_key(draft.full_name, draft.birth_year),
        birth_year=draft.birth_year, sex=draft.sex, ethnicity=draft.ethnicity, minority=is_minority(draft.ethnicity),
        youth_union=draft.youth_union, mentor_name=draft.mentor_name, stage=draft.stage,
        created_at=now, updated_at=now,
    )
    candidate.history = [CandidateStage(stage=draft.stage, reached_on=reached, recorded_at=now,
                                        recorded_by_id=person.id if person is not None else None)]
    return candidate


async def add_candidate(session: AsyncSession, unit: Unit, draft: CandidateDraft, person: Person | None,
                        now: datetime, today: date, channel: AuditChannel = AuditChannel.CHAT,
                        ref: str | None = None) -> Candidate:
    """Add a candidate to `unit`'s pipeline (person None: the command line).

    `ref` (the chat form's) makes the addition idempotent: a ✅ delivered again after a crash
    finds the candidate it added instead of adding a twin."""
    _require(person, unit)
    if ref is not None:
        done = await session.scalar(select(Candidate).where(Candidate.added_ref == ref))
        if done is not None:
            return done
    candidate = new_candidate(unit, draft, person, now, today)
    candidate.added_ref = ref
    session.add(candidate)
    await session.flush()
    record(session, at=now, channel=channel, action=Action.CREATE, subject=SUBJECT, person=person,
           subject_id=candidate.id, unit=unit, changes=[Change("stage", None, draft.stage.value)])
    return candidate


async def candidate_in_scope(session: AsyncSession, candidate_id: int, person: Person,
                             *, write: bool = False) -> Candidate | None:
    """Return the candidate if the person may see it (or change it, with `write`), else None."""
    candidate = await session.scalar(select(Candidate).options(selectinload(Candidate.history),
                                                               selectinload(Candidate.unit))
                                     .where(Candidate.id == candidate_id))
    if candidate is None:
        return None
    scope = Scope(person)
    allowed = scope.may_report_for(candidate.unit) if write else scope.may_view(candidate.unit)
    return candidate if allowed else None


def _last_day(candidate: Candidate) -> date | None:
    return max((h.reached_on for h in candidate.history), default=None)


async def advance(session: AsyncSession, candidate: Candidate, stage: Stage, reached_on: date, person: Person | None,
                  now: datetime, today: date) -> None:
    """Move the candidate forward to `stage`, reached on `reached_on`."""
    _require(person, candidate.unit)
    if candidate.exit_reason is not None or candidate.admission_id is not None:
        raise CandidateError("not_in_pipeline")
    if STAGES.index(stage) <= STAGES.index(candidate.stage):
        raise CandidateError("not_forward")
    _check_day(reached_on, today, _last_day(candidate))
    old = candidate.stage
    candidate.stage, candidate.updated_at = stage, now
    candidate.history.append(CandidateStage(stage=stage, reached_on=reached_on, recorded_at=now,
                                            recorded_by_id=person.id if person is not None else None))
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.CORRECT, subject=SUBJECT, person=person,
           subject_id=candidate.id, unit=candidate.unit, changes=[Change("stage", old.value, stage.value)])


async def set_mentor(session: AsyncSession, candidate: Candidate, mentor_name: str | None, person: Person | None,
                     now: datetime) -> None:
    """Assign (or change, or clear) the member helping a candidate still in the pipeline; audited without
    the names (the candidate's row holds the one that counts)."""
    _require(person, candidate.unit)
    if candidate.exit_reason is not None or candidate.admission_id is not None:
        raise CandidateError("not_in_pipeline")
    old = candidate.mentor_name
    candidate.mentor_name, candidate.updated_at = mentor_name, now
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.CORRECT, subject=SUBJECT, person=person,
           subject_id=candidate.id, unit=candidate.unit,
           changes=[Change("mentor", "set" if old else None, "set" if mentor_name else None)])


async def leave(session: AsyncSession, candidate: Candidate, reason: ExitReason, on: date, person: Person | None,
                now: datetime, today: date) -> None:
    """Take the candidate out of the pipeline for `reason` on `on`."""
    _require(person, candidate.unit)
    if candidate.exit_reason is not None or candidate.admission_id is not None:
        raise CandidateError("not_in_pipeline")
    _check_day(on, today, None)
    candidate.exit_reason, candidate.exited_on, candidate.updated_at = reason, on, now
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.CORRECT, subject=SUBJECT, person=person,
           subject_id=candidate.id, unit=candidate.unit, changes=[Change("exit_reason", None, reason.value)])


async def come_back(session: AsyncSession, candidate: Candidate, person: Person | None, now: datetime) -> None:
    """Bring back a candidate who went working away, at the stage they had reached."""
    _require(person, candidate.unit)
    if candidate.exit_reason != ExitReason.WORKING_AWAY:
        raise CandidateError("cannot_return")
    old = candidate.exit_reason.value
    candidate.exit_reason, candidate.exited_on, candidate.updated_at = None, None, now
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.CORRECT, subject=SUBJECT, person=person,
           subject_id=candidate.id, unit=candidate.unit, changes=[Change("exit_reason", old, None)])


async def link_admission(session: AsyncSession, candidate: Candidate, admission: Admission, person: Person | None,
                         now: datetime) -> None:
    """Tie the saved Admission (the decision) to the candidate: it leaves the pipeline as admitted."""
    _require(person, candidate.unit)
    if candidate.admission_id == admission.id:
        return  # the same ✅ again
    if candidate.admission_id is not None:
        raise CandidateError("already_admitted")
    if candidate.exit_reason is not None:
        raise CandidateError("not_in_pipeline")
    if admission.unit_id != candidate.unit_id:
        raise CandidateError("not_allowed")
    candidate.admission_id, candidate.updated_at = admission.id, now
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.CORRECT, subject=SUBJECT, person=person,
           subject_id=candidate.id, unit=candidate.unit, changes=[Change("admission_id", None, str(admission.id))])


async def link_candidate(session: AsyncSession, candidate_id: int, admission: Admission, person: Person,
                         now: datetime) -> None:
    """Link the admission a report saved to the candidate it was started from (handlers.report)."""
    candidate = await candidate_in_scope(session, candidate_id, person, write=True)
    if candidate is None:
        raise CandidateError("not_allowed")
    await link_admission(session, candidate, admission, person, now)


async def release_decision(session: AsyncSession, admission: Admission, person: Person | None,
                           now: datetime) -> None:
    """Put the candidate of a withdrawn decision back in the pipeline at the stage it had reached.

    Called wherever a report is withdrawn (/undo, a withdrawal from /reports), in that transaction:
    a decision that no longer stands must not hide its candidate or keep them from being decided again."""
    candidate = await session.scalar(
        select(Candidate).options(selectinload(Candidate.unit)).where(Candidate.admission_id == admission.id))
    if candidate is None:
        return
    candidate.admission_id, candidate.updated_at = None, now
    record(session, at=now, channel=AuditChannel.CHAT, action=Action.CORRECT, subject=SUBJECT, person=person,
           subject_id=candidate.id, unit=candidate.unit, changes=[Change("admission_id", str(admission.id), None)])


def in_pipeline():  # type: ignore[no-untyped-def]
    """Return the condition of candidates still in the pipeline (not left, not admitted)."""
    return Candidate.exit_reason.is_(None) & Candidate.admission_id.is_(None)


async def candidates_of(session: AsyncSession, unit: Unit, *, include_departed: bool = False) -> list[Candidate]:
    """Return the candidates of `unit` itself (a cell), by stage and name, with their history."""
    query = (select(Candidate).options(selectinload(Candidate.history))
             .where(Candidate.unit_id == unit.id, Candidate.admission_id.is_(None)))
    if not include_departed:
        query = query.where(Candidate.exit_reason.is_(None))
    rows = list(await session.scalars(query.order_by(Candidate.id)))  # names are sealed: ordered here
    return sorted(rows, key=lambda c: (c.exit_reason is not None, STAGES.index(c.stage), vietnamese_key(c.full_name)))


async def stage_counts(session: AsyncSession, unit: Unit) -> dict[Stage, int]:
    """Return how many candidates of `unit`'s subtree stand at each stage (in the pipeline only)."""
    rows = await session.execute(
        select(Candidate.stage, func.count()).where(in_subtree(Candidate.unit_path, unit.path), in_pipeline())
        .group_by(Candidate.stage))
    found = {Stage(stage): int(n) for stage, n in rows.all()}
    return {stage: found.get(stage, 0) for stage in STAGES}


async def stage_counts_by_unit(session: AsyncSession, unit: Unit) -> dict[int, dict[Stage, int]]:
    """Return per unit of `unit`'s subtree (by id) how many candidates stand at each stage."""
    rows = await session.execute(
        select(Candidate.unit_id, Candidate.stage, func.count())
        .where(in_subtree(Candidate.unit_path, unit.path), in_pipeline())
        .group_by(Candidate.unit_id, Candidate.stage))
    out: dict[int, dict[Stage, int]] = {}
    for unit_id, stage, n in rows.all():
        out.setdefault(unit_id, {s: 0 for s in STAGES})[Stage(stage)] = int(n)
    return out


async def cells_without_candidates(session: AsyncSession, unit: Unit) -> list[Unit]:
    """Return the cells of `unit`'s subtree with no candidate in the pipeline ("hết nguồn"), by name."""
    with_any = select(Candidate.unit_id).where(in_subtree(Candidate.unit_path, unit.path), in_pipeline())
    rows = await session.scalars(
        select(Unit).where(in_subtree(Unit.path, unit.path), Unit.kind == UnitKind.CELL, Unit.id.not_in(with_any))
        .order_by(Unit.name))
    return list(rows)


async def forget_departed(session: AsyncSession, today: date, after_days: int) -> int:
    """Delete the candidates who left the pipeline more than `after_days` days ago; return how many."""
    cutoff = today - timedelta(days=after_days)
    gone = (Candidate.exit_reason.is_not(None), Candidate.exited_on < cutoff)
    # Their history first, whether or not the connection enforces ON DELETE CASCADE.
    await session.execute(delete(CandidateStage).where(CandidateStage.candidate_id.in_(select(Candidate.id).where(*gone)))
                          .execution_options(synchronize_session=False))
    result = await session.execute(delete(Candidate).where(*gone).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


# Stages as people type them (import files, the one-line /candidate): keys, Vietnamese words, English.
_STAGE_WORDS = {
    Stage.NGUON: ("nguon", "tao nguon", "source"),
    Stage.CAM_TINH: ("cam tinh", "cam tinh dang", "danh sach cam tinh", "candidate list"),
    Stage.LOP: ("lop", "hoc lop", "lop boi duong", "lop cam tinh", "class"),
    Stage.HO_SO: ("ho so", "don", "ly lich", "file"),
    Stage.THAM_TRA: ("tham tra", "tham tra ly lich", "background check", "checked"),
    Stage.CHI_BO: ("chi bo", "nghi quyet chi bo", "cell resolution"),
    Stage.DANG_UY: ("dang uy", "nghi quyet dang uy", "committee resolution"),
}
_STAGE_BY_WORD = {word: stage for stage, words in _STAGE_WORDS.items() for word in words}


def parse_stage(text: str) -> Stage:
    """Parse a stage: its key (`cam_tinh`) or its words with or without diacritics ("cảm tình")."""
    key = " ".join(fold((text or "").replace("_", " ")).split())
    if key in _STAGE_BY_WORD:
        return _STAGE_BY_WORD[key]
    raise ValueError("not_stage")
