"""/report: a guided conversation (or one line) that ends in a confirmation card; saved only on ✅.

Answers are gathered in `user_data["report"]` (persisted, so a restart resumes the step) and
written once, in one transaction, when the secretary taps ✅. See report.mmd for the states.

Each question is a new message at the bottom of the chat, and a button on any message but the
live question changes nothing: handlers/report_questions.py keeps that bookkeeping (`ask`, `step`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from core.i18n import Translator
from handlers.context import BotContext, Feature
from handlers.report_card import (
    BIRTH_YEAR, CELL, CONFIRM, DATE, DECISION, DECISION_CHECK, DRAFT, DRAFT_LIFETIME, EDIT, END, ETHNICITY,
    ETHNICITY_BUTTONS, ETHNICITY_OTHER, MAX_TEXT, NAME, NAME_CHECK, SEX, STATE_OF, YOUTH, YOUTH_BUTTON,
    answered, checked_age, draft_value, parse_one_line, set_decision, set_name,
)
from handlers.report_questions import (
    ask, close_live, draft_of, invalid, onward, refuse_answer, stale_button, step, text_of, took,
)
from handlers.common import (
    DraftConversation, answer, cached_person, current_person, edit_in_place, esc, forget_old_drafts, reply, today,
    translator, unit_progress_line,
)
from handlers.candidates import DECISION_PREFIX, prefill_report
from models.admissions import NotAllowed, record_admission, saved_report
from models.candidates import CandidateError, link_candidate
from models.entities import Role, Sex, Unit
from models.locks import PeriodClosed, ensure_open
from models.people import Scope
from models.periods import Period
from models.progress import progress_of
from models.units import unit_by_id
from models.values import parse_birth_year, parse_date, parse_ethnicity, parse_sex, parse_yes_no

logger = logging.getLogger(__name__)


async def closed_refusal(session: AsyncSession, tr: Translator, cell: Unit, on: date, scope: Scope, *,
                         hold: bool) -> str | None:
    """Return why a decision dated `on` cannot be reported for `cell` — its books are closed and the
    person administers no subtree holding it — naming whom to ask (the locked unit's department), or None."""
    try:
        await ensure_open(session, cell, on, scope, hold=hold)
    except PeriodClosed as error:
        return tr("report.closed.period", cell=esc(cell.name), date=tr.date(error.closed.until),
                  locked=esc(error.closed.locked_unit.name))
    return None


async def closed_problem(update: Update, context: BotContext, on: date) -> str | None:
    """Return closed_refusal for the draft's cell, said as soon as the date is known (`save` checks
    again in its transaction, holding the lock rows)."""
    unit_id = draft_of(context).get("unit_id")
    person = await cached_person(context, update)
    if unit_id is None or person is None:
        return None
    async with context.services.db.reading() as session:
        cell = await unit_by_id(session, int(unit_id))
        if cell is None:
            return None
        return await closed_refusal(session, translator(context, update, person), cell, on, Scope(person), hold=False)


async def ask_other_date(update: Update, context: BotContext, problem: str, shown: str | None = None) -> int:
    """Forget the refused decision date and ask for another one below `problem` (then back to the card)."""
    draft_of(context).pop("admitted_on", None)
    return await ask(update, context, DATE, shown=shown, before=problem)


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
    if update.callback_query is not None and (update.callback_query.data or "").startswith(DECISION_PREFIX):
        if not await prefill_report(update, context, draft):  # a candidate's decision (handlers/candidates.py)
            context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
            return END
        return await onward(update, context)
    words = text_of(update).split(maxsplit=1) if update.callback_query is None else []
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
    if "admitted_on" in draft and (problem := await closed_problem(
            update, context, date.fromisoformat(draft["admitted_on"]))):
        return await ask_other_date(update, context, problem)
    return await onward(update, context)


@step
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
    draft = draft_of(context)
    draft["unit_id"], draft["cell_name"] = unit_id, name
    if "admitted_on" in draft and (problem := await closed_problem(  # the one-line form gave the date first
            update, context, date.fromisoformat(draft["admitted_on"]))):
        return await ask_other_date(update, context, problem, shown=answered(translator(context, update), "cell", draft))
    return await took(update, context, "cell")


@step
async def take_name(update: Update, context: BotContext) -> int | None:
    """Take the full name as typed, each word capitalised; a one-word name is asked about."""
    return await _take_doubtful(update, context, set_name, "name", "pending_name")


@step
async def settle_name(update: Update, context: BotContext) -> int:
    """Keep the one-word name, or ask for the name again."""
    return await _settle_doubt(update, context, "name", "pending_name", "full_name", NAME)


@step
async def take_birth_year(update: Update, context: BotContext) -> int | None:
    """Take a four-digit birth year giving an age of 18 to 90."""
    try:
        year = parse_birth_year(text_of(update)[:MAX_TEXT], today(context))
        checked_age(draft_of(context), birth_year=year)
    except ValueError as error:
        return await invalid(update, context, error.args[0], "birth_year")
    draft_of(context)["birth_year"] = year
    return await took(update, context, "birth_year")


@step
async def take_sex_button(update: Update, context: BotContext) -> int:
    """Take the sex from its button."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    draft_of(context)["sex"] = Sex(query.data.rsplit(":", 1)[1]).value
    return await took(update, context, "sex")


@step
async def take_sex_text(update: Update, context: BotContext) -> int | None:
    """Take the sex typed as nam / nữ / nu / male / female."""
    try:
        draft_of(context)["sex"] = parse_sex(text_of(update)[:MAX_TEXT]).value
    except ValueError:
        return await invalid(update, context, "not_sex", None)
    return await took(update, context, "sex")


@step
async def take_ethnicity_button(update: Update, context: BotContext) -> int:
    """Take a common ethnicity from its button, or ask for another one."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    choice = query.data.rsplit(":", 1)[1]
    if choice == "other":
        tr = translator(context, update)
        shown = tr("report.answered", label=tr("report.field_ethnicity"), value=tr("report.button_other"))
        return await ask(update, context, ETHNICITY_OTHER, shown=shown)
    draft_of(context)["ethnicity"] = ETHNICITY_BUTTONS[int(choice)]
    return await took(update, context, "ethnicity")


@step
async def take_ethnicity_text(update: Update, context: BotContext) -> int | None:
    """Take an ethnicity typed by name (diacritics restored for known groups)."""
    try:
        draft_of(context)["ethnicity"] = parse_ethnicity(text_of(update)[:MAX_TEXT])
    except ValueError as error:
        return await invalid(update, context, error.args[0], "ethnicity")
    return await took(update, context, "ethnicity")


@step
async def take_today(update: Update, context: BotContext) -> int | None:
    """Take today as the decision date."""
    query = update.callback_query
    assert query is not None
    await answer(query)
    try:
        checked_age(draft_of(context), admitted_on=today(context))
    except ValueError as error:
        return await invalid(update, context, error.args[0], "date")
    if problem := await closed_problem(update, context, today(context)):
        return await refuse_answer(update, context, problem)
    draft_of(context)["admitted_on"] = today(context).isoformat()
    return await took(update, context, "date")


@step
async def take_date_text(update: Update, context: BotContext) -> int | None:
    """Take a decision date typed as dd/mm/yyyy or d/m/yy (not in the future)."""
    try:
        on = parse_date(text_of(update)[:MAX_TEXT], today(context))
        checked_age(draft_of(context), admitted_on=on)
    except ValueError as error:
        return await invalid(update, context, error.args[0], "date")
    if problem := await closed_problem(update, context, on):
        return await refuse_answer(update, context, problem)
    draft_of(context)["admitted_on"] = on.isoformat()
    return await took(update, context, "date")


@step
async def skip_decision(update: Update, context: BotContext) -> int:
    """Leave the decision number empty."""
    query = update.callback_query
    assert query is not None
    await answer(query)
    draft_of(context)["decision_no"] = None
    return await took(update, context, "decision")


@step
async def take_decision(update: Update, context: BotContext) -> int | None:
    """Take the decision number; one that reads as a date or has no digit is asked about."""
    return await _take_doubtful(update, context, set_decision, "decision", "pending_decision")


@step
async def settle_decision(update: Update, context: BotContext) -> int:
    """Keep the doubtful decision number, or ask for it again."""
    return await _settle_doubt(update, context, "decision", "pending_decision", "decision_no", DECISION)


async def _take_doubtful(update: Update, context: BotContext, setter: Callable[[dict[str, Any], str], None],
                         field: str, pending: str) -> int | None:
    """Store a typed answer; if `setter` left it `pending` (a doubt), ask about it before going on."""
    try:
        setter(draft_of(context), text_of(update))
    except ValueError as error:
        return await invalid(update, context, error.args[0], field)
    if pending in draft_of(context):
        return await onward(update, context)
    return await took(update, context, field)


async def _settle_doubt(update: Update, context: BotContext, field: str, pending: str, stored: str,
                        question: int) -> int:
    """Keep the doubtful answer (its button) or ask `question` again (the ':retype' button)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    draft = draft_of(context)
    value = draft.pop(pending, None)
    if query.data.endswith(":retype") or value is None:
        return await ask(update, context, question)
    draft[stored] = value
    return await took(update, context, field)


@step
async def take_youth_button(update: Update, context: BotContext) -> int:
    """Take Youth Union membership from its button (a question of its own, or on the card)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    draft_of(context)["youth_union"] = query.data.endswith(":yes")
    return await took(update, context, "youth")


@step
async def take_youth_text(update: Update, context: BotContext) -> int | None:
    """Take Youth Union membership typed as có / không / yes / no."""
    try:
        draft_of(context)["youth_union"] = parse_yes_no(text_of(update)[:MAX_TEXT])
    except ValueError:
        return await invalid(update, context, "not_yes_no", None)
    return await took(update, context, "youth")


@step
async def use_buttons(update: Update, context: BotContext) -> int | None:
    """Remind that this step is answered with the buttons, and ask it again below."""
    return await invalid(update, context, "use_buttons", None)


@step
async def not_text(update: Update, context: BotContext) -> int | None:
    """Answer a sticker, photo or other non-text message: the step repeats."""
    return await invalid(update, context, "empty", None)


@step
async def show_edit_menu(update: Update, context: BotContext) -> int:
    """Offer the fields that can be changed."""
    assert update.callback_query is not None
    await answer(update.callback_query)
    return await ask(update, context, EDIT)


@step
async def edit_field(update: Update, context: BotContext) -> int:
    """Ask again for the chosen field; the answer returns to the card."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await answer(query)
    field = query.data.rsplit(":", 1)[1]
    if field not in STATE_OF:
        return await ask(update, context, CONFIRM)
    tr = translator(context, update)
    return await ask(update, context, STATE_OF[field], shown=tr("report.edit_chosen", field=tr(f"report.field_{field}")))


@step
async def back_to_card(update: Update, context: BotContext) -> int:
    """Show the card again."""
    assert update.callback_query is not None
    await answer(update.callback_query)
    return await ask(update, context, CONFIRM)


def _is_this_card(update: Update, context: BotContext) -> bool:
    """Tell whether the tapped card belongs to the draft in progress (not an older one)."""
    data = update.callback_query.data if update.callback_query else None
    return bool(data) and data.rsplit(":", 1)[1] == draft_of(context).get("ref")  # type: ignore[union-attr]


@step
async def save(update: Update, context: BotContext) -> int | None:
    """Save the report in one transaction, then confirm with the cell's and its parent's progress."""
    query = update.callback_query
    assert query is not None
    tr = translator(context, update)
    draft = draft_of(context)
    try:
        value = draft_value(draft)
    except (KeyError, TypeError, ValueError):
        return await onward(update, context)
    now, day = context.services.clock.now(), today(context)
    refused: str | None = None
    try:
        async with context.services.db.writing() as session:
            person = await current_person(session, update)
            assert person is not None
            tr = translator(context, update, person)
            cell = await unit_by_id(session, value.unit_id)
            if cell is not None and await saved_report(session, draft["ref"], person) is None:
                # A lock set since the date was given refuses it here, in the saving transaction.
                refused = await closed_refusal(session, tr, cell, value.admitted_on, Scope(person), hold=True)
            if refused is None:
                admission, _ = await record_admission(session, value, person, now, draft["ref"])
                if draft.get("candidate_id"):  # started from a candidate's card: linked once, with the admission
                    await link_candidate(session, int(draft["candidate_id"]), admission, person, now)
                cell = await unit_by_id(session, admission.unit_id)
                assert cell is not None
                lines = [unit_progress_line(tr, await progress_of(session, cell, Period.year(day.year), day))]
                if cell.parent_id is not None:
                    parent = await unit_by_id(session, cell.parent_id)
                    if parent is not None:
                        lines.append(unit_progress_line(tr, await progress_of(session, parent, Period.year(day.year),
                                                                              day)))
    except NotAllowed:
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        await query.edit_message_text(tr("common.not_allowed"))
        return END
    except CandidateError as error:  # the candidate was admitted or left meanwhile: nothing saved
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        await query.edit_message_text(tr(f"candidates.error.{error.args[0]}"))
        return END
    if refused is not None:  # nothing saved; the card loses its buttons and the date is asked again
        await answer(query)
        return await ask_other_date(update, context, refused)
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    # Not created: this very card was saved already (its ✅ delivered again after a crash): the same answer.
    saved = tr("report.saved", name=esc(admission.full_name), date=tr.date(admission.admitted_on), cell=esc(cell.name))
    await edit_in_place(query, saved + "\n\n" + tr("report.saved_progress_header") + "\n" + "\n".join(lines))
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
    await close_live(update, context, None)
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await reply(update, context, tr("report.cancelled"))
    return END


async def nothing_to_cancel(update: Update, context: BotContext) -> None:
    """Answer /cancel outside any conversation."""
    await reply(update, context, translator(context, update)("report.nothing_to_cancel"))


async def forget_abandoned_drafts(application: Application) -> None:  # type: ignore[type-arg]
    """At start, forget drafts older than DRAFT_LIFETIME (the in-process timeout does not survive a restart)."""
    await forget_old_drafts(application, DRAFT, DRAFT_LIFETIME)


def build_handlers() -> list[BaseHandler]:
    """Return the /report conversation and the outside-conversation /cancel and ✅."""
    text = filters.TEXT & ~filters.COMMAND
    other = ~filters.TEXT & ~filters.COMMAND & ~filters.StatusUpdate.ALL
    conversation = DraftConversation(
        draft=DRAFT, lifetime=DRAFT_LIFETIME,
        entry_points=[
            CommandHandler("report", start_report),
            # "Report now" buttons elsewhere (e.g. the weekly reminder) start the same conversation.
            CallbackQueryHandler(start_report, pattern=r"^report:start$"),
            CallbackQueryHandler(start_report, pattern=r"^report:cand:\d{1,18}$"),  # a candidate's decision
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
        },
        fallbacks=[
            CommandHandler("cancel", cancel),
            CallbackQueryHandler(cancel, pattern=r"^report:cancel:[0-9a-f]{32}$"),
            CallbackQueryHandler(stale_button, pattern=r"^report:"),  # a button of another step's message
            MessageHandler(other, not_text),  # a sticker, photo, voice… at any step
        ],
        name="report",
    )
    return [conversation, CommandHandler("cancel", nothing_to_cancel),
            CallbackQueryHandler(saved_result, pattern=r"^report:save:[0-9a-f]{32}$")]


FEATURE = Feature(handlers=build_handlers, commands={"report": "report.commands.report", "cancel": "report.commands.cancel"}, help=((Role.SECRETARY, "report.help"),), on_start=forget_abandoned_drafts)
