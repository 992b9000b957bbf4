"""/export and the progress export buttons: the scope's progress as XLSX (or CSV) for the department."""

from __future__ import annotations

import asyncio
import re

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from handlers.context import BotContext, Feature
from handlers.common import answer, cached_person, esc, today, translator
from handlers.progress import button_pattern, parse_button, parse_period_argument, resolve_period
from models.entities import AuditChannel, Role, Unit
from models.people import Scope
from models.periods import Period
from models.units import unit_by_id
from reports.exports import export_bytes

FORMAT_WORDS = {"csv": "csv", "xlsx": "xlsx", "excel": "xlsx"}


def export_filename(unit: Unit, period: Period, extension: str) -> str:
    """Return e.g. `tien-do-PN-2026.xlsx` (the code made safe for a file name)."""
    code = re.sub(r"[^A-Za-z0-9_.-]+", "-", unit.code).strip("-") or str(unit.id)
    return f"tien-do-{code}-{period.label()}.{extension}"


async def _send_export(update: Update, context: BotContext, unit_id: int | None, period: Period | None,
                       want_term: bool, fmt: str) -> None:
    """Send the export of the unit (the person's highest overseen one when unit_id is None), or say why not."""
    chat = update.effective_chat
    assert chat is not None
    day = today(context)
    render = None
    refusal = "export.not_allowed"
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    tr = translator(context, update, person)
    if unit_id is None:
        overseen = Scope(person).units(Role.COMMITTEE, Role.ADMIN)
        unit_id = overseen[0].id if overseen else None
    async with context.services.db.writing() as session:  # the export's audit entry is written with it
        unit = await unit_by_id(session, unit_id) if unit_id is not None else None
        if unit is not None and Scope(person).may_export(unit):
            shown = await resolve_period(session, unit, period, want_term, day)
            if shown is None:
                refusal = "progress.no_term"
            else:
                _, render = await export_bytes(session, unit, shown, day, fmt, context.services.config.bot.tz,
                                               at=context.services.clock.now(), channel=AuditChannel.CHAT,
                                               person=person)
                filename = export_filename(unit, shown, fmt)
                caption = "\n".join((
                    tr("export.caption.term" if shown.is_term else "export.caption.year", unit=esc(unit.name),
                       code=esc(unit.code), period=shown.label(), date=tr.date(day)),
                    tr("security.export_personal_data")))
    if update.callback_query is not None:
        if render is None:
            await answer(update.callback_query, tr("progress.out_of_scope"), alert=True)
            return
        await answer(update.callback_query, tr("export.preparing"))
    if render is None:
        await context.bot.send_message(chat.id, tr(refusal))
        return
    content = await asyncio.to_thread(render)
    await context.bot.send_document(chat.id, document=content, filename=filename, caption=caption)


async def export_command(update: Update, context: BotContext) -> None:
    """Send `/export [term|YYYY] [csv]` for the person's unit (committee members and admins)."""
    assert update.message is not None
    words = [w for w in (context.args or [])]
    fmt = next((FORMAT_WORDS[w.lower()] for w in words if w.lower() in FORMAT_WORDS), "xlsx")
    rest = [w for w in words if w.lower() not in FORMAT_WORDS]
    try:
        period, want_term = parse_period_argument(rest, today(context).year, context.services.config.bot.term_start)
    except ValueError:
        tr = translator(context, update, await cached_person(context, update))
        await update.message.reply_text(tr("export.bad_period"))
        return
    await _send_export(update, context, None, period, want_term, fmt)


async def export_button(update: Update, context: BotContext) -> None:
    """Send the export of the unit on the tapped progress message."""
    query = update.callback_query
    assert query is not None
    button = parse_button(query.data, context.services.config.bot.term_start)
    if button is None:
        await answer(query)
        return
    await _send_export(update, context, button.unit_id, button.period, False, button.action)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("export", export_command), CallbackQueryHandler(export_button, pattern=button_pattern("xlsx", "csv"))]


def oversees(scope: Scope) -> bool:
    """Tell whether the person follows a subtree (committee member or admin): exports are theirs."""
    return bool(scope.roles & {Role.COMMITTEE, Role.ADMIN})


FEATURE = Feature(handlers=build_handlers, commands={"export": "export.commands.export"}, help=((oversees, "export.help"),))
