"""Importing the unit tree: `code,name,parent_code,kind[,villages]` rows to units (create or update by code)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models.entities import Unit, UnitKind
from models.importing.csvfile import (
    CsvTable,
    ImportCounts,
    ImportProblems,
    Problem,
    _code,
    _code_text,
    _text,
    read_table,
)
from models.importing.members import UNIT_MEMBER_COLUMNS, member_problems, set_unit_members
from models.units import TreeError, UnitRow, load_units, stored_tree, tree_problems

UNIT_COLUMNS = ("code", "name", "parent_code", "kind")
UNIT_OPTIONAL = ("villages", *UNIT_MEMBER_COLUMNS)


@dataclass(frozen=True)
class _Place:
    """Where a row puts a unit in the tree (known even when other values of the row are bad)."""

    line: int
    code: str
    parent_code: str | None
    kind: UnitKind | None


def parse_units(table: CsvTable) -> tuple[list[UnitRow], list[_Place], list[Problem]]:
    """Return the rows that parse as units, where every row with a code sits, and the problems."""
    problems = list(table.problems)
    rows: list[UnitRow] = []
    places: list[_Place] = []
    kinds = {kind.value: kind for kind in UnitKind}
    for row in table.rows:
        before = len(problems)
        code = _code(row, "code", problems)
        name = _text(row.line, "name", row.get("name"), problems)
        parent = None
        if row.get("parent_code"):
            parent = _code_text(row.line, "parent_code", row.get("parent_code"), problems)
        kind = kinds.get(row.get("kind").lower())
        if kind is None:
            problems.append((row.line, "bad_kind", row.get("kind")))
        parts = [part.strip() for part in row.get("villages").split(";")]
        villages = tuple(dict.fromkeys(
            v for v in (_text(row.line, "villages", part, problems) for part in parts if part) if v
        ))
        if code is not None and (parent is not None or not row.get("parent_code")):
            places.append(_Place(row.line, code, parent, kind))
        if len(problems) == before and code is not None and kind is not None and name is not None:
            rows.append(UnitRow(row.line, code, name, parent, kind, villages))
    return rows, places, problems


async def import_units(session: AsyncSession, data: str | bytes, today: date | None = None) -> ImportCounts:
    """Create or update units by code from `code,name,parent_code,kind[,villages]`.

    Villages are separated by ";" (a combined cell has several); without a `villages` column the
    villages already stored are kept. A changed parent moves the unit with its admissions. The
    tree's rules (models.units.tree_problems) are checked with the other problems of each row.
    Optional `members_full,members_probationary` set the units' membership as of `today`.
    """
    table = read_table(data, UNIT_COLUMNS, UNIT_OPTIONAL)
    rows, places, problems = parse_units(table)
    existing = {u.code: u for u in await session.scalars(select(Unit).options(selectinload(Unit.villages)))}
    problems += tree_problems(places, stored_tree(existing.values())) + member_problems(table)
    if problems:
        raise ImportProblems(problems)
    if "villages" not in table.columns:
        rows = [_keep_villages(row, existing.get(row.code)) for row in rows]
    try:
        created, updated = await load_units(session, rows)
    except TreeError as exc:  # not expected: the same rules were checked above
        raise ImportProblems(exc.problems) from None
    await set_unit_members(session, table, today)
    return ImportCounts(total=len(rows), created=created, updated=updated)


def _keep_villages(row: UnitRow, unit: Unit | None) -> UnitRow:
    if unit is None:
        return row
    names = tuple(v.name for v in unit.villages)
    return UnitRow(row.line, row.code, row.name, row.parent_code, row.kind, names)
