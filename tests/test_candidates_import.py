"""import-candidates, import-members, and the new optional columns of import-units and import-admissions."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select

from models.entities import Admission, Candidate, Stage
from models.importing import ImportProblems, import_units
from models.importing.admission_dates import import_admissions_with_dates
from models.importing.candidates import import_candidates
from models.importing.members import import_members
from models.membership import Membership, membership
from models.units import load_units, unit_by_code
from tests.harness import WORLD_UNITS

NOW = datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc)
TODAY = date(2026, 7, 1)
HEADER = "unit_code,full_name,birth_year,gender,stage,stage_date,ethnicity,mentor\n"


async def _world(sessions):  # type: ignore[no-untyped-def]
    async with sessions.begin() as s:
        await load_units(s, WORLD_UNITS)


async def test_candidates_go_in_whole_or_not_at_all_with_every_bad_line_named(sessions) -> None:  # type: ignore[no-untyped-def]
    await _world(sessions)
    bad = HEADER + ("NL,Lò Văn Tâm,2001,nam,cảm tình,15/03/2026,Tày,Hà Văn Sơn\n"
                    "BT,Lò Thị Hoa,2000,nữ,nguon,2026-01-10,,\n"  # a committee, not a cell
                    "NL,Lò Thị Mai,2000,nữ,lớp học,10/01/2026,,\n"  # no such stage
                    "NL,Lo Van Tam,2001,nam,lop,02/07/2026,,\n"  # duplicate of line 2 and a future date
                    "XX,Ai Đó,1999,nam,nguon,01/01/2026,,\n")
    async with sessions.begin() as s:
        with pytest.raises(ImportProblems) as error:
            await import_candidates(s, bad, TODAY, NOW)
    assert [(line, key) for line, key, _ in error.value.problems] == [
        (3, "not_a_cell"), (4, "not_stage"), (5, "future_date"), (6, "unknown_unit")]
    async with sessions() as s:
        assert list(await s.scalars(select(Candidate))) == []
    good = HEADER + ("NL,Lò Văn Tâm,2001,nam,cảm tình,15/03/2026,Tày,Hà Văn Sơn\n"
                     "NL,Lò Thị Hoa,2000,nu,chi_bo,2026-06-30,,\n"
                     "KP,Lò Văn Tâm,2001,nam,nguon,01/07/2026,,\n")  # another cell: another person
    async with sessions.begin() as s:
        counts = await import_candidates(s, good, TODAY, NOW)
    assert (counts.total, counts.created, counts.skipped) == (3, 3, 0)
    async with sessions.begin() as s:
        again = await import_candidates(s, good, TODAY, NOW)
    assert (again.created, again.skipped) == (0, 3)
    async with sessions() as s:
        # names are sealed with a fresh nonce each: found by reading them, not by a WHERE on the ciphertext
        [tam] = [c for c in await s.scalars(select(Candidate)) if c.mentor_name == "Hà Văn Sơn"]
        assert (tam.stage, tam.ethnicity, tam.minority) == (Stage.CAM_TINH, "Tày", True)


async def test_membership_from_import_members_and_import_units(sessions) -> None:  # type: ignore[no-untyped-def]
    await _world(sessions)
    header = "unit_code,members_full,members_probationary,as_of\n"
    async with sessions.begin() as s:
        with pytest.raises(ImportProblems) as error:
            await import_members(s, header + "NL,20,-1,30/06/2026\nKP,x,1,30/06/2026\nNL,1,1,01/07/2027\n", TODAY)
    assert [(line, key) for line, key, _ in error.value.problems] == [(2, "bad_count"), (3, "bad_count"),
                                                                       (4, "future_date")]
    async with sessions.begin() as s:
        await import_members(s, header + "NL,2.600,200,30/06/2026\nKP,2,15,30/06/2026\n", TODAY)
        assert await membership(s, await unit_by_code(s, "PN")) == Membership(2602, 215)
    units = ("code,name,parent_code,kind,members_full,members_probationary\n"
             "PC,Chi bộ thôn Pác Cáp,NN,cell,15,0\n")
    async with sessions.begin() as s:
        await import_units(s, units, TODAY)
        pn = await unit_by_code(s, "PN")
        assert await membership(s, pn) == Membership(2617, 215)
        assert (await unit_by_code(s, "PC")).members_as_of == TODAY
    async with sessions.begin() as s:
        with pytest.raises(ImportProblems) as error:
            await import_units(s, "code,name,parent_code,kind,members_full,members_probationary\n"
                                  "PC,Chi bộ thôn Pác Cáp,NN,cell,15,\n", TODAY)
    assert [key for _, key, _ in error.value.problems] == ["missing_value"]


async def test_admissions_carry_ceremony_and_recognition_dates(sessions) -> None:  # type: ignore[no-untyped-def]
    await _world(sessions)
    header = "unit_code,full_name,birth_year,gender,admitted_on,ceremony_on,recognized_on\n"
    bad = header + ("NL,Lò Văn Tâm,1995,nam,10/01/2025,01/01/2025,\n"
                    "NL,Lò Thị Hoa,1995,nữ,10/01/2025,,20/01/2026\n"
                    "NL,Hà Văn Sơn,1995,nam,10/01/2025,15/01/2025,15/01/2025\n"
                    "NL,Hà Thị Mai,19x5,nữ,10/01/2025,32/01/2025,\n")
    async with sessions.begin() as s:
        with pytest.raises(ImportProblems) as error:
            await import_admissions_with_dates(s, bad, TODAY, NOW)
    assert [(line, key) for line, key, _ in error.value.problems] == [
        (2, "ceremony_before_decision"), (3, "recognized_without_ceremony"), (4, "recognized_before_ceremony"),
        (5, "not_year"), (5, "impossible_date")]
    good = header + ("NL,Lò Văn Tâm,1995,nam,10/01/2025,10/01/2025,\n"
                     "NL,Lò Thị Hoa,1995,nữ,10/01/2025,20/01/2025,20/01/2026\n"
                     "NL,Hà Văn Sơn,1995,nam,10/01/2025,,\n")
    async with sessions.begin() as s:
        assert (await import_admissions_with_dates(s, good, TODAY, NOW)).created == 3
    async with sessions() as s:
        rows = {a.full_name: (a.ceremony_on, a.recognized_on) for a in await s.scalars(select(Admission))}
    assert rows == {"Lò Văn Tâm": (date(2025, 1, 10), None), "Lò Thị Hoa": (date(2025, 1, 20), date(2026, 1, 20)),
                    "Hà Văn Sơn": (None, None)}
    # the same file again, now with Sơn's ceremony: nobody twice, the date added
    async with sessions.begin() as s:
        again = await import_admissions_with_dates(s, good.replace("10/01/2025,,\n", "10/01/2025,12/02/2025,\n"),
                                                   TODAY, NOW)
    assert (again.created, again.skipped) == (0, 3)
    async with sessions() as s:
        [son] = [a for a in await s.scalars(select(Admission)) if a.full_name == "Hà Văn Sơn"]
    assert son.ceremony_on == date(2025, 2, 12)


def test_the_command_line_imports_candidates_and_members(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_reminders_cli import UNITS, run

    (tmp_path / "config.toml").write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    (tmp_path / "units.csv").write_text(UNITS, encoding="utf-8")
    (tmp_path / "c.csv").write_text(HEADER + "C1,Lò Văn Tâm,2001,nam,cam_tinh,15/03/2026,,\n"
                                    "C1,Lò Thị Hoa,2000,nữ,giai đoạn lạ,15/03/2026,,\n", encoding="utf-8")
    (tmp_path / "m.csv").write_text("unit_code,members_full,members_probationary,as_of\nC1,12,3,2026-06-30\n",
                                    encoding="utf-8")
    assert run(tmp_path, "init").returncode == 0
    assert run(tmp_path, "import-units", "units.csv").returncode == 0
    bad = run(tmp_path, "import-candidates", "c.csv")
    assert bad.returncode == 1 and "dòng 3: giai đoạn 'giai đoạn lạ' không hợp lệ" in bad.stderr, bad.stderr
    (tmp_path / "c.csv").write_text(HEADER + "C1,Lò Văn Tâm,2001,nam,cam_tinh,15/03/2026,,\n", encoding="utf-8")
    good = run(tmp_path, "import-candidates", "c.csv")
    assert good.returncode == 0 and "Quần chúng: 1 (1 mới, 0 đã có nên bỏ qua)" in good.stdout, good.stderr
    members = run(tmp_path, "import-members", "m.csv")
    assert members.returncode == 0 and "Số đảng viên: 1 đơn vị cập nhật" in members.stdout, members.stderr


async def test_a_candidate_admitted_or_gone_since_is_not_imported_again(sessions) -> None:  # type: ignore[no-untyped-def]
    """The skip rule matches every stored candidate of the cell, not only those still in the pipeline."""
    from models.admissions import AdmissionDraft, imported_admission
    from models.entities import ExitReason, Sex

    await _world(sessions)
    first = HEADER + ("NL,Lò Văn Tâm,2001,nam,dang_uy,15/03/2026,,\n"
                      "NL,Lò Thị Hoa,2000,nu,cam_tinh,2026-03-30,,\n")
    async with sessions.begin() as s:
        await import_candidates(s, first, TODAY, NOW)
    async with sessions.begin() as s:
        nl = await unit_by_code(s, "NL")
        tam, hoa = sorted(await s.scalars(select(Candidate)), key=lambda c: c.birth_year, reverse=True)
        admission = imported_admission(nl, AdmissionDraft(nl.id, "Lò Văn Tâm", 2001, Sex.MALE, date(2026, 6, 1)), NOW)
        s.add(admission)
        await s.flush()
        tam.admission_id = admission.id
        hoa.exit_reason, hoa.exited_on = ExitReason.WORKING_AWAY, date(2026, 6, 1)
    again = first + "NL,Lo Thi Hoa,2001,nu,nguon,01/07/2026,,\n"  # the same name, another birth year: another person
    async with sessions.begin() as s:
        counts = await import_candidates(s, again, TODAY, NOW)
    assert (counts.total, counts.created, counts.skipped) == (3, 1, 2)
    async with sessions() as s:
        assert sorted(c.birth_year for c in await s.scalars(select(Candidate))) == [2000, 2001, 2001]
