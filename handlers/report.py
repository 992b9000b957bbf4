"""/report: a guided conversation (or one line) that ends in a confirmation card; saved only on ✅.

Answers are gathered in `user_data["report"]` (persisted, so a restart resumes the step) and
written once, in one transaction, when the secretary taps ✅. See report.mmd for the states.

Each question is a new message at the bottom of the chat; the draft remembers it as the live
question (`draft["live"]`: its message id, state, and its text when it has buttons) and keeps the
ids of all it asked (`draft["asked"]`). When answered, the question is edited into its answer
("Sex: Female ✓" in English) and loses its buttons; a button on any other message of this draft
is answered as stale and changes nothing (`_step`, `_is_stale`), so an old button far up the chat
can never move the conversation on.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from telegram import MaybeInaccessibleMessage, Update
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from handlers.context import BotContext, Feature
from services.telegram import services_of
from handlers.report_card import (
    BIRTH_YEAR, CELL, CONFIRM, DATE, DECISION, DECISION_CHECK, DRAFT, DRAFT_LIFETIME, EDIT, END, ETHNICITY,
    ETHNICITY_BUTTONS, ETHNICITY_OTHER, EXAMPLE, FIELDS, KEY_OF, MAX_TEXT, NAME, NAME_CHECK, SEX, STATE_OF, YOUTH,
    YOUTH_BUTTON, answered, card, checked_age, draft_value, parse_one_line, question, set_decision, set_name,
)
from handlers.common import answer, cached_person, current_person, esc, reply, today, translator, unit_progress_line
from models.admissions import NotAllowed, record_admission, saved_report
from models.entities import Role, Sex
from models.people import Scope
from models.progress import Period, progress_of
from models.units import unit_by_id
from models.values import parse_birth_year, parse_date, parse_ethnicity, parse_sex, parse_yes_no

logger = logging.getLogger(__name__)

Step = Callable[[Update, BotContext], Awaitable[int | None]]


def _draft(context: BotContext) -> dict[str, Any]:
    return context.user_data.setdefault(DRAFT, {})  # type: ignore[union-attr]


def _text(update: Update) -> str:
    message = update.effective_message
    return (message.text or "") if message is not None else ""


async def _close_live(update: Update, context: BotContext, shown: str | None) -> None:
    """Turn the live question into its answer `shown` (or, with None, just take its buttons away)."""
    live = _draft(context).get("live")
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


async def _ask(update: Update, context: BotContext, state: int, *, shown: str | None = None, before: str = "") -> int:
    """Close the live question (see _close_live), ask for `state` in a new message below, and return `state`."""
    tr = translator(context, update)
    draft = _draft(context)
    await _close_live(update, context, shown)
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


async def _onward(update: Update, context: BotContext, shown: str | None = None) -> int:
    """Ask what comes next: a doubt to settle, then the card once complete, else the first unanswered question."""
    draft = _draft(context)
    if "unit_id" not in draft:
        return await _ask(update, context, CELL, shown=shown)
    if "pending_name" in draft:
        return await _ask(update, context, NAME_CHECK, shown=shown)
    if "pending_decision" in draft:
        return await _ask(update, context, DECISION_CHECK, shown=shown)
    unanswered = [field for field in FIELDS if KEY_OF[field] not in draft]
    if draft.get("complete") or not unanswered:
        draft["complete"] = True  # from now on every answer returns to the card
        return await _ask(update, context, CONFIRM, shown=shown)
    return await _ask(update, context, STATE_OF[unanswered[0]], shown=shown)


async def _took(update: Update, context: BotContext, field: str) -> int:
    """Move on after `field` was answered, showing the answer in place of its question."""
    return await _onward(update, context, answered(translator(context, update), field, _draft(context)))


async def _invalid(update: Update, context: BotContext, reason: str, field: str | None) -> int | None:
    """Say what to send instead (with an example); the step repeats, its buttons (if any) asked again below."""
    tr = translator(context, update)
    example = tr(f"report.example.{EXAMPLE[field]}") if field in EXAMPLE else ""
    text = tr(f"report.invalid.{reason}", example=esc(example))
    live = _draft(context).get("live")
    if live and live.get("text"):
        return await _ask(update, context, live["state"], before=text)
    await reply(update, context, text)
    return None  # stay in the same state


def _is_stale(message: MaybeInaccessibleMessage | None, draft: dict[str, Any]) -> bool:
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


def _step(callback: Step) -> Step:
    """Run a step only for the draft in progress: a forgotten draft is answered as expired, a button
    of any message but the live question as stale (nothing changes)."""

    @functools.wraps(callback)
    async def checked(update: Update, context: BotContext) -> int | None:
        draft = context.user_data.get(DRAFT) or {}  # type: ignore[union-attr]
        if "ref" not in draft:
            return await _expired(update, context)
        if update.callback_query is not None and _is_stale(update.callback_query.message, draft):
            await stale_button(update, context)
            return None
        return await callback(update, context)

    return checked


async def stale_button(update: Update, context: BotContext) -> None:
    """Answer a button of an older question or card: use the latest question; nothing changes."""
    assert update.callback_query is not None
    await answer(update.callback_query, translator(context, update)("report.stale_question"), alert=True)


async def start_report(update: Update, context: BotContext) -> int:
    """Start a report: pick the cell (if several), then ask step by step, or take the one-line form."""
    assert update.effective_message is not None
    if update.callback_query is not None:
        await answer(update.callback_query)
    async with context.services.db.reading() as session:
        person = await current_person(session, update)
        cells = Scope(person).reporting_cells() if person else []
        tr = translator(context, update, person)
        cell_rows = [[c.id, c.name] for c in cells]
    if not cell_rows:
        await reply(update, context, tr("report.not_secretary"))
        return END
    context.user_data[DRAFT] = draft = {  # type: ignore[index]
        "ref": uuid.uuid4().hex, "started": context.services.clock.now().isoformat(), "cells": cell_rows,
    }
    words = _text(update).split(maxsplit=1) if update.callback_query is None else []
    line = words[1].strip() if len(words) > 1 else ""
    if line:
        problem = parse_one_line(tr, line, today(context), draft)
        if problem:
            context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
            await reply(update, context, problem + "\n\n" + tr("report.one_line_usage"))
            return END
        draft["complete"] = True
    if len(cell_rows) == 1:
        draft["unit_id"], draft["cell_name"] = cell_rows[0]
    return await _onward(update, context)


@_step
async def choose_cell(update: Update, context: BotContext) -> int:
    """Take the chosen cell (only one of the secretary's own)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    unit_id = int(query.data.rsplit(":", 1)[1])
    async with context.services.db.reading() as session:
        person = await current_person(session, update)
        unit = await unit_by_id(session, unit_id)
        allowed = person is not None and unit is not None and Scope(person).may_report_for(unit)
        name = unit.name if unit else ""
    if not allowed:
        await query.edit_message_text(translator(context, update)("common.not_allowed"))
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        return END
    draft = _draft(context)
    draft["unit_id"], draft["cell_name"] = unit_id, name
    return await _took(update, context, "cell")


@_step
async def take_name(update: Update, context: BotContext) -> int | None:
    """Take the full name as typed, each word capitalised; a one-word name is asked about."""
    try:
        set_name(_draft(context), _text(update))
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "name")
    if "pending_name" in _draft(context):
        return await _onward(update, context)
    return await _took(update, context, "name")


@_step
async def settle_name(update: Update, context: BotContext) -> int:
    """Keep the one-word name, or ask for the name again."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    draft = _draft(context)
    pending = draft.pop("pending_name", None)
    if query.data.endswith(":retype") or pending is None:
        return await _ask(update, context, NAME)
    draft["full_name"] = pending
    return await _took(update, context, "name")


@_step
async def take_birth_year(update: Update, context: BotContext) -> int | None:
    """Take a four-digit birth year giving an age of 18 to 90."""
    try:
        year = parse_birth_year(_text(update)[:MAX_TEXT], today(context))
        checked_age(_draft(context), birth_year=year)
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "birth_year")
    _draft(context)["birth_year"] = year
    return await _took(update, context, "birth_year")


@_step
async def take_sex_button(update: Update, context: BotContext) -> int:
    """Take the sex from its button."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    _draft(context)["sex"] = Sex(query.data.rsplit(":", 1)[1]).value
    return await _took(update, context, "sex")


@_step
async def take_sex_text(update: Update, context: BotContext) -> int | None:
    """Take the sex typed as nam / nữ / nu / male / female."""
    try:
        _draft(context)["sex"] = parse_sex(_text(update)[:MAX_TEXT]).value
    except ValueError:
        return await _invalid(update, context, "not_sex", None)
    return await _took(update, context, "sex")


@_step
async def take_ethnicity_button(update: Update, context: BotContext) -> int:
    """Take a common ethnicity from its button, or ask for another one."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    choice = query.data.rsplit(":", 1)[1]
    if choice == "other":
        tr = translator(context, update)
        shown = tr("report.answered", label=tr("report.field_ethnicity"), value=tr("report.button_other"))
        return await _ask(update, context, ETHNICITY_OTHER, shown=shown)
    _draft(context)["ethnicity"] = ETHNICITY_BUTTONS[int(choice)]
    return await _took(update, context, "ethnicity")


@_step
async def take_ethnicity_text(update: Update, context: BotContext) -> int | None:
    """Take an ethnicity typed by name (diacritics restored for known groups)."""
    try:
        _draft(context)["ethnicity"] = parse_ethnicity(_text(update)[:MAX_TEXT])
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "ethnicity")
    return await _took(update, context, "ethnicity")


@_step
async def take_today(update: Update, context: BotContext) -> int | None:
    """Take today as the decision date."""
    query = update.callback_query
    assert query is not None
    await answer(query)
    try:
        checked_age(_draft(context), admitted_on=today(context))
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "date")
    _draft(context)["admitted_on"] = today(context).isoformat()
    return await _took(update, context, "date")


@_step
async def take_date_text(update: Update, context: BotContext) -> int | None:
    """Take a decision date typed as dd/mm/yyyy or d/m/yy (not in the future)."""
    try:
        on = parse_date(_text(update)[:MAX_TEXT], today(context))
        checked_age(_draft(context), admitted_on=on)
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "date")
    _draft(context)["admitted_on"] = on.isoformat()
    return await _took(update, context, "date")


@_step
async def skip_decision(update: Update, context: BotContext) -> int:
    """Leave the decision number empty."""
    query = update.callback_query
    assert query is not None
    await answer(query)
    _draft(context)["decision_no"] = None
    return await _took(update, context, "decision")


@_step
async def take_decision(update: Update, context: BotContext) -> int | None:
    """Take the decision number; one that reads as a date or has no digit is asked about."""
    try:
        set_decision(_draft(context), _text(update))
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "decision")
    if "pending_decision" in _draft(context):
        return await _onward(update, context)
    return await _took(update, context, "decision")


@_step
async def settle_decision(update: Update, context: BotContext) -> int:
    """Keep the doubtful decision number, or ask for it again."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    draft = _draft(context)
    pending = draft.pop("pending_decision", None)
    if query.data.endswith(":retype") or pending is None:
        return await _ask(update, context, DECISION)
    draft["decision_no"] = pending
    return await _took(update, context, "decision")


@_step
async def take_youth_button(update: Update, context: BotContext) -> int:
    """Take Youth Union membership from its button (a question of its own, or on the card)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    _draft(context)["youth_union"] = query.data.endswith(":yes")
    return await _took(update, context, "youth")


@_step
async def take_youth_text(update: Update, context: BotContext) -> int | None:
    """Take Youth Union membership typed as có / không / yes / no."""
    try:
        _draft(context)["youth_union"] = parse_yes_no(_text(update)[:MAX_TEXT])
    except ValueError:
        return await _invalid(update, context, "not_yes_no", None)
    return await _took(update, context, "youth")


@_step
async def use_buttons(update: Update, context: BotContext) -> int | None:
    """Remind that this step is answered with the buttons, and ask it again below."""
    return await _invalid(update, context, "use_buttons", None)


@_step
async def not_text(update: Update, context: BotContext) -> int | None:
    """Answer a sticker, photo or other non-text message: the step repeats."""
    return await _invalid(update, context, "empty", None)


@_step
async def show_edit_menu(update: Update, context: BotContext) -> int:
    """Offer the fields that can be changed."""
    assert update.callback_query is not None
    await answer(update.callback_query)
    return await _ask(update, context, EDIT)


@_step
async def edit_field(update: Update, context: BotContext) -> int:
    """Ask again for the chosen field; the answer returns to the card."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    field = query.data.rsplit(":", 1)[1]
    if field not in STATE_OF:
        return await _ask(update, context, CONFIRM)
    tr = translator(context, update)
    return await _ask(update, context, STATE_OF[field], shown=tr("report.edit_chosen", field=tr(f"report.field_{field}")))


@_step
async def back_to_card(update: Update, context: BotContext) -> int:
    """Show the card again."""
    assert update.callback_query is not None
    await answer(update.callback_query)
    return await _ask(update, context, CONFIRM)


def _is_this_card(update: Update, context: BotContext) -> bool:
    """Tell whether the tapped card belongs to the draft in progress (not an older one)."""
    data = update.callback_query.data if update.callback_query else None
    return bool(data) and data.rsplit(":", 1)[1] == _draft(context).get("ref")  # type: ignore[union-attr]


@_step
async def save(update: Update, context: BotContext) -> int | None:
    """Save the report in one transaction, then confirm with the cell's and its parent's progress."""
    query = update.callback_query
    assert query is not None
    tr = translator(context, update)
    draft = _draft(context)
    try:
        value = draft_value(draft)
    except (KeyError, TypeError, ValueError):
        return await _onward(update, context)
    now, day = context.services.clock.now(), today(context)
    try:
        async with context.services.db.writing() as session:
            person = await current_person(session, update)
            assert person is not None
            tr = translator(context, update, person)
            admission, created = await record_admission(session, value, person, now, draft["ref"])
            cell = await unit_by_id(session, admission.unit_id)
            assert cell is not None
            lines = [unit_progress_line(tr, await progress_of(session, cell, Period.year(day.year), day))]
            if cell.parent_id is not None:
                parent = await unit_by_id(session, cell.parent_id)
                if parent is not None:
                    lines.append(unit_progress_line(tr, await progress_of(session, parent, Period.year(day.year), day)))
    except NotAllowed:
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        await query.edit_message_text(tr("common.not_allowed"))
        return END
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    if not created:
        await query.edit_message_text(tr("report.already_saved"))
    else:
        saved = tr("report.saved", name=esc(value.full_name), date=tr.date(value.admitted_on), cell=esc(cell.name))
        await query.edit_message_text(saved + "\n\n" + tr("report.saved_progress_header") + "\n" + "\n".join(lines))
    await answer(query)  # after the save: a failed answer (too old after a restart) never undoes it
    return END


async def saved_result(update: Update, context: BotContext) -> None:
    """Answer a ✅ of a card no conversation waits for: with the saved report when it was saved, else as stale."""
    query = update.callback_query
    assert query is not None and query.data is not None
    ref = query.data.rsplit(":", 1)[1]
    async with context.services.db.reading() as session:
        person = await current_person(session, update)
        admission = await saved_report(session, ref, person) if person else None
        cell = await unit_by_id(session, admission.unit_id) if admission else None
    tr = translator(context, update, person)
    if admission is None or cell is None:
        await answer(query, tr("common.stale_button"), alert=True)
        return
    await reply(update, context, tr("report.saved", name=esc(admission.full_name), date=tr.date(admission.admitted_on),
                                    cell=esc(cell.name)))
    await answer(query)


async def cancel(update: Update, context: BotContext) -> int | None:
    """Drop the draft; nothing was stored."""
    tr = translator(context, update)
    if update.callback_query is not None and not _is_this_card(update, context):
        await answer(update.callback_query, tr("common.stale_button"), alert=True)
        return None
    if update.callback_query is not None:
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        await update.callback_query.edit_message_text(tr("report.cancelled"))
        await answer(update.callback_query)
        return END
    await _close_live(update, context, None)
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await reply(update, context, tr("report.cancelled"))
    return END


async def drop_abandoned(update: Update, context: BotContext) -> None:
    """Forget a draft left unfinished for DRAFT_LIFETIME: personal data is not kept without reason."""
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]


async def nothing_to_cancel(update: Update, context: BotContext) -> None:
    """Answer /cancel outside any conversation."""
    await reply(update, context, translator(context, update)("report.nothing_to_cancel"))


async def _expired(update: Update, context: BotContext) -> int:
    """Say that the unfinished report was forgotten, and end the conversation."""
    tr = translator(context, update)
    if update.callback_query is not None:
        await answer(update.callback_query)
    if update.effective_chat is not None:
        await reply(update, context, tr("report.expired"))
    return END


async def forget_abandoned_drafts(application: Application) -> None:  # type: ignore[type-arg]
    """At start, forget drafts older than DRAFT_LIFETIME (the in-process timeout does not survive a restart)."""
    now = services_of(application).clock.now()
    stale = [
        user_id for user_id, data in application.user_data.items()
        if DRAFT in data and now - datetime.fromisoformat(data[DRAFT].get("started", "1970-01-01T00:00:00+00:00"))
        > DRAFT_LIFETIME
    ]
    for user_id in stale:
        application.user_data[user_id].pop(DRAFT, None)
    if stale:
        application.mark_data_for_update_persistence(user_ids=stale)
        await application.update_persistence()


def build_handlers() -> list[BaseHandler]:
    """Return the /report conversation and the outside-conversation /cancel and ✅."""
    text = filters.TEXT & ~filters.COMMAND
    other = ~filters.TEXT & ~filters.COMMAND & ~filters.StatusUpdate.ALL
    conversation = ConversationHandler(
        entry_points=[
            CommandHandler("report", start_report),
            # "Report now" buttons elsewhere (e.g. the weekly reminder) start the same conversation.
            CallbackQueryHandler(start_report, pattern=r"^report:start$"),
        ],
        states={
            CELL: [CallbackQueryHandler(choose_cell, pattern=r"^report:cell:\d{1,18}$"), MessageHandler(text, use_buttons)],
            NAME: [MessageHandler(text, take_name)],
            NAME_CHECK: [CallbackQueryHandler(settle_name, pattern=r"^report:name:(keep|retype)$"),
                         MessageHandler(text, use_buttons)],
            BIRTH_YEAR: [MessageHandler(text, take_birth_year)],
            SEX: [CallbackQueryHandler(take_sex_button, pattern=r"^report:sex:(male|female)$"),
                  MessageHandler(text, take_sex_text)],
            ETHNICITY: [CallbackQueryHandler(take_ethnicity_button,
                                             pattern=rf"^report:eth:([0-{len(ETHNICITY_BUTTONS) - 1}]|other)$"),
                        MessageHandler(text, take_ethnicity_text)],
            ETHNICITY_OTHER: [MessageHandler(text, take_ethnicity_text)],
            DATE: [CallbackQueryHandler(take_today, pattern=r"^report:date:today$"), MessageHandler(text, take_date_text)],
            DECISION: [CallbackQueryHandler(skip_decision, pattern=r"^report:skip$"), MessageHandler(text, take_decision)],
            DECISION_CHECK: [CallbackQueryHandler(settle_decision, pattern=r"^report:decision:(keep|retype)$"),
                             MessageHandler(text, use_buttons)],
            YOUTH: [CallbackQueryHandler(take_youth_button, pattern=YOUTH_BUTTON), MessageHandler(text, take_youth_text)],
            CONFIRM: [
                CallbackQueryHandler(take_youth_button, pattern=YOUTH_BUTTON),  # asked on the card of a one-line report
                CallbackQueryHandler(save, pattern=r"^report:save:[0-9a-f]{32}$"),
                CallbackQueryHandler(show_edit_menu, pattern=r"^report:edit$"),
                MessageHandler(text, use_buttons),
            ],
            EDIT: [
                CallbackQueryHandler(edit_field, pattern=r"^report:field:[a-z_]+$"),
                CallbackQueryHandler(back_to_card, pattern=r"^report:back$"),
                MessageHandler(text, use_buttons),
            ],
            ConversationHandler.TIMEOUT: [TypeHandler(Update, drop_abandoned)],
        },
        fallbacks=[
            CommandHandler("cancel", cancel),
            CallbackQueryHandler(cancel, pattern=r"^report:cancel:[0-9a-f]{32}$"),
            CallbackQueryHandler(stale_button, pattern=r"^report:"),  # a button of another step's message
            MessageHandler(other, not_text),  # a sticker, photo, voice… at any step
        ],
        name="report",
        persistent=True,
        allow_reentry=True,
        conversation_timeout=DRAFT_LIFETIME,
    )
    return [conversation, CommandHandler("cancel", nothing_to_cancel),
            CallbackQueryHandler(saved_result, pattern=r"^report:save:[0-9a-f]{32}$")]


FEATURE = Feature(handlers=build_handlers, commands={"report": "report.commands.report", "cancel": "report.commands.cancel"}, help=((Role.SECRETARY, "report.help"),), on_start=forget_abandoned_drafts)
