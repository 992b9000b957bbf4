"""Progress arithmetic: periods, subtree roll-ups, withdrawn reports, rounding, missing targets."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from core.i18n import format_number, format_percent
from models.admissions import AdmissionDraft, imported_admission
from models.calendar import TermStart
from models.entities import Sex, Target, UnitKind
from models.progress import (
    Period,
    count_admitted,
    current_term,
    percent,
    progress_of,
    progress_report,
)
from models.units import TreeError, UnitRow, load_units, unit_by_code

NOW = datetime(2026, 7, 1, tzinfo=timezone.utc)

UNITS = [
    UnitRow(2, "D", "District", None, UnitKind.DISTRICT),
    UnitRow(3, "C1", "Commune 1", "D", UnitKind.COMMITTEE),
    UnitRow(4, "C2", "Commune 2", "D", UnitKind.COMMITTEE),
    UnitRow(5, "A", "Cell A", "C1", UnitKind.CELL),
    UnitRow(6, "B", "Cell B", "C1", UnitKind.CELL),
    UnitRow(7, "E", "Cell E", "C2", UnitKind.CELL),
]


async def admit(session, code: str, on: date, n: int = 1, withdrawn: bool = False) -> None:  # type: ignore[no-untyped-def]
    unit = await unit_by_code(session, code)
    for i in range(n):
        a = imported_admission(unit, AdmissionDraft(unit.id, f"Người {i}", 1990, Sex.MALE, on), NOW)
        if withdrawn:
            a.withdrawn_at = NOW
        session.add(a)
    await session.flush()


def test_seed_article_figures_round_the_vietnamese_way() -> None:
    assert percent(23, 90) == Decimal("25.6")
    assert percent(215, 400) == Decimal("53.8")  # 53.75 rounds half up
    assert format_percent(percent(215, 400)) == "53,8\u00a0%"
    assert format_number(2817) == "2.817"
    assert f"23/90 ({format_percent(percent(23, 90))})" == "23/90 (25,6\u00a0%)"


def test_zero_and_missing_targets_never_divide() -> None:
    assert percent(5, 0) is None and percent(5, None) is None
    assert format_percent(None) == "—"


JULY = TermStart(7, 1)  # the default [bot] term_start
TERM = Period.term(2025, 2030, JULY)


def test_periods_know_their_calendar() -> None:
    year = Period.parse("2026", JULY)
    assert (year.days, year.is_term, year.label()) == (365, False, "2026")
    assert Period.parse("2024", JULY).days == 366  # leap year
    term = Period.parse("2025-2030", JULY)
    # Five years from the congress, not six calendar years (1/1/2025–31/12/2030).
    assert term.is_term and term.first_day == date(2025, 7, 1) and term.last_day == date(2030, 6, 30)
    assert (term.days, term.months, term.label()) == (1826, 60, "2025-2030")
    assert Period.parse("2025-2030", TermStart(1, 1)).last_day == date(2029, 12, 31)
    exact = Period.parse("2025-09-15..2030-06-30", JULY)
    assert (exact.label(), exact.first_day, exact.last_day, exact.months) == ("2025-2030", date(2025, 9, 15),
                                                                              date(2030, 6, 30), 58)
    assert Period.parse("2026-01-01..2026-12-31", JULY) == year  # a whole calendar year is the annual plan
    assert term.month_ends()[0] == date(2025, 7, 31) and term.month_ends()[-1] == date(2030, 6, 30)
    assert exact.month_ends()[0] == date(2025, 9, 30) and len(exact.month_ends()) == 58
    assert term.elapsed_days(date(2025, 6, 30)) == 0 and term.elapsed_days(date(2025, 7, 1)) == 1
    assert term.elapsed_days(date(2030, 6, 30)) == term.days
    assert term.months_left(date(2030, 6, 30)) == 1 and term.months_left(date(2030, 7, 1)) == 0
    assert term.months_left(date(2025, 6, 30)) == 60 and term.months_left(date(2025, 7, 1)) == 60
    assert year.elapsed_days(date(2025, 12, 31)) == 0
    assert year.elapsed_days(date(2026, 1, 1)) == 1
    assert year.elapsed_days(date(2027, 3, 1)) == 365
    assert year.expected(90, date(2026, 7, 2)) == 45  # 183/365 of 90 = 45.1
    assert Period.year(2024).expected(90, date(2024, 2, 29)) == 15  # 60/366 of 90 = 14.75
    assert year.expected(None, date(2026, 7, 2)) is None
    for bad in ("26", "2030-2025", "abc", "2026-", "2020-2040", "2026-02-01..2026-12-31", "2030-07-01..2025-06-30",
                "2025-07-01..2030-02-30"):
        with pytest.raises(ValueError):
            Period.parse(bad, JULY)
    for bad_start in ("02-29", "13-01", "7-1", "07-32", ""):
        with pytest.raises(ValueError):
            TermStart.parse(bad_start)


async def test_subtree_roll_up_period_bounds_and_withdrawn(sessions) -> None:
    async with sessions.begin() as session:
        await load_units(session, UNITS)
        await admit(session, "A", date(2026, 1, 1), 2)
        await admit(session, "B", date(2026, 12, 31), 1)
        await admit(session, "B", date(2025, 12, 31), 4)  # previous year
        await admit(session, "B", date(2025, 6, 30), 2)  # the last day of the term before
        await admit(session, "E", date(2026, 6, 1), 3)
        await admit(session, "A", date(2026, 6, 1), 5, withdrawn=True)
        await admit(session, "C1", date(2026, 6, 1), 1)  # recorded at the committee itself
        d, c1, a = [await unit_by_code(session, c) for c in ("D", "C1", "A")]
        y = Period.year(2026)
        assert await count_admitted(session, d, y) == 7
        assert await count_admitted(session, c1, y) == 4
        assert await count_admitted(session, a, y) == 2
        assert await count_admitted(session, d, Period.term(2025, 2030, TermStart(1, 1))) == 13
        assert await count_admitted(session, d, TERM) == 11  # from 1/7/2025: not 30/6/2025
        # Grouped by child (the id after the unit's path; 0 for admissions at the unit itself).
        report = await progress_report(session, c1, y, date(2026, 7, 1))
        assert (report.main.admitted, report.direct) == (4, 1)
        assert {p.unit.code: p.admitted for p in report.children} == {"A": 2, "B": 1}
        whole = await progress_report(session, d, y, date(2026, 7, 1))
        assert (whole.main.admitted, whole.direct) == (7, 0)
        assert {p.unit.code: p.admitted for p in whole.children} == {"C1": 4, "C2": 3}


async def test_targets_children_order_and_current_term(sessions) -> None:
    async with sessions.begin() as session:
        await load_units(session, UNITS)
        d, c1, c2 = [await unit_by_code(session, c) for c in ("D", "C1", "C2")]
        session.add_all([
            Target.of(d.id, Period.year(2026), 90),
            Target.of(d.id, TERM, 400),
            Target.of(c1.id, Period.year(2026), 10),
            Target.of(c2.id, Period.year(2026), 0),
        ])
        await admit(session, "A", date(2026, 2, 1), 6)
        today = date(2026, 7, 2)
        p = await progress_of(session, d, Period.year(2026), today)
        assert (p.admitted, p.target, p.expected, p.gap, p.behind, p.remaining) == (6, 90, 45, -39, True, 84)
        assert p.percent == Decimal("6.7")
        children = (await progress_report(session, d, Period.year(2026), today)).children
        assert [c.unit.code for c in children] == ["C1", "C2"]  # neither behind: by share of target
        c1p, c2p = children
        assert c1p.behind is False and c1p.gap == 1 and c2p.percent is None
        assert await current_term(session, c1, today) == TERM  # inherited from the district
        assert await current_term(session, d, date(2030, 6, 30)) == TERM  # its last day
        assert await current_term(session, d, date(2030, 7, 1)) is None  # not 31/12/2030: five years
        assert await current_term(session, d, date(2025, 6, 30)) is None  # still the term before


async def test_load_units_rejects_unknown_parent_and_cycle_and_moves_subtrees(sessions) -> None:
    async with sessions.begin() as session:
        await load_units(session, UNITS)
        await admit(session, "A", date(2026, 2, 1), 2)
    async with sessions.begin() as session:
        with pytest.raises(TreeError) as unknown:
            await load_units(session, [UnitRow(2, "X", "X", "NOPE", UnitKind.CELL)])
        assert unknown.value.problems[0][:2] == (2, "unknown_parent")
        with pytest.raises(TreeError) as cycle:
            await load_units(session, [UnitRow(2, "D", "District", "A", UnitKind.DISTRICT)])
        assert cycle.value.problems[0][1] == "cycle"
    async with sessions.begin() as session:
        created, updated = await load_units(session, [UnitRow(2, "C1", "Commune One", "C2", UnitKind.COMMITTEE)])
        assert (created, updated) == (0, 1)
    async with sessions() as session:
        c2 = await unit_by_code(session, "C2")
        assert await count_admitted(session, c2, Period.year(2026)) == 2
        a = await unit_by_code(session, "A")
        assert a.path.startswith(c2.path)
        # Cells per subtree follow the move (the weekly reporting rate's denominator).
        counts = {code: (await unit_by_code(session, code)).cell_count for code in ("D", "C1", "C2", "A")}
        assert counts == {"D": 3, "C1": 2, "C2": 3, "A": 1}
