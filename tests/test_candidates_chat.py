"""/candidates, /candidate, the candidate card and /admissions, end to end through the fake Bot API.

The clock stands at Wednesday 1 July 2026, 09:00 in Hà Nội.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from models.entities import Admission, Candidate, CandidateStage, ExitReason, Role, Stage
from models.membership import Membership, membership, set_membership
from models.units import unit_by_code


async def press(bot, user_id: int, data: str) -> tuple[list[dict], str]:  # type: ignore[no-untyped-def]
    """Press a button with this callback data on the user's newest message; return replies and the toast."""
    message = bot.api.last_message(user_id)
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(user_id, message["message_id"], data))
    toasts = bot.api.calls_to("answerCallbackQuery", since=mark)
    return bot.replies(user_id, mark), (toasts[-1].params.get("text", "") if toasts else "")


async def candidates(bot) -> list[Candidate]:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return list(await session.scalars(select(Candidate).order_by(Candidate.id)))


async def test_guided_add_then_every_stage_then_the_decision_counts_once(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY, "Hoa")
    listed = (await bot.say(1001, "/candidates"))[0]
    assert "Quần chúng — Chi bộ thôn Nà Lạn" in listed["text"] and "hết nguồn" in listed["text"]
    assert "Thêm quần chúng" in (await bot.tap(1001, "➕"))[0]["text"]
    assert "Năm sinh của Lò Văn Tâm" in (await bot.say(1001, "lò văn tâm"))[0]["text"]
    assert "4 chữ số" in (await bot.say(1001, "20x1"))[0]["text"]  # the /report rules and texts
    assert "Giới tính" in (await bot.say(1001, "2001"))[0]["text"]
    await bot.tap(1001, "Nam")
    await bot.tap(1001, "Tày")
    await bot.tap(1001, "Có")
    assert "bước nào" in (await bot.say(1001, "hà văn sơn"))[0]["text"]
    await bot.tap(1001, "Cảm tình Đảng")
    assert "không thể ở tương lai" in (await bot.say(1001, "02/07/2026"))[0]["text"]
    card = (await bot.say(1001, "15/03/2026"))[0]["text"]
    assert "Lò Văn Tâm" in card and "Hà Văn Sơn" in card and "15/03/2026" in card
    saved = await bot.tap(1001, "✅")
    assert any("Bước tiếp theo: <b>Học lớp bồi dưỡng</b>" in r["text"] for r in saved)
    [tam] = await candidates(bot)
    assert (tam.stage, tam.mentor_name, tam.ethnicity, tam.youth_union) == (Stage.CAM_TINH, "Hà Văn Sơn", "Tày", True)

    for stage in ("Học lớp bồi dưỡng", "Nộp hồ sơ", "Thẩm tra lý lịch", "Nghị quyết chi bộ", "Nghị quyết đảng ủy"):
        assert f"«{stage}»" in (await bot.tap(1001, f"➡️ {stage}"))[0]["text"]
        if stage == "Nộp hồ sơ":
            assert "sớm hơn bước trước" in (await bot.say(1001, "14/03/2026"))[0]["text"]  # the boundary day before
        shown = (await bot.tap(1001, "Hôm nay"))[-1]["text"]
        assert f"• {stage}: 01/07/2026" in shown
    assert "quyết định kết nạp" in shown
    # the decision: the /report card pre-filled from the candidate, only date and number asked
    asked = (await bot.tap(1001, "📝 Quyết định kết nạp"))[0]["text"]
    assert "Ngày quyết định kết nạp" in asked
    await bot.tap(1001, "Hôm nay")
    card = (await bot.tap(1001, "Bỏ qua"))[-1]["text"]
    assert "Lò Văn Tâm" in card and "2001" in card and "Tày" in card
    await bot.tap(1001, "✅")
    [admission] = await bot.counted_admissions()
    [tam] = await candidates(bot)
    assert tam.admission_id == admission.id and admission.youth_union is True
    # the card's decision button again: refused, nothing counted twice
    async with bot.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Admission)) == 1
    replies, _ = await press(bot, 1001, f"report:cand:{tam.id}")
    assert "đã có quyết định kết nạp" in replies[0]["text"]
    assert len(await bot.counted_admissions()) == 1
    async with bot.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CandidateStage)) == 6
    # The decision withdrawn (/undo): the candidate is back at the stage reached, to be decided again.
    await bot.say(1001, "/undo")
    assert "Đã rút lại" in (await bot.tap(1001, "✅ Rút lại"))[-1]["text"]
    [back] = await candidates(bot)
    assert back.admission_id is None and back.stage == Stage.DANG_UY
    assert "Lò Văn Tâm" in (await bot.say(1001, "/candidates"))[0]["text"]


async def test_a_repeated_add_confirmation_adds_no_twin(sessions) -> None:  # type: ignore[no-untyped-def]
    """The form's ✅ delivered again (a crash before the update was recorded) finds the candidate it added."""
    from datetime import date, datetime, timezone

    from models.candidates import CandidateDraft, add_candidate
    from models.entities import Sex
    from models.units import load_units, unit_by_code
    from tests.harness import WORLD_UNITS

    now, today = datetime(2026, 7, 1, 2, tzinfo=timezone.utc), date(2026, 7, 1)
    async with sessions.begin() as s:
        await load_units(s, WORLD_UNITS)
    for _ in range(2):
        async with sessions.begin() as s:
            cell = await unit_by_code(s, "NL")
            await add_candidate(s, cell, CandidateDraft("Lò Văn Tâm", 2001, Sex.MALE), None, now, today, ref="r1")
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Candidate)) == 1


async def test_one_line_add_working_away_and_return(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    assert "Cách gửi nhanh" in (await bot.say(1001, "/candidate Lò Văn Tâm, 2001"))[0]["text"]
    assert "Bước chưa đúng" in (await bot.say(1001, "/candidate Lò Văn Tâm, 2001, nam, sao hỏa"))[0]["text"]
    assert "Kiểm tra lại" in (await bot.say(1001, "/candidate lo thi hoa, 2000, nu"))[0]["text"]
    await bot.tap(1001, "✅")
    assert "Kiểm tra lại" in (await bot.say(1001, "/candidate Lò Văn Tâm, 2001, nam, cảm tình"))[0]["text"]
    await bot.tap(1001, "✅")
    hoa, tam = await candidates(bot)
    assert (hoa.full_name, hoa.stage, tam.stage) == ("Lo Thi Hoa", Stage.NGUON, Stage.CAM_TINH)
    listed = (await bot.say(1001, "/candidates"))[0]["text"]
    assert "<b>Tạo nguồn</b> (1)" in listed and "<b>Cảm tình Đảng</b> (1)" in listed
    await bot.tap(1001, "Lò Văn Tâm")
    await bot.tap(1001, "🚪")
    left = (await bot.tap(1001, "Đi làm ăn xa"))[0]["text"]
    assert "Đã ra khỏi danh sách: Đi làm ăn xa (01/07/2026)" in left
    assert "<b>Đi làm ăn xa</b> (1)" in (await bot.say(1001, "/candidates"))[0]["text"]
    back = (await bot.tap(1001, "↩️"))[0]["text"]
    assert "Bước tiếp theo: <b>Học lớp bồi dưỡng</b>" in back
    _, tam = await candidates(bot)
    assert tam.exit_reason is None and tam.stage == Stage.CAM_TINH
    # one who withdrew cannot come back: no button, and a forged one changes nothing
    await bot.tap(1001, "🚪")
    await bot.tap(1001, "Xin rút")
    _, toast = await press(bot, 1001, f"cand:ret:{tam.id}")
    assert "Chỉ quần chúng đi làm ăn xa" in toast
    _, tam = await candidates(bot)
    assert tam.exit_reason == ExitReason.WITHDREW


async def test_other_cells_and_committee_members_are_refused_every_change(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(1002, "PC", Role.SECRETARY)  # another commune's cell
    await bot.register(2001, "BT", Role.COMMITTEE)  # NL's commune: reads, changes nothing
    await bot.say(1001, "/candidate Lò Văn Tâm, 2001, nam, đảng ủy")
    await bot.tap(1001, "✅")
    [tam] = await candidates(bot)
    async with bot.sessions() as session:
        nl = await unit_by_code(session, "NL")
        admission = Admission(unit_id=nl.id, unit_path=nl.path, full_name="Hà Thị Mai", name_key="ha thi mai",
                              birth_year=1995, sex="female", minority=False, admitted_on=date(2026, 6, 1),
                              source="import", reported_at=bot.clock.now())
    async with bot.sessions.begin() as session:
        session.add(admission)
    async with bot.sessions() as session:
        admission_id = await session.scalar(select(Admission.id))
    await bot.say(1002, "/help")
    forged = [f"cand:show:{tam.id}", f"cand:adv:{tam.id}", f"cand:exit:{tam.id}", f"cand:exitr:{tam.id}:xin_rut",
              f"cand:ret:{tam.id}", f"cand:add:{nl.id}", f"adm:show:{admission_id}",
              f"adm:set:{admission_id}:ceremony_on", "cand:show:999999"]
    for data in forged:
        replies, toast = await press(bot, 1002, data)
        assert "không có quyền" in toast, data
        assert not any("Lò Văn Tâm" in r.get("text", "") or "Hà Thị Mai" in r.get("text", "") for r in replies), data
    replies, _ = await press(bot, 1002, f"report:cand:{tam.id}")
    assert "không có quyền" in replies[0]["text"] and "Lò Văn Tâm" not in replies[0]["text"]
    assert "Không có đơn vị mã này" in (await bot.say(1002, "/candidates NL"))[0]["text"]
    # the committee member reads: counts, one cell, a card without buttons; changes are refused
    counts = (await bot.say(2001, "/candidates"))[0]["text"]
    assert "Đảng ủy xã Bộc Bố" in counts and "• Nghị quyết đảng ủy: 1" in counts
    cell = (await bot.say(2001, "/candidates NL"))[0]
    assert "Lò Văn Tâm" in cell["text"] and "Thêm quần chúng" not in str(cell.get("reply_markup"))
    shown = (await bot.tap(2001, "Lò Văn Tâm"))[0]
    assert "Nghị quyết đảng ủy" in shown["text"] and not shown.get("reply_markup")
    for data in (f"cand:adv:{tam.id}", f"cand:exitr:{tam.id}:xin_rut", f"cand:add:{nl.id}"):
        _, toast = await press(bot, 2001, data)
        assert "không có quyền" in toast, data
    assert len(await bot.counted_admissions()) == 1
    [tam] = await candidates(bot)
    assert tam.exit_reason is None and tam.stage == Stage.DANG_UY


async def test_ceremony_and_recognition_move_the_membership_count(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    async with bot.sessions.begin() as session:
        await set_membership(session, await unit_by_code(session, "NL"), 20, 2, date(2025, 12, 31))
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    async with bot.sessions() as session:
        assert await membership(session, await unit_by_code(session, "PN")) == Membership(20, 3)
    listed = (await bot.say(1001, "/admissions"))[0]["text"]
    assert "Chờ lễ kết nạp" in listed
    await bot.tap(1001, "Lò Thị Hoa")
    await bot.tap(1001, "🎉")
    assert "sớm hơn ngày quyết định" in (await bot.say(1001, "14/05/2026"))[0]["text"]
    card = (await bot.say(1001, "15/05/2026"))[0]  # the day of the decision itself: allowed
    assert "Lễ kết nạp: 15/05/2026" in card["text"]
    await bot.tap(1001, "✅ Ghi ngày công nhận")
    assert "ngày công nhận phải sau ngày lễ" in (await bot.say(1001, "15/05/2026"))[0]["text"]
    card = (await bot.tap(1001, "Hôm nay"))[0]
    assert "Công nhận chính thức: 01/07/2026" in card["text"] and not card.get("reply_markup")
    async with bot.sessions() as session:
        assert await membership(session, await unit_by_code(session, "PN")) == Membership(21, 2)
    assert "không có đảng viên mới nào" in (await bot.say(1001, "/admissions"))[0]["text"]


async def test_progress_and_digest_show_membership_and_the_pipeline(harness) -> None:
    from datetime import datetime

    from models.admissions import AdmissionDraft, imported_admission
    from models.candidates import CandidateDraft, add_candidate
    from models.entities import Sex
    from tests.harness import TZ, add_history, run_weekly

    bot = harness
    await bot.register(2001, "PN", Role.COMMITTEE)
    await add_history(bot.sessions, "NL", 23, date(2026, 3, 1))
    async with bot.sessions.begin() as session:
        nl, kp, pc = [await unit_by_code(session, code) for code in ("NL", "KP", "PC")]
        await set_membership(session, nl, 2602, 214, date(2026, 3, 1))  # the 23 of that day are in it
        await set_membership(session, kp, 0, 0, date(2026, 3, 1))
        now = bot.clock.now()
        for i, stage in enumerate([Stage.LOP, Stage.CHI_BO, Stage.CHI_BO, Stage.DANG_UY, Stage.NGUON]):
            await add_candidate(session, nl, CandidateDraft(f"Quần Chúng {chr(65 + i)}", 2000, Sex.MALE, stage,
                                                            date(2026, 6, 1)), None, now, date(2026, 7, 1))
        late = imported_admission(pc, AdmissionDraft(pc.id, "Trễ Lễ", 1995, Sex.MALE, date(2026, 4, 1)),
                                  datetime(2026, 4, 2, tzinfo=TZ))
        session.add(late)
    text = (await bot.say(2001, "/progress"))[0]["text"]
    assert "Tổng số đảng viên: 2.817 (dự bị 215)" in text  # 2.816 loaded + the late one of Pác Cáp
    assert "Học lớp bồi dưỡng 1 · Nộp hồ sơ 0 · Thẩm tra lý lịch 0 · Nghị quyết chi bộ 2 · Nghị quyết đảng ủy 1" in text
    assert "Tạo nguồn" not in text  # from the class onwards
    assert "Nếu kết nạp kịp số đã có nghị quyết: 27/90" in text  # 24 admitted + 3 with a resolution
    mark = bot.api.mark()
    await run_weekly(bot.application, "digest")
    digest = "\n".join(c.params.get("text", "") for c in bot.api.calls_to("sendMessage", 2001, mark) if c.ok)
    assert "Quần chúng: Tạo nguồn 1 · Cảm tình Đảng 0 · Học lớp bồi dưỡng 1" in digest
    assert "hết nguồn), 2: Chi bộ thôn Khuổi Pết, Chi bộ thôn Pác Cáp" in digest
    assert "• Chi bộ thôn Pác Cáp: 1 lễ kết nạp quá hạn" in digest  # 30 working days after 1/4 passed


async def test_a_committee_member_records_a_ceremony_and_an_admin_of_another_commune_is_refused(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(2001, "BT", Role.COMMITTEE)  # NL's commune
    await bot.register(3001, "NN", Role.ADMIN)  # another commune
    await bot.report_one_line(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    [admission] = await bot.counted_admissions()
    assert "/admissions MÃ" in (await bot.say(2001, "/admissions"))[0]["text"]  # asked for a cell's code
    assert "Không có chi bộ mã này" in (await bot.say(2001, "/admissions BT"))[0]["text"]  # a commune: no cell
    assert "Chờ lễ kết nạp" in (await bot.say(2001, "/admissions NL"))[0]["text"]
    await bot.tap(2001, "Lò Thị Hoa")
    await bot.tap(2001, "🎉")
    card = (await bot.say(2001, "20/05/2026"))[0]
    assert "Lễ kết nạp: 20/05/2026" in card["text"]
    # the admin of Nhạn Môn: no list, no card, no date; nothing of the name shown
    refused = (await bot.say(3001, "/admissions NL"))[0]["text"]
    assert "Không có chi bộ mã này" in refused and "Lò Thị Hoa" not in refused
    for data in (f"adm:show:{admission.id}", f"adm:set:{admission.id}:recognized_on",
                 f"adm:set:{admission.id}:removed_on"):
        replies, toast = await press(bot, 3001, data)
        assert "không có quyền" in toast, data
        assert not any("Lò Thị Hoa" in r.get("text", "") for r in replies), data
    [admission] = await bot.counted_admissions()
    assert (admission.ceremony_on, admission.recognized_on, admission.removed_on) == (date(2026, 5, 20), None, None)


async def test_the_candidate_list_asks_for_a_mentor_and_the_card_changes_it(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(2001, "BT", Role.COMMITTEE)
    await bot.say(1001, "/candidate Lò Văn Tâm, 2001, nam")
    await bot.tap(1001, "✅")
    asked = (await bot.tap(1001, "➡️ Cảm tình Đảng"))[0]["text"]
    assert "«Cảm tình Đảng»" in asked
    moved = (await bot.tap(1001, "Hôm nay"))[-1]["text"]
    assert "giúp đỡ Lò Văn Tâm" in moved  # no mentor yet: asked for one
    assert "không được chứa chữ số" in (await bot.say(1001, "hà văn 4"))[0]["text"]  # the /report name rules
    [tam] = await candidates(bot)
    assert tam.mentor_name is None
    card = (await bot.say(1001, "hà văn sơn"))[0]["text"]
    assert "Hà Văn Sơn" in card
    [tam] = await candidates(bot)
    assert (tam.stage, tam.mentor_name) == (Stage.CAM_TINH, "Hà Văn Sơn")
    # the card's button changes the mentor; «Skip» keeps the current one
    await bot.tap(1001, "👤")
    assert "Giữ nguyên" in (await bot.tap(1001, "Bỏ qua"))[0]["text"]
    await bot.say(1001, "/candidates")
    await bot.tap(1001, "Lò Văn Tâm")
    await bot.tap(1001, "👤")
    assert "Lò Thị Mai" in (await bot.say(1001, "lò thị mai"))[0]["text"]
    [tam] = await candidates(bot)
    assert tam.mentor_name == "Lò Thị Mai"
    # moving on from the list with a mentor set: nobody asks again
    await bot.tap(1001, "➡️ Học lớp bồi dưỡng")
    assert not any("phân công giúp đỡ" in r["text"] for r in await bot.tap(1001, "Hôm nay"))
    # a committee member may not change it: the forged button is refused
    await bot.say(2001, "/help")
    _, toast = await press(bot, 2001, f"cand:mentor:{tam.id}")
    assert "không có quyền" in toast
    [tam] = await candidates(bot)
    assert tam.mentor_name == "Lò Thị Mai"
