"""Locked periods over HTTP: /lock, /unlock, the /report refusals, scope, forged buttons, the CLI.

The test world (tests/harness.py): Huyện ủy Pác Nặm (PN) → Đảng ủy xã Bộc Bố (BT) → Nà Lạn (NL),
Khuổi Pết (KP); PN → Đảng ủy xã Nhạn Môn (NN) → Pác Cáp (PC). Today is 1 July 2026.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from models.crypto import keys_from_environment
from models.entities import AuditChannel, AuditEntry, Role, UnitLock
from models.units import unit_by_code
from tests.harness import TZ
from tests.test_cli import UNITS, Run, failed, ok

SECRETARY, COMMITTEE, ADMIN_PN, ADMIN_BT, ADMIN_NN, ADMIN_SECRETARY = 1001, 2001, 3001, 3002, 3003, 3004


def labels_of(message: dict) -> list[str]:
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def toast(bot, mark: int) -> str:  # type: ignore[no-untyped-def]
    """Return the text of the last callback answer since `mark`."""
    return bot.api.calls_to("answerCallbackQuery", since=mark)[-1].params.get("text", "")


async def locks(bot) -> dict[str, date]:  # type: ignore[no-untyped-def]
    """Return unit code -> closed_until of every stored lock."""
    async with bot.sessions() as session:
        rows = (await session.execute(select(UnitLock))).scalars().all()
        out = {}
        for row in rows:
            await session.refresh(row, ["unit"])
            out[row.unit.code] = row.closed_until
        return out


async def audit(bot, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                          .order_by(AuditEntry.id)))


async def lock_in_chat(bot, admin: int, command: str = "/lock 30/06/2026") -> str:  # type: ignore[no-untyped-def]
    """Send /lock as the admin and tap ✅; return the outcome."""
    card = (await bot.say(admin, command))[-1]
    assert labels_of(card)[0].startswith("✅"), card["text"]
    return (await bot.tap(admin, "✅"))[-1]["text"]


async def unit_id(bot, code: str) -> int:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        unit = await unit_by_code(session, code)
        return unit.id


@pytest.fixture
async def world(harness):  # type: ignore[no-untyped-def]
    bot = harness
    await bot.register(SECRETARY, "NL", Role.SECRETARY, "Hoa")
    await bot.register(COMMITTEE, "BT", Role.COMMITTEE, "Ủy viên")
    await bot.register(ADMIN_PN, "PN", Role.ADMIN, "Huyện")
    await bot.register(ADMIN_BT, "BT", Role.ADMIN, "Xã")
    await bot.register(ADMIN_NN, "NN", Role.ADMIN, "Nhạn")
    return bot


async def test_an_admin_locks_after_confirming_and_bare_lock_shows_it(world) -> None:
    bot = world
    card = (await bot.say(ADMIN_BT, "/lock 30/06/2026"))[-1]
    assert "Đảng ủy xã Bộc Bố" in card["text"] and "30/06/2026" in card["text"]
    assert labels_of(card) == ["✅ Khóa sổ", "❌ Hủy"]
    assert await locks(bot) == {}  # nothing before ✅
    assert "Đã khóa sổ Đảng ủy xã Bộc Bố đến hết ngày 30/06/2026" in (await bot.tap(ADMIN_BT, "✅"))[-1]["text"]
    assert await locks(bot) == {"BT": date(2026, 6, 30)}
    shown = (await bot.say(ADMIN_BT, "/lock"))[-1]["text"]
    assert "Đảng ủy xã Bộc Bố: đã khóa sổ đến hết ngày 30/06/2026" in shown
    # The district's admin sees it among the locks below; the same day again changes nothing.
    assert "Đảng ủy xã Bộc Bố: khóa sổ đến hết ngày 30/06/2026" in (await bot.say(ADMIN_PN, "/lock"))[-1]["text"]
    assert "đã khóa đến hết ngày 30/06/2026; không có gì thay đổi" in (await bot.say(ADMIN_BT, "/lock BT 30/06/2026"))[-1]["text"]
    # Moving it back would reopen days: only /unlock does that, with a reason.
    assert "/unlock" in (await bot.say(ADMIN_BT, "/lock 29/06/2026"))[-1]["text"]
    # ❌ changes nothing.
    await bot.say(ADMIN_BT, "/lock 01/07/2026")
    assert "Sổ không thay đổi" in (await bot.tap(ADMIN_BT, "❌"))[-1]["text"]
    assert await locks(bot) == {"BT": date(2026, 6, 30)}
    [entry] = await audit(bot, "lock")
    assert (entry.channel, entry.subject, entry.field, entry.old_value, entry.new_value) == (
        AuditChannel.CHAT, "unit", "closed_until", None, "2026-06-30")
    assert entry.subject_id == await unit_id(bot, "BT") and entry.person_id is not None


async def test_an_admin_of_several_units_picks_one(world) -> None:
    bot = world
    await bot.register(ADMIN_SECRETARY, "BT", Role.ADMIN, "Hai xã")
    await bot.register(ADMIN_SECRETARY, "NN", Role.ADMIN, "Hai xã")
    pick = (await bot.say(ADMIN_SECRETARY, "/lock 30/06/2026"))[-1]
    assert "30/06/2026" in pick["text"] and labels_of(pick) == ["Đảng ủy xã Bộc Bố", "Đảng ủy xã Nhạn Môn"]
    card = (await bot.tap(ADMIN_SECRETARY, "Đảng ủy xã Nhạn Môn"))[-1]
    assert "Đảng ủy xã Nhạn Môn" in card["text"] and labels_of(card)[0] == "✅ Khóa sổ"
    await bot.tap(ADMIN_SECRETARY, "✅")
    assert await locks(bot) == {"NN": date(2026, 6, 30)}
    assert "Khóa sổ" in (await bot.say(ADMIN_SECRETARY, "/lock BT 29/06/2026"))[-1]["text"]  # or name the unit
    await bot.tap(ADMIN_SECRETARY, "✅")
    assert await locks(bot) == {"NN": date(2026, 6, 30), "BT": date(2026, 6, 29)}


async def test_texts_follow_the_persons_language(harness) -> None:
    bot = harness
    bot.api.add_user(3009, "Jane", language_code="en")
    await bot.register(3009, "BT", Role.ADMIN, "Jane")
    bot.api.add_user(1009, "John", language_code="en")
    await bot.register(1009, "NL", Role.SECRETARY, "John")
    assert "Close the books of <b>Đảng ủy xã Bộc Bố</b>" in (await bot.say(3009, "/lock 30/06/2026"))[-1]["text"]
    await bot.tap(3009, "✅")
    refused = (await bot.say(1009, "/report Lo Thi Hoa, 1998, female, 20/06/2026"))[-1]["text"]
    assert "closed up to 30/06/2026" in refused and "Ban Tổ chức" in refused and "Đảng ủy xã Bộc Bố" in refused


async def test_a_future_day_and_bad_dates_are_refused_politely(world) -> None:
    bot = world
    assert "đến hết hôm nay (01/07/2026)" in (await bot.say(ADMIN_BT, "/lock 02/07/2026"))[-1]["text"]
    assert "không có trên lịch" in (await bot.say(ADMIN_BT, "/lock 31/06/2026"))[-1]["text"]
    assert "ngày/tháng/năm" in (await bot.say(ADMIN_BT, "/lock BT hôm-qua"))[-1]["text"]
    # The report's formats: d/m/yy and yyyy-mm-dd; today itself is allowed.
    assert "01/07/2026" in (await bot.say(ADMIN_BT, "/lock 1/7/26"))[-1]["text"]
    assert "30/06/2026" in (await bot.say(ADMIN_BT, "/lock 2026-06-30"))[-1]["text"]
    assert await locks(bot) == {}


async def fill_to_date(bot, user: int) -> None:  # type: ignore[no-untyped-def]
    for answer in ("/report", "Lò Thị Hoa", "1998"):
        await bot.say(user, answer)
    await bot.tap(user, "Nữ")
    assert "Ngày quyết định" in (await bot.tap(user, "Tày"))[-1]["text"]


async def test_a_secretary_cannot_report_the_lock_day_but_can_the_day_after(world) -> None:
    bot = world
    await lock_in_chat(bot, ADMIN_BT, "/lock 15/06/2026")
    await fill_to_date(bot, SECRETARY)
    refused = (await bot.say(SECRETARY, "15/06/2026"))[-1]
    assert "đã khóa đến hết ngày 15/06/2026" in refused["text"]
    assert "Ban Tổ chức Đảng ủy xã Bộc Bố" in refused["text"] and "/cancel" in refused["text"]
    assert "Hôm nay" in labels_of(refused)  # the date question again, below
    assert "Số quyết định" in (await bot.say(SECRETARY, "16/06/2026"))[-1]["text"]
    await bot.tap(SECRETARY, "Bỏ qua")
    await bot.tap(SECRETARY, "Không")
    assert "Đã lưu" in (await bot.tap(SECRETARY, "✅"))[-1]["text"]
    [saved] = await bot.counted_admissions()
    assert saved.admitted_on == date(2026, 6, 16)
    # The one-line form is refused at once too, and asks for another date.
    refused = (await bot.say(SECRETARY, "/report Lò Văn Nam, 1997, nam, 15/06/2026"))[-1]
    assert "đã khóa đến hết ngày 15/06/2026" in refused["text"] and "Hôm nay" in labels_of(refused)
    assert "Đã hủy" in (await bot.say(SECRETARY, "/cancel"))[-1]["text"]
    assert len(await bot.counted_admissions()) == 1


async def test_editing_the_date_on_the_card_into_closed_books_is_refused(world) -> None:
    bot = world
    await lock_in_chat(bot, ADMIN_BT)
    await bot.say(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 01/07/2026")
    await bot.tap(SECRETARY, "Không")
    await bot.tap(SECRETARY, "✏️")
    await bot.tap(SECRETARY, "Ngày quyết định")
    assert "đã khóa đến hết ngày 30/06/2026" in (await bot.say(SECRETARY, "30/06/2026"))[-1]["text"]
    card = (await bot.say(SECRETARY, "01/07/2026"))[-1]["text"]
    assert "Phiếu báo cáo" in card and "01/07/2026" in card
    await bot.tap(SECRETARY, "✅")
    assert [a.admitted_on for a in await bot.counted_admissions()] == [date(2026, 7, 1)]


async def test_a_district_lock_closes_its_cells_books(world) -> None:
    bot = world
    await lock_in_chat(bot, ADMIN_PN)
    refused = (await bot.say(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 20/06/2026"))[-1]["text"]
    assert "Chi bộ thôn Nà Lạn" in refused and "đã khóa đến hết ngày 30/06/2026" in refused
    assert "Ban Tổ chức Huyện ủy Pác Nặm" in refused
    card = (await bot.say(SECRETARY, "01/07/2026"))[-1]["text"]  # another date: back to the card
    assert "Phiếu báo cáo" in card and "01/07/2026" in card
    await bot.tap(SECRETARY, "Không")
    await bot.tap(SECRETARY, "✅")
    assert [a.admitted_on for a in await bot.counted_admissions()] == [date(2026, 7, 1)]
    shown = (await bot.say(ADMIN_BT, "/lock"))[-1]["text"]  # inherited, shown with who closed it
    assert "Đảng ủy xã Bộc Bố: đã khóa sổ đến hết ngày 30/06/2026 (theo khóa sổ của Huyện ủy Pác Nặm)" in shown
    assert "chỉ Ban Tổ chức Huyện ủy Pác Nặm mở được" in (await bot.say(ADMIN_BT, "/unlock"))[-1]["text"]


async def test_a_one_line_report_of_a_secretary_of_two_cells_is_checked_when_the_cell_is_chosen(world) -> None:
    bot = world
    await bot.register(1002, "NL", Role.SECRETARY, "Hai chi bộ")
    await bot.register(1002, "PC", Role.SECRETARY, "Hai chi bộ")
    await lock_in_chat(bot, ADMIN_BT)  # Bộc Bố only: Nà Lạn closed, Pác Cáp (Nhạn Môn) open
    assert "chi bộ nào" in (await bot.say(1002, "/report Lò Thị Hoa, 1998, nữ, 20/06/2026"))[-1]["text"]
    refused = (await bot.tap(1002, "Chi bộ thôn Nà Lạn"))[-1]
    assert "Chi bộ thôn Nà Lạn" in refused["text"] and "đã khóa đến hết ngày 30/06/2026" in refused["text"]
    assert "Hôm nay" in labels_of(refused)
    await bot.say(1002, "/cancel")
    await bot.say(1002, "/report Lò Thị Hoa, 1998, nữ, 20/06/2026")
    assert "Phiếu báo cáo" in (await bot.tap(1002, "Chi bộ thôn Pác Cáp"))[-1]["text"]
    await bot.tap(1002, "Không")
    assert "Đã lưu" in (await bot.tap(1002, "✅"))[-1]["text"]


async def test_a_lock_set_before_the_confirmation_refuses_it_with_nothing_saved(world) -> None:
    bot = world
    await bot.say(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 20/06/2026")
    await bot.tap(SECRETARY, "Không")
    card_id = bot.api.last_message(SECRETARY)["message_id"]
    await lock_in_chat(bot, ADMIN_BT)  # meanwhile
    refused = (await bot.tap(SECRETARY, "✅"))[-1]["text"]
    assert "đã khóa đến hết ngày 30/06/2026" in refused and "Ban Tổ chức Đảng ủy xã Bộc Bố" in refused
    assert await bot.all_admissions() == []
    [card] = [m for m in bot.api.messages(SECRETARY) if m["message_id"] == card_id]
    assert labels_of(card) == []  # the card lost its ✅
    assert "Phiếu báo cáo" in (await bot.say(SECRETARY, "01/07/2026"))[-1]["text"]
    assert "Đã lưu" in (await bot.tap(SECRETARY, "✅"))[-1]["text"]
    assert [a.admitted_on for a in await bot.counted_admissions()] == [date(2026, 7, 1)]


async def test_an_admin_may_still_report_in_a_closed_period(world) -> None:
    bot = world
    await bot.register(ADMIN_SECRETARY, "BT", Role.ADMIN, "Cán bộ")
    await bot.register(ADMIN_SECRETARY, "KP", Role.SECRETARY, "Cán bộ")  # also a cell's secretary
    await lock_in_chat(bot, ADMIN_PN)
    card = (await bot.say(ADMIN_SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 20/06/2026"))[-1]["text"]
    assert "Phiếu báo cáo" in card and "khóa" not in card
    assert "Đã lưu" in (await bot.report_one_line(ADMIN_SECRETARY, "/report Lò Văn Nam, 1997, nam, 20/06/2026"))[-1]["text"]
    assert [a.admitted_on for a in await bot.counted_admissions()] == [date(2026, 6, 20)]


async def test_unlock_needs_a_reason_of_three_characters_then_the_secretary_reports(world) -> None:
    bot = world
    await lock_in_chat(bot, ADMIN_BT)
    assert "đã khóa" in (await bot.say(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 20/06/2026"))[-1]["text"]
    await bot.say(SECRETARY, "/cancel")
    assert "lý do" in (await bot.say(ADMIN_BT, "/unlock"))[-1]["text"]
    assert "từ 3 đến 500 ký tự" in (await bot.say(ADMIN_BT, "ab"))[-1]["text"]
    assert "từ 3 đến 500 ký tự" in (await bot.say(ADMIN_BT, "x" * 501))[-1]["text"]
    card = (await bot.say(ADMIN_BT, "abc"))[-1]
    assert "Lý do: abc" in card["text"] and labels_of(card) == ["✅ Mở sổ", "❌ Hủy"]
    assert await locks(bot) == {"BT": date(2026, 6, 30)}  # nothing before ✅
    assert "Đã mở sổ Đảng ủy xã Bộc Bố" in (await bot.tap(ADMIN_BT, "✅"))[-1]["text"]
    assert await locks(bot) == {}
    assert "sổ đang mở" in (await bot.say(ADMIN_BT, "/lock"))[-1]["text"]
    [entry] = await audit(bot, "unlock")
    assert (entry.channel, entry.field, entry.old_value, entry.new_value, entry.reason) == (
        AuditChannel.CHAT, "closed_until", "2026-06-30", None, "abc")
    assert entry.person_id is not None and len(await audit(bot, "lock")) == 1
    assert "Đã lưu" in (await bot.report_one_line(SECRETARY, "/report Lò Thị Hoa, 1998, nữ, 20/06/2026"))[-1]["text"]


async def test_unlock_can_be_cancelled(world) -> None:
    bot = world
    await lock_in_chat(bot, ADMIN_BT)
    await bot.say(ADMIN_BT, "/unlock")
    assert "Sổ vẫn khóa" in (await bot.say(ADMIN_BT, "/cancel"))[-1]["text"]
    await bot.say(ADMIN_BT, "/unlock BT")
    await bot.say(ADMIN_BT, "Số liệu cần sửa")
    assert "Sổ vẫn khóa" in (await bot.tap(ADMIN_BT, "❌"))[-1]["text"]
    assert await locks(bot) == {"BT": date(2026, 6, 30)} and await audit(bot, "unlock") == []


async def test_an_unlock_left_unanswered_is_forgotten_at_restart(world) -> None:
    bot = world
    await lock_in_chat(bot, ADMIN_BT)
    await bot.say(ADMIN_BT, "/unlock")
    await bot.stop()
    bot.clock.advance(timedelta(hours=1))
    await bot.start()
    assert "Sổ vẫn khóa" in (await bot.say(ADMIN_BT, "một tin nhắn khác"))[-1]["text"]  # not taken as a reason
    assert await locks(bot) == {"BT": date(2026, 6, 30)} and await audit(bot, "unlock") == []


async def test_committee_members_and_secretaries_cannot_lock(world) -> None:
    bot = world
    for person in (COMMITTEE, SECRETARY):
        for command in ("/lock 30/06/2026", "/lock", "/unlock"):
            assert "Chỉ Ban Tổ chức" in (await bot.say(person, command))[-1]["text"], (person, command)
    assert await locks(bot) == {}


async def test_an_admin_of_another_commune_can_neither_lock_nor_see_this_communes_lock(world) -> None:
    bot = world
    await lock_in_chat(bot, ADMIN_BT)
    for command in ("/lock BT 30/06/2026", "/lock BT", "/lock NL 30/06/2026", "/unlock BT", "/lock NOSUCH 30/06/2026"):
        text = (await bot.say(ADMIN_NN, command))[-1]["text"]
        assert "trong phạm vi đồng chí quản trị" in text and "Bộc Bố" not in text, command
    shown = (await bot.say(ADMIN_NN, "/lock"))[-1]["text"]
    assert "Đảng ủy xã Nhạn Môn: sổ đang mở" in shown and "Bộc Bố" not in shown and "Nà Lạn" not in shown
    text = (await bot.say(ADMIN_NN, "/unlock"))[-1]["text"]
    assert "Không có đơn vị nào" in text and "Bộc Bố" not in text
    assert await locks(bot) == {"BT": date(2026, 6, 30)}


async def test_forged_buttons_are_refused_and_change_nothing(world) -> None:
    bot = world
    bt, nn, pc = await unit_id(bot, "BT"), await unit_id(bot, "NN"), await unit_id(bot, "PC")
    await bot.say(COMMITTEE, "/lock")
    await bot.say(ADMIN_NN, "/progress")
    forged = [
        (COMMITTEE, f"lock:set:{bt}:20260630"), (COMMITTEE, f"lock:pick:{bt}:20260630"),
        (ADMIN_NN, f"lock:set:{bt}:20260630"), (ADMIN_NN, f"lock:pick:{bt}:20260630"),
        (ADMIN_NN, f"lock:set:{nn}:20261399"),  # no such day
        (ADMIN_NN, "lock:cancel"),  # not on a lock card
        (ADMIN_NN, f"unlock:confirm:{nn}:20260630"), (ADMIN_NN, f"unlock:pick:{nn}"),  # no unlock going on
    ]
    for user, data in forged:
        message = bot.api.last_message(user)
        before = (message["text"], labels_of(message))
        mark = bot.api.mark()
        await bot.settle(bot.api.push_callback(user, message["message_id"], data))
        assert toast(bot, mark), data  # answered with a polite note
        assert bot.replies(user, mark) == [], data  # nothing sent, nothing edited
        message = bot.api.last_message(user)
        assert (message["text"], labels_of(message)) == before
    assert await locks(bot) == {}
    # A future day is refused at the press as well (the card said today at the latest).
    message = bot.api.last_message(ADMIN_NN)
    await bot.settle(bot.api.push_callback(ADMIN_NN, message["message_id"], f"lock:set:{nn}:20260702"))
    assert await locks(bot) == {}

    # Inside an /unlock: a unit outside the scope, or another lock than the one shown.
    await lock_in_chat(bot, ADMIN_BT)
    await lock_in_chat(bot, ADMIN_NN, "/lock NN 30/06/2026")
    await lock_in_chat(bot, ADMIN_NN, "/lock PC 30/06/2026")
    await bot.say(ADMIN_NN, "/unlock")
    pick = bot.api.last_message(ADMIN_NN)
    assert len(labels_of(pick)) == 2
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(ADMIN_NN, pick["message_id"], f"unlock:pick:{bt}"))
    assert "không có quyền" in toast(bot, mark)
    assert bot.replies(ADMIN_NN, mark) == []
    await bot.tap(ADMIN_NN, "Đảng ủy xã Nhạn Môn")
    await bot.say(ADMIN_NN, "Sửa số liệu")
    card = bot.api.last_message(ADMIN_NN)
    for data in (f"unlock:confirm:{bt}:20260630", f"unlock:confirm:{pc}:20260630", f"unlock:confirm:{nn}:20260629"):
        mark = bot.api.mark()
        await bot.settle(bot.api.push_callback(ADMIN_NN, card["message_id"], data))
        assert toast(bot, mark) and bot.replies(ADMIN_NN, mark) == [], data
    mark = bot.api.mark()  # ❌ of another message: not this unlock's card
    await bot.settle(bot.api.push_callback(ADMIN_NN, pick["message_id"], "unlock:cancel"))
    assert toast(bot, mark) and bot.replies(ADMIN_NN, mark) == []
    assert await locks(bot) == {"BT": date(2026, 6, 30), "NN": date(2026, 6, 30), "PC": date(2026, 6, 30)}
    assert "Đã mở sổ Đảng ủy xã Nhạn Môn" in (await bot.tap(ADMIN_NN, "✅"))[-1]["text"]
    assert await locks(bot) == {"BT": date(2026, 6, 30), "PC": date(2026, 6, 30)}


async def test_weekly_check_ins_are_not_affected(world) -> None:
    bot = world
    await lock_in_chat(bot, ADMIN_PN, "/lock 01/07/2026")  # closed up to today
    assert "Đã ghi nhận" in (await bot.say(SECRETARY, "/checkin"))[0]["text"]


@pytest.fixture
def run(database_url: str, tmp_path) -> Run:  # type: ignore[no-untyped-def]
    """Return a CLI runner on an empty database of each kind."""
    return Run(tmp_path, database_url)


def test_the_cli_locks_and_unlocks_audited_and_imports_are_not_refused(run: Run) -> None:
    today = datetime.now(TZ).date()  # the command line runs on the machine's clock, in [bot] timezone
    until, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    ok(run("init"))
    ok(run("import-units", run.file("units.csv", UNITS)))
    assert "tương lai" in failed(run("lock", "--unit", "X1", "--until", tomorrow.isoformat()))
    assert "Không có đơn vị mã 'NOPE'" in failed(run("lock", "--unit", "NOPE", "--until", until.isoformat()))
    assert "yyyy-mm-dd" in failed(run("lock", "--unit", "X1", "--until", "hôm qua"))
    assert run.query("SELECT count(*) FROM unit_lock") == [(0,)]
    assert f"đến hết ngày {until.isoformat()}" in ok(run("lock", "--unit", "x1", "--until", until.isoformat()))
    assert run.query("SELECT closed_until FROM unit_lock") in ([(until,)], [(until.isoformat(),)])
    # The operator's import of history inside the closed period goes in.
    admissions = f"unit_code,full_name,birth_year,gender,admitted_on\nC1,Lò Thị Hoa,1998,nữ,{until:%d/%m/%Y}\n"
    ok(run("import-admissions", run.file("admissions.csv", admissions)))
    assert run.query("SELECT count(*) FROM admission") == [(1,)]
    assert "3 đến 500" in failed(run("unlock", "--unit", "X1", "--reason", "ab"))
    assert run.query("SELECT count(*) FROM unit_lock") == [(1,)]
    assert "Đã mở sổ" in ok(run("unlock", "--unit", "X1", "--reason", "abc"))
    assert "không khóa" in failed(run("unlock", "--unit", "X1", "--reason", "abc"))
    rows = run.query("SELECT action, channel, person_id, field, old_value, new_value, reason FROM audit_entry "
                     "WHERE action IN ('lock', 'unlock') ORDER BY id")
    keys = keys_from_environment()  # the suite's key: audit values are sealed at rest
    assert keys is not None
    opened = [tuple(keys.decrypt(v) if v is not None and i >= 4 else v for i, v in enumerate(row)) for row in rows]
    assert opened == [("lock", "cli", None, "closed_until", None, until.isoformat(), None),
                      ("unlock", "cli", None, "closed_until", until.isoformat(), None, "abc")]


async def test_a_report_checked_before_a_lock_holds_it_back_until_saved(engine, sessions) -> None:
    """PostgreSQL: the check in the saving transaction keeps a lock of the same subtree waiting, so a
    report checked as open cannot be committed after a lock it did not see (SQLite's writers queue anyway)."""
    from datetime import datetime as moment

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from models.locks import ensure_open, lock_books
    from models.units import load_units
    from tests.harness import WORLD_UNITS

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): nothing to hold")
    async with sessions.begin() as session:
        await load_units(session, WORLD_UNITS)
    now = moment(2026, 7, 1, 9, tzinfo=TZ)
    async with sessions.begin() as reporting:
        cell = await unit_by_code(reporting, "NL")
        assert await ensure_open(reporting, cell, date(2026, 6, 20), None) is None
        with pytest.raises(DBAPIError, match="lock timeout"):
            async with sessions.begin() as locking:
                await locking.execute(text("SET LOCAL lock_timeout = '300ms'"))
                commune = await unit_by_code(locking, "BT")
                await lock_books(locking, commune, date(2026, 6, 30), person=None, now=now, today=now.date(),
                                 channel=AuditChannel.CLI)
    async with sessions.begin() as locking:  # once the report committed, the lock goes in
        commune = await unit_by_code(locking, "BT")
        await lock_books(locking, commune, date(2026, 6, 30), person=None, now=now, today=now.date(),
                         channel=AuditChannel.CLI)
