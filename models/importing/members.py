"""Importing membership counts: `unit_code,members_full,members_probationary,as_of` (models.membership).

Also the optional `members_full,members_probationary` columns of import-units (as of the day of
the import): `member_problems` checks them with the file's other problems, `set_unit_members`
stores them after the units are written.
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from models.importing.csvfile import CsvRow, CsvTable, ImportCounts, ImportProblems, Problem, _required, read_table
from models.importing.targets import _units_by_code
from models.membership import set_membership
from models.units import normal_code
from models.values import parse_date

MEMBER_COLUMNS = ("unit_code", "members_full", "members_probationary", "as_of")
UNIT_MEMBER_COLUMNS = ("members_full", "members_probationary")
MAX_MEMBERS = 10_000_000


def _count(row: CsvRow, column: str, problems: list[Problem], required: bool = True) -> int | None:
    value = _required(row, column, problems) if required else (row.get(column) or None)
    if value is None:
        return None
    if re.fullmatch(r"\d+", value.replace(".", "")) and int(value.replace(".", "")) <= MAX_MEMBERS:
        return int(value.replace(".", ""))  # 2.817 the Vietnamese way, or 2817
    problems.append((row.line, "bad_count", f"{column}: {value}"))
    return None


async def import_members(session: AsyncSession, data: str | bytes, today: date) -> ImportCounts:
    """Set units' membership counts as of a day; a later file for the same unit replaces them."""
    table = read_table(data, MEMBER_COLUMNS)
    problems = list(table.problems)
    units = await _units_by_code(session, {row.get("unit_code") for row in table.rows})
    seen: dict[int, int] = {}
    ready = []
    for row in table.rows:
        before = len(problems)
        code = _required(row, "unit_code", problems)
        unit = units.get(normal_code(code)) if code else None
        if code and unit is None:
            problems.append((row.line, "unknown_unit", code))
        full = _count(row, "members_full", problems)
        probationary = _count(row, "members_probationary", problems)
        as_of = None
        if (text := _required(row, "as_of", problems)) is not None:
            try:
                as_of = parse_date(text, today)
            except ValueError as exc:
                problems.append((row.line, str(exc), text))
        if len(problems) > before or unit is None:
            continue
        if unit.id in seen:
            problems.append((row.line, "duplicate_row", str(seen[unit.id])))
            continue
        seen[unit.id] = row.line
        ready.append((unit, full, probationary, as_of))
    if problems:
        raise ImportProblems(problems)
    for unit, full, probationary, as_of in ready:
        await set_membership(session, unit, full, probationary, as_of)
    return ImportCounts(total=len(ready), created=0, updated=len(ready))


def member_problems(table: CsvTable) -> list[Problem]:
    """Return the problems of a units file's optional membership columns (both or neither per row)."""
    problems: list[Problem] = []
    for row in table.rows:
        before = len(problems)
        counts = [_count(row, column, problems, required=False) for column in UNIT_MEMBER_COLUMNS]
        if (counts[0] is None) != (counts[1] is None) and len(problems) == before:
            problems.append((row.line, "missing_value", UNIT_MEMBER_COLUMNS[counts.index(None)]))
    return problems


async def set_unit_members(session: AsyncSession, table: CsvTable, today: date | None) -> None:
    """Store the membership columns of a units file (rows that give them), as of `today`."""
    if not set(UNIT_MEMBER_COLUMNS) & set(table.columns):
        return
    if today is None:
        raise ValueError("membership counts need the day they stand on")
    units = await _units_by_code(session, {row.get("code") for row in table.rows})
    for row in table.rows:
        if row.get("members_full") and row.get("members_probationary"):
            unit = units[normal_code(row.get("code"))]
            await set_membership(session, unit, int(row.get("members_full").replace(".", "")),
                                 int(row.get("members_probationary").replace(".", "")), today)
