"""/report: a guided conversation (or one line) that ends in a confirmation card; saved only on ✅.

Answers are gathered in `user_data["report"]` (persisted, so a restart resumes the step) and
written once, in one transaction, when the secretary taps ✅. See report.mmd for the states.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from telegram import InlineKeyboardMarkup, Update
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
    BIRTH_YEAR, CELL, CONFIRM, DATE, DECISION, DRAFT, DRAFT_LIFETIME, EDIT, END, ETHNICITY, ETHNICITY_BUTTONS,
    ETHNICITY_OTHER, EXAMPLE, FIELDS, MAX_TEXT, NAME, SEX, STATE_OF, YOUTH, card, cell_choice, checked_age,
    draft_value, parse_one_line, question,
)
from handlers.common import answer, current_person, esc, reply, today, translator, unit_progress_line
from models.admissions import NotAllowed, record_admission, saved_report
from models.entities import Role, Sex
from models.people import Scope
from models.progress import Period, progress_of
from models.units import unit_by_id
from models.values import (
    clean_name,
    parse_birth_year,
    parse_date,
    parse_decision_no,
    parse_ethnicity,
    parse_sex,
    parse_yes_no,
)

logger = logging.getLogger(__name__)


def _draft(context: BotContext) -> dict[str, Any]:
    return context.user_data.setdefault(DRAFT, {})  # type: ignore[union-attr]


async def _send(update: Update, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Answer a button by editing its message, a text by a new message."""
    query = update.callback_query
    if query is not None and query.message is not None:
        await query.edit_message_text(text, reply_markup=markup)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(text, reply_markup=markup)


async def _ask(update: Update, context: BotContext, state: int) -> int:
    """Send the question for `state` and return it."""
    tr = translator(context, update)
    draft = _draft(context)
    if state == CONFIRM:
        text, markup = await card(context.services.db, tr, draft)
    else:
        text, markup = question(tr, state, draft)
    await _send(update, text, markup)
    return state


async def _after(update: Update, context: BotContext, field: str) -> int:
    """Move on after `field` was answered: back to the card when editing, else the next question."""
    draft = _draft(context)
    if draft.get("editing") or draft.get("complete"):
        return await _ask(update, context, CONFIRM)
    position = FIELDS.index(field)
    if position + 1 == len(FIELDS):
        draft["complete"] = True
        return await _ask(update, context, CONFIRM)
    return await _ask(update, context, STATE_OF[FIELDS[position + 1]])


async def _invalid(update: Update, context: BotContext, reason: str, field: str | None) -> int | None:
    """Say what to send instead (with an example); the step repeats."""
    tr = translator(context, update)
    example = tr(f"report.example.{EXAMPLE[field]}") if field in EXAMPLE else ""
    assert update.effective_message is not None
    await update.effective_message.reply_text(tr(f"report.invalid.{reason}", example=esc(example)))
    return None  # stay in the same state


def _text(update: Update) -> str:
    message = update.effective_message
    return (message.text or "") if message is not None else ""


async def start_report(update: Update, context: BotContext) -> int:
    """Start a report: pick the cell (if several), then ask step by step, or take the one-line form."""
    assert update.effective_message is not None
    if update.callback_query is not None:
        await answer(update.callback_query)
    async with context.services.db.reading() as session:
        person = await current_person(session, update)
        cells = Scope(person).reporting_cells() if person else []
        tr = translator(context, update, person)
        cell_rows = [(c.id, c.name) for c in cells]
    if not cell_rows:
        await update.effective_message.reply_text(tr("report.not_secretary"))
        return END
    context.user_data[DRAFT] = draft = {  # type: ignore[index]
        "ref": uuid.uuid4().hex, "started": context.services.clock.now().isoformat(),
    }
    words = _text(update).split(maxsplit=1) if update.callback_query is None else []
    line = words[1] if len(words) > 1 else ""
    if line:
        problem = parse_one_line(tr, line, today(context), draft)
        if problem:
            context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
            await update.effective_message.reply_text(problem + "\n\n" + tr("report.one_line_usage"))
            return END
        draft["complete"] = True
    if len(cell_rows) > 1:
        text, markup = cell_choice(tr, cells)
        await update.effective_message.reply_text(text, reply_markup=markup)
        return CELL
    if update.callback_query is not None:  # keep the message the button was on; ask below it
        draft["unit_id"], draft["cell_name"] = cell_rows[0]
        text, markup = question(tr, NAME, draft)
        await update.effective_message.reply_text(text, reply_markup=markup)
        return NAME
    draft["unit_id"], draft["cell_name"] = cell_rows[0]
    return await _ask(update, context, CONFIRM if draft.get("complete") else NAME)


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
    return await _ask(update, context, CONFIRM if draft.get("complete") else NAME)


async def take_name(update: Update, context: BotContext) -> int | None:
    """Take the full name (letters only, kept as typed)."""
    try:
        _draft(context)["full_name"] = clean_name(_text(update)[: MAX_TEXT + 1])
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "name")
    return await _after(update, context, "name")


async def take_birth_year(update: Update, context: BotContext) -> int | None:
    """Take a four-digit birth year giving an age of 18 to 90."""
    try:
        year = parse_birth_year(_text(update)[:MAX_TEXT], today(context))
        checked_age(_draft(context), birth_year=year)
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "birth_year")
    _draft(context)["birth_year"] = year
    return await _after(update, context, "birth_year")


async def take_sex_button(update: Update, context: BotContext) -> int:
    """Take the sex from its button."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    _draft(context)["sex"] = Sex(query.data.rsplit(":", 1)[1]).value
    return await _after(update, context, "sex")


async def take_sex_text(update: Update, context: BotContext) -> int | None:
    """Take the sex typed as nam / nữ / nu."""
    try:
        _draft(context)["sex"] = parse_sex(_text(update)[:MAX_TEXT]).value
    except ValueError:
        await _invalid(update, context, "not_sex", None)
        return await _ask(update, context, SEX)
    return await _after(update, context, "sex")


async def take_ethnicity_button(update: Update, context: BotContext) -> int:
    """Take a common ethnicity from its button, or ask for another one."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    choice = query.data.rsplit(":", 1)[1]
    if choice == "other":
        return await _ask(update, context, ETHNICITY_OTHER)
    _draft(context)["ethnicity"] = ETHNICITY_BUTTONS[int(choice)]
    return await _after(update, context, "ethnicity")


async def take_ethnicity_text(update: Update, context: BotContext) -> int | None:
    """Take an ethnicity typed by name (diacritics restored for known groups)."""
    try:
        _draft(context)["ethnicity"] = parse_ethnicity(_text(update)[:MAX_TEXT])
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "ethnicity")
    return await _after(update, context, "ethnicity")


async def take_today(update: Update, context: BotContext) -> int:
    """Take today as the decision date."""
    query = update.callback_query
    assert query is not None
    await answer(query)
    try:
        checked_age(_draft(context), admitted_on=today(context))
    except ValueError as error:
        await _invalid(update, context, error.args[0], "date")
        return await _ask(update, context, DATE)
    _draft(context)["admitted_on"] = today(context).isoformat()
    return await _after(update, context, "date")


async def take_date_text(update: Update, context: BotContext) -> int | None:
    """Take a decision date typed as dd/mm/yyyy (not in the future)."""
    try:
        on = parse_date(_text(update)[:MAX_TEXT], today(context))
        checked_age(_draft(context), admitted_on=on)
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "date")
    _draft(context)["admitted_on"] = on.isoformat()
    return await _after(update, context, "date")


async def skip_decision(update: Update, context: BotContext) -> int:
    """Leave the decision number empty."""
    query = update.callback_query
    assert query is not None
    await answer(query)
    _draft(context)["decision_no"] = None
    return await _after(update, context, "decision")


async def take_decision(update: Update, context: BotContext) -> int | None:
    """Take the decision number."""
    try:
        _draft(context)["decision_no"] = parse_decision_no(_text(update)[:MAX_TEXT])
    except ValueError as error:
        return await _invalid(update, context, error.args[0], "decision")
    return await _after(update, context, "decision")


async def take_youth_button(update: Update, context: BotContext) -> int:
    """Take Youth Union membership from its button."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    _draft(context)["youth_union"] = query.data.endswith(":yes")
    return await _after(update, context, "youth")


async def take_youth_text(update: Update, context: BotContext) -> int | None:
    """Take Youth Union membership typed as có / không."""
    try:
        _draft(context)["youth_union"] = parse_yes_no(_text(update)[:MAX_TEXT])
    except ValueError:
        await _invalid(update, context, "not_yes_no", None)
        return await _ask(update, context, YOUTH)
    return await _after(update, context, "youth")


async def use_buttons(update: Update, context: BotContext) -> int | None:
    """Remind that this step is answered with the buttons, and show them again."""
    await _invalid(update, context, "use_buttons", None)
    state = context.user_data.get(DRAFT, {}).get("_state")  # type: ignore[union-attr]
    if state is None or state == CELL:
        return None
    return await _ask(update, context, state)


async def not_text(update: Update, context: BotContext) -> None:
    """Answer a sticker, photo or other non-text message: the step repeats."""
    await _invalid(update, context, "empty", None)


async def show_edit_menu(update: Update, context: BotContext) -> int:
    """Offer the fields that can be changed."""
    assert update.callback_query is not None
    await answer(update.callback_query)
    _draft(context)["editing"] = True
    return await _ask(update, context, EDIT)


async def edit_field(update: Update, context: BotContext) -> int:
    """Ask again for the chosen field; the answer returns to the card."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    field = query.data.rsplit(":", 1)[1]
    if field not in STATE_OF:
        return await _ask(update, context, CONFIRM)
    return await _ask(update, context, STATE_OF[field])


async def back_to_card(update: Update, context: BotContext) -> int:
    """Show the card again."""
    assert update.callback_query is not None
    await answer(update.callback_query)
    return await _ask(update, context, CONFIRM)


def _is_this_card(update: Update, context: BotContext) -> bool:
    """Tell whether the tapped card belongs to the draft in progress (not an older one)."""
    data = update.callback_query.data if update.callback_query else None
    return bool(data) and data.rsplit(":", 1)[1] == _draft(context).get("ref")  # type: ignore[union-attr]


async def save(update: Update, context: BotContext) -> int | None:
    """Save the report in one transaction, then confirm with the cell's and its parent's progress."""
    query = update.callback_query
    assert query is not None
    tr = translator(context, update)
    if not _is_this_card(update, context):
        await saved_result(update, context)
        return None
    draft = _draft(context)
    try:
        value = draft_value(draft)
    except (KeyError, TypeError, ValueError):
        return await _ask(update, context, NAME)
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
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    if update.callback_query is not None:
        await update.callback_query.edit_message_text(tr("report.cancelled"))
        await answer(update.callback_query)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(tr("report.cancelled"))
    return END


async def drop_abandoned(update: Update, context: BotContext) -> None:
    """Forget a draft left unfinished for DRAFT_LIFETIME: personal data is not kept without reason."""
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]


async def nothing_to_cancel(update: Update, context: BotContext) -> None:
    """Answer /cancel outside any conversation."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(translator(context, update)("report.nothing_to_cancel"))


async def _expired(update: Update, context: BotContext) -> int:
    """Say that the unfinished report was forgotten, and end the conversation."""
    tr = translator(context, update)
    if update.callback_query is not None:
        await answer(update.callback_query)
    if update.effective_message is not None:
        await update.effective_message.reply_text(tr("report.expired"))
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


def _remember(state: int, callback, *, starts: bool = False):  # type: ignore[no-untyped-def]
    """Wrap a callback so the draft knows the current state (to re-show its buttons)."""

    async def wrapped(update: Update, context: BotContext) -> int | None:
        if not starts and "ref" not in context.user_data.get(DRAFT, {}):  # type: ignore[union-attr]
            return await _expired(update, context)
        _draft(context)["_state"] = state
        result = await callback(update, context)
        if result is not None and result != END:
            _draft(context)["_state"] = result
        return result

    wrapped.__doc__ = callback.__doc__
    wrapped.__name__ = callback.__name__
    return wrapped


def build_handlers() -> list[BaseHandler]:
    """Return the /report conversation and the outside-conversation /cancel."""
    text = filters.TEXT & ~filters.COMMAND
    other = ~filters.TEXT & ~filters.COMMAND & ~filters.StatusUpdate.ALL

    def step(state: int, *handlers: BaseHandler) -> list[BaseHandler]:
        return [*handlers, MessageHandler(other, not_text)]

    def on_text(state: int, callback) -> MessageHandler:  # type: ignore[no-untyped-def]
        return MessageHandler(text, _remember(state, callback))

    def on_button(state: int, pattern: str, callback) -> CallbackQueryHandler:  # type: ignore[no-untyped-def]
        return CallbackQueryHandler(_remember(state, callback), pattern=pattern)

    conversation = ConversationHandler(
        entry_points=[
            CommandHandler("report", _remember(NAME, start_report, starts=True)),
            # "Report now" buttons elsewhere (e.g. the weekly reminder) start the same conversation.
            CallbackQueryHandler(_remember(NAME, start_report, starts=True), pattern=r"^report:start$"),
        ],
        states={
            CELL: step(CELL, on_button(CELL, r"^report:cell:\d{1,18}$", choose_cell), on_text(CELL, use_buttons)),
            NAME: step(NAME, on_text(NAME, take_name)),
            BIRTH_YEAR: step(BIRTH_YEAR, on_text(BIRTH_YEAR, take_birth_year)),
            SEX: step(SEX, on_button(SEX, r"^report:sex:(male|female)$", take_sex_button), on_text(SEX, take_sex_text)),
            ETHNICITY: step(
                ETHNICITY,
                on_button(ETHNICITY, rf"^report:eth:([0-{len(ETHNICITY_BUTTONS) - 1}]|other)$", take_ethnicity_button),
                on_text(ETHNICITY, take_ethnicity_text),
            ),
            ETHNICITY_OTHER: step(ETHNICITY_OTHER, on_text(ETHNICITY_OTHER, take_ethnicity_text)),
            DATE: step(DATE, on_button(DATE, r"^report:date:today$", take_today), on_text(DATE, take_date_text)),
            DECISION: step(
                DECISION, on_button(DECISION, r"^report:skip$", skip_decision), on_text(DECISION, take_decision)
            ),
            YOUTH: step(
                YOUTH, on_button(YOUTH, r"^report:youth:(yes|no)$", take_youth_button), on_text(YOUTH, take_youth_text)
            ),
            CONFIRM: step(
                CONFIRM,
                on_button(CONFIRM, r"^report:save:[0-9a-f]{32}$", save),
                on_button(CONFIRM, r"^report:edit$", show_edit_menu),
                on_text(CONFIRM, use_buttons),
            ),
            ConversationHandler.TIMEOUT: [TypeHandler(Update, drop_abandoned)],
            EDIT: step(
                EDIT,
                on_button(EDIT, r"^report:field:[a-z_]+$", edit_field),
                on_button(EDIT, r"^report:back$", back_to_card),
                on_text(EDIT, use_buttons),
            ),
        },
        fallbacks=[
            CommandHandler("cancel", cancel),
            CallbackQueryHandler(cancel, pattern=r"^report:cancel:[0-9a-f]{32}$"),
        ],
        name="report",
        persistent=True,
        allow_reentry=True,
        conversation_timeout=DRAFT_LIFETIME,
    )
    return [conversation, CommandHandler("cancel", nothing_to_cancel),
            CallbackQueryHandler(saved_result, pattern=r"^report:save:[0-9a-f]{32}$")]


FEATURE = Feature(handlers=build_handlers, commands={"report": "report.commands.report", "cancel": "report.commands.cancel"}, help=((Role.SECRETARY, "report.help"),), on_start=forget_abandoned_drafts)
