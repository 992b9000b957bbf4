"""A draft's timeout: forgotten after its lifetime, but never over a newer answer another process took."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from models.entities import Role, StoredState


def _report_conversation(application):  # type: ignore[no-untyped-def]
    from handlers.common import DraftConversation

    return next(handler for group in application.handlers.values() for handler in group
                if isinstance(handler, DraftConversation) and handler.name == "report")


async def _stored_draft(bot, user_id: int) -> dict | None:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        row = await session.get(StoredState, ("user_data", str(user_id)))
    return None if row is None else json.loads(row.data).get("report")


async def test_an_abandoned_draft_is_forgotten_when_its_time_is_up(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report")
    await bot.say(1001, "Lò Thị Hoa")
    assert (await _stored_draft(bot, 1001))["full_name"] == "Lò Thị Hoa"
    conversation = _report_conversation(bot.application)
    (job,) = conversation.timeout_jobs.values()
    await job.run(bot.application)  # the two days are up now (PTB's own timer, run early)
    assert await _stored_draft(bot, 1001) is None  # the name is gone from the database too
    async with bot.sessions() as session:
        states = list(await session.scalars(select(StoredState.key).where(StoredState.kind == "conversation:report")))
    assert states == []
    replies = await bot.say(1001, "1998")  # no conversation waits for a birth year any more
    assert "Giới tính" not in replies[-1]["text"]


async def test_a_timer_of_this_process_leaves_a_draft_another_process_moved_on(harness) -> None:
    bot = harness
    if bot.application.services.db.dialect != "postgresql":
        pytest.skip("several processes share PostgreSQL only")
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report")
    await bot.say(1001, "Lò Thị Hoa")
    (job,) = _report_conversation(bot.application).timeout_jobs.values()
    # Another process took the next answer: the draft in the database is newer than this one's.
    async with bot.sessions.begin() as session:
        row = await session.get(StoredState, ("user_data", "1001"))
        data = json.loads(row.data)
        data["report"]["birth_year"] = 1998
        row.data = json.dumps(data, ensure_ascii=False, sort_keys=True)
    await job.run(bot.application)
    assert (await _stored_draft(bot, 1001))["birth_year"] == 1998  # not forgotten, not overwritten
    assert bot.application.user_data[1001]["report"]["birth_year"] == 1998  # and this process now knows it
