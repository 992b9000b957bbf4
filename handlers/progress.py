"""/progress: admissions against the annual plan and the term target, with child units."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler

from bot.context import BotContext
from bot.i18n import Translator
from handlers.common import current_person, esc, today, translator, unit_progress_line
from models.entities import Role
from models.people import Scope
from models.progress import Period, Progress, children_progress, current_term, progress_of
from models.units import unit_by_id

COMMANDS = {"progress": "progress.commands.progress"}
HELP = ((None, "progress.help"),)
TERM_WORDS = ("term", "nhiemky", "nhiệmkỳ", "nk")  # catalog: words typed in, not shown


def parse_period_argument(args: list[str], year: int) -> tuple[Period | None, bool]:
    """Return (period, is_term_request) from `/progress [term|YYYY|YYYY-YYYY]`; raise ValueError if unclear."""
    if not args:
        return Period.year(year), False
    word = "".join(args).lower()
    if word in TERM_WORDS:
        return None, True
    return Period.parse(word), False


def _headline(tr: Translator, progress: Progress) -> str:
    period = progress.period.label()
    key = "progress.term_line" if progress.period.is_term else "progress.year_line"
    if progress.target is None:
        return tr(key + "_no_target", period=period, count=tr.number(progress.admitted))
    return tr(key, period=period, count=tr.number(progress.admitted), target=tr.number(progress.target),
              percent=tr.percent(progress.percent))


def _schedule(tr: Translator, progress: Progress) -> str | None:
    if progress.expected is None or progress.gap is None:
        return None
    expected = tr.number(progress.expected)
    if progress.gap > 0:
        return tr("progress.expected_ahead", expected=expected, gap=tr.number(progress.gap))
    if progress.gap < 0:
        return tr("progress.expected_behind", expected=expected, gap=tr.number(-progress.gap))
    return tr("progress.expected_on_track", expected=expected)


def _child_line(tr: Translator, progress: Progress) -> str:
    if progress.target is None:
        return tr("progress.child_line_no_target", mark=tr("progress.mark_none"), unit=esc(progress.unit.name),
                  count=tr.number(progress.admitted))
    mark = tr("progress.mark_behind" if progress.behind else "progress.mark_ok")
    return tr("progress.child_line", mark=mark, unit=esc(progress.unit.name), count=tr.number(progress.admitted),
              target=tr.number(progress.target), percent=tr.percent(progress.percent))


async def show_progress(update: Update, context: BotContext) -> None:
    """Send the progress of the person's unit (committee, admin) or cell and its parent (secretary)."""
    assert update.message is not None
    day = today(context)
    async with context.transaction() as session:
        person = await current_person(session, update)
        assert person is not None  # the guard let only registered people through
        tr = translator(context, update, person)
        try:
            period, want_term = parse_period_argument(context.args or [], day.year)
        except ValueError:
            await update.message.reply_text(tr("progress.bad_period"))
            return
        scope = Scope(person)
        overseen = scope.units(Role.COMMITTEE, Role.ADMIN)
        sections: list[str] = []
        if overseen:
            for unit in overseen:
                sections.append(await _unit_section(session, tr, unit, period, want_term, day, with_children=True))
        else:
            for cell in scope.units(Role.SECRETARY):
                text = await _unit_section(session, tr, cell, period, want_term, day, with_children=False)
                parent = await unit_by_id(session, cell.parent_id) if cell.parent_id else None
                if parent is not None:
                    year = period or Period.year(day.year)
                    text += "\n" + unit_progress_line(tr, await progress_of(session, parent, year, day))
                sections.append(text)
        if not sections:
            sections.append(tr("progress.not_registered_scope"))
    await update.message.reply_text("\n\n".join(sections))


async def _unit_section(session, tr: Translator, unit, period: Period | None, want_term: bool, day,  # type: ignore[no-untyped-def]
                        with_children: bool) -> str:
    lines = [tr("progress.header", unit=esc(unit.name))]
    term = await current_term(session, unit, day)
    shown: Period | None = term if want_term else period
    if want_term and term is None:
        lines.append(tr("progress.no_term"))
    if shown is not None:
        main = await progress_of(session, unit, shown, day)
        lines.append(_headline(tr, main))
        schedule = _schedule(tr, main)
        if schedule:
            lines.append(schedule)
        if not want_term and term is not None and shown.start_year == day.year:
            term_progress = await progress_of(session, unit, term, day)
            lines.append(_headline(tr, term_progress))
            schedule = _schedule(tr, term_progress)
            if schedule:
                lines.append(schedule)
        if with_children:
            children = await children_progress(session, unit, shown, day)
            if children:
                lines.append("")
                lines.append(tr("progress.children_header"))
                lines.extend(_child_line(tr, child) for child in children)
    return "\n".join(lines)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("progress", show_progress)]
