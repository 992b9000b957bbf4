"""✏️ correct a field of a saved report, or 🗑 withdraw it: new value, reason (3–500 characters), ✅.

The conversation starts from a report card's buttons (handlers/reports.py) and is persistent like
/report: the draft (`user_data["correction"]`: the report's id, the field, the new value, the
reason) survives a restart. New values are read by the same parsers as /report
(handlers/report_card.py, models/values.py). Nothing changes before ✅, and ✅ checks everything
again in its one transaction (models.corrections): scope, the secretary's 30 days, a closed period.

  rep:f:<admission id>:<field>  start correcting that field      rep:w:<admission id>  start withdrawing
  rep:v:<value>                 a value's button (sex, Youth Union, cell id)
  rep:ok:<admission id>         ✅ do it                        rep:no:<admission id>  ❌ leave it

    start ──► VALUE ──(parsed)──► REASON ──(3–500 characters)──► CONFIRM ──✅──► saved, card shown
    🗑 ─────────────────────────► REASON                                  ──❌ / /cancel──► nothing changed
"""

from __future__ import annotations

from datetime import date
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from core.i18n import Translator
from handlers.common import DraftConversation, answer, current_person, esc, reply, today, translator
from handlers.context import BotContext, Feature
from handlers.report_card import DRAFT_LIFETIME, EXAMPLE, MAX_TEXT, set_decision, set_name, shown
from handlers.reports import answers_of, button, card_view, value_text
from models.audit import valid_reason
from models.corrections import (
    FIELDS, Refusal, Refused, cells_to_move_to, changeable_report, correct_report, withdraw_with_reason,
)
from models.entities import Admission, Sex, Unit
from models.people import Scope
from models.units import unit_by_code, unit_by_id
from models.updates import mark_processed
from models.values import (
    check_age_at_decision, decision_doubt, is_one_word, parse_birth_year, parse_date, parse_ethnicity, parse_sex,
    parse_yes_no,
)

VALUE, REASON, CONFIRM = range(3)  # persisted: new states go at the end
END = ConversationHandler.END
DRAFT = "correction"
WITHDRAW = "withdraw"  # the draft's "field" when the report is withdrawn
CELL_BUTTONS = 20  # more cells than this: the cell's code is typed
BUTTON_VALUES: dict[str, dict[str, Any]] = {"sex": {"male": "male", "female": "female"},
                                            "youth": {"yes": True, "no": False}}


def refusal_text(tr: Translator, refused: Refused) -> str:
    """Return why the change was refused; a closed period says up to when and whom to ask."""
    if refused.refusal == Refusal.CLOSED and refused.closed is not None:
        return tr("reports.refused.closed", date=tr.date(refused.closed.until), unit=esc(refused.closed.locked_unit.name))
    return tr(f"reports.refused.{refused.refusal.value}")


def _draft(context: BotContext) -> dict[str, Any]:
    return context.user_data.setdefault(DRAFT, {})  # type: ignore[union-attr]


async def _begin(update: Update, context: BotContext, admission_id: int, field: str) -> int:
    """Check that the person may change the report now; start the draft and ask the first question."""
    query = update.callback_query
    assert query is not None
    services = context.services
    async with services.db.reading() as session:
        person = await current_person(session, update)
        assert person is not None  # the guard let only registered people through
        tr = translator(context, update, person)
        scope = Scope(person)
        try:
            admission, unit, overridden = await changeable_report(session, scope, admission_id, services.clock.now())
        except Refused as refused:
            context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
            if refused.refusal == Refusal.NOT_ALLOWED:  # a forged or stale button: nothing shown
                await answer(query, tr("reports.refused.not_allowed"), alert=True)
            else:
                await answer(query)
                await reply(update, context, refusal_text(tr, refused))
            return END
        cells = [(c.id, c.name) for c in await cells_to_move_to(session, scope)] if field == "cell" else []
        name, current = admission.full_name, _current(tr, field, admission, unit)
    context.user_data[DRAFT] = {"id": admission_id, "field": field,  # type: ignore[index]
                                "started": services.clock.now().isoformat()}
    await answer(query)
    # An admin changes a closed period knowingly: said before the first question.
    note = tr("reports.closed_override", date=tr.date(overridden.until)) + "\n\n" if overridden else ""
    if field == WITHDRAW:
        await reply(update, context, note + tr("reports.ask_reason_withdraw", name=esc(name)))
        return REASON
    label = tr(f"report.field_{field}")
    markup = None
    if field == "sex":
        markup = InlineKeyboardMarkup([[button(tr("report.button_male"), "rep:v:male"),
                                        button(tr("report.button_female"), "rep:v:female")]])
    elif field == "youth":
        markup = InlineKeyboardMarkup([[button(tr("common.yes"), "rep:v:yes"), button(tr("common.no"), "rep:v:no")]])
    elif field == "cell" and len(cells) <= CELL_BUTTONS:
        markup = InlineKeyboardMarkup([[button(cell_name, f"rep:v:{cell_id}")] for cell_id, cell_name in cells])
    key = "reports.ask_cell" if field == "cell" else "reports.ask_value"
    await reply(update, context, note + tr(key, field=label, name=esc(name), value=current), markup)
    return VALUE


def _current(tr: Translator, field: str, admission: Admission, unit: Unit) -> str:
    """Return the field's value now, as the card shows it."""
    return shown(tr, field, answers_of(admission, unit)) if field != WITHDRAW else ""


async def start_correction(update: Update, context: BotContext) -> int:
    """Start correcting the field the ✏️ menu's button names."""
    assert update.callback_query is not None and update.callback_query.data is not None
    _, _, admission_id, field = update.callback_query.data.split(":")
    return await _begin(update, context, int(admission_id), field)


async def start_withdrawal(update: Update, context: BotContext) -> int:
    """Start withdrawing the report the 🗑 button names."""
    assert update.callback_query is not None and update.callback_query.data is not None
    return await _begin(update, context, int(update.callback_query.data.rsplit(":", 1)[1]), WITHDRAW)


def _doubt(field: str, value: Any) -> str | None:
    """Return the catalog key of /report's doubt about a value (a one-word name, a decision number
    like a date or without digit), or None."""
    if field == "name" and is_one_word(value):
        return "doubt_name"
    if field == "decision" and decision_doubt(value):
        return "doubt_decision"
    return None


def _invalid(tr: Translator, field: str, reason: str) -> str:
    """Return /report's text for a value it refuses (what to send instead, with an example)."""
    example = tr(f"report.example.{EXAMPLE[field]}") if field in EXAMPLE else ""
    return tr(f"report.invalid.{reason}", example=esc(example))


async def _parse(context: BotContext, field: str, text: str, admission: Admission, scope: Scope) -> Any:
    """Return the typed value as /report reads it (kept as JSON in the draft), or raise ValueError(reason)."""
    text = text[:MAX_TEXT + 1]
    day = today(context)
    if field == "name":
        answers: dict[str, Any] = {}
        set_name(answers, text)  # a one-word name is pending: _doubt says so before the ✅ step
        return answers.get("full_name") or answers["pending_name"]
    if field == "birth_year":
        year = parse_birth_year(text, day)
        check_age_at_decision(year, admission.admitted_on)
        return year
    if field == "sex":
        return parse_sex(text).value
    if field == "ethnicity":
        return parse_ethnicity(text)
    if field == "date":
        on = parse_date(text, day)
        check_age_at_decision(admission.birth_year, on)
        return on.isoformat()
    if field == "decision":
        answers = {}
        set_decision(answers, text)  # a doubtful number too
        return answers.get("decision_no") or answers["pending_decision"]
    if field == "youth":
        return parse_yes_no(text)
    raise ValueError("use_buttons")


async def _take(update: Update, context: BotContext, typed: str | None, pressed: str | None) -> int | None:
    """Take the new value (typed or a button), then ask for the reason; a bad value repeats the step."""
    draft = _draft(context)
    field = draft["field"]
    async with context.services.db.reading() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        scope = Scope(person)
        admission = await session.get(Admission, int(draft["id"]))
        if admission is None:
            context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
            await reply(update, context, tr("reports.refused.not_allowed"))
            return END
        cells = {c.id: c for c in await cells_to_move_to(session, scope)} if field == "cell" else {}
        try:
            if field == "cell":
                if typed is None and not (pressed or "").isdigit():
                    raise ValueError("cell")
                unit = await unit_by_code(session, typed.strip()) if typed is not None else \
                    await unit_by_id(session, int(pressed or 0))
                if unit is None or unit.id not in cells:
                    raise ValueError("cell")
                value: Any = unit.id
                display = esc(unit.name)
            elif pressed is not None:
                if pressed not in BUTTON_VALUES.get(field, {}):
                    raise ValueError("use_buttons")
                value = BUTTON_VALUES[field][pressed]
                display = value_text(tr, field, value)
            else:
                value = await _parse(context, field, typed or "", admission, scope)
                display = value_text(tr, field, value)
        except ValueError as error:
            reason = str(error.args[0]) if error.args else "use_buttons"
            if update.callback_query is not None:
                await answer(update.callback_query)
            await reply(update, context, tr("reports.bad_cell") if reason == "cell" else _invalid(tr, field, reason))
            return None
    draft["value"], draft["shown"] = value, display
    if update.callback_query is not None:
        await answer(update.callback_query)
    text = tr("reports.ask_reason", field=tr(f"report.field_{field}"), value=display)
    doubt = _doubt(field, value)  # /report asks about these; here the ✅ step is where it is settled
    if doubt is not None:
        text = tr(f"reports.{doubt}", value=display) + "\n\n" + text
    await reply(update, context, text)
    return REASON


async def take_value_text(update: Update, context: BotContext) -> int | None:
    """Take the new value typed, read by /report's rules."""
    assert update.effective_message is not None
    return await _take(update, context, update.effective_message.text or "", None)


async def take_value_button(update: Update, context: BotContext) -> int | None:
    """Take the new value from its button (sex, Youth Union, cell)."""
    assert update.callback_query is not None and update.callback_query.data is not None
    return await _take(update, context, None, update.callback_query.data.rsplit(":", 1)[1])


async def take_reason(update: Update, context: BotContext) -> int | None:
    """Take the reason (3–500 characters) and show what ✅ will do."""
    assert update.effective_message is not None
    tr = translator(context, update)
    reason = valid_reason(update.effective_message.text)
    if reason is None:
        await reply(update, context, tr("reports.refused.bad_reason"))
        return None
    draft = _draft(context)
    draft["reason"] = reason
    admission_id = draft["id"]
    if draft["field"] == WITHDRAW:
        text = tr("reports.confirm_withdraw", reason=esc(reason))
    else:
        text = tr("reports.confirm_correct", field=tr(f"report.field_{draft['field']}"), value=draft["shown"],
                  reason=esc(reason))
    markup = InlineKeyboardMarkup([[button(tr("reports.button_confirm"), f"rep:ok:{admission_id}"),
                                    button(tr("reports.button_cancel"), f"rep:no:{admission_id}")]])
    await reply(update, context, text, markup)
    return CONFIRM


def _stored_value(field: str, value: Any) -> Any:
    """Return the draft's JSON value as the domain takes it."""
    if field == "date":
        return date.fromisoformat(value)
    if field == "sex":
        return Sex(value)
    return value


async def confirm(update: Update, context: BotContext) -> int | None:
    """Do the correction or withdrawal in one transaction (everything checked again), then show the card."""
    query = update.callback_query
    assert query is not None and query.data is not None
    draft = context.user_data.get(DRAFT) or {}  # type: ignore[union-attr]
    tr = translator(context, update)
    if str(draft.get("id")) != query.data.rsplit(":", 1)[1] or "reason" not in draft:
        await answer(query, tr("common.stale_button"), alert=True)
        return None
    services = context.services
    now = services.clock.now()
    outcome = None
    async with services.db.writing() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        scope = Scope(person)
        try:
            if draft["field"] == WITHDRAW:
                admission = await withdraw_with_reason(session, scope, int(draft["id"]), draft["reason"], now)
                outcome = tr("reports.withdrawn", name=esc(admission.full_name))
            else:
                admission, _ = await correct_report(session, scope, int(draft["id"]), draft["field"],
                                                    _stored_value(draft["field"], draft["value"]), draft["reason"], now)
                outcome = tr("reports.corrected", field=tr(f"report.field_{draft['field']}"), value=draft["shown"])
        except Refused as refused:
            outcome = refusal_text(tr, refused)
            card = None
        else:
            # Recorded as handled in this transaction: a redelivered ✅ after a crash does not act twice.
            await mark_processed(session, [update.update_id], now)
            unit = await unit_by_id(session, admission.unit_id)
            assert unit is not None
            card = await card_view(session, tr, admission, unit, admission.withdrawn_at is None,
                                   services.config.bot.tz)
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    try:
        await query.edit_message_text(outcome)
    except BadRequest:
        pass
    if card is not None:
        await reply(update, context, *card)
    await answer(query)
    return END


async def cancel(update: Update, context: BotContext) -> int:
    """Leave the report as it is (❌ or /cancel)."""
    tr = translator(context, update)
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    if update.callback_query is not None:
        await answer(update.callback_query)
    await reply(update, context, tr("reports.cancelled"))
    return END


async def use_buttons(update: Update, context: BotContext) -> int | None:
    """Remind that this step is answered with its buttons."""
    await reply(update, context, translator(context, update)("reports.use_buttons"))
    return None


def build_handlers() -> list[BaseHandler]:
    """Return the correction conversation."""
    text = filters.TEXT & ~filters.COMMAND
    fields = "|".join(FIELDS)
    return [DraftConversation(
        draft=DRAFT, lifetime=DRAFT_LIFETIME,
        entry_points=[CallbackQueryHandler(start_correction, pattern=rf"^rep:f:\d{{1,18}}:({fields})$"),
                      CallbackQueryHandler(start_withdrawal, pattern=r"^rep:w:\d{1,18}$")],
        states={
            VALUE: [CallbackQueryHandler(take_value_button, pattern=r"^rep:v:(male|female|yes|no|\d{1,18})$"),
                    MessageHandler(text, take_value_text)],
            REASON: [MessageHandler(text, take_reason)],
            CONFIRM: [CallbackQueryHandler(confirm, pattern=r"^rep:ok:\d{1,18}$"), MessageHandler(text, use_buttons)],
        },
        fallbacks=[CommandHandler("cancel", cancel), CallbackQueryHandler(cancel, pattern=r"^rep:no:\d{1,18}$")],
        name="corrections",
    )]


# Registered before /report's feature (bot/app.py): its /cancel outside a conversation would
# otherwise answer a /cancel meant for this one. It adds no command: /reports is handlers/reports.py.
FEATURE = Feature(handlers=build_handlers)
