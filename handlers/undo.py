"""/undo: withdraw one's own most recent report within the configured window."""

from __future__ import annotations

from datetime import timedelta

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler

from handlers.context import BotContext, Feature
from handlers.common import current_person, esc, reply, translator
from models.admissions import withdraw_latest
from models.entities import Role
from models.units import unit_by_id
from models.updates import mark_processed



async def undo(update: Update, context: BotContext) -> None:
    """Withdraw the sender's latest report if it is recent enough, else say who can correct it."""
    assert update.message is not None
    hours = context.services.config.bot.undo_hours
    services = context.services
    async with context.services.db.writing() as session:
        person = await current_person(session, update)
        assert person is not None  # the guard let only registered people through
        tr = translator(context, update, person)
        outcome, admission = await withdraw_latest(session, person, services.clock.now(), timedelta(hours=hours))
        # Not idempotent: record the update as handled in this same transaction, so a crash
        # before the usual bookkeeping cannot make a redelivered /undo withdraw a second report.
        await mark_processed(session, [update.update_id], services.clock.now())
        cell = await unit_by_id(session, admission.unit_id) if admission else None
        name = admission.full_name if admission else ""
    text = tr(f"undo.{outcome.value}", name=esc(name), cell=esc(cell.name if cell else ""), hours=hours)
    await reply(update, context, text)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("undo", undo)]


FEATURE = Feature(handlers=build_handlers, commands={"undo": "undo.commands.undo"}, help=((Role.SECRETARY, "undo.help"),))
