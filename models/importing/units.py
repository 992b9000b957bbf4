"""Importing the unit tree: `code,name,parent_code,kind[,villages]` rows to units (create or update by code)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models.entities import Unit, UnitKind
from models.importing.csvfile import (
    OUTSIDE,
    CsvTable,
    ImportCounts,
    ImportPlan,
    ImportProblems,
    Problem,
    _code,
    _code_text,
    _text,
    inside,
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


async def plan_units(session: AsyncSession, data: str | bytes, within: Sequence[str] | None = None,
                     today: date | None = None) -> ImportPlan:
    """Check `code,name,parent_code,kind[,villages]` against the stored tree and count what it would do.

    Villages are separated by ";" (a combined cell has several); without a `villages` column the
    villages already stored are kept. A changed parent moves the unit with its admissions. The
    tree's rules (models.units.tree_problems) are checked with the other problems of each row.
    With `within` (an admin's subtree paths), a row is bad unless it changes a unit inside them or
    adds one under a unit inside them; moving a unit is allowed only to a parent inside them.
    Optional `members_full,members_probationary` set the units' membership as of `today`.
    """
    table = read_table(data, UNIT_COLUMNS, UNIT_OPTIONAL)
    rows, places, problems = parse_units(table)
    existing = {u.code: u for u in await session.scalars(select(Unit).options(selectinload(Unit.villages)))}
    tree = stored_tree(existing.values())
    found = tree_problems(places, tree) + member_problems(table)
    if within is not None:
        outside = _outside(places, existing, tree, within)
        lines = {line for line, _, _ in outside}
        # Nothing about units outside the subtree is told: not whether a code exists, nor its kind.
        found = [(line, OUTSIDE if key == "unknown_parent" else key, detail)
                 for line, key, detail in found if line not in lines] + outside
    problems += found
    if "villages" not in table.columns:
        rows = [_keep_villages(row, existing.get(row.code)) for row in rows]
    bad = {line for line, _, _ in problems}
    good = [row for row in rows if row.line not in bad]
    created = sum(1 for row in good if row.code not in existing)
    unchanged = sum(1 for row in good if row.code in existing and _same(row, existing[row.code], tree))

    async def write() -> ImportCounts:
        try:
            made, updated = await load_units(session, rows)
        except TreeError as exc:  # not expected: the same rules were checked above
            raise ImportProblems(exc.problems) from None
        await set_unit_members(session, table, today)
        return ImportCounts(total=len(rows), created=made, updated=updated)

    codes = {p.code for p in places} | {p.parent_code for p in places if p.parent_code}
    return ImportPlan("units", len(table.rows), created, len(good) - created - unchanged, unchanged,
                      problems, codes, write)


async def import_units(session: AsyncSession, data: str | bytes, today: date | None = None) -> ImportCounts:
    """Create or update units by code from `code,name,parent_code,kind[,villages,members_full,members_probationary]`
    (see plan_units)."""
    return await (await plan_units(session, data, today=today)).apply()


def _same(row: UnitRow, unit: Unit, tree: Mapping[str, tuple[str | None, UnitKind]]) -> bool:
    """Tell whether the row leaves the stored unit as it is (name, kind, parent, villages)."""
    return (row.name, row.kind, row.parent_code, list(dict.fromkeys(v for v in row.villages if v))) == (
        unit.name, unit.kind, tree[unit.code][0], [v.name for v in unit.villages])


def _outside(places: list[_Place], existing: Mapping[str, Unit], tree: Mapping[str, tuple[str | None, UnitKind]],
             within: Sequence[str]) -> list[Problem]:
    """Return the rows an admin of the subtrees `within` may not import, as OUTSIDE problems."""
    new = {p.code: p for p in places if p.code not in existing}
    tops = set(within)

    def acceptable(code: str | None, seen: frozenset[str] = frozenset()) -> bool:
        """Tell whether a unit may be a parent: stored inside, or new in the file under an acceptable one."""
        if code is None or code in seen:
            return False
        if code in existing:
            return inside(existing[code].path, within)
        place = new.get(code)
        return place is not None and acceptable(place.parent_code, seen | {code})

    problems: list[Problem] = []
    for place in places:
        unit = existing.get(place.code)
        if unit is None:
            ok = acceptable(place.parent_code)
        else:
            moved = place.parent_code != tree[place.code][0]
            ok = inside(unit.path, within) and not (moved and (unit.path in tops or not acceptable(place.parent_code)))
        if not ok:
            problems.append((place.line, OUTSIDE, place.code))
    return problems


def _keep_villages(row: UnitRow, unit: Unit | None) -> UnitRow:
    if unit is None:
        return row
    names = tuple(v.name for v in unit.villages)
    return UnitRow(row.line, row.code, row.name, row.parent_code, row.kind, names)
