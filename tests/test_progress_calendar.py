"""Progress that knows the calendar: forecast, needed per month, breakdowns, grouped roll-ups."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from models.admissions import AdmissionDraft, imported_admission
from models.calendar import TermStart
from models.entities import Sex, Target
from models.progress import (
    Period,
    Progress,
    admissions_in,
    count_admitted,
    monthly_admitted,
    progress_of,
    progress_report,
    subtree_progress,
)
from models.units import load_units, unit_by_code
from tests.test_progress_domain import UNITS  # the same small tree

NOW = datetime(2026, 7, 1, tzinfo=timezone.utc)


def progress(admitted: int, target: int | None, period: Period, today: date) -> Progress:
    return Progress(unit=None, period=period, admitted=admitted, target=target, as_of=today)  # type: ignore[arg-type]


def test_months_left_needed_per_month_and_forecast_in_a_year() -> None:
    year = Period.year(2026)
    assert year.months_left(date(2026, 7, 1)) == 6  # July to December
    assert year.months_left(date(2026, 12, 31)) == 1
    assert year.months_left(date(2027, 1, 1)) == 0
    assert year.months_left(date(2025, 6, 1)) == 12
    p = progress(40, 90, year, date(2026, 7, 1))  # day 182 of 365
    assert (p.remaining, p.months_left, p.needed_per_month) == (50, 6, 9)  # 50/6 = 8.3, rounded up
    assert p.forecast == 80  # 40 * 365/182 = 80.2
    assert p.forecast_percent == Decimal("88.9")
    reached = progress(95, 90, year, date(2026, 7, 1))
    assert (reached.remaining, reached.needed_per_month) == (0, 0)


def test_forecast_and_needed_at_boundaries_leap_years_and_terms() -> None:
    leap = Period.year(2024)
    first = progress(2, 60, leap, date(2024, 1, 1))
    assert first.forecast == 732 and first.needed_per_month == 5  # 2 * 366; 58/12 = 4.8 -> 5
    feb29 = progress(10, 60, leap, date(2024, 2, 29))  # day 60 of 366
    assert feb29.expected == 10 and feb29.forecast == 61 and feb29.months_left == 11
    before = progress(0, 60, leap, date(2023, 12, 31))
    assert before.forecast is None and before.expected == 0 and before.needed_per_month == 5
    after = progress(50, 60, leap, date(2025, 1, 1))
    assert after.forecast == 50 and after.needed_per_month is None and after.expected == 60 and after.gap == -10
    term = Period.term(2025, 2030, TermStart(7, 1))  # 1/7/2025–30/6/2030: 1826 days, 60 months
    p = progress(215, 400, term, date(2028, 6, 30))  # 3 of 5 years done: 1096 days, 60 % expected
    assert p.expected == 240 and p.gap == -25 and p.behind and p.months_left == 25  # June 2028 still counts
    assert p.needed_per_month == 8  # 185/25 = 7.4
    assert p.forecast == 358  # 215 * 1826/1096 = 358.2
    half = progress(215, 400, term, date(2027, 12, 31))  # 914 days: half the term, not 3 of 6 years
    assert (half.expected, half.gap, half.months_left, half.forecast) == (200, 15, 31, 430)
    last = progress(390, 400, term, date(2030, 6, 30))
    assert (last.expected, last.months_left, last.needed_per_month, last.forecast) == (400, 1, 10, 390)
    over = progress(390, 400, term, date(2030, 7, 1))
    assert (over.months_left, over.needed_per_month) == (0, None)


def test_zero_and_missing_targets_have_no_percent_nor_needed() -> None:
    year = Period.year(2026)
    zero = progress(3, 0, year, date(2026, 7, 1))
    assert zero.percent is None and zero.forecast_percent is None and zero.needed_per_month == 0
    none = progress(3, None, year, date(2026, 7, 1))
    assert none.percent is None and none.needed_per_month is None and none.remaining is None
    assert none.forecast == 6 and none.expected is None and not none.behind


async def _world(session) -> None:  # type: ignore[no-untyped-def]
    await load_units(session, UNITS)
    d, c1, c2 = [await unit_by_code(session, c) for c in ("D", "C1", "C2")]
    session.add_all([
        Target.of(d.id, Period.year(2026), 20),
        Target.of(c1.id, Period.year(2026), 10),
        Target.of(c2.id, Period.year(2026), 0),
    ])

    def add(code_unit, name, birth, sex, on, *, ethnicity=None, youth=None, withdrawn=False):  # type: ignore[no-untyped-def]
        a = imported_admission(code_unit, AdmissionDraft(code_unit.id, name, birth, sex, on, ethnicity, None, youth), NOW)
        if withdrawn:
            a.withdrawn_at = NOW
        session.add(a)

    a, b, e = [await unit_by_code(session, c) for c in ("A", "B", "E")]
    add(a, "Lò Thị Hoa", 1997, Sex.FEMALE, date(2026, 1, 1), ethnicity="Thái", youth=True)  # 29 in 2026
    add(a, "Lò Văn Nam", 1996, Sex.MALE, date(2026, 3, 15), ethnicity="Thái")  # 30 in 2026: not under 30
    add(b, "Nông Thị Mai", 2000, Sex.FEMALE, date(2026, 12, 31), ethnicity="Kinh", youth=False)
    add(b, "Hà Văn Tư", 1999, Sex.MALE, date(2025, 12, 31))  # previous year
    add(e, "Triệu Văn Sáng", 1990, Sex.MALE, date(2026, 6, 30), ethnicity="Dao")
    add(a, "Rút Lại", 2001, Sex.FEMALE, date(2026, 5, 1), withdrawn=True)
    add(c1, "Ở Đảng Ủy", 2002, Sex.MALE, date(2026, 2, 1), youth=True)  # recorded at the committee itself
    await session.flush()


async def test_breakdowns_grouped_children_and_direct_admissions(sessions) -> None:
    async with sessions.begin() as session:
        await _world(session)
        d, c1 = await unit_by_code(session, "D"), await unit_by_code(session, "C1")
        year, today = Period.year(2026), date(2026, 7, 1)
        report = await progress_report(session, d, year, today)
        main = report.main
        assert (main.admitted, main.target) == (5, 20)
        assert main.admitted == await count_admitted(session, d, year)
        b = main.breakdown
        assert (b.women, b.minority, b.youth_union, b.under_30) == (2, 3, 2, 3)
        by_code = {c.unit.code: c for c in report.children}
        assert by_code["C1"].admitted == 4 and by_code["C2"].admitted == 1
        assert by_code["C2"].percent is None  # zero target
        assert (await progress_of(session, c1, year, today, breakdown=True)).breakdown == by_code["C1"].breakdown
        c1_report = await progress_report(session, c1, year, today)
        assert c1_report.direct == 1 and c1_report.main.admitted == 4
        term = await progress_report(session, d, Period.term(2025, 2030, TermStart(7, 1)), today)
        assert term.main.admitted == 6 and term.main.target is None
        # under 30 by the year of each admission: Hà Văn Tư (1999) was 26 in 2025
        assert term.main.breakdown.under_30 == 4


async def test_subtree_rows_monthly_and_listing(sessions) -> None:
    async with sessions.begin() as session:
        await _world(session)
        d = await unit_by_code(session, "D")
        year, today = Period.year(2026), date(2026, 7, 1)
        rows = await subtree_progress(session, d, year, today)
        assert [r.unit.code for r in rows] == ["D", "C1", "A", "B", "C2", "E"]
        assert [r.admitted for r in rows] == [5, 4, 2, 1, 1, 1]
        assert [r.target for r in rows] == [20, 10, None, None, 0, None]
        monthly = await monthly_admitted(session, d, year)
        assert monthly == [1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]
        listing = await admissions_in(session, d, year)
        assert [a.full_name for a in listing][0] == "Lò Thị Hoa" and len(listing) == 5
        assert "Rút Lại" not in {a.full_name for a in listing}


def test_the_pace_lines_count_months_in_english_and_name_the_plan_or_the_target() -> None:
    from core.i18n import Texts
    from handlers.progress import _pace

    texts = Texts.load()
    en, vi = texts.for_language("en"), texts.for_language("vi")
    december = progress(80, 90, Period.year(2026), date(2026, 12, 1))  # one month left
    assert en.plural("progress.needed_per_month", 1, remaining="10", months="1", per_month="10") in _pace(en, december)
    line = _pace(en, december)[0]
    assert "1 month left" in line and "1 months" not in line
    assert "2 months left" in _pace(en, progress(70, 90, Period.year(2026), date(2026, 11, 1)))[0]
    forecast = _pace(en, december)[-1]
    assert forecast.startswith("Forecast for the end of the year")
    assert _pace(vi, progress(95, 90, Period.year(2026), date(2026, 7, 1)))[0] == "Đã đạt kế hoạch năm."
    term = Period.term(2025, 2030, TermStart(7, 1))
    assert _pace(vi, progress(400, 400, term, date(2027, 7, 1)))[0] == "Đã đạt chỉ tiêu nhiệm kỳ."
    assert _pace(en, progress(100, 400, term, date(2030, 6, 1)))[0].startswith("300 still to go in the 1 month left")
