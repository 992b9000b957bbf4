"""The optional `ceremony_on,recognized_on` columns of import-admissions (the dates after the decision).

Kept beside the bulk importer (models.importing.admissions) rather than in its tuned row loop:
the dates are checked first (no database), then the admissions go in as before, then the rows
that give dates set them on their admission — the one just inserted, or the one already stored
that the importer skipped (so importing the same file again with the dates filled in adds them).
Problems of both passes are raised together, and nothing is left written (the caller's transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from models.admissions import folded_person_key
from models.entities import Admission
from models.importing.admissions import ADMISSION_COLUMNS, ADMISSION_LATER, ADMISSION_OPTIONAL, plan_admissions
from models.importing.csvfile import CsvStream, ImportCounts, ImportPlan, Problem
from models.importing.targets import _units_by_code
from models.units import normal_code
from models.values import clean_name, name_key, parse_date

_Dated = tuple[str, str, int, date, date | None, date | None]  # code, name_key, birth year, decision, dates


def _day(problems: list[Problem], line: int, text: str, today: date) -> date | None:
    if not text:
        return None
    try:
        return parse_date(text, today)
    except ValueError as exc:
        problems.append((line, str(exc), text))
        return None


def _dated_rows(data: str | bytes, today: date) -> tuple[list[_Dated], list[Problem]]:
    """Return the rows that give a ceremony or recognition date (when the rest of the row reads), and problems."""
    stream = CsvStream(data, ADMISSION_COLUMNS, (*ADMISSION_OPTIONAL, *ADMISSION_LATER))
    if not set(ADMISSION_LATER) & set(stream.columns):
        return [], []
    problems: list[Problem] = []
    rows: list[_Dated] = []
    for row in stream:
        ceremony = _day(problems, row.line, row.get("ceremony_on"), today)
        recognized = _day(problems, row.line, row.get("recognized_on"), today)
        if ceremony is None and recognized is None:
            continue
        try:  # the importer itself names what is wrong with these; here they only find the admission
            admitted = parse_date(row.get("admitted_on"), today)
            key = (normal_code(row.get("unit_code")), name_key(clean_name(row.get("full_name"))),
                   int(row.get("birth_year")))
        except ValueError:
            continue
        if recognized is not None and ceremony is None:
            problems.append((row.line, "recognized_without_ceremony", row.get("recognized_on")))
        elif ceremony is not None and ceremony < admitted:
            problems.append((row.line, "ceremony_before_decision", row.get("ceremony_on")))
        elif recognized is not None and ceremony is not None and recognized <= ceremony:
            problems.append((row.line, "recognized_before_ceremony", row.get("recognized_on")))
        else:
            rows.append((*key, admitted, ceremony, recognized))
    return rows, problems


async def plan_admissions_with_dates(session: AsyncSession, data: str | bytes, today: date, now: datetime,
                                     within: Sequence[str] | None = None, *, keep_rows: bool = False) -> ImportPlan:
    """Return the admissions import's plan (models.importing.admissions.plan_admissions) with the
    problems of the dates after the decision added, and its write setting those dates after the rows."""
    dated, problems = _dated_rows(data, today)
    plan = await plan_admissions(session, data, today, now, within, keep_rows=keep_rows)
    plan.problems = sorted([*plan.problems, *problems], key=lambda p: p[0])
    write = plan.write
    if write is None or not dated:
        return plan

    async def write_with_dates() -> ImportCounts:
        counts = await write()
        await _set_dates(session, dated)
        return counts

    plan.write = write_with_dates
    return plan


async def import_admissions_with_dates(session: AsyncSession, data: str | bytes, today: date,
                                       now: datetime) -> ImportCounts:
    """Import admissions (models.importing.admissions) and the dates after the decision a file gives."""
    return await (await plan_admissions_with_dates(session, data, today, now)).apply()


async def _set_dates(session: AsyncSession, dated: list[_Dated]) -> None:
    """Set the ceremony and recognition days on the admissions the rows name (inserted or already stored)."""
    units = await _units_by_code(session, {code for code, *_ in dated})
    for code, key, year, admitted, ceremony, recognized in dated:
        await session.execute(
            update(Admission)
            .where(Admission.unit_id == units[code].id, Admission.name_key == folded_person_key(key, year),
                   Admission.birth_year == year, Admission.admitted_on == admitted, Admission.withdrawn_at.is_(None))
            .values(ceremony_on=ceremony, recognized_on=recognized)
            .execution_options(synchronize_session=False))
