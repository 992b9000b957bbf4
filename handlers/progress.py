"""/progress: admissions against the calendar of the plan and the term, with drill-down buttons.

Buttons are stateless (everything they need is in their callback data, well under 64 bytes), so they
keep working after a restart; every tap re-checks the person's scope before showing anything.
  prog:u:<unit id>:<period>[:<page>]  show that unit, one page of its children (edit in place)
  prog:chart:<unit id>:<period>  send the chart (handlers/chart.py)
  prog:xlsx|csv:<unit id>:<period>  send the export (handlers/export.py)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from services.pipeline import progress_lines as pipeline_lines
from handlers.context import BotContext, Feature
from core.i18n import Translator
from handlers.common import answer, cached_person, edit_in_place, esc, paging_row, today, translator, unit_progress_line
from handlers.reports import progress_button
from models.entities import Person, Role, Unit, UnitKind
from models.people import Scope
from models.calendar import TermStart, week_start
from models.periods import Period
from models.progress import Progress, current_term, progress_of, progress_report, stored_period, term_progress
from models.reminders import reporting_rate
from models.units import unit_by_id

TERM_WORDS = ("term", "nhiemky", "nhiệmkỳ", "nk")  # catalog: words the user types
# Child units per page, as lines and as buttons (behind schedule first): a district's 80 committees
# would otherwise make a keyboard of 40 rows, heavy to load on a weak signal and to scroll on a phone.
CHILDREN_PER_PAGE = 10


def parse_period_argument(args: list[str], year: int, term_start: TermStart) -> tuple[Period | None, bool]:
    """Return (period, is_term_request) from `/progress [term|YYYY|YYYY-YYYY]`; raise ValueError if unclear.

    A term typed by its years runs from `term_start` (resolve_period then takes its stored days).
    """
    if not args:
        return Period.year(year), False
    word = "".join(args).lower()
    if word in TERM_WORDS:
        return None, True
    return Period.parse(word, term_start), False


# The one format of every progress button (chart.py and export.py answer theirs):
#   prog:<action>:<unit id>:<period>[:<page>]   action u (show), chart, xlsx or csv; ≤ 64 bytes
_BUTTON = re.compile(r"^prog:(u|chart|xlsx|csv):(\d{1,18}):(\d{4}(?:-\d{4})?)(?::(\d{1,4}))?$")


def button_pattern(*actions: str) -> str:
    """Return the anchored callback pattern of progress buttons with these actions."""
    return rf"^prog:({'|'.join(actions)}):\d{{1,18}}:\d{{4}}(?:-\d{{4}})?(?::\d{{1,4}})?$"


def button_data(action: str, unit: Unit, period: Period, page: int = 0) -> str:
    """Return the callback data of a progress button, e.g. `prog:u:123:2026` or `prog:u:123:2026:2` (≤ 64 bytes)."""
    data = f"prog:{action}:{unit.id}:{period.label()}" + (f":{page}" if page else "")
    assert len(data.encode()) <= 64
    return data


@dataclass(frozen=True)
class ProgressButton:
    """What a progress button asks for."""

    action: str
    unit_id: int
    period: Period
    page: int = 0


def parse_button(data: str | None, term_start: TermStart) -> ProgressButton | None:
    """Return what a progress button asks for, or None when its data is malformed or forged."""
    match = _BUTTON.match(data or "")
    if match is None:
        return None
    try:
        period = Period.parse(match.group(3), term_start)
    except ValueError:
        return None
    return ProgressButton(match.group(1), int(match.group(2)), period, int(match.group(4) or 0))


async def resolve_period(session: AsyncSession, unit: Unit, period: Period | None, want_term: bool,
                         day: date) -> Period | None:
    """Return the period to show: the term covering today when asked for, else `period` (a term with
    the days stored on its target)."""
    if want_term:
        return await current_term(session, unit, day)
    return None if period is None else await stored_period(session, unit, period)


async def unit_in_scope(session: AsyncSession, person: Person, unit_id: int) -> Unit | None:
    """Return the unit if the person may see it (their subtree or their own cell), else None."""
    unit = await unit_by_id(session, unit_id)
    if unit is None or not Scope(person).may_view(unit):
        return None
    return unit


def _headline(tr: Translator, progress: Progress) -> str:
    period = progress.period.label()
    key = "progress.term_line" if progress.period.is_term else "progress.year_line"
    # A term names its days (it runs from the congress, not from 1 January); a year needs not.
    days = {"first": tr.date(progress.period.first_day), "last": tr.date(progress.period.last_day)}
    if progress.target is None:
        return tr(key + "_no_target", period=period, count=tr.number(progress.admitted), **days)
    return tr(key, period=period, count=tr.number(progress.admitted), target=tr.number(progress.target),
              percent=tr.percent(progress.percent), **days)


def _schedule(tr: Translator, progress: Progress) -> str | None:
    if progress.expected is None or progress.gap is None:
        return None
    expected = tr.number(progress.expected)
    if progress.gap > 0:
        return tr("progress.expected_ahead", expected=expected, gap=tr.number(progress.gap))
    if progress.gap < 0:
        return tr("progress.expected_behind", expected=expected, gap=tr.number(-progress.gap))
    return tr("progress.expected_on_track", expected=expected)


def _pace(tr: Translator, progress: Progress) -> list[str]:
    """Return the lines on what is still needed per month and the period-end forecast."""
    lines = []
    end = "progress.end_term" if progress.period.is_term else "progress.end_year"
    if progress.needed_per_month is not None:
        if progress.remaining == 0:
            lines.append(tr("progress.target_reached_term" if progress.period.is_term else "progress.target_reached_year"))
        else:
            lines.append(tr.plural("progress.needed_per_month", progress.months_left,
                                   remaining=tr.number(progress.remaining or 0), months=tr.number(progress.months_left),
                                   per_month=tr.number(progress.needed_per_month)))
    if progress.forecast is not None and progress.as_of is not None and progress.as_of < progress.period.last_day:
        if progress.forecast_percent is not None:
            lines.append(tr("progress.forecast", end=tr(end), forecast=tr.number(progress.forecast),
                            percent=tr.percent(progress.forecast_percent)))
        else:
            lines.append(tr("progress.forecast_no_target", end=tr(end), forecast=tr.number(progress.forecast)))
    return lines


def _breakdown(tr: Translator, progress: Progress) -> str | None:
    if not progress.admitted:
        return None
    b = progress.breakdown
    return tr("progress.breakdown", women=tr.number(b.women), minority=tr.number(b.minority),
              youth=tr.number(b.youth_union), under_30=tr.number(b.under_30))


def _child_line(tr: Translator, progress: Progress) -> str:
    if progress.target is None:
        key = "progress.child_line_no_target_term" if progress.period.is_term else "progress.child_line_no_target"
        return tr(key, mark=tr("progress.mark_none"), unit=esc(progress.unit.name),
                  count=tr.number(progress.admitted))
    mark = tr("progress.mark_behind" if progress.behind else "progress.mark_ok")
    return tr("progress.child_line", mark=mark, unit=esc(progress.unit.name), count=tr.number(progress.admitted),
              target=tr.number(progress.target), percent=tr.percent(progress.percent))


def _child_button(tr: Translator, progress: Progress) -> InlineKeyboardButton:
    mark = tr("progress.mark_none" if progress.target is None else
              "progress.mark_behind" if progress.behind else "progress.mark_ok")
    name = progress.unit.name if len(progress.unit.name) <= 30 else progress.unit.name[:29] + "…"
    figure = tr.percent(progress.percent) if progress.target else tr.number(progress.admitted)
    return InlineKeyboardButton(f"{mark} {name} · {figure}", callback_data=button_data("u", progress.unit, progress.period))


async def _reporting_rate_line(session: AsyncSession, tr: Translator, unit: Unit, day: date,
                               tz: tzinfo) -> str | None:
    """Return last week's reporting rate (cells that reported / cells), weeks counted in `tz`."""
    reported, cells = await reporting_rate(session, unit, week_start(day - timedelta(days=7)), tz=tz)
    if not cells:
        return None
    return tr("progress.reporting_rate", reported=tr.number(reported), cells=tr.number(cells),
              percent=tr.percent(reported * 100 / cells))


@dataclass(frozen=True)
class View:
    """One /progress message: its text and buttons."""

    text: str
    markup: InlineKeyboardMarkup | None


async def build_view(session: AsyncSession, tr: Translator, person: Person, unit: Unit, period: Period | None,
                     want_term: bool, day: date, tz: tzinfo, page: int = 0) -> View:
    """Return the progress message of `unit` as the person may see it (drill-down only within scope)."""
    scope = Scope(person)
    overseer = scope.may_oversee(unit)
    lines = [tr("progress.header", unit=esc(unit.name))]
    shown = await resolve_period(session, unit, period, want_term, day)
    if shown is None:
        lines.append(tr("progress.no_term"))
        return View("\n".join(lines), None)
    report = await progress_report(session, unit, shown, day)
    main = report.main
    lines.append(_headline(tr, main))
    lines.extend(line for line in (_schedule(tr, main), *_pace(tr, main), _breakdown(tr, main)) if line)
    lines.extend(await pipeline_lines(session, tr, unit, main))  # membership and candidates (services.pipeline)
    term = await term_progress(session, unit, day) if not shown.is_term and shown.start_year == day.year else None
    if term is not None:
        lines.append(_headline(tr, term))
        schedule = _schedule(tr, term)
        if schedule:
            lines.append(schedule)
    if overseer and unit.kind != UnitKind.CELL:
        rate = await _reporting_rate_line(session, tr, unit, day, tz)
        if rate:
            lines.append(rate)
    parent = report.parent
    if not overseer and parent is not None:  # a secretary: the parent's totals, no drill-down
        year = Period.year(day.year) if shown.is_term else shown
        lines.append(unit_progress_line(tr, await progress_of(session, parent, year, day)))
    buttons: list[list[InlineKeyboardButton]] = []
    if overseer and report.children:
        pages = -(-len(report.children) // CHILDREN_PER_PAGE)
        page = min(max(page, 0), pages - 1)
        first = page * CHILDREN_PER_PAGE
        shown_children = report.children[first:first + CHILDREN_PER_PAGE]
        lines.append("")
        if pages == 1:
            lines.append(tr("progress.children_header"))
        else:
            lines.append(tr("progress.children_header_page", first=tr.number(first + 1),
                            last=tr.number(first + len(shown_children)), total=tr.number(len(report.children))))
        lines.extend(_child_line(tr, child) for child in shown_children)
        for pair in range(0, len(shown_children), 2):
            buttons.append([_child_button(tr, child) for child in shown_children[pair:pair + 2]])
        buttons += paging_row(page, pages, tr("progress.button_previous"), tr("progress.button_next"),
                              lambda shown_page: button_data("u", unit, shown, shown_page))
    tools = [InlineKeyboardButton(tr("progress.button_chart"), callback_data=button_data("chart", unit, shown))]
    if scope.may_export(unit):
        tools.append(InlineKeyboardButton(tr("progress.button_xlsx"), callback_data=button_data("xlsx", unit, shown)))
        tools.append(InlineKeyboardButton(tr("progress.button_csv"), callback_data=button_data("csv", unit, shown)))
    buttons.append(tools)
    if overseer:
        buttons.append([progress_button(tr, unit)])  # its reports, to open and correct (handlers/reports.py)
    if parent is not None and scope.may_oversee(parent):
        buttons.append([InlineKeyboardButton(tr("progress.button_up", unit=parent.name[:40]),
                                             callback_data=button_data("u", parent, shown))])
    return View("\n".join(lines), InlineKeyboardMarkup(buttons))


def home_units(person: Person) -> list[Unit]:
    """Return the units /progress starts from: those overseen, else the person's cells."""
    scope = Scope(person)
    return scope.units(Role.COMMITTEE, Role.ADMIN) or scope.units(Role.SECRETARY)


async def cached_view(context: BotContext, tr: Translator, person: Person, unit_id: int, period: Period | None,
                      want_term: bool, day: date, page: int = 0) -> View | None:
    """Return the view of a unit in the person's scope (None outside it), built again only after the data changed."""
    cache = context.services.cache
    key = ("progress", person.id, unit_id, period.label() if period else None, want_term, page, day, tr.lang)
    view: View | None = cache.get(key)
    if view is None:
        generation = cache.generation
        async with context.services.db.reading() as session:
            unit = await unit_in_scope(session, person, unit_id)
            if unit is None:
                return None
            view = await build_view(session, tr, person, unit, period, want_term, day, context.services.config.bot.tz, page)
        cache.put(key, view, generation)
    return view


async def show_progress(update: Update, context: BotContext) -> None:
    """Send the progress of each unit the person oversees (or their cell), with drill-down buttons."""
    assert update.message is not None
    day = today(context)
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    tr = translator(context, update, person)
    views: list[View] = []
    try:
        period, want_term = parse_period_argument(context.args or [], day.year, context.services.config.bot.term_start)
    except ValueError:
        views.append(View(tr("progress.bad_period"), None))
    else:
        for unit in home_units(person):
            view = await cached_view(context, tr, person, unit.id, period, want_term, day)
            if view is not None:
                views.append(view)
    if not views:
        views.append(View(tr("progress.not_registered_scope"), None))
    for view in views:
        await update.message.reply_text(view.text, reply_markup=view.markup)


async def drill_down(update: Update, context: BotContext) -> None:
    """Show the tapped unit's progress in place of the message, if it is within the person's scope."""
    query = update.callback_query
    assert query is not None
    day = today(context)
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    tr = translator(context, update, person)
    button = parse_button(query.data, context.services.config.bot.term_start)
    view = None
    if button is not None:
        view = await cached_view(context, tr, person, button.unit_id, button.period, False, day, button.page)
    if view is None:
        await answer(query, tr("progress.out_of_scope"), alert=True)
        return
    await edit_in_place(query, view.text, view.markup)
    await answer(query)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("progress", show_progress), CallbackQueryHandler(drill_down, pattern=button_pattern("u"))]


FEATURE = Feature(handlers=build_handlers, commands={"progress": "progress.commands.progress"}, help=((None, "progress.help"),))
