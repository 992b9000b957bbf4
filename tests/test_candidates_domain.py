"""The candidate pipeline and the membership count, in the domain (no chat)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select

from models.admissions import AdmissionDraft, imported_admission, person_key
from models.candidates import (
    CandidateDraft,
    CandidateError,
    add_candidate,
    advance,
    cells_without_candidates,
    come_back,
    forget_departed,
    leave,
    link_admission,
    next_stage,
    set_mentor,
    stage_counts,
)
from models.entities import STAGES, AuditChannel, Candidate, CandidateStage, ExitReason, Sex, Stage
from models.membership import Membership, membership, set_membership
from models.units import load_units, unit_by_code
from tests.harness import WORLD_UNITS

NOW = datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc)
TODAY = date(2026, 7, 1)


async def _world(sessions):  # type: ignore[no-untyped-def]
    async with sessions.begin() as s:
        await load_units(s, WORLD_UNITS)


async def test_stages_move_forward_only_with_days_in_order(sessions) -> None:  # type: ignore[no-untyped-def]
    await _world(sessions)
    async with sessions.begin() as s:
        cell = await unit_by_code(s, "NL")
        c = await add_candidate(s, cell, CandidateDraft("Lò Văn Tâm", 2001, Sex.MALE, reached_on=date(2026, 1, 5)),
                                None, NOW, TODAY)
        assert c.stage == Stage.NGUON and c.name_key == person_key("Lò Văn Tâm", 2001)  # sealed as its HMAC
        await advance(s, c, Stage.CAM_TINH, date(2026, 1, 5), None, NOW, TODAY)  # same day as before: allowed
        with pytest.raises(CandidateError, match="before_previous"):
            await advance(s, c, Stage.LOP, date(2026, 1, 4), None, NOW, TODAY)
        with pytest.raises(CandidateError, match="future_date"):
            await advance(s, c, Stage.LOP, date(2026, 7, 2), None, NOW, TODAY)
        await advance(s, c, Stage.LOP, TODAY, None, NOW, TODAY)  # today: allowed
        with pytest.raises(CandidateError, match="not_forward"):
            await advance(s, c, Stage.LOP, TODAY, None, NOW, TODAY)
        with pytest.raises(CandidateError, match="not_forward"):
            await advance(s, c, Stage.CAM_TINH, TODAY, None, NOW, TODAY)
        assert [h.stage for h in c.history] == [Stage.NGUON, Stage.CAM_TINH, Stage.LOP]
        assert (await stage_counts(s, cell))[Stage.LOP] == 1
    assert next_stage(Stage.NGUON) == Stage.CAM_TINH and next_stage(Stage.DANG_UY) is None
    assert [s.value for s in STAGES] == ["nguon", "cam_tinh", "lop", "ho_so", "tham_tra", "chi_bo", "dang_uy"]


async def test_working_away_comes_back_others_do_not_and_admission_links_once(sessions) -> None:  # type: ignore[no-untyped-def]
    await _world(sessions)
    async with sessions.begin() as s:
        cell = await unit_by_code(s, "NL")
        away = await add_candidate(s, cell, CandidateDraft("Lò Thị Hoa", 2000, Sex.FEMALE, Stage.LOP), None, NOW, TODAY)
        gone = await add_candidate(s, cell, CandidateDraft("Hà Văn Sơn", 1999, Sex.MALE), None, NOW, TODAY)
        await leave(s, away, ExitReason.WORKING_AWAY, TODAY, None, NOW, TODAY)
        await leave(s, gone, ExitReason.WITHDREW, TODAY, None, NOW, TODAY)
        assert (await stage_counts(s, cell))[Stage.LOP] == 0
        assert [u.code for u in await cells_without_candidates(s, cell)] == ["NL"]
        with pytest.raises(CandidateError, match="not_in_pipeline"):
            await advance(s, away, Stage.HO_SO, TODAY, None, NOW, TODAY)
        with pytest.raises(CandidateError, match="cannot_return"):
            await come_back(s, gone, None, NOW)
        await come_back(s, away, None, NOW)
        assert away.stage == Stage.LOP and away.exit_reason is None
        admission = imported_admission(cell, AdmissionDraft(cell.id, "Lò Thị Hoa", 2000, Sex.FEMALE, TODAY), NOW)
        s.add(admission)
        await s.flush()
        await link_admission(s, away, admission, None, NOW)
        await link_admission(s, away, admission, None, NOW)  # the same ✅ again changes nothing
        assert away.admission_id == admission.id
        assert (await stage_counts(s, cell))[Stage.LOP] == 0


async def test_departed_candidates_are_forgotten_after_the_configured_days(sessions) -> None:  # type: ignore[no-untyped-def]
    await _world(sessions)
    async with sessions.begin() as s:
        cell = await unit_by_code(s, "NL")
        for name, left in (("Một", date(2024, 6, 30)), ("Hai", date(2024, 7, 1))):
            c = await add_candidate(s, cell, CandidateDraft(name, 2000, Sex.MALE, reached_on=date(2024, 1, 1)),
                                    None, NOW, TODAY)
            await leave(s, c, ExitReason.NOT_ELIGIBLE, left, None, NOW, TODAY)
        await add_candidate(s, cell, CandidateDraft("Ba", 2000, Sex.MALE, reached_on=date(2020, 1, 1)), None, NOW, TODAY)
    async with sessions.begin() as s:
        # 1/7/2026 - 730 days = 1/7/2024: who left before that day goes; who left on it stays.
        assert await forget_departed(s, TODAY, 730) == 1
    async with sessions() as s:
        assert sorted(await s.scalars(select(Candidate.full_name))) == ["Ba", "Hai"]
        assert await s.scalar(select(func.count()).select_from(CandidateStage)) == 2


async def test_membership_follows_admissions_recognitions_and_removals_after_the_loaded_day(sessions) -> None:  # type: ignore[no-untyped-def]
    await _world(sessions)
    async with sessions.begin() as s:
        pn, nl, kp = [await unit_by_code(s, code) for code in ("PN", "NL", "KP")]
        await set_membership(s, nl, 20, 2, date(2026, 3, 31))
        await set_membership(s, kp, 10, 1, date(2026, 3, 31))
        assert await membership(s, pn) == Membership(30, 3)

        def admit(unit, on, **dates):  # type: ignore[no-untyped-def]
            a = imported_admission(unit, AdmissionDraft(unit.id, "X", 1990, Sex.MALE, on), NOW)
            for key, value in dates.items():
                setattr(a, key, value)
            s.add(a)
            return a

        admit(nl, date(2026, 3, 31))  # on the loaded day: already in the count
        admit(nl, date(2026, 4, 1))  # the day after: one more probationary
        admit(nl, date(2025, 3, 1), recognized_on=date(2026, 4, 2))  # probationary -> full
        admit(kp, date(2025, 3, 1), recognized_on=date(2026, 3, 31))  # recognised on the day: counted already
        admit(kp, date(2025, 5, 1), removed_on=date(2026, 5, 1))  # a probationary one struck off
        admit(kp, date(2024, 1, 1), recognized_on=date(2025, 1, 1), removed_on=date(2026, 6, 1))  # a full one
        withdrawn = admit(nl, date(2026, 5, 1))
        withdrawn.withdrawn_at = NOW
        await s.flush()
        assert await membership(s, nl) == Membership(21, 2)
        assert await membership(s, kp) == Membership(9, 0)
        assert await membership(s, pn) == Membership(30, 2)
        assert (await membership(s, pn)).total == 32


async def test_the_sandbox_demo_has_every_stage_and_2817_members(sessions) -> None:  # type: ignore[no-untyped-def]
    from models.calendar import TermStart
    from localapi.demo import seed_demo

    async with sessions.begin() as s:
        await seed_demo(s, date(2026, 6, 30), NOW, term_start=TermStart(7, 1))
    async with sessions() as s:
        district = await unit_by_code(s, "PN")
        assert await membership(s, district) == Membership(2602, 215)
        cell = await unit_by_code(s, "BB-NC")
        assert all(n >= 1 for n in (await stage_counts(s, cell)).values())
        assert [u.code for u in await cells_without_candidates(s, district)] == ["BB-CL", "CT-LM"]
        away = await s.scalar(select(func.count()).select_from(Candidate).where(
            Candidate.exit_reason == ExitReason.WORKING_AWAY))
        assert away == 1


async def test_the_export_has_a_candidates_sheet_of_counts_without_names(sessions) -> None:  # type: ignore[no-untyped-def]
    import io

    from openpyxl import load_workbook

    from models.periods import Period
    from reports.exports import CANDIDATE_HEADERS, export_bytes

    await _world(sessions)
    async with sessions.begin() as s:
        nl = await unit_by_code(s, "NL")
        for name, stage in (("Một Hai", Stage.LOP), ("Ba Bốn", Stage.LOP), ("Năm Sáu", Stage.DANG_UY)):
            await add_candidate(s, nl, CandidateDraft(name, 2000, Sex.MALE, stage), None, NOW, TODAY)
        pn = await unit_by_code(s, "PN")
        _, render = await export_bytes(s, pn, Period.year(2026), TODAY, "xlsx", at=NOW, channel=AuditChannel.CLI)
    sheet = load_workbook(io.BytesIO(render()))["candidates"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == list(CANDIDATE_HEADERS)
    assert ["NL", "Chi bộ thôn Nà Lạn", 0, 0, 2, 0, 0, 0, 1, 3] in rows and len(rows) == 4  # three cells
    assert not any("Một Hai" in str(v) for r in rows for v in r)


async def test_the_mentor_changes_only_for_a_candidate_still_in_the_pipeline(sessions) -> None:  # type: ignore[no-untyped-def]
    from models.audit import AuditEntry

    await _world(sessions)
    async with sessions.begin() as s:
        cell = await unit_by_code(s, "NL")
        tam = await add_candidate(s, cell, CandidateDraft("Lò Văn Tâm", 2001, Sex.MALE, Stage.CAM_TINH), None, NOW, TODAY)
        await set_mentor(s, tam, "Hà Văn Sơn", None, NOW)
        await set_mentor(s, tam, "Lò Thị Mai", None, NOW)
        assert tam.mentor_name == "Lò Thị Mai"
        await leave(s, tam, ExitReason.WITHDREW, TODAY, None, NOW, TODAY)
        with pytest.raises(CandidateError, match="not_in_pipeline"):
            await set_mentor(s, tam, "Hà Văn Sơn", None, NOW)
        assert tam.mentor_name == "Lò Thị Mai"
    async with sessions() as s:
        texts = [str(e.__dict__) for e in await s.scalars(select(AuditEntry))]
        assert texts and not any("Hà Văn Sơn" in t or "Lò Thị Mai" in t for t in texts)  # no names in the trail
