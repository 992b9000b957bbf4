"""/undo: show one's own most recent report with ✅ / ❌; only ✅ withdraws it (within the configured window).

The ✅ button names the admission by id (`undo:withdraw:<id>`), so a late or repeated tap acts on
that report and no other; the withdrawal is checked again (a closed period included) and done, with
its audit entry, in the tap's one transaction.
"""

from __future__ import annotations

from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from handlers.context import BotContext, Feature
from handlers.common import answer, current_person, edit_in_place, esc, reply, translator
from models.admissions import UndoOutcome, latest_report, withdraw_report
from models.entities import Admission, Role
from models.locks import closed_for
from models.units import unit_by_id
from models.updates import mark_processed

WITHDRAW, KEEP = r"^undo:withdraw:\d{1,18}$", r"^undo:keep:\d{1,18}$"


async def undo(update: Update, context: BotContext) -> None:
    """Show the sender's latest report with ✅ / ❌, or say why there is none to withdraw."""
    assert update.message is not None
    hours = context.services.config.bot.undo_hours
    async with context.services.db.reading() as session:
        person = await current_person(session, update)
        assert person is not None  # the guard let only registered people through
        tr = translator(context, update, person)
        admission = await latest_report(session, person)
        cell = await unit_by_id(session, admission.unit_id) if admission else None
    if admission is None:
        await reply(update, context, tr("undo.nothing"))
        return
    if context.services.clock.now() - admission.reported_at > timedelta(hours=hours):
        await reply(update, context, tr("undo.too_late", name=esc(admission.full_name), hours=hours))
        return
    markup = InlineKeyboardMarkup([[
        InlineKeyboardButton(tr("undo.button_withdraw"), callback_data=f"undo:withdraw:{admission.id}"),
        InlineKeyboardButton(tr("undo.button_keep"), callback_data=f"undo:keep:{admission.id}"),
    ]])
    text = tr("undo.confirm", name=esc(admission.full_name), cell=esc(cell.name if cell else ""),
              date=tr.date(admission.admitted_on))
    await reply(update, context, text, markup)


async def withdraw(update: Update, context: BotContext) -> None:
    """Withdraw the report the ✅ names, if it is still the sender's own, in scope, counted and recent."""
    query = update.callback_query
    assert query is not None and query.data is not None
    hours = context.services.config.bot.undo_hours
    services = context.services
    async with services.db.writing() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        outcome, admission = await withdraw_report(
            session, person, int(query.data.rsplit(":", 1)[1]), services.clock.now(), timedelta(hours=hours))
        # Record the update as handled in this same transaction, so a crash before the usual
        # bookkeeping cannot make a redelivered ✅ answer "already withdrawn" for what it just did.
        await mark_processed(session, [update.update_id], services.clock.now())
        cell = await unit_by_id(session, admission.unit_id) if admission else None
        name = admission.full_name if admission else ""
        closed = await closed_for(session, cell) if outcome == UndoOutcome.CLOSED and cell is not None else None
    if closed is not None:  # the period is closed: up to when, and whom to ask (the catalog of /reports)
        text = tr("reports.refused.closed", date=tr.date(closed.until), unit=esc(closed.locked_unit.name))
    else:
        text = tr(f"undo.{outcome.value}", name=esc(name), cell=esc(cell.name if cell else ""), hours=hours)
    await edit_in_place(query, text)
    await answer(query)


async def keep(update: Update, context: BotContext) -> None:
    """Leave the report counted (❌)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    async with context.services.db.reading() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        admission = await session.get(Admission, int(query.data.rsplit(":", 1)[1]))
        own = admission is not None and admission.reported_by_id == person.id
        name = admission.full_name if admission is not None and own else ""
    await edit_in_place(query, tr("undo.kept", name=esc(name)) if own else tr("undo.not_allowed"))
    await answer(query)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("undo", undo), CallbackQueryHandler(withdraw, pattern=WITHDRAW),
            CallbackQueryHandler(keep, pattern=KEEP)]


FEATURE = Feature(handlers=build_handlers, commands={"undo": "undo.commands.undo"}, help=((Role.SECRETARY, "undo.help"),))
