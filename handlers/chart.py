"""/chart and the progress "chart" button: a PNG of cumulative admissions against the plan.

Without a plan for the period the chart says so and shows the admission counts (the unit's and
its children's), rather than a plan title over bars that all say "none set".
"""

from __future__ import annotations

import asyncio
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from handlers.context import BotContext, Feature
from core.i18n import Translator
from handlers.common import answer, cached_person, esc, today, translator
from handlers.progress import button_pattern, home_units, parse_button, parse_period_argument, resolve_period, unit_in_scope
from models.entities import Unit
from models.people import Scope
from models.periods import Period
from models.progress import monthly_admitted, progress_report
from reports.charts import ChartData, ChartTexts, render_progress_chart



async def chart_data(session: AsyncSession, tr: Translator, unit: Unit, period: Period, day: date,
                     with_children: bool) -> tuple[ChartData, ChartTexts]:
    """Gather what the chart of `unit` for `period` shows, with its labels in the reader's language."""
    report = await progress_report(session, unit, period, day)
    monthly = await monthly_admitted(session, unit, period)
    ends = period.month_ends()
    started = sum(1 for end in ends if date(end.year, end.month, 1) <= day)
    cumulative, total = [], 0
    for count in monthly[:started]:
        total += count
        cumulative.append(total)
    target = report.main.target
    expected = None
    if target is not None:
        expected = [target * period.elapsed_days(end) / period.days for end in ends]
    if period.is_term:
        months = [f"{end.month}/{end.year % 100:02d}" for end in ends]
    else:
        months = tr("chart.months").split(",")
    children = [(c.unit.name, float(c.percent) if c.percent is not None else None, c.behind)
                for c in report.children] if with_children else []
    admitted = [c.admitted for c in report.children] if with_children else None
    # An annual plan is a "kế hoạch", a term's is a "chỉ tiêu": each has its own labels.
    kind = "chart.term" if period.is_term else "chart.year"
    title = f"{kind}.title" if target is not None else f"{kind}.title_no_plan"
    texts = ChartTexts(
        title=tr(title, unit=unit.name, period=period.label()),
        actual=tr("chart.actual"), expected=tr(f"{kind}.expected"), target=tr(f"{kind}.target"),
        months_axis=tr("chart.months_axis"), count_axis=tr("chart.count_axis"),
        children_title=tr(f"{kind}.children_title"), percent_axis=tr(f"{kind}.percent_axis"),
        no_target=tr("chart.no_target"), no_plan=tr(f"{kind}.no_plan", period=period.label()),
        children_admitted_title=tr("chart.children_admitted"),
    )
    data = ChartData(months=months, actual=cumulative, expected=expected, target=target, children=children,
                     children_admitted=admitted)
    return data, texts


async def _send_chart(update: Update, context: BotContext, unit_id: int | None, period: Period | None,
                      want_term: bool) -> None:
    """Send the chart of the unit (the person's own when unit_id is None), or say why not."""
    chat = update.effective_chat
    assert chat is not None
    day = today(context)
    payload: tuple[ChartData, ChartTexts] | None = None
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    tr = translator(context, update, person)
    if unit_id is None:
        units = home_units(person)
        unit_id = units[0].id if units else None
    async with context.services.db.reading() as session:
        unit = await unit_in_scope(session, person, unit_id) if unit_id is not None else None
        shown = await resolve_period(session, unit, period, want_term, day) if unit is not None else None
        if unit is not None and shown is not None:
            payload = await chart_data(session, tr, unit, shown, day, Scope(person).may_oversee(unit))
    if update.callback_query is not None:
        if payload is None:
            await answer(update.callback_query, tr("progress.out_of_scope"), alert=True)
            return
        await answer(update.callback_query, tr("chart.preparing"))
    if payload is None:
        await context.bot.send_message(chat.id, tr("progress.no_term" if unit is not None else "progress.not_registered_scope"))
        return
    png = await asyncio.to_thread(render_progress_chart, *payload)
    await context.bot.send_photo(chat.id, photo=png, caption=esc(payload[1].title))


async def chart_command(update: Update, context: BotContext) -> None:
    """Send the chart of the person's unit for `/chart [term|YYYY]`."""
    assert update.message is not None
    try:
        period, want_term = parse_period_argument(context.args or [], today(context).year,
                                                  context.services.config.bot.term_start)
    except ValueError:
        tr = translator(context, update, await cached_person(context, update))
        await update.message.reply_text(tr("chart.bad_period"))
        return
    await _send_chart(update, context, None, period, want_term)


async def chart_button(update: Update, context: BotContext) -> None:
    """Send the chart of the unit on the tapped progress message."""
    assert update.callback_query is not None
    button = parse_button(update.callback_query.data, context.services.config.bot.term_start)
    if button is None:
        await answer(update.callback_query)
        return
    await _send_chart(update, context, button.unit_id, button.period, False)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("chart", chart_command), CallbackQueryHandler(chart_button, pattern=button_pattern("chart"))]


FEATURE = Feature(handlers=build_handlers, commands={"chart": "chart.commands.chart"}, help=((None, "chart.help"),))
