"""models/importing/: CSV rows to units, targets and earlier admissions, all or nothing."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from models.calendar import TermStart
from models.entities import Admission, AdmissionSource, Sex, Target, Unit, UnitKind
from models.importing import (
    ImportCounts,
    ImportProblems,
    import_admissions,
    import_targets,
    import_units,
    read_table,
)

NOW = datetime(2026, 6, 15, 3, 0, tzinfo=timezone.utc)
TODAY = date(2026, 6, 15)

TREE = """code,name,parent_code,kind,villages
H1,Huyện ủy Mường Chà,,district,
X1,Đảng ủy xã Sá Tổng,H1,committee,
X2,Đảng ủy xã Ma Thì Hồ,H1,committee,
C1,Chi bộ bản Huổi Lếch,X1,cell,Huổi Lếch
C2,Chi bộ ghép Nậm Chua,X1,cell,Nậm Chua 1; Nậm Chua 2
C3,Chi bộ bản Ma Thì Hồ,X2,cell,Ma Thì Hồ
"""

Sessions = async_sessionmaker[AsyncSession]


async def _units(sessions: Sessions) -> dict[str, Unit]:
    async with sessions() as s:
        rows = await s.scalars(select(Unit).options(selectinload(Unit.villages)))
        return {u.code: u for u in rows}


async def _count(sessions: Sessions, model: type) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _load(sessions: Sessions, text: str = TREE) -> ImportCounts:
    async with sessions.begin() as s:
        return await import_units(s, text)


async def _rejected(sessions: Sessions, run, data: str) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    with pytest.raises(ImportProblems) as info:
        async with sessions.begin() as s:
            await run(s, data)
    return info.value.problems


# Reading the file --------------------------------------------------------------------------------


def test_read_table_trims_skips_blank_lines_and_keeps_file_line_numbers() -> None:
    data = "\ufeffcode , name,parent_code,kind\n\n  A1 ,  Tên một ,, cell \n , , , \n\"B\n1\",x,A1,cell\nC1,y,,cell\n"
    table = read_table(data.encode("utf-8"), ("code", "name", "parent_code", "kind"))
    assert table.columns == ("code", "name", "parent_code", "kind")
    assert [(r.line, r.get("code"), r.get("name")) for r in table.rows] == [
        (3, "A1", "Tên một"),
        (5, "B\n1", "x"),
        (7, "C1", "y"),
    ]
    assert table.problems == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("code,name,parent_code,kind,colour", [(1, "unknown_column", "colour")]),
        ("code,name,kind", [(1, "missing_column", "parent_code")]),
        ("code,name,parent_code,kind,kind", [(1, "duplicate_column", "kind")]),
        ("code;name;parent_code;kind", [(1, "unknown_column", "code;name;parent_code;kind")] + [
            (1, "missing_column", c) for c in ("code", "name", "parent_code", "kind")
        ]),
    ],
)
def test_header_must_name_the_known_columns(header: str, expected: list[tuple[int, str, str]]) -> None:
    with pytest.raises(ImportProblems) as info:
        read_table(header + "\nA,b,,cell\n", ("code", "name", "parent_code", "kind"), ("villages",))
    assert info.value.problems == expected


def test_empty_file_non_utf8_and_extra_values_are_problems() -> None:
    with pytest.raises(ImportProblems) as info:
        read_table("\n\n", ("code",))
    assert info.value.problems[0][:2] == (1, "no_header")
    with pytest.raises(ImportProblems) as info:
        read_table("code\nA\nĐ\n".encode("cp1258"), ("code",))
    assert info.value.problems == [(3, "not_utf8", "")]
    table = read_table("code,name\nA,b,c\nB,d\n", ("code", "name"))
    assert table.problems == [(2, "too_many_values", "3/2")]
    assert [r.get("code") for r in table.rows] == ["B"]


# Units -----------------------------------------------------------------------------------------


async def test_units_build_a_tree_with_villages(sessions: Sessions) -> None:
    assert await _load(sessions) == ImportCounts(total=6, created=6, updated=0)
    units = await _units(sessions)
    district, commune, combined = units["H1"], units["X1"], units["C2"]
    assert district.parent_id is None and district.kind == UnitKind.DISTRICT
    assert commune.parent_id == district.id and commune.path == f"/{district.id}/{commune.id}/"
    assert combined.path == f"{commune.path}{combined.id}/" and combined.kind == UnitKind.CELL
    assert [v.name for v in combined.villages] == ["Nậm Chua 1", "Nậm Chua 2"] and combined.is_combined
    assert [v.name for v in units["C1"].villages] == ["Huổi Lếch"] and not units["C1"].is_combined
    assert units["X2"].villages == []


async def test_reimport_updates_by_code_and_moves_admissions_along(sessions: Sessions) -> None:
    await _load(sessions)
    async with sessions.begin() as s:
        data = "unit_code,full_name,birth_year,gender,admitted_on\nC2,Lò Thị Hoa,1995,nữ,15/05/2023\n"
        await import_admissions(s, data, TODAY, NOW)
    # No villages column: the stored villages stay; C2 moves to the other commune.
    counts = await _load(sessions, "code,name,parent_code,kind\nC2,Chi bộ ghép bản Nậm Chua,X2,cell\n")
    assert counts == ImportCounts(total=1, created=0, updated=1)
    units = await _units(sessions)
    moved = units["C2"]
    assert moved.name == "Chi bộ ghép bản Nậm Chua"
    assert moved.parent_id == units["X2"].id and moved.path == f"{units['X2'].path}{moved.id}/"
    assert [v.name for v in moved.villages] == ["Nậm Chua 1", "Nậm Chua 2"]
    async with sessions() as s:
        assert await s.scalar(select(Admission.unit_path)) == moved.path
    # An empty villages cell does clear them.
    await _load(sessions, "code,name,parent_code,kind,villages\nC2,Chi bộ bản Nậm Chua,X2,cell,\n")
    assert (await _units(sessions))["C2"].villages == []


async def test_bad_tree_lists_every_bad_row_and_saves_nothing(sessions: Sessions) -> None:
    await _load(sessions)
    data = (
        "code,name,parent_code,kind\n"
        "N1,Chi bộ mới,NOPE,cell\n"  # 2 unknown parent
        "X1,Đảng ủy xã Sá Tổng,Y1,committee\n"  # 3 cycle X1 -> Y1 -> X1
        "Y1,Đảng ủy Y,X1,committee\n"  # 4
        "N2,Chi bộ dưới chi bộ,C1,cell\n"  # 5 a cell cannot have units under it
        "N3,,H1,committee\n"  # 6 no name
        "N4,Đơn vị,H1,village\n"  # 7 unknown kind
        "N1,Lặp,H1,cell\n"  # 8 duplicate code
        "bad code,x,H1,cell\n"  # 9
    )
    problems = await _rejected(sessions, import_units, data)
    assert problems == [
        (2, "unknown_parent", "NOPE"),
        (3, "cycle", "X1"),
        (4, "cycle", "Y1"),
        (5, "parent_is_cell", "C1"),
        (6, "missing_value", "name"),
        (7, "bad_kind", "village"),
        (8, "duplicate_code", "N1"),
        (9, "bad_code", "bad code"),
    ]
    assert await _count(sessions, Unit) == 6
    assert (await _units(sessions))["X1"].parent_id == (await _units(sessions))["H1"].id


async def test_self_parent_is_a_cycle(sessions: Sessions) -> None:
    problems = await _rejected(sessions, import_units, "code,name,parent_code,kind\nA,a,A,committee\n")
    assert problems == [(2, "cycle", "A")]
    assert await _count(sessions, Unit) == 0


# Targets ---------------------------------------------------------------------------------------


JULY = TermStart(7, 1)  # the default [bot] term_start


async def test_targets_by_year_and_term_update_on_reimport(sessions: Sessions) -> None:
    await _load(sessions)
    data = "unit_code,period,target\nH1,2026,90\nH1,2025-2030,400\nX1, 2026 ,30\nX1,2025-07-01..2030-06-30,150\n"
    async with sessions.begin() as s:
        assert await import_targets(s, data, JULY) == ImportCounts(total=4, created=4, updated=0)
    async with sessions.begin() as s:
        assert await import_targets(s, "unit_code,period,target\nH1,2026,95\n", JULY) == ImportCounts(1, 0, 1)
    async with sessions() as s:
        rows = {(t.unit.code, t.start_year, t.end_year): (t.value, t.starts_on, t.ends_on)
                for t in await s.scalars(select(Target).options(selectinload(Target.unit)))}
    # A term is five years from the congress (1 July), not 1/1/2025–31/12/2030; a year stays the calendar year.
    term = (date(2025, 7, 1), date(2030, 6, 30))
    assert rows == {("H1", 2026, 2026): (95, date(2026, 1, 1), date(2026, 12, 31)), ("H1", 2025, 2030): (400, *term),
                    ("X1", 2026, 2026): (30, date(2026, 1, 1), date(2026, 12, 31)), ("X1", 2025, 2030): (150, *term)}


async def test_term_targets_follow_the_term_start_and_exact_days_win(sessions: Sessions) -> None:
    await _load(sessions)
    async with sessions.begin() as s:
        data = "unit_code,period,target\nH1,2025-2030,400\nX1,2020-2025,300\n"
        assert await import_targets(s, data, TermStart(1, 15)) == ImportCounts(2, 2, 0)
    async with sessions.begin() as s:  # the same years with exact days: an update of the days
        data = "unit_code,period,target\nX1,2020-09-01..2025-08-31,310\n"
        assert await import_targets(s, data, JULY) == ImportCounts(1, 0, 1)
    async with sessions() as s:
        rows = {t.unit.code: (t.value, t.starts_on, t.ends_on)
                for t in await s.scalars(select(Target).options(selectinload(Target.unit)))}
    assert rows == {"H1": (400, date(2025, 1, 15), date(2030, 1, 14)),
                    "X1": (310, date(2020, 9, 1), date(2025, 8, 31))}


async def test_bad_targets_are_listed_and_nothing_saved(sessions: Sessions) -> None:
    await _load(sessions)
    data = (
        "unit_code,period,target\n"
        "H1,2026,90\n"
        "H1,2030-2025,400\n"
        "NOPE,2026,5\n"
        "X1,2026,-3\n"
        "X1,năm nay,3\n"
        "H1,2026,91\n"
        "X1,2026-03-01..2026-12-31,4\n"
        "X1,2025-07-01..2024-06-30,4\n"
        "X1,2025-07-01..2030-06-31,4\n"
    )
    problems = await _rejected(sessions, lambda s, text: import_targets(s, text, JULY), data)
    assert problems == [
        (3, "not_period", "2030-2025"),
        (4, "unknown_unit", "NOPE"),
        (5, "bad_target", "-3"),
        (6, "not_period", "năm nay"),
        (7, "duplicate_row", "2"),
        (8, "not_period", "2026-03-01..2026-12-31"),  # an annual plan is a whole calendar year
        (9, "not_period", "2025-07-01..2024-06-30"),
        (10, "not_period", "2025-07-01..2030-06-31"),
    ]
    assert await _count(sessions, Target) == 0


# Admissions ------------------------------------------------------------------------------------

ADMISSIONS = """unit_code,full_name,birth_year,gender,admitted_on,ethnicity,decision_no
C1,Lò Thị Hoa,1995,nữ,15/05/2023,Thai,125-QĐ/ĐU
C2,Giàng A Páo,1990,nam,2024-01-10,Mông,
C3,Lo Van Binh,1960,male,1/2/1990,,
C3,Nguyễn Thị Mai,1988,Nu,2026-06-15,Kinh,
X1,Trần Văn Hùng,1950,female,02/09/1975,,
"""


async def test_admissions_accept_both_date_formats_and_gender_spellings(sessions: Sessions) -> None:
    await _load(sessions)
    async with sessions.begin() as s:
        assert await import_admissions(s, ADMISSIONS, TODAY, NOW) == ImportCounts(total=5, created=5)
    async with sessions() as s:
        rows = {a.full_name: a for a in await s.scalars(select(Admission))}
    units = await _units(sessions)
    hoa = rows["Lò Thị Hoa"]
    assert (hoa.sex, hoa.admitted_on, hoa.birth_year) == (Sex.FEMALE, date(2023, 5, 15), 1995)
    assert (hoa.ethnicity, hoa.minority, hoa.decision_no) == ("Thái", True, "125-QĐ/ĐU")
    assert hoa.unit_id == units["C1"].id and hoa.unit_path == units["C1"].path
    assert hoa.source == AdmissionSource.IMPORT and hoa.reported_by_id is None and hoa.reported_at == NOW
    assert rows["Giàng A Páo"].sex == Sex.MALE and rows["Giàng A Páo"].admitted_on == date(2024, 1, 10)
    # Old history validates against its own date: born 1960, admitted at 30 in 1990.
    assert rows["Lo Van Binh"].admitted_on == date(1990, 2, 1) and rows["Lo Van Binh"].ethnicity is None
    assert rows["Nguyễn Thị Mai"].sex == Sex.FEMALE and rows["Nguyễn Thị Mai"].minority is False
    assert rows["Trần Văn Hùng"].unit_path == units["X1"].path  # any unit kind


async def test_reimporting_the_same_history_counts_nobody_twice(sessions: Sessions) -> None:
    await _load(sessions)
    async with sessions.begin() as s:
        await import_admissions(s, ADMISSIONS, TODAY, NOW)
    # Same people typed without diacritics are the same people.
    again = ADMISSIONS.replace("Lò Thị Hoa", "Lo Thi Hoa") + "C1,Vàng Thị Dua,2000,nữ,01/03/2025,,\n"
    async with sessions.begin() as s:
        assert await import_admissions(s, again, TODAY, NOW) == ImportCounts(total=6, created=1, skipped=5)
    assert await _count(sessions, Admission) == 6


async def test_one_bad_row_saves_nothing_and_every_bad_row_is_named(sessions: Sessions) -> None:
    await _load(sessions)
    data = (
        "unit_code,full_name,birth_year,gender,admitted_on\n"
        "C1,Lò Thị Hoa,1995,nữ,15/05/2023\n"  # 2 good
        "C1,Lò Thị Lan,1995,x,15/05/2023\n"  # 3
        "C1,Lò Thị Mơ,2010,nữ,15/05/2023\n"  # 4 fifteen at admission
        "C1,Lò Văn Cụ,1930,nam,15/05/2023\n"  # 5 ninety-three at admission
        "C1,Lò Văn Tám,1990,nam,16/06/2026\n"  # 6 tomorrow
        "C1,Lò Văn 2,1990,nam,01/01/2020\n"  # 7
        "C1,Lò Văn Chín,1990,nam,31/02/2020\n"  # 8
        "NOPE,Lò Văn Mười,1990,nam,01/01/2020\n"  # 9
        "C1,Lò Văn Năm,90,nam,xx\n"  # 10 two problems
        "C1,Lo Thi Hoa,1995,nu,2023-05-15\n"  # 11 same as line 2
        ",,,,\n"  # blank: skipped
    )
    problems = await _rejected(sessions, lambda s, d: import_admissions(s, d, TODAY, NOW), data)
    assert problems == [
        (3, "not_sex", "x"),
        (4, "too_young", "2010"),
        (5, "too_old", "1930"),
        (6, "future_date", "16/06/2026"),
        (7, "name_digits", "Lò Văn 2"),
        (8, "impossible_date", "31/02/2020"),
        (9, "unknown_unit", "NOPE"),
        (10, "not_date", "xx"),
        (10, "not_year", "90"),
        (11, "duplicate_row", "2"),
    ]
    assert ImportProblems(problems).lines == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert await _count(sessions, Admission) == 0


async def test_missing_values_are_named(sessions: Sessions) -> None:
    await _load(sessions)
    data = "unit_code,full_name,birth_year,gender,admitted_on\nC1,,,,\n"
    problems = await _rejected(sessions, lambda s, d: import_admissions(s, d, TODAY, NOW), data)
    assert problems == [
        (2, "name_empty", ""),
        (2, "missing_value", "admitted_on"),
        (2, "missing_value", "birth_year"),
        (2, "missing_value", "gender"),
    ]
