"""The question messages of /report: each step asked in a new message, answered ones edited, old buttons refused.

Each question is a new message at the bottom of the chat; the draft remembers it as the live
question (`draft["live"]`: its message id, state, and its text when it has buttons) and keeps the
ids of all it asked (`draft["asked"]`). When answered, the question is edited into its answer
("Sex: Female ✓" in English) and loses its buttons; a button on any other message of this draft
is answered as stale and changes nothing (`step`, `is_stale`), so an old button far up the chat
can never move the conversation on.

handlers/report.py holds the conversation (its state table and step callbacks) and uses these
helpers; handlers/report_card.py builds the texts and buttons they send.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import MaybeInaccessibleMessage, Update
from telegram.error import BadRequest

from handlers.common import answer, cached_person, esc, reply, translator
from handlers.context import BotContext
from handlers.report_card import (
    CELL, CONFIRM, DECISION_CHECK, DRAFT, END, EXAMPLE, FIELDS, KEY_OF, NAME_CHECK, STATE_OF, answered, card, question,
)
from models.people import Scope

Step = Callable[[Update, BotContext], Awaitable[int | None]]


def draft_of(context: BotContext) -> dict[str, Any]:
    """Return the draft in progress in `user_data`, starting an empty one if there is none."""
    return context.user_data.setdefault(DRAFT, {})  # type: ignore[union-attr]


def text_of(update: Update) -> str:
    """Return the text of the update's message ("" when it has none)."""
    message = update.effective_message
    return (message.text or "") if message is not None else ""


async def close_live(update: Update, context: BotContext, shown: str | None) -> None:
    """Turn the live question into its answer `shown` (or, with None, just take its buttons away)."""
    live = draft_of(context).get("live")
    chat = update.effective_chat
    if not live or chat is None:
        return
    try:
        if shown is not None:
            await context.bot.edit_message_text(shown, chat.id, live["id"])  # no markup: the buttons go
        elif live.get("text"):  # the same text without the buttons (PTB's editMessageReplyMarkup would
            # send the default parse_mode along, a parameter that method does not have)
            await context.bot.edit_message_text(live["text"], chat.id, live["id"])
    except BadRequest:  # deleted by the person, or unchanged: the new question below is what counts
        pass


async def ask(update: Update, context: BotContext, state: int, *, shown: str | None = None, before: str = "") -> int:
    """Close the live question (see close_live), ask for `state` in a new message below, and return `state`."""
    tr = translator(context, update)
    draft = draft_of(context)
    await close_live(update, context, shown)
    if state == CONFIRM:
        person = await cached_person(context, update)
        text, markup = await card(context.services.db, tr, draft, Scope(person) if person else None)
    else:
        text, markup = question(tr, state, draft)
    text = f"{before}\n\n{text}" if before else text
    message = await reply(update, context, text, markup)
    # The text is kept only to take the buttons away later: it holds nothing the draft does not.
    draft["live"] = {"id": message.message_id, "state": state, "text": text if markup is not None else None}
    draft.setdefault("asked", []).append(message.message_id)
    return state


async def onward(update: Update, context: BotContext, shown: str | None = None) -> int:
    """Ask what comes next: a doubt to settle, then the card once complete, else the first unanswered question."""
    draft = draft_of(context)
    if "unit_id" not in draft:
        return await ask(update, context, CELL, shown=shown)
    if "pending_name" in draft:
        return await ask(update, context, NAME_CHECK, shown=shown)
    if "pending_decision" in draft:
        return await ask(update, context, DECISION_CHECK, shown=shown)
    unanswered = [field for field in FIELDS if KEY_OF[field] not in draft]
    if draft.get("complete") or not unanswered:
        draft["complete"] = True  # from now on every answer returns to the card
        return await ask(update, context, CONFIRM, shown=shown)
    return await ask(update, context, STATE_OF[unanswered[0]], shown=shown)


async def took(update: Update, context: BotContext, field: str) -> int:
    """Move on after `field` was answered, showing the answer in place of its question."""
    return await onward(update, context, answered(translator(context, update), field, draft_of(context)))


async def invalid(update: Update, context: BotContext, reason: str, field: str | None) -> int | None:
    """Say what to send instead (with an example); the step repeats, its buttons (if any) asked again below."""
    tr = translator(context, update)
    example = tr(f"report.example.{EXAMPLE[field]}") if field in EXAMPLE else ""
    return await refuse_answer(update, context, tr(f"report.invalid.{reason}", example=esc(example)))


async def refuse_answer(update: Update, context: BotContext, text: str) -> int | None:
    """Say `text` (why the answer cannot be taken); the step repeats, its buttons (if any) asked again below."""
    live = draft_of(context).get("live")
    if live and live.get("text"):
        return await ask(update, context, live["state"], before=text)
    await reply(update, context, text)
    return None  # stay in the same state


def is_stale(message: MaybeInaccessibleMessage | None, draft: dict[str, Any]) -> bool:
    """Tell whether a button's message is one this draft asked before the live question, or older than the draft.

    A message newer than the draft's first question that it never recorded was sent by a run that
    died before persisting (kill -9): Telegram redelivers the answer, the question is asked again,
    and a tap on the first copy, still of the current step, is taken. A draft persisted before
    questions were recorded has no live question: its buttons are taken as they come."""
    live, asked = draft.get("live"), draft.get("asked") or []
    if live is None or not asked:
        return False
    if message is None:
        return True
    return message.message_id != live["id"] and (message.message_id in asked or message.message_id < asked[0])


def step(callback: Step) -> Step:
    """Run a step only for the draft in progress: a forgotten draft is answered as expired, a button
    of any message but the live question as stale (nothing changes)."""

    @functools.wraps(callback)
    async def checked(update: Update, context: BotContext) -> int | None:
        draft = context.user_data.get(DRAFT) or {}  # type: ignore[union-attr]
        if "ref" not in draft:
            return await expired(update, context)
        if update.callback_query is not None and is_stale(update.callback_query.message, draft):
            await stale_button(update, context)
            return None
        return await callback(update, context)

    return checked


async def stale_button(update: Update, context: BotContext) -> None:
    """Answer a button of an older question or card: use the latest question; nothing changes."""
    assert update.callback_query is not None
    await answer(update.callback_query, translator(context, update)("report.stale_question"), alert=True)


async def expired(update: Update, context: BotContext) -> int:
    """Say that the unfinished report was forgotten, and end the conversation."""
    tr = translator(context, update)
    if update.callback_query is not None:
        await answer(update.callback_query)
    if update.effective_chat is not None:
        await reply(update, context, tr("report.expired"))
    return END
