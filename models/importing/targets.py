"""Importing targets: `unit_code,period,target` rows to a unit's target for a year or a term."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.calendar import TermStart
from models.entities import Target, Unit
from models.importing.csvfile import CHUNK_ROWS, OUTSIDE, ImportCounts, ImportPlan, _required, inside, read_table
from models.periods import Period
from models.units import normal_code

TARGET_COLUMNS = ("unit_code", "period", "target")
MAX_TARGET = 1_000_000


async def plan_targets(session: AsyncSession, data: str | bytes, term_start: TermStart,
                       within: Sequence[str] | None = None) -> ImportPlan:
    """Check `unit_code,period,target` and count what it would set; the same unit and period again updates.

    A period is a year (`2026`), a term by its years (`2025-2030`, from `term_start`: five years) or
    a term by its exact days (`2025-07-01..2030-06-30`); a term is known by its years, so giving
    other days for the same years updates them. With `within` (an admin's subtree paths) a unit
    outside them is a bad row, told the same way as a code no unit has.
    """
    table = read_table(data, TARGET_COLUMNS)
    problems = list(table.problems)
    units = await _units_by_code(session, {row.get("unit_code") for row in table.rows})
    parsed: dict[tuple[int, int, int], tuple[int, Period, int]] = {}
    for row in table.rows:
        code = _required(row, "unit_code", problems)
        unit = units.get(normal_code(code)) if code else None
        if code and (unit is None or not inside(unit.path, within)):
            problems.append((row.line, "unknown_unit" if within is None else OUTSIDE, code))
            unit = None
        period: Period | None = None
        text = _required(row, "period", problems)
        if text is not None:
            try:
                period = Period.parse(text, term_start)
            except ValueError as exc:
                problems.append((row.line, str(exc), text))
        value = _required(row, "target", problems)
        number: int | None = None
        if value is not None:
            if re.fullmatch(r"\d+", value) and int(value) <= MAX_TARGET:
                number = int(value)
            else:
                problems.append((row.line, "bad_target", value))
        if unit is None or period is None or number is None:
            continue
        key = (unit.id, period.start_year, period.end_year)
        if key in parsed:
            problems.append((row.line, "duplicate_row", str(parsed[key][0])))
            continue
        parsed[key] = (row.line, period, number)

    bad = {line for line, _, _ in problems}
    good = {key: value for key, value in parsed.items() if value[0] not in bad}
    stored = {
        (t.unit_id, t.start_year, t.end_year): t
        for t in await session.scalars(select(Target).where(Target.unit_id.in_(sorted({key[0] for key in good}))))
    }
    unchanged = sum(1 for key, (_, period, number) in good.items() if key in stored and (
        stored[key].value, stored[key].starts_on, stored[key].ends_on) == (number, period.first_day, period.last_day))
    created = sum(1 for key in good if key not in stored)

    async def write() -> ImportCounts:
        made = updated = 0
        for key, (_, period, number) in parsed.items():
            target = stored.get(key)
            if target is None:
                session.add(Target.of(key[0], period, number))
                made += 1
            else:
                target.value, target.starts_on, target.ends_on = number, period.first_day, period.last_day
                updated += 1
        await session.flush()
        return ImportCounts(total=len(parsed), created=made, updated=updated)

    codes = {u.code for u in units.values() if u.id in {key[0] for key in parsed}}
    return ImportPlan("targets", len(table.rows), created, len(good) - created - unchanged, unchanged,
                      problems, codes, write)


async def import_targets(session: AsyncSession, data: str | bytes, term_start: TermStart) -> ImportCounts:
    """Set targets from `unit_code,period,target` (see plan_targets)."""
    return await (await plan_targets(session, data, term_start)).apply()


async def _units_by_code(session: AsyncSession, typed: Iterable[str]) -> dict[str, Unit]:
    """Return the units of these codes (as typed) by their normalised code."""
    codes = sorted({normal_code(code) for code in typed if code})
    found: dict[str, Unit] = {}
    for start in range(0, len(codes), CHUNK_ROWS):
        part = codes[start:start + CHUNK_ROWS]
        found.update((u.code, u) for u in await session.scalars(select(Unit).where(Unit.code.in_(part))))
    return found
