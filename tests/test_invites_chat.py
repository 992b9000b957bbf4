"""/invite over HTTP: the code, link and QR photo; the guided form; scope refusals; forged buttons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models.entities import AuditChannel, AuditEntry, Invite, Role, UnitKind
from models.people import person_by_telegram_id
from models.units import UnitRow, load_units, unit_by_code
from tests.harness import WORLD_UNITS
from tests.invite_steps import counts, decode_qr, forge, invite_code

ADMIN_BT, ADMIN_NN, SECRETARY = 3002, 3003, 1001


async def test_invite_by_command_gives_code_link_and_qr_of_the_link(harness, tmp_path) -> None:
    bot = harness
    await bot.register(ADMIN_BT, "BT", Role.ADMIN, first_name="Lan")
    replies = await bot.say(ADMIN_BT, "/invite nl secretary")
    assert [r.get("photo") is not None for r in replies] == [False, True]
    text = replies[0]["text"]
    code = invite_code(replies)
    link = f"https://t.me/{bot.api.bot_username}?start={code}"
    assert link in text and "Chi bộ thôn Nà Lạn" in text and "bí thư chi bộ" in text
    assert "15/07/2026 09:00" in text  # [bot] invite_days 14 from 1/7/2026 09:00, as the command line's
    assert f"\n<code>{code}</code>\n" in text  # the code alone on its own line, to copy or read out
    png = bot.api.files[bot.api.last_message(ADMIN_BT)["photo"][0]["file_id"]][2]

    async with bot.sessions() as session:
        admin = await person_by_telegram_id(session, ADMIN_BT)
        invite = await session.scalar(select(Invite).order_by(Invite.id.desc()).limit(1))
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.subject == "invite"))
    assert invite.created_by_id == admin.id and invite.role == Role.SECRETARY and invite.replaces_id is None
    assert (entry.action, entry.channel, entry.person_id, entry.subject_id) == ("invite", AuditChannel.CHAT,
                                                                                admin.id, invite.id)
    assert code not in str((entry.old_value, entry.new_value, entry.reason))

    bot.api.add_user(1101, "Hoa")
    welcome = (await bot.say(1101, f"/start {code}"))[0]["text"]
    assert "bí thư Chi bộ thôn Nà Lạn" in welcome

    decoded = decode_qr(png, tmp_path)
    if decoded is None:
        pytest.skip("zbarimg (Debian's zbar-tools) is not installed: the QR photo was sent but not decoded")
    assert decoded == link


async def test_vietnamese_role_words_and_bad_input_get_clear_replies(harness) -> None:
    bot = harness
    await bot.register(ADMIN_BT, "BT", Role.ADMIN)
    assert "cấp ủy viên" in (await bot.say(ADMIN_BT, "/invite BT uyvien"))[0]["text"]
    assert "không hợp lệ" in (await bot.say(ADMIN_BT, "/invite NL boss"))[0]["text"]
    assert "Cách dùng" in (await bot.say(ADMIN_BT, "/invite NL bi thu"))[0]["text"]
    assert (await counts(bot))[0] == 2  # the admin's own (made by the test) and the one made here


async def test_guided_form_walks_down_to_a_cell_then_the_role(harness) -> None:
    bot = harness
    await bot.register(ADMIN_BT, "BT", Role.ADMIN)
    form = (await bot.say(ADMIN_BT, "/invite"))[0]
    assert "Đảng ủy xã Bộc Bố" in form["text"] and "/invite NL bithu" in form["text"]
    down = (await bot.tap(ADMIN_BT, "📂 Chi bộ thôn Khuổi Pết"))[0]
    assert "Chi bộ thôn Khuổi Pết" in down["text"]
    assert (await bot.tap(ADMIN_BT, "⬆️ Đảng ủy xã Bộc Bố"))[0]["text"] == form["text"]
    await bot.tap(ADMIN_BT, "📂 Chi bộ thôn Khuổi Pết")
    replies = await bot.tap(ADMIN_BT, "👤 Bí thư")
    assert "Chi bộ thôn Khuổi Pết" in replies[0]["text"] and replies[1]["photo"]
    code = invite_code(replies)
    bot.api.add_user(1102)
    assert "bí thư Chi bộ thôn Khuổi Pết" in (await bot.say(1102, f"/start {code}"))[0]["text"]
    # /invite CODE asks only for the role; no ⬆️ above the admin's own unit
    asked = (await bot.say(ADMIN_BT, "/invite BT"))[0]
    assert "⬆️" not in str(asked["reply_markup"])


async def test_form_pages_many_child_units_ten_at_a_time(harness) -> None:
    bot = harness
    extra = [UnitRow(100 + i, f"T{i:02d}", f"Chi bộ thôn {i:02d}", "NN", UnitKind.CELL) for i in range(11)]
    async with bot.sessions.begin() as session:
        await load_units(session, [*WORLD_UNITS, *extra])
    await bot.register(ADMIN_NN, "NN", Role.ADMIN)
    first = (await bot.say(ADMIN_NN, "/invite"))[0]
    labels = [b["text"] for row in first["reply_markup"]["inline_keyboard"] for b in row]
    assert sum(label.startswith("📂") for label in labels) == 10 and "Sau ▶" in labels and "trang 1/2" in first["text"]
    second = (await bot.tap(ADMIN_NN, "Sau ▶"))[0]
    labels = [b["text"] for row in second["reply_markup"]["inline_keyboard"] for b in row]
    assert sum(label.startswith("📂") for label in labels) == 2 and "◀ Trước" in labels  # 12 children: 10 + 2


async def test_only_admins_of_the_subtree_may_invite_and_refusals_reveal_nothing(harness) -> None:
    bot = harness
    await bot.register(ADMIN_BT, "BT", Role.ADMIN)
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    before = await counts(bot)
    other = (await bot.say(ADMIN_BT, "/invite PC secretary"))[0]["text"]
    unknown = (await bot.say(ADMIN_BT, "/invite ZZ secretary"))[0]["text"]
    assert other.replace("PC", "ZZ") == unknown and "Pác Cáp" not in other  # the same answer as an unknown code
    assert "Pác Cáp" not in (await bot.say(ADMIN_BT, "/invite PC"))[0]["text"]
    assert "Chỉ cán bộ Ban Tổ chức" in (await bot.say(SECRETARY, "/invite NL secretary"))[0]["text"]
    assert "Chỉ cán bộ Ban Tổ chức" in (await bot.say(SECRETARY, "/invite"))[0]["text"]
    assert await counts(bot) == before


async def test_forged_invite_buttons_are_refused_and_make_nothing(harness) -> None:
    bot = harness
    await bot.register(ADMIN_BT, "BT", Role.ADMIN)
    await bot.register(SECRETARY, "NL", Role.SECRETARY)
    async with bot.sessions() as session:
        pc, nl, pn = [(await unit_by_code(session, c)).id for c in ("PC", "NL", "PN")]
    await bot.say(ADMIN_BT, "/invite")
    await bot.say(SECRETARY, "/invite")
    before = await counts(bot)
    for presser, data in ((ADMIN_BT, f"inv:r:{pc}:s"), (ADMIN_BT, f"inv:r:{pn}:a"), (ADMIN_BT, f"inv:u:{pc}:0"),
                          (ADMIN_BT, "inv:r:999999:s"), (SECRETARY, f"inv:r:{nl}:s"), (SECRETARY, f"inv:u:{nl}:0"),
                          (SECRETARY, "inv:home")):
        answer, replies = await forge(bot, presser, data)
        assert answer["show_alert"] and "ngoài phạm vi" in answer["text"], data
        assert replies == [], data
        assert "Pác Cáp" not in answer["text"]
    assert await counts(bot) == before


async def test_english_admin_gets_english(harness) -> None:
    bot = harness
    bot.api.add_user(3009, "Ann", language_code="en")
    await bot.register(3009, "BT", Role.ADMIN)
    replies = await bot.say(3009, "/invite KP committee")
    assert "Invite made: Committee member — <b>Chi bộ thôn Khuổi Pết</b>" in replies[0]["text"]
    assert "Scan the QR code" in replies[1]["caption"]


async def test_a_chat_invite_works_until_the_second_before_it_expires(harness) -> None:
    bot = harness
    await bot.register(ADMIN_BT, "BT", Role.ADMIN)
    early = invite_code(await bot.say(ADMIN_BT, "/invite NL secretary"))
    late = invite_code(await bot.say(ADMIN_BT, "/invite KP secretary"))
    bot.clock.advance(timedelta(days=14) - timedelta(seconds=1))
    bot.api.add_user(1201)
    assert "bí thư Chi bộ thôn Nà Lạn" in (await bot.say(1201, f"/start {early}"))[0]["text"]
    bot.clock.advance(timedelta(seconds=1))  # exactly [bot] invite_days after it was made
    bot.api.add_user(1202)
    assert "hết hạn" in (await bot.say(1202, f"/start {late}"))[0]["text"]


async def test_an_admin_of_two_communes_picks_one_first_and_can_come_back(harness) -> None:
    bot = harness
    await bot.register(ADMIN_BT, "BT", Role.ADMIN)
    await bot.register(ADMIN_BT, "NN", Role.ADMIN)
    home = (await bot.say(ADMIN_BT, "/invite"))[0]
    assert [[b["text"] for b in row] for row in home["reply_markup"]["inline_keyboard"]] == [
        ["Đảng ủy xã Bộc Bố"], ["Đảng ủy xã Nhạn Môn"]]
    assert "📂 Chi bộ thôn Pác Cáp" in str((await bot.tap(ADMIN_BT, "Đảng ủy xã Nhạn Môn"))[0]["reply_markup"])
    assert (await bot.tap(ADMIN_BT, "⬆️ Các đơn vị của tôi"))[0]["text"] == home["text"]
