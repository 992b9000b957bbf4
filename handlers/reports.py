"""/reports: the saved reports a person may see, ten a page, each a button opening its card with its history.

Every button is stateless and re-checked against the presser's scope on every press (a forged one
is refused politely and shows nothing); everything fits in 64 bytes:
  rep:l:<unit id or 0>:<page>   a page of the list (0: the whole scope; a unit: from /progress)
  rep:c:<admission id>          the report's card, with its history
  rep:e:<admission id>          the fields to correct (each a `rep:f:…` button: handlers/corrections.py)
The ✏️ and 🗑 buttons start the correction conversation (handlers/corrections.py).
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from core.i18n import Translator
from handlers.common import answer, cached_person, edit_in_place, esc, paging_row, reply, translator
from handlers.context import BotContext, Feature
from handlers.report_card import KEY_OF, shown
from models.admissions import SUBJECT
from models.audit import Action, entries_of_subject
from models.corrections import COLUMN_OF, FIELDS, PAGE_SIZE, change_refusal, report_in_scope, reports_page
from models.entities import Admission, Person, Unit
from models.people import Scope
from models.units import unit_by_id

LIST, CARD, EDIT = r"^rep:l:\d{1,18}:\d{1,6}$", r"^rep:c:\d{1,18}$", r"^rep:e:\d{1,18}$"
FIELD_OF_COLUMN = {column: field for field, column in COLUMN_OF.items()}
ACTIONS = {action.value for action in Action}


def button(text: str, data: str) -> InlineKeyboardButton:
    """Return an inline button (its data checked against Telegram's 64 bytes)."""
    assert len(data.encode()) <= 64
    return InlineKeyboardButton(text, callback_data=data)


def answers_of(admission: Admission, unit: Unit) -> dict[str, Any]:
    """Return the report as /report's card reads a draft (handlers.report_card.shown)."""
    return {"cell_name": unit.name, "full_name": admission.full_name, "birth_year": admission.birth_year,
            "sex": admission.sex.value, "ethnicity": admission.ethnicity, "admitted_on": admission.admitted_on.isoformat(),
            "decision_no": admission.decision_no, "youth_union": admission.youth_union}


def value_text(tr: Translator, field: str, raw: object) -> str:
    """Return a field's value as the card shows it; `raw` as stored in a draft or the audit trail."""
    if field == "cell":
        return esc(str(raw)) if raw else tr("report.none")
    if field == "youth" and isinstance(raw, str):
        raw = raw == "true"
    return shown(tr, field, {KEY_OF[field]: raw})


async def _history(session: AsyncSession, tr: Translator, admission: Admission, tz: tzinfo) -> list[str]:
    """Return the report's audit entries as lines, oldest first: when, who, what, why."""
    entries = await entries_of_subject(session, SUBJECT, admission.id)
    ids = {e.person_id for e in entries if e.person_id is not None}
    names = dict((await session.execute(select(Person.id, Person.display_name).where(Person.id.in_(ids)))).all()) \
        if ids else {}
    lines: list[str] = []
    seen: set[tuple[object, ...]] = set()
    for entry in entries:
        same = (entry.at, entry.action, entry.person_id, entry.field, entry.old_value, entry.new_value)
        if same in seen:  # a move to another cell is entered under both cells: shown once
            continue
        seen.add(same)
        who = names.get(entry.person_id) if entry.person_id is not None else None
        what = tr(f"reports.action.{entry.action}") if entry.action in ACTIONS else esc(entry.action)
        field = FIELD_OF_COLUMN.get(entry.field or "")
        if field is not None:
            what = tr("reports.history_change", action=what, field=tr(f"report.field_{field}"),
                      old=value_text(tr, field, entry.old_value), new=value_text(tr, field, entry.new_value))
        line = tr("reports.history_line", at=entry.at.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
                  person=esc(who or tr(f"reports.channel_{entry.channel.value}")), what=what)
        if entry.reason:
            line += " " + tr("reports.history_reason", reason=esc(entry.reason))
        lines.append(line)
    return lines


async def card_view(session: AsyncSession, tr: Translator, admission: Admission, unit: Unit, may_change: bool,
                    tz: tzinfo) -> tuple[str, InlineKeyboardMarkup]:
    """Return a report's card: its fields, its history, and ✏️ / 🗑 when the person may change it."""
    answers = answers_of(admission, unit)
    lines = "\n".join(tr("report.card_line", label=tr(f"report.field_{field}"), value=shown(tr, field, answers))
                      for field in ("cell", "name", "birth_year", "sex", "ethnicity", "date", "decision", "youth"))
    history = await _history(session, tr, admission, tz)
    text = tr("reports.card", lines=lines, history="\n".join(history) or tr("reports.no_history"))
    if admission.withdrawn_at is not None:
        text += "\n\n" + tr("reports.card_withdrawn")
    rows = []
    if may_change:
        rows.append([button(tr("reports.button_correct"), f"rep:e:{admission.id}"),
                     button(tr("reports.button_withdraw"), f"rep:w:{admission.id}")])
    rows.append([button(tr("reports.button_list"), "rep:l:0:0")])
    return text, InlineKeyboardMarkup(rows)


def _line_label(tr: Translator, admission: Admission, unit: Unit) -> str:
    name = admission.full_name if len(admission.full_name) <= 28 else admission.full_name[:27] + "…"
    cell = unit.name if len(unit.name) <= 24 else unit.name[:23] + "…"
    return tr("reports.line", date=tr.date(admission.admitted_on), name=name, cell=cell)


async def list_view(session: AsyncSession, tr: Translator, scope: Scope, unit_id: int,
                    page: int) -> tuple[str, InlineKeyboardMarkup | None] | None:
    """Return a page of the reports the person sees (within unit `unit_id` when not 0); None if out of scope."""
    within = None
    if unit_id:
        within = await unit_by_id(session, unit_id)
        if within is None or not scope.may_view(within):
            return None
    found = await reports_page(session, scope, page, within)
    if not found.rows:
        return tr("reports.empty"), None
    first = found.page * PAGE_SIZE + 1
    text = tr("reports.header", first=tr.number(first), last=tr.number(first + len(found.rows) - 1),
              total=tr.number(found.total))
    rows = [[button(_line_label(tr, a, u), f"rep:c:{a.id}")] for a, u in found.rows]
    rows += paging_row(found.page, found.pages, tr("reports.button_previous"), tr("reports.button_next"),
                       lambda page: f"rep:l:{unit_id}:{page}")
    return text, InlineKeyboardMarkup(rows)


async def show_reports(update: Update, context: BotContext) -> None:
    """Send the first page of the reports the person may see, newest first."""
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    tr = translator(context, update, person)
    async with context.services.db.reading() as session:
        view = await list_view(session, tr, Scope(person), 0, 0)
    assert view is not None
    await reply(update, context, *view)


async def _press(update: Update, context: BotContext) -> tuple[CallbackQuery, Scope, Translator, list[int]]:
    """Return the button press, the presser's scope and texts, and the numbers its data carries."""
    query = update.callback_query
    assert query is not None and query.data is not None
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    return query, Scope(person), translator(context, update, person), [int(p) for p in query.data.split(":")[2:]]


async def show_page(update: Update, context: BotContext) -> None:
    """Show the tapped page of the list (re-checked against the scope)."""
    query, scope, tr, (unit_id, page) = await _press(update, context)
    async with context.services.db.reading() as session:
        view = await list_view(session, tr, scope, unit_id, page)
    if view is None:
        await answer(query, tr("reports.not_allowed"), alert=True)
        return
    if unit_id:  # from /progress: a new message, the progress view stays
        await reply(update, context, *view)
    else:
        await edit_in_place(update.callback_query, *view)
    await answer(query)


async def show_card(update: Update, context: BotContext) -> None:
    """Show the tapped report's card with its history, if the person may see it."""
    query, scope, tr, (admission_id,) = await _press(update, context)
    async with context.services.db.reading() as session:
        found = await report_in_scope(session, scope, admission_id)
        if found is not None:
            may_change = change_refusal(scope, *found, context.services.clock.now()) is None
            view = await card_view(session, tr, *found, may_change, context.services.config.bot.tz)
    if found is None:
        await answer(query, tr("reports.not_allowed"), alert=True)
        return
    await edit_in_place(update.callback_query, *view)
    await answer(query)


async def show_fields(update: Update, context: BotContext) -> None:
    """Offer the fields of the report to correct (each starts the correction conversation)."""
    query, scope, tr, (admission_id,) = await _press(update, context)
    async with context.services.db.reading() as session:
        found = await report_in_scope(session, scope, admission_id)
        refusal = change_refusal(scope, *found, context.services.clock.now()) if found else None
    if found is None or refusal is not None:
        await answer(query, tr(f"reports.refused.{refusal.value if refusal else 'not_allowed'}"), alert=True)
        return
    labels = [button(tr(f"report.field_{field}"), f"rep:f:{admission_id}:{field}") for field in FIELDS]
    rows = [labels[i:i + 2] for i in range(0, len(labels), 2)] + [[button(tr("report.button_back"),
                                                                          f"rep:c:{admission_id}")]]
    await edit_in_place(update.callback_query, tr("reports.ask_field", name=esc(found[0].full_name)), InlineKeyboardMarkup(rows))
    await answer(query)


def progress_button(tr: Translator, unit: Unit) -> InlineKeyboardButton:
    """Return the /progress drill-down's button to the reports of `unit` (handlers/progress.py)."""
    return button(tr("reports.button_from_progress"), f"rep:l:{unit.id}:0")


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers (the ✏️ / 🗑 conversation is handlers/corrections.py)."""
    return [CommandHandler("reports", show_reports), CallbackQueryHandler(show_page, pattern=LIST),
            CallbackQueryHandler(show_card, pattern=CARD), CallbackQueryHandler(show_fields, pattern=EDIT)]


def sees_reports(scope: Scope) -> bool:
    """Tell whether /reports is for the person: everyone with a role sees some reports."""
    return bool(scope.roles)


FEATURE = Feature(handlers=build_handlers, commands={"reports": "reports.commands.reports"},
                  help=((sees_reports, "reports.help"),))
