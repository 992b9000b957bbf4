"""Importing a cell's candidates: `unit_code,full_name,birth_year,gender,stage,stage_date[,ethnicity,mentor]`.

All or nothing like the other imports (models.importing): every bad row is named with its line
before anything is written. Each row is a candidate of a cell at a stage reached on a day (its
first history line). The same person (unit, name without diacritics, birth year) twice in the
file is a problem; one already stored for that cell — still in the pipeline, admitted since, or
gone (working away, withdrew) — is skipped, so a file imported again adds nobody twice.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.admissions import person_key
from models.candidates import CandidateDraft, new_candidate, parse_stage
from models.crypto import keys_of
from models.entities import Candidate, UnitKind
from models.importing.csvfile import ImportCounts, ImportProblems, Problem, _required, read_table
from models.importing.targets import _units_by_code
from models.units import normal_code
from models.values import clean_name, parse_birth_year, parse_date, parse_ethnicity, parse_sex

CANDIDATE_COLUMNS = ("unit_code", "full_name", "birth_year", "gender", "stage", "stage_date")
CANDIDATE_OPTIONAL = ("ethnicity", "mentor")


def _parsed(problems: list[Problem], line: int, parse, text: str | None, *context, prefix: str = ""):  # type: ignore[no-untyped-def]
    if text is None:
        return None
    try:
        return parse(text, *context)
    except ValueError as exc:
        problems.append((line, f"{prefix}{exc}", text))
        return None


async def import_candidates(session: AsyncSession, data: str | bytes, today: date, now: datetime) -> ImportCounts:
    """Add the candidates of the file to their cells' pipelines (see the module's note)."""
    table = read_table(data, CANDIDATE_COLUMNS, CANDIDATE_OPTIONAL)
    problems = list(table.problems)
    units = await _units_by_code(session, {row.get("unit_code") for row in table.rows})
    seen: dict[tuple[int, str, int], int] = {}
    ready = []
    for row in table.rows:
        before, line = len(problems), row.line
        code = _required(row, "unit_code", problems)
        unit = units.get(normal_code(code)) if code else None
        if code and unit is None:
            problems.append((line, "unknown_unit", code))
        elif unit is not None and unit.kind != UnitKind.CELL:
            problems.append((line, "not_a_cell", code))
        name = _parsed(problems, line, clean_name, _required(row, "full_name", problems), prefix="name_")
        year = _parsed(problems, line, parse_birth_year, _required(row, "birth_year", problems), today)
        sex = _parsed(problems, line, parse_sex, _required(row, "gender", problems))
        stage = _parsed(problems, line, parse_stage, _required(row, "stage", problems))
        reached = _parsed(problems, line, parse_date, _required(row, "stage_date", problems), today)
        ethnicity = _parsed(problems, line, parse_ethnicity, row.get("ethnicity") or None)
        mentor = _parsed(problems, line, clean_name, row.get("mentor") or None, prefix="name_")
        if len(problems) > before or unit is None:
            continue
        key = (unit.id, person_key(name, year), year)
        if key in seen:
            problems.append((line, "duplicate_row", str(seen[key])))
            continue
        seen[key] = line
        ready.append((key, unit, CandidateDraft(name, year, sex, stage, reached, ethnicity, None, mentor)))
    if problems:
        raise ImportProblems(problems)
    # Stored name keys are HMACs (models.base.NameKey): the file's keys are compared in the same form.
    hashed = {(key[0], keys_of(session.get_bind().dialect).name_key(key[1]), key[2]): key for key, _, _ in ready}
    stored = set(hashed.get(row) for row in (await session.execute(
        select(Candidate.unit_id, Candidate.name_key, Candidate.birth_year)
        .where(Candidate.unit_id.in_(sorted({key[0] for key, _, _ in ready}))))).all())
    created = 0
    for key, unit, draft in ready:
        if key not in stored:
            session.add(new_candidate(unit, draft, None, now, today))
            created += 1
    await session.flush()
    return ImportCounts(total=len(ready), created=created, skipped=len(ready) - created)
