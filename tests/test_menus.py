"""Per-person command menus, /help and README's "In the chat" table agree — over HTTP.

The menu of a registered person is set in their private chat (BotCommandScopeChat) in their
language when they register or take on a role, and again at start for everyone registered.
"""

from __future__ import annotations

import re
from pathlib import Path

from models.entities import Role

ROOT = Path(__file__).resolve().parent.parent
SECRETARY = {"start", "help", "report", "cancel", "undo", "progress", "chart", "checkin", "away", "reports",
             "candidates", "candidate", "admissions"}
COMMITTEE = {"start", "help", "progress", "chart", "export", "reports", "candidates"}
ADMIN = COMMITTEE | {"invite", "people", "template", "lock", "unlock"}
ROOT_ADMIN = ADMIN | {"schedule"}


def menu(bot, chat_id: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """Return the menu the bot set in this person's chat (any language: one per chat)."""
    return bot.api.get_commands("", {"type": "chat", "chat_id": chat_id})


def names(bot, chat_id: int) -> set[str]:  # type: ignore[no-untyped-def]
    return {c["command"] for c in menu(bot, chat_id)}


def mentioned(text: str) -> set[str]:
    """Return the commands a /help text mentions at the start of its lines ("/report — …")."""
    return set(re.findall(r"^/([a-z]+)", text, re.MULTILINE))


async def test_each_role_gets_its_own_menu_and_help_lists_the_same_commands(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(2001, "BT", Role.COMMITTEE)
    await bot.register(3001, "PN", Role.ADMIN)  # the root: the schedule is theirs
    await bot.register(3002, "BT", Role.ADMIN)  # a commune's admin: no schedule
    expected = {1001: SECRETARY, 2001: COMMITTEE, 3001: ROOT_ADMIN, 3002: ADMIN}
    for chat_id, commands in expected.items():
        assert names(bot, chat_id) == commands, chat_id
        assert mentioned((await bot.say(chat_id, "/help"))[0]["text"]) == commands, chat_id
    assert any("Báo cáo" in c["description"] for c in menu(bot, 1001))


async def test_the_menu_follows_a_new_role_and_the_persons_language(harness) -> None:
    bot = harness
    bot.api.add_user(1005, "Jane", language_code="en")
    await bot.register(1005, "NL", Role.SECRETARY, "Jane")
    assert names(bot, 1005) == SECRETARY
    assert "Report" in next(c["description"] for c in menu(bot, 1005) if c["command"] == "report")
    await bot.register(1005, "BT", Role.COMMITTEE, "Jane")  # a second invite: a new role
    assert names(bot, 1005) == SECRETARY | COMMITTEE
    assert mentioned((await bot.say(1005, "/help"))[0]["text"]) == SECRETARY | COMMITTEE
    # A refused code changes nothing.
    mark = bot.api.mark()
    await bot.say(1005, "/start nosuchcode123")
    assert bot.api.calls_to("setMyCommands", since=mark) == []


async def test_menus_are_published_again_at_start_for_everyone_registered(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(2001, "BT", Role.COMMITTEE)
    await bot.stop()
    bot.api.commands.clear()  # as if Telegram had lost them
    await bot.start()  # published again in the background while the bot already answers
    await bot.api.until(lambda: names(bot, 1001) == SECRETARY and names(bot, 2001) == COMMITTEE)


async def test_a_refused_menu_never_stops_the_registration(harness) -> None:
    bot = harness
    bot.api.add_user(1001)
    bot.api.fail_next("setMyCommands", 400, "Bad Request: chat not found")
    text = (await bot.register(1001, "NL", Role.SECRETARY))[0]["text"]
    assert "Chi bộ thôn Nà Lạn" in text and "/report" in text
    assert "/help" in (await bot.say(1001, "/help"))[0]["text"]


def readme_rows() -> dict[str, set[str]]:
    """Return README's "In the chat" table as command -> the "who" words of its row(s)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## In the chat", 1)[1].split("\n\n", 2)[1]
    rows: dict[str, set[str]] = {}
    for line in table.splitlines()[2:]:
        who, command = [cell.strip() for cell in line.strip("|").split(" | ")[:2]]
        for name in re.findall(r"`/([a-z]+)", command):
            rows.setdefault(name, set()).add(who)
    return rows


async def test_readme_says_what_the_menus_offer(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(2001, "BT", Role.COMMITTEE)
    await bot.register(3001, "PN", Role.ADMIN)
    await bot.register(3002, "BT", Role.ADMIN)
    people = {"secretary": {1001}, "committee": {2001}, "admin": {3001, 3002}, "admin of the whole tree": {3001}}
    people["registered"] = people["anyone"] = {1001, 2001, 3001, 3002}
    rows = readme_rows()
    offered = {name for chat_id in (1001, 2001, 3001, 3002) for name in names(bot, chat_id)}
    assert set(rows) == offered
    for name, whos in rows.items():
        readers = {chat_id for who in whos for part in who.split(", ") for chat_id in people[part]}
        holders = {chat_id for chat_id in (1001, 2001, 3001, 3002) if name in names(bot, chat_id)}
        assert readers == holders, name
    default = {c["command"] for c in bot.api.get_commands("", {"type": "all_private_chats"})}
    assert default == {name for name, whos in rows.items() if whos == {"anyone"}}
