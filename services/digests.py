"""The texts of the weekly messages: a secretary's reminder and a committee member's digest.

Built in the recipient's language from the domain's figures; the buttons are plain data
(services.delivery.Button) so that nothing here knows the chat transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta, tzinfo

from sqlalchemy.ext.asyncio import AsyncSession

from core.collation import sort_vietnamese, vietnamese_key
from core.i18n import Translator
from core.text import SAFE_LIMIT, esc, shorten, split_message
from models.calendar import week_start, weeks_between
from models.entities import Unit
from models.periods import Period
from models.progress import percent, progress_of, term_progress
from models.reminders import (
    CellStanding,
    DueSecretary,
    SecretaryNote,
    away_secretaries,
    blocked_secretaries,
    cell_standings,
    cells_of_subtree,
    last_reported_weeks,
    reporting_rate,
    secretary_since,
)
from services.delivery import Button, Message

LIST_LIMIT = 15  # lines per list in a digest
SILENT_WEEKS = 2  # a cell that has not reported for this many whole weeks is "silent"
CHECKIN_BUTTON = "remind:checkin:{cell}:{week:%Y%m%d}"  # handlers/weekly.py answers it


def week_label(tr: Translator, week: date) -> str:
    return tr("weekly.week_range", first=week.strftime("%d/%m"), last=(week + timedelta(days=6)).strftime("%d/%m/%Y"))


def _cell_line(tr: Translator, cell: CellStanding, year: int) -> str:
    if cell.target is None:
        return tr("weekly.cell_line_no_target", cell=esc(cell.name), count=tr.number(cell.admitted), year=year)
    key = "weekly.cell_line_behind" if cell.behind else "weekly.cell_line"
    return tr(key, cell=esc(cell.name), count=tr.number(cell.admitted), target=tr.number(cell.target),
              percent=tr.percent(percent(cell.admitted, cell.target)), year=year,
              expected=tr.number(cell.expected or 0))


def reminder_messages(tr: Translator, person: DueSecretary, day: date, extra: Sequence[str] = ()) -> list[Message]:
    """Return the weekly reminder of a secretary whose cells have not reported in the week of `day`
    (split between lines when a secretary of many cells would exceed a message; buttons on the last);
    `extra` lines (the deadlines, services.deadlines) go before the footer."""
    week = week_start(day)
    cells = sort_vietnamese(person.cells, key=lambda c: c.name)
    lines = [tr("weekly.reminder_header", week=week_label(tr, week)), tr("weekly.reminder_body")]
    lines.extend(_cell_line(tr, cell, day.year) for cell in cells)
    lines.extend(extra)
    lines.append("")
    lines.append(tr("weekly.reminder_footer"))
    buttons = [(Button(tr("weekly.button_report"), "report:start"),)]
    for cell in cells:
        label = tr("weekly.button_checkin") if len(cells) == 1 else tr("weekly.button_checkin_cell",
                                                                              cell=cell.name)
        buttons.append((Button(label[:64], CHECKIN_BUTTON.format(cell=cell.unit_id, week=week)),))
    texts = split_message("\n".join(lines))
    return [Message(person.telegram_id, text, tuple(buttons) if i == len(texts) - 1 else ())
            for i, text in enumerate(texts)]


def pack(tr: Translator, sections: list[str]) -> list[str]:
    """Join sections into as few messages as fit Telegram's length limit (each cut between lines)."""
    messages: list[str] = []
    for section in sections:
        if messages and len(messages[-1]) + 2 + len(section) <= SAFE_LIMIT:
            messages[-1] += "\n\n" + section
        else:
            messages.append(shorten(section, SAFE_LIMIT, tr("weekly.digest_shortened")))
    return messages


def _capped(tr: Translator, lines: list[str]) -> list[str]:
    if len(lines) <= LIST_LIMIT:
        return lines
    more = len(lines) - LIST_LIMIT
    return lines[:LIST_LIMIT] + [tr.plural("weekly.digest_more", more, count=tr.number(more))]


def _by_cell_and_name(notes: list[SecretaryNote]) -> list[SecretaryNote]:
    """Return the notes in Vietnamese order of cell, then person (the database orders by code point)."""
    return sorted(notes, key=lambda n: (vietnamese_key(n.cell_name), vietnamese_key(n.display_name)))


def silent_weeks(last_report: date | None, first_secretary: date | None, this_week: date) -> int | None:
    """Return the whole weeks a cell has been silent before `this_week`, or None when it cannot be.

    Reports of this week count (a cell that reported or checked in this week is never silent).
    A cell that never reported is measured from the week its first secretary began (that week
    itself is a grace week, like a report); a cell without any secretary has nobody to report.
    """
    start = last_report if last_report is not None else first_secretary
    if start is None:
        return None
    return max(weeks_between(start, this_week), 0)


async def _silent_cells(session: AsyncSession, tr: Translator, unit: Unit, cells: list[Unit], this_week: date,
                        tz: tzinfo) -> tuple[list[str], list[Unit]]:
    """Return the digest's silent-cell lines, and the cells that have no secretary yet."""
    latest = await last_reported_weeks(session, unit, this_week + timedelta(days=7), tz)  # this week counts
    since = await secretary_since(session, unit, tz)
    silent: list[str] = []
    unstaffed: list[Unit] = []
    for cell in cells:
        last = latest.get(cell.id)
        weeks = silent_weeks(last, since.get(cell.id), this_week)
        if weeks is None:
            unstaffed.append(cell)
        elif weeks >= SILENT_WEEKS:
            key = "weekly.digest_silent_line" if last is not None else "weekly.digest_silent_never"
            silent.append(tr(key, cell=esc(cell.name), weeks=tr.number(weeks)))
    return silent, unstaffed


async def digest_section(session: AsyncSession, tr: Translator, unit: Unit, day: date, tz: tzinfo,
                         extra: Sequence[str] = ()) -> str:
    """Return the digest of one unit's subtree as of `day` (the week before `day`'s week is "last week")."""
    this_week = week_start(day)
    last_week = this_week - timedelta(days=7)
    lines = [tr("weekly.digest_header", unit=esc(unit.name), week=week_label(tr, last_week))]
    year = await progress_of(session, unit, Period.year(day.year), day)
    if year.target is None:
        lines.append(tr("weekly.digest_year_no_target", year=day.year, count=tr.number(year.admitted)))
    else:
        lines.append(tr("weekly.digest_year", year=day.year, count=tr.number(year.admitted),
                        target=tr.number(year.target), percent=tr.percent(year.percent)))
        if year.gap is not None and year.gap < 0:
            lines.append(tr("weekly.digest_behind_by", expected=tr.number(year.expected or 0),
                            gap=tr.number(-year.gap)))
    tp = await term_progress(session, unit, day)
    if tp is not None:
        if tp.target is not None:
            lines.append(tr("weekly.digest_term", period=tp.period.label(), count=tr.number(tp.admitted),
                            target=tr.number(tp.target), percent=tr.percent(tp.percent)))
    reported, total = await reporting_rate(session, unit, last_week, tz=tz)
    lines.append(tr("weekly.digest_rate", reported=tr.number(reported), total=tr.number(total),
                    percent=tr.percent(percent(reported, total))))

    cells = sort_vietnamese(await cells_of_subtree(session, unit), key=lambda c: c.name)  # every list follows
    standings = await cell_standings(session, [c.id for c in cells], day)
    behind = [standings[c.id] for c in cells if standings[c.id].behind]
    if behind:
        lines.append("")
        lines.append(tr("weekly.digest_behind_header", count=tr.number(len(behind))))
        lines.extend(_capped(tr, [
            tr("weekly.digest_behind_line", cell=esc(s.name), count=tr.number(s.admitted),
               target=tr.number(s.target or 0), expected=tr.number(s.expected or 0))
            for s in behind
        ]))
    silent, unstaffed = await _silent_cells(session, tr, unit, cells, this_week, tz)
    if silent:
        lines.append("")
        lines.append(tr("weekly.digest_silent_header", count=tr.number(len(silent))))
        lines.extend(_capped(tr, silent))
    blocked = _by_cell_and_name(await blocked_secretaries(session, unit, tz))
    if blocked:
        lines.append("")
        lines.append(tr("weekly.digest_blocked_header", count=tr.number(len(blocked))))
        lines.extend(_capped(tr, [tr("weekly.digest_person_line", name=esc(n.display_name), cell=esc(n.cell_name))
                                  for n in blocked]))
    away = _by_cell_and_name(await away_secretaries(session, unit, day))
    if away:
        lines.append("")
        lines.append(tr("weekly.digest_away_header", count=tr.number(len(away))))
        lines.extend(_capped(tr, [tr("weekly.digest_away_line", name=esc(n.display_name), cell=esc(n.cell_name),
                                     until=tr.date(n.since)) for n in away if n.since]))
    if unstaffed:
        lines.append("")
        lines.append(tr("weekly.digest_no_secretary", count=tr.number(len(unstaffed)),
                        cells=", ".join(esc(c.name) for c in unstaffed[:LIST_LIMIT])
                        + (", …" if len(unstaffed) > LIST_LIMIT else "")))
    lines.extend(extra)  # the pipeline section (services.pipeline.digest_lines)
    if not behind and not silent:
        lines.append("")
        lines.append(tr("weekly.digest_all_good"))
    return "\n".join(lines)
