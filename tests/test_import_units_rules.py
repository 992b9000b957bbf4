"""Unit codes (one case rule), what a name may contain, the depth cap and the one tree check."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

import models.importing.units as units_import
import models.units as units_module
from models.calendar import TermStart
from models.entities import Admission, Target, Unit, UnitKind
from models.importing import (
    ImportCounts,
    ImportProblems,
    import_admissions,
    import_targets,
    import_units,
)
from models.units import (
    MAX_DEPTH,
    TreeError,
    UnitRow,
    load_units,
    normal_code,
    tree_problems,
    unit_by_code,
)

NOW = datetime(2026, 6, 15, 3, 0, tzinfo=timezone.utc)
TODAY = date(2026, 6, 15)
HEADER = "code,name,parent_code,kind,villages\n"
TREE = HEADER + "PN,Huyện ủy Pác Nặm,,district,\nBB,Đảng ủy xã Bộc Bố,PN,committee,\nNC,Chi bộ thôn Nà Coóc,BB,cell,Nà Coóc\n"

Sessions = async_sessionmaker[AsyncSession]


async def _load(sessions: Sessions, data: str) -> ImportCounts:
    async with sessions.begin() as s:
        return await import_units(s, data)


async def _problems(sessions: Sessions, data: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ImportProblems) as info:
        await _load(sessions, data)
    return info.value.problems


async def _count(sessions: Sessions, model: type) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _tree(sessions: Sessions) -> dict[str, Unit]:
    async with sessions() as s:
        return {u.code: u for u in await s.scalars(select(Unit).options(selectinload(Unit.villages)))}


# One case rule for codes ----------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "stored"), [
    ("PN", "PN"), ("pn", "PN"), (" Pn ", "PN"), ("ＰＮ", "PN"), ("ｐｎ-０１", "PN-01"), ("bb-kp", "BB-KP"),
    ("đu/1", "ĐU/1"), ("Ⅻ", "XII"),
])
def test_normal_code_is_nfkc_upper_case_and_stable(typed: str, stored: str) -> None:
    assert normal_code(typed) == stored
    assert normal_code(stored) == stored


async def test_codes_are_case_and_width_insensitive_everywhere(sessions: Sessions) -> None:
    assert await _load(sessions, HEADER + "pn,Huyện ủy Pác Nặm,,district,\nＢＢ,Đảng ủy xã Bộc Bố,ｐｎ,committee,\n"
                       "nc,Chi bộ thôn Nà Coóc,bb,cell,Nà Coóc\n") == ImportCounts(3, 3, 0)
    assert set(await _tree(sessions)) == {"PN", "BB", "NC"}  # stored upper-case
    # The full-width ＰＮ is the same unit as PN: an update, not a second district.
    assert await _load(sessions, HEADER + "ＰＮ,Huyện ủy Pác Nặm (mới),,district,\n") == ImportCounts(1, 0, 1)
    assert await _count(sessions, Unit) == 3
    async with sessions.begin() as s:
        assert await import_targets(s, "unit_code,period,target\nｐｎ,2026,90\nbb,2026,30\n", TermStart(7, 1)) == ImportCounts(2, 2)
        data = "unit_code,full_name,birth_year,gender,admitted_on\nnc,Lò Thị Hoa,1995,nữ,15/05/2023\n"
        assert await import_admissions(s, data, TODAY, NOW) == ImportCounts(1, 1)
        # Every typed code goes through the same function (the command line's invite and export too).
        found = await unit_by_code(s, " ｎｃ ")
        assert found is not None and found.code == "NC"
        assert await s.scalar(select(Admission.unit_id)) == found.id
        assert await s.scalar(select(func.count()).select_from(Target)) == 2


async def test_codes_that_differ_only_in_case_or_width_are_one_code_in_a_file(sessions: Sessions) -> None:
    problems = await _problems(sessions, HEADER + "PN,Huyện ủy,,district,\npn,Huyện ủy khác,,district,\n"
                               "ＰＮ,Lần ba,,district,\n")
    assert problems == [(3, "duplicate_code", "PN"), (4, "duplicate_code", "PN")]


async def test_load_units_normalises_codes_too(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        await load_units(s, [UnitRow(1, "pn", "Huyện ủy", None, UnitKind.DISTRICT),
                             UnitRow(2, "bb", "Xã", "Pn", UnitKind.COMMITTEE)])
    tree = await _tree(sessions)
    assert set(tree) == {"PN", "BB"} and tree["BB"].parent_id == tree["PN"].id


# What names, villages and codes may contain ----------------------------------------------------


async def test_invisible_control_and_format_characters_are_refused(sessions: Sessions) -> None:
    data = HEADER + (
        "PN,Huyện ủy,,district,\n"  # 2 good
        "A1,\u200b\u200b,PN,committee,\n"  # 3 a name of zero-width spaces only
        "A2,\u3164,PN,committee,\n"  # 4 a Hangul filler: looks blank
        "A3,Xã\x00Bộc Bố,PN,committee,\n"  # 5 NUL inside
        "A4,Xã Bộc\u200bBố,PN,committee,\n"  # 6 a zero-width space inside
        "A5,Xã \u202eBố,PN,committee,\n"  # 7 a right-to-left override (Cf)
        "A6,Xã \ue000,PN,committee,\n"  # 8 private use (Co)
        "A7,Xã \U000e0001,PN,committee,\n"  # 9 a language tag (Cf)
        "A\u200d8,Xã,PN,committee,\n"  # 10 a zero-width joiner in the code
        "C1,Chi bộ,PN,cell,Nà Coóc;\u200b\n"  # 11 a village of a zero-width space only
        "C2,Chi bộ,PN,cell,Nà\u200fCoóc\n"  # 12 a right-to-left mark inside a village
        "C3,Chi bộ,ｐｎ\x07,cell,\n"  # 13 a bell in the parent's code
        "A9,Xã\u0378,PN,committee,\n"  # 14 an unassigned code point (Cn)
    )
    assert await _problems(sessions, data) == [
        (3, "no_visible_text", "name"),
        (4, "no_visible_text", "name"),
        (5, "invisible_character", "name: U+0000"),
        (6, "invisible_character", "name: U+200B ZERO WIDTH SPACE"),
        (7, "invisible_character", "name: U+202E RIGHT-TO-LEFT OVERRIDE"),
        (8, "invisible_character", "name: U+E000"),
        (9, "invisible_character", "name: U+E0001 LANGUAGE TAG"),
        (10, "invisible_character", "code: U+200D ZERO WIDTH JOINER"),
        (11, "no_visible_text", "villages"),
        (12, "invisible_character", "villages: U+200F RIGHT-TO-LEFT MARK"),
        (13, "invisible_character", "parent_code: U+0007"),
        (14, "invisible_character", "name: U+0378"),
    ]
    assert await _count(sessions, Unit) == 0


async def test_line_breaks_and_tabs_in_a_name_are_tidied_to_spaces(sessions: Sessions) -> None:
    await _load(sessions, HEADER + 'PN,"Huyện ủy\nPác\tNặm",,district,"Nà  Coóc ;\tKhuổi Pết"\n')
    unit = (await _tree(sessions))["PN"]
    assert unit.name == "Huyện ủy Pác Nặm" and [v.name for v in unit.villages] == ["Nà Coóc", "Khuổi Pết"]


def test_admission_names_of_blank_looking_letters_are_empty() -> None:
    from models.values import clean_name

    with pytest.raises(ValueError, match="empty"):
        clean_name("\u3164\u3164 \u3164")
    assert clean_name("Lò Thị Hoa") == "Lò Thị Hoa"


# Depth ------------------------------------------------------------------------------------------


def _chain(levels: int) -> str:
    rows = ["L1,Cấp 1,,province,"] + [f"L{i},Cấp {i},L{i - 1},committee," for i in range(2, levels + 1)]
    return HEADER + "\n".join(rows) + "\n"


async def test_ten_levels_are_accepted(sessions: Sessions) -> None:
    assert MAX_DEPTH == 10
    assert (await _load(sessions, _chain(MAX_DEPTH))).created == MAX_DEPTH
    tree = await _tree(sessions)
    assert tree["L10"].depth == 9 and tree["L1"].cell_count == 0


async def test_a_chain_of_1500_levels_is_refused_row_by_row_without_recursion(sessions: Sessions) -> None:
    problems = await _problems(sessions, _chain(1500))
    assert problems == [(i + 1, "too_deep", f"L{i}") for i in range(MAX_DEPTH + 1, 1501)]  # header is line 1
    assert await _count(sessions, Unit) == 0


async def test_moving_a_branch_under_a_deep_one_names_the_moved_row(sessions: Sessions) -> None:
    await _load(sessions, _chain(8) + "B1,Nhánh,,province,\nB2,Nhánh 2,B1,committee,\nB3,Nhánh 3,B2,committee,\n"
                "B4,Nhánh 4,B3,committee,\n")
    # B2 under L8 puts B2 at level 9, B3 at 10 and the stored B4 at 11.
    assert await _problems(sessions, HEADER + "B2,Nhánh 2,L8,committee,\n") == [(2, "too_deep", "B4")]


async def test_load_units_refuses_too_deep_and_units_under_a_cell(sessions: Sessions) -> None:
    rows = [UnitRow(i, f"L{i}", f"Cấp {i}", f"L{i - 1}" if i > 1 else None, UnitKind.COMMITTEE) for i in range(1, 13)]
    async with sessions.begin() as s:
        with pytest.raises(TreeError) as deep:
            await load_units(s, rows)
        assert deep.value.problems == [(11, "too_deep", "L11"), (12, "too_deep", "L12")]
        await load_units(s, [UnitRow(1, "C", "Chi bộ", None, UnitKind.CELL)])
        with pytest.raises(TreeError) as under_cell:
            await load_units(s, [UnitRow(2, "X", "Dưới chi bộ", "C", UnitKind.CELL)])
        assert under_cell.value.problems == [(2, "parent_is_cell", "C")]


# One tree check ---------------------------------------------------------------------------------


def test_the_importer_and_load_units_share_one_tree_check() -> None:
    assert units_import.tree_problems is units_module.tree_problems
    assert not hasattr(units_import, "_tree_problems")
    stored = {"PN": (None, UnitKind.DISTRICT), "NC": ("PN", UnitKind.CELL)}
    rows = [UnitRow(2, "X", "x", "NC", UnitKind.CELL), UnitRow(3, "Y", "y", "NOPE", UnitKind.CELL),
            UnitRow(4, "X", "x", "PN", UnitKind.CELL)]
    assert tree_problems(rows, stored) == [(2, "parent_is_cell", "NC"), (3, "unknown_parent", "NOPE"),
                                           (4, "duplicate_code", "X")]


# Re-import and moves ------------------------------------------------------------------------------


async def test_reimporting_the_same_tree_changes_nothing(sessions: Sessions) -> None:
    await _load(sessions, TREE)
    before = {code: (u.id, u.parent_id, u.path, u.cell_count, [v.name for v in u.villages])
              for code, u in (await _tree(sessions)).items()}
    assert await _load(sessions, TREE) == ImportCounts(3, 0, 3)
    after = {code: (u.id, u.parent_id, u.path, u.cell_count, [v.name for v in u.villages])
             for code, u in (await _tree(sessions)).items()}
    assert after == before


async def test_moving_a_commune_carries_its_cells_admissions_and_cell_counts(sessions: Sessions) -> None:
    await _load(sessions, TREE + "NM,Đảng ủy xã Nhạn Môn,PN,committee,\nPC,Chi bộ thôn Pác Cáp,NM,cell,\n"
                "CT,Huyện ủy Chợ Đồn,,district,\n")
    async with sessions.begin() as s:
        data = ("unit_code,full_name,birth_year,gender,admitted_on\nNC,Lò Thị Hoa,1995,nữ,15/05/2023\n"
                "BB,Giàng A Páo,1990,nam,2024-01-10\n")
        await import_admissions(s, data, TODAY, NOW)
    await _load(sessions, HEADER.replace(",villages", "") + "bb,Đảng ủy xã Bộc Bố,ct,committee\n")
    tree = await _tree(sessions)
    assert tree["BB"].path == f"{tree['CT'].path}{tree['BB'].id}/"
    assert tree["NC"].path == f"{tree['BB'].path}{tree['NC'].id}/"
    assert [v.name for v in tree["NC"].villages] == ["Nà Coóc"]
    async with sessions() as s:
        paths = dict((await s.execute(select(Admission.full_name, Admission.unit_path))).all())
    assert paths == {"Lò Thị Hoa": tree["NC"].path, "Giàng A Páo": tree["BB"].path}
    assert {c: tree[c].cell_count for c in ("PN", "CT", "BB", "NM", "NC")} == {"PN": 1, "CT": 1, "BB": 1, "NM": 1,
                                                                                "NC": 1}
