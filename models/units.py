"""The unit tree: lookups, subtrees and loading the tree from rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


async def unit_by_code(session: AsyncSession, code: str) -> Unit | None:
    """Return the unit with this code, or None."""
    return await session.scalar(select(Unit).where(Unit.code == code).options(selectinload(Unit.villages)))


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
    """One unit as given in an import file."""

    line: int
    code: str
    name: str
    parent_code: str | None
    kind: UnitKind
    villages: tuple[str, ...] = ()


class TreeError(ValueError):
    """The rows would not make a tree; `problems` lists (line, reason, detail)."""

    def __init__(self, problems: list[tuple[int, str, str]]):
        super().__init__("; ".join(f"line {line}: {reason} {detail}".strip() for line, reason, detail in problems))
        self.problems = problems


async def load_units(session: AsyncSession, rows: Sequence[UnitRow]) -> tuple[int, int]:
    """Create or update units by code; reject unknown parents and cycles. Returns (created, updated).

    Moves a unit (and its subtree and admissions) when its parent changes. Raises TreeError and
    changes nothing when any row is unacceptable.
    """
    existing = {u.code: u for u in await session.scalars(select(Unit).options(selectinload(Unit.villages)))}
    parent_of: dict[str, str | None] = {code: None for code in existing}
    by_id = {u.id: u for u in existing.values()}
    for unit in existing.values():
        parent_of[unit.code] = by_id[unit.parent_id].code if unit.parent_id in by_id else None
    problems: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for row in rows:
        if row.code in seen:
            problems.append((row.line, "duplicate_code", row.code))
            continue
        seen[row.code] = row.line
        parent_of[row.code] = row.parent_code
    for row in rows:
        if row.parent_code and row.parent_code not in parent_of:
            problems.append((row.line, "unknown_parent", row.parent_code))
    if not problems:
        for row in rows:
            chain: set[str] = set()
            code: str | None = row.code
            while code is not None:
                if code in chain:
                    problems.append((row.line, "cycle", row.code))
                    break
                chain.add(code)
                code = parent_of.get(code)
    if problems:
        raise TreeError(problems)

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

    # Parents first, then paths top-down; moved subtrees carry their admissions along.
    for row in rows:
        unit = existing[row.code]
        unit.parent_id = existing[row.parent_code].id if row.parent_code else None
    await session.flush()
    ordered = _top_down(existing, parent_of)
    for code in ordered:
        unit = existing[code]
        parent_code = parent_of.get(code)
        want = (existing[parent_code].path if parent_code else "/") + f"{unit.id}/"
        if unit.path != want:
            old = unit.path
            unit.path = want
            await session.flush()
            if not old.startswith("/new-"):
                await session.execute(
                    update(Admission).where(Admission.unit_id == unit.id).values(unit_path=want)
                )
    _count_cells(existing, parent_of)
    return created, updated


def _count_cells(units: dict[str, Unit], parent_of: dict[str, str | None]) -> None:
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


def _top_down(units: dict[str, Unit], parent_of: dict[str, str | None]) -> list[str]:
    depth: dict[str, int] = {}

    def level(code: str) -> int:
        if code not in depth:
            parent = parent_of.get(code)
            depth[code] = 0 if parent is None else level(parent) + 1
        return depth[code]

    return sorted(units, key=level)
