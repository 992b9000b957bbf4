"""Registration by invite code, the guard for strangers, /help and the command menu — over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from models.entities import Invite, Person, Role
from models.people import create_invite, person_by_telegram_id
from models.units import unit_by_code


async def test_secretary_registers_with_code_and_is_told_what_to_do(harness) -> None:
    replies = await harness.register(1001, "NL", Role.SECRETARY, first_name="Hoa")
    assert len(replies) == 1
    text = replies[0]["text"]
    assert "đồng chí Hoa" in text and "Chi bộ thôn Nà Lạn" in text and "/report" in text
    async with harness.sessions() as session:
        person = await person_by_telegram_id(session, 1001)
        assert person is not None and person.assignments[0].role == Role.SECRETARY


async def test_committee_welcome_mentions_progress_not_report(harness) -> None:
    text = (await harness.register(2001, "BT", Role.COMMITTEE))[0]["text"]
    assert "/progress" in text and not re.search(r"/report\b(?!s)", text)  # /reports (corrections) is theirs


async def test_code_is_single_use_and_stored_hashed(harness) -> None:
    harness.api.add_user(1001)
    harness.api.add_user(1002)
    async with harness.sessions.begin() as session:
        code = await create_invite(session, await unit_by_code(session, "NL"), Role.SECRETARY, harness.clock.now(), 14)
    await harness.say(1001, f"/start {code}")
    text = (await harness.say(1002, f"/start {code}"))[0]["text"]
    assert "đã được sử dụng" in text
    async with harness.sessions() as session:
        hashes = list(await session.scalars(select(Invite.code_hash)))
    assert code not in hashes and len(hashes[0]) == 64


async def test_expired_and_unknown_codes_are_explained(harness) -> None:
    harness.api.add_user(1001)
    async with harness.sessions.begin() as session:
        code = await create_invite(session, await unit_by_code(session, "NL"), Role.SECRETARY,
                                   harness.clock.now() - timedelta(days=15), 14)
    assert "hết hạn" in (await harness.say(1001, f"/start {code}"))[0]["text"]
    assert "không đúng" in (await harness.say(1001, "/start nosuchcode123"))[0]["text"]
    assert "không đúng" in (await harness.say(1001, "/start ../../etc/passwd"))[0]["text"]


async def test_strangers_get_told_how_to_register_whatever_they_send(harness) -> None:
    harness.api.add_user(5555)
    for text in ("xin chào", "/progress", "/report", "/start"):
        replies = await harness.say(5555, text)
        assert len(replies) == 1, text
        assert "mã mời" in replies[0]["text"], text
    async with harness.sessions() as session:
        assert await session.scalar(select(Person).where(Person.telegram_id == 5555)) is None


async def test_english_speaker_gets_english(harness) -> None:
    harness.api.add_user(7777, "John", language_code="en")
    text = (await harness.say(7777, "hello"))[0]["text"]
    assert "invite code" in text


async def test_help_lists_roles(harness) -> None:
    await harness.register(1001, "NL", Role.SECRETARY)
    text = (await harness.say(1001, "/help"))[0]["text"]
    assert "Bí thư chi bộ" in text and "/undo" in text


async def test_the_default_menu_offers_only_what_someone_unregistered_can_use(harness) -> None:
    # Changed by the menus issue: the default menu used to list every command to everyone.
    calls = [c for c in harness.api.calls_to("setMyCommands") if c.params.get("scope", {}).get("type") == "all_private_chats"]
    assert {call.params.get("language_code") for call in calls} == {None, "en"}
    for call in calls:
        assert [c["command"] for c in call.params["commands"]] == ["start", "help"]
    vi = harness.api.get_commands("", {"type": "all_private_chats"})
    en = harness.api.get_commands("en", {"type": "all_private_chats"})
    assert "mã mời" in vi[0]["description"] and "invite code" in en[0]["description"]


async def test_help_offers_the_schedule_only_to_admins_of_the_whole_tree(harness) -> None:
    await harness.register(3001, "PN", Role.ADMIN)  # the root of the test world
    await harness.register(3002, "BT", Role.ADMIN)  # a commune's admin
    assert "/schedule" in (await harness.say(3001, "/help"))[0]["text"]
    text = (await harness.say(3002, "/help"))[0]["text"]
    assert "/schedule" not in text and "/export" in text
