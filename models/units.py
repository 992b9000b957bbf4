"""The unit tree: codes, lookups, subtrees, the tree's rules and loading the tree from rows.

Unit codes are case-insensitive: every code typed anywhere (a file, the command line, a test)
goes through `normal_code` — NFKC (so full-width "ＰＮ" is "PN"), trimmed, upper-case — and is
stored in that form. The tree's rules live in `tree_problems`, used by load_units and the importer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models.entities import Admission, Unit, UnitKind, Village


def subtree_range(path: str) -> tuple[str, str]:
    """Return [low, high) bounds of the paths in the subtree rooted at `path` ("/1/5/")."""
    return path, path[:-1] + "0"  # "0" sorts right after "/"


def in_subtree(column, path: str):  # type: ignore[no-untyped-def]
    """Return the SQL condition "column's path lies in the subtree at `path`" (an index range)."""
    low, high = subtree_range(path)
    return (column >= low) & (column < high)


def is_within(path: str, ancestor_path: str) -> bool:
    """Tell whether the unit at `path` is `ancestor_path` or below it."""
    return path.startswith(ancestor_path)


MAX_DEPTH = 10  # levels: province → district → commune → cell, and room for a few more

Problem = tuple[int, str, str]


def normal_code(text: str) -> str:
    """Return the stored form of a unit code as typed: NFKC, trimmed, upper-case ("ｐｎ " -> "PN").

    Codes are case-insensitive; this is the one place that says how. Migration 0007 applies the
    same rule to codes stored before it."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).strip().upper())


async def unit_by_code(session: AsyncSession, code: str) -> Unit | None:
    """Return the unit with this code (in any case or width), or None."""
    return await session.scalar(
        select(Unit).where(Unit.code == normal_code(code)).options(selectinload(Unit.villages))
    )


async def unit_by_id(session: AsyncSession, unit_id: int) -> Unit | None:
    """Return the unit with this id (villages loaded), or None."""
    return await session.get(Unit, unit_id, options=[selectinload(Unit.villages)])


async def children_of(session: AsyncSession, unit: Unit) -> list[Unit]:
    """Return the direct children of `unit`, by name."""
    rows = await session.scalars(
        select(Unit).where(Unit.parent_id == unit.id).order_by(Unit.name).options(selectinload(Unit.villages))
    )
    return list(rows)


@dataclass(frozen=True)
class UnitRow:
    """One unit as given in an import file (codes are normalised by load_units)."""

    line: int
    code: str
    name: str
    parent_code: str | None
    kind: UnitKind
    villages: tuple[str, ...] = ()


class TreeError(ValueError):
    """The rows would not make a tree; `problems` lists (line, reason, detail)."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"line {line}: {reason} {detail}".strip() for line, reason, detail in problems))
        self.problems = problems


class Placed(Protocol):
    """Where a row puts a unit: a UnitRow, or what the importer knows of a row that is otherwise bad."""

    @property
    def line(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def parent_code(self) -> str | None: ...
    @property
    def kind(self) -> UnitKind | None: ...


def stored_tree(units: Iterable[Unit]) -> dict[str, tuple[str | None, UnitKind]]:
    """Return code -> (parent code, kind) of stored units (the tree rows are checked against)."""
    units = list(units)
    code_of = {unit.id: unit.code for unit in units}
    return {unit.code: (code_of.get(unit.parent_id) if unit.parent_id else None, unit.kind) for unit in units}


def levels(parent_of: Mapping[str, str | None]) -> dict[str, int]:
    """Return each code's level (1 for a root) in a parent map; codes on a cycle or under an unknown
    parent are left out. Iterative: a long chain cannot exhaust the stack."""
    level: dict[str, int] = {}
    broken: set[str] = set()
    for start in parent_of:
        chain: list[str] = []
        on_chain: set[str] = set()
        code: str | None = start
        base = 0
        while code is not None and code not in level:
            if code in broken or code in on_chain or code not in parent_of:
                base = -1
                break
            chain.append(code)
            on_chain.add(code)
            code = parent_of[code]
        if base == 0 and code is not None:
            base = level[code]
        if base < 0:
            broken.update(chain)
            continue
        for i, member in enumerate(reversed(chain), start=1):
            level[member] = base + i
    return level


def tree_problems(rows: Iterable[Placed], stored: Mapping[str, tuple[str | None, UnitKind | None]]) -> list[Problem]:
    """Return what the rows would break in the stored tree, by line: a code given twice, an unknown
    parent, a cycle, a unit under a cell, a unit deeper than MAX_DEPTH levels. Codes are compared
    as given: normalise them (normal_code) first."""
    parent: dict[str, str | None] = {code: up for code, (up, _) in stored.items()}
    kind: dict[str, UnitKind | None] = {code: k for code, (_, k) in stored.items()}
    line_of: dict[str, int] = {}
    problems: list[Problem] = []
    for row in rows:
        if row.code in line_of:
            problems.append((row.line, "duplicate_code", row.code))
            continue
        line_of[row.code] = row.line
        parent[row.code] = row.parent_code
        kind[row.code] = row.kind or kind.get(row.code)
    for code, line in line_of.items():
        up = parent[code]
        if up is not None and up not in parent:
            problems.append((line, "unknown_parent", up))
            continue
        seen = {code}
        while up is not None and up not in seen:
            seen.add(up)
            up = parent.get(up)
        if up == code:
            problems.append((line, "cycle", code))
    for code, up in parent.items():
        if up is not None and up != code and kind.get(up) == UnitKind.CELL:
            line = line_of.get(code) or line_of.get(up)
            if line is not None:
                problems.append((line, "parent_is_cell", up))
    too_deep: dict[int, str] = {}
    for code, level in levels(parent).items():
        if level <= MAX_DEPTH:
            continue
        # Report the row itself, or the nearest row above a stored unit it pushed too deep.
        up: str | None = code
        while up is not None and up not in line_of:
            up = parent.get(up)
        if up is not None:
            too_deep.setdefault(line_of[up], code)
    problems.extend((line, "too_deep", code) for line, code in too_deep.items())
    return sorted(problems, key=lambda p: p[0])


def _normalised(row: UnitRow) -> UnitRow:
    code = normal_code(row.code)
    parent = normal_code(row.parent_code) if row.parent_code else None
    if code == row.code and parent == row.parent_code:
        return row
    return UnitRow(row.line, code, row.name, parent or None, row.kind, row.villages)


async def load_units(session: AsyncSession, rows: Sequence[UnitRow]) -> tuple[int, int]:
    """Create or update units by code; reject what tree_problems finds. Returns (created, updated).

    Codes are normalised (normal_code). Moves a unit (and its subtree and admissions) when its
    parent changes, and keeps every unit's cell_count. Raises TreeError and changes nothing when
    any row is unacceptable.
    """
    rows = [_normalised(row) for row in rows]
    existing = {u.code: u for u in await session.scalars(select(Unit).options(selectinload(Unit.villages)))}
    tree = stored_tree(existing.values())
    problems = tree_problems(rows, tree)
    if problems:
        raise TreeError(problems)
    parent_of: dict[str, str | None] = {code: up for code, (up, _) in tree.items()}
    parent_of.update((row.code, row.parent_code) for row in rows)

    created = updated = 0
    for row in rows:
        unit = existing.get(row.code)
        wanted = list(dict.fromkeys(v for v in row.villages if v))
        if unit is None:
            unit = Unit(code=row.code, name=row.name, kind=row.kind, path=f"/new-{row.code}/",
                        villages=[Village(name=name, position=i) for i, name in enumerate(wanted)])
            session.add(unit)
            existing[row.code] = unit
            created += 1
            continue
        unit.name, unit.kind = row.name, row.kind
        updated += 1
        if [v.name for v in unit.villages] != wanted:
            unit.villages.clear()
            await session.flush()  # old names go before new ones arrive (unique per unit)
            unit.villages.extend(Village(name=name, position=i) for i, name in enumerate(wanted))
    await session.flush()

    # Parents first, then paths top-down; moved subtrees carry their admissions along. A path ends
    # in the unit's own id, so no two units ever want the same path: one flush for them all.
    for row in rows:
        unit = existing[row.code]
        unit.parent_id = existing[row.parent_code].id if row.parent_code else None
    level = levels(parent_of)
    moved: list[Unit] = []
    for code in sorted(existing, key=level.__getitem__):
        unit = existing[code]
        parent_code = parent_of.get(code)
        want = (existing[parent_code].path if parent_code else "/") + f"{unit.id}/"
        if unit.path != want:
            if not unit.path.startswith("/new-"):
                moved.append(unit)
            unit.path = want
    await session.flush()
    for unit in moved:
        await session.execute(update(Admission).where(Admission.unit_id == unit.id).values(unit_path=unit.path))
    _count_cells(existing, parent_of)
    return created, updated


def _count_cells(units: dict[str, Unit], parent_of: Mapping[str, str | None]) -> None:
    """Set every unit's cell_count: the cells in its subtree (the tree is whole here)."""
    counts: dict[str, int] = dict.fromkeys(units, 0)
    for code, unit in units.items():
        if unit.kind == UnitKind.CELL:
            up: str | None = code
            while up is not None:
                counts[up] += 1
                up = parent_of.get(up)
    for code, unit in units.items():
        if unit.cell_count != counts[code]:
            unit.cell_count = counts[code]
