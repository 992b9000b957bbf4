"""Weekly check-ins, /away and /schedule, and the buttons of the weekly reminder.

The weekly runs themselves (who is reminded, the digests, delivery, scheduling) are services
(services/weekly.py, services/scheduling.py); this module only translates chat to them.
  remind:checkin:<cell id>:<yyyymmdd>  "no new admissions this week" from a reminder
  remind:undo:<cell id>:<yyyymmdd>     undo that check-in, the same week
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from core.collation import sort_vietnamese
from core.config import ConfigError, parse_hhmm
from core.i18n import Translator
from handlers.common import answer, current_person, esc, reply, today, translator
from handlers.context import BotContext, Feature
from models.calendar import WEEKDAYS, next_run, week_start
from models.entities import Person, Role, Unit
from models.people import Scope
from models.reminders import check_in, checked_in_ids, reported_cell_ids, undo_check_in
from models.sentlog import store_schedule
from services.digests import week_label
from services.scheduling import calendar_of, effective_schedules, reschedule
from services.telegram import JobQueueJobs


def may_schedule(scope: Scope) -> bool:
    """Tell whether the person may change the weekly schedule (it is global: admins of a root unit)."""
    return any(unit.parent_id is None for unit in scope.units(Role.ADMIN))


MAX_AWAY_DAYS = 90
CHECKIN_PATTERN = r"^remind:checkin:(\d{1,18}):(\d{8})$"
UNDO_PATTERN = r"^remind:undo:(\d{1,18}):(\d{8})$"
UNDO_WORDS = ("undo", "huy", "hủy", "bo", "bỏ")  # catalog: words people type
KIND_WORDS = {
    "reminder": "reminder", "remind": "reminder", "nhac": "reminder", "nhắc": "reminder",  # catalog: typed
    "nhacviec": "reminder", "nhắcviệc": "reminder",  # catalog: words people type
    "digest": "digest", "tonghop": "digest", "tổnghợp": "digest",  # catalog: words people type
}
DAY_WORDS = {**{d: d for d in WEEKDAYS}, "t2": "mon", "t3": "tue", "t4": "wed", "t5": "thu", "t6": "fri",
             "t7": "sat", "cn": "sun"}


# Chat: check-ins -------------------------------------------------------------------------------


def _undo_markup(tr: Translator, cells: list[Unit], week: date) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(
            (tr("weekly.button_undo") if len(cells) == 1 else tr("weekly.button_undo_cell", cell=c.name))[:64],
            callback_data=f"remind:undo:{c.id}:{week:%Y%m%d}")]
        for c in cells
    ])


async def checkin_command(update: Update, context: BotContext) -> None:
    """Check in "no new admissions this week" for each of the secretary's cells (or undo it)."""
    assert update.message is not None
    week = week_start(today(context))
    words = [w.lower() for w in context.args or []]
    async with context.services.db.writing() as session:
        person = await current_person(session, update)
        assert person is not None  # the guard let only registered people through
        tr = translator(context, update, person)
        cells = sort_vietnamese(Scope(person).units(Role.SECRETARY), key=lambda c: c.name)
        if not cells:
            text, markup = tr("weekly.only_secretaries"), None
        elif words and words[0] in UNDO_WORDS:
            undone = [c for c in cells if await undo_check_in(session, c, week)]
            text = tr("weekly.undone", cells=", ".join(esc(c.name) for c in undone)) if undone \
                else tr("weekly.nothing_to_undo")
            markup = None
        elif words:
            text, markup = tr("weekly.checkin_usage"), None
        else:
            text, markup = await _checked_in_reply(session, tr, person, cells, week, context)
    await reply(update, context, text, markup)


async def _checked_in_reply(session: AsyncSession, tr: Translator, person: Person, cells: list[Unit], week: date,
                            context: BotContext) -> tuple[str, InlineKeyboardMarkup | None]:
    """Check in `cells` for `week` and return the reply (a cell that reported an admission needs none)."""
    ids = [c.id for c in cells]
    reported = await reported_cell_ids(session, week, context.services.config.bot.tz, ids)
    checked = await checked_in_ids(session, week, ids)
    new: list[Unit] = []
    already: list[Unit] = []
    by_chat: list[Unit] = []
    for cell in cells:
        if cell.id in checked:
            already.append(cell)
        elif cell.id in reported:
            by_chat.append(cell)
        elif await check_in(session, cell, person, week, context.services.clock.now()):
            new.append(cell)
        else:
            already.append(cell)
    lines = []
    if new:
        lines.append(tr("weekly.checked_in", cells=", ".join(esc(c.name) for c in new),
                        week=week_label(tr, week)))
    if already:
        lines.append(tr("weekly.already_checked_in", cells=", ".join(esc(c.name) for c in already)))
    if by_chat:
        lines.append(tr("weekly.already_reported", cells=", ".join(esc(c.name) for c in by_chat)))
    undoable = new + already
    if undoable:
        lines.append(tr("weekly.undo_hint"))
    return "\n".join(lines), _undo_markup(tr, undoable, week) if undoable else None


def _parse_week(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _button_target(update: Update, context: BotContext, pattern: str) -> tuple[int, date | None, date]:
    """Return (cell id, week on the button, this week) of a reminder button."""
    query = update.callback_query
    assert query is not None and query.data is not None
    match = re.match(pattern, query.data)
    assert match is not None
    return int(match.group(1)), _parse_week(match.group(2)), week_start(today(context))


CellAction = Callable[[AsyncSession, Translator, Person, Unit, date, BotContext],
                      Awaitable[tuple[str, InlineKeyboardMarkup | None]]]
"""What a reminder button does to one of the person's cells this week: the reply and its buttons."""


def _own_cell(person: Person, unit_id: int) -> Unit | None:
    """Return the cell with this id if the person is its secretary."""
    return next((c for c in Scope(person).units(Role.SECRETARY) if c.id == unit_id), None)


async def checkin_button(update: Update, context: BotContext) -> None:
    """Check in one cell from a reminder's button."""
    await _cell_button(update, context, CHECKIN_PATTERN, _check_in_from_button, "weekly.stale_week")


async def undo_button(update: Update, context: BotContext) -> None:
    """Undo a check-in from its button, within the same week."""
    await _cell_button(update, context, UNDO_PATTERN, _undo_from_button, "weekly.undo_too_late")


async def _check_in_from_button(session: AsyncSession, tr: Translator, person: Person, cell: Unit,
                                week: date, context: BotContext) -> tuple[str, InlineKeyboardMarkup | None]:
    """Check `cell` in for this week: the reply and its undo button."""
    return await _checked_in_reply(session, tr, person, [cell], week, context)


async def _undo_from_button(session: AsyncSession, tr: Translator, person: Person, cell: Unit,
                            week: date, context: BotContext) -> tuple[str, InlineKeyboardMarkup | None]:
    """Undo this week's check-in of `cell`: the reply."""
    if await undo_check_in(session, cell, week):
        return tr("weekly.undone", cells=esc(cell.name)), None
    return tr("weekly.nothing_to_undo"), None


async def _cell_button(update: Update, context: BotContext, pattern: str, act: CellAction, stale: str) -> None:
    """One reminder button on one cell: check scope and week, act in one transaction, then answer."""
    assert update.effective_message is not None
    unit_id, week, this_week = _button_target(update, context, pattern)
    async with context.services.db.writing() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        cell = _own_cell(person, unit_id)
        if cell is None:
            text, markup = tr("weekly.not_your_cell"), None
        elif week != this_week:
            text, markup = tr(stale), None
        else:
            text, markup = await act(session, tr, person, cell, this_week, context)
    await reply(update, context, text, markup)
    await answer(update.callback_query)  # after the work: a failed answer never undoes it


# Chat: /away -----------------------------------------------------------------------------------


def parse_away_days(args: list[str]) -> int:
    """Return N from `/away N` (0–90); raise ValueError otherwise."""
    if len(args) != 1 or not re.fullmatch(r"\d{1,3}", args[0].strip()):
        raise ValueError("not_days")
    days = int(args[0])
    if days > MAX_AWAY_DAYS:
        raise ValueError("too_many")
    return days


async def away_command(update: Update, context: BotContext) -> None:
    """Pause reminders for N days (`/away N`), end the pause (`/away 0`) or show it (`/away`)."""
    assert update.message is not None
    day = today(context)
    async with context.services.db.writing() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        if not context.args:
            if person.away_until is not None and person.away_until >= day:
                text = tr("weekly.away_status", until=tr.date(person.away_until))
            else:
                text = tr("weekly.away_none")
        else:
            try:
                days = parse_away_days(context.args)
            except ValueError:
                text = tr("weekly.away_bad", max=MAX_AWAY_DAYS)
            else:
                if days == 0:
                    person.away_until = None
                    text = tr("weekly.away_ended")
                else:
                    person.away_until = day + timedelta(days=days - 1)
                    text = tr.plural("weekly.away_set", days, days=tr.number(days), until=tr.date(person.away_until))
    await reply(update, context, text)


# Chat: /schedule -------------------------------------------------------------------------------


def parse_schedule_change(args: list[str]) -> tuple[str, str, time]:
    """Return (kind, weekday, time) from `/schedule reminder fri 16:00`; raise ValueError otherwise."""
    if len(args) != 3:
        raise ValueError("usage")
    kind = KIND_WORDS.get(args[0].lower())
    weekday = DAY_WORDS.get(args[1].lower().rstrip("."))
    if kind is None or weekday is None:
        raise ValueError("usage")
    try:
        at = parse_hhmm(args[2].replace("h", ":"), "time")
    except ConfigError:
        raise ValueError("time") from None
    return kind, weekday, at


async def schedule_text(tr: Translator, context: BotContext) -> str:
    """Return the current schedule with the next run of each kind."""
    services = context.services
    settings = services.config.reminders
    calendar = calendar_of(services.config)
    now = services.clock.now()
    lines = [tr("weekly.schedule_header")]
    for kind, (schedule, stored) in (await effective_schedules(services)).items():
        _, due = next_run(schedule, calendar, now)
        lines.append(tr(
            f"weekly.schedule_{kind}", day=tr(f"weekly.day.{schedule.weekday}"),
            time=schedule.at.strftime("%H:%M"), next=due.strftime("%d/%m/%Y %H:%M"),
            source=tr("weekly.source_stored" if stored else "weekly.source_file"),
        ))
    if settings.quiet_hours:
        start, end = settings.quiet_hours
        lines.append(tr("weekly.schedule_quiet", start=start.strftime("%H:%M"), end=end.strftime("%H:%M")))
    if settings.holidays:
        spans = [tr.date(a) if a == b else f"{tr.date(a)}–{tr.date(b)}" for a, b in settings.holidays]
        lines.append(tr("weekly.schedule_holidays", days=", ".join(spans)))
    lines.append("")
    lines.append(tr("weekly.schedule_usage"))
    return "\n".join(lines)


async def schedule_command(update: Update, context: BotContext) -> None:
    """Show the weekly schedule, or change it (admins of a root unit only: it applies to the whole tree)."""
    assert update.message is not None
    changed = False
    async with context.services.db.writing() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        if not may_schedule(Scope(person)):
            text = tr("weekly.admins_only")  # the schedule is global: admins of a root unit only
        elif not context.args:
            text = None
        else:
            try:
                kind, weekday, at = parse_schedule_change(context.args)
            except ValueError as problem:
                text = tr("weekly.schedule_bad_time" if str(problem) == "time" else "weekly.schedule_bad")
            else:
                await store_schedule(session, kind, weekday, at, person, context.services.clock.now())
                changed = True
                text = tr("weekly.schedule_changed")
    if changed and context.job_queue is not None:
        await reschedule(context.services, JobQueueJobs(context.job_queue))
    if text is None or changed:  # shown after the change is committed, with the new next runs
        text = (text + "\n\n" if text else "") + await schedule_text(tr, context)
    await reply(update, context, text)


def build_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Return this feature's handlers."""
    return [
        CommandHandler("checkin", checkin_command),
        CommandHandler("away", away_command),
        CommandHandler("schedule", schedule_command),
        CallbackQueryHandler(checkin_button, pattern=CHECKIN_PATTERN),
        CallbackQueryHandler(undo_button, pattern=UNDO_PATTERN),
    ]


FEATURE = Feature(
    handlers=build_handlers,
    commands={"checkin": "weekly.commands.checkin", "away": "weekly.commands.away",
              "schedule": "weekly.commands.schedule"},
    help=((Role.SECRETARY, "weekly.help_secretary"), (may_schedule, "weekly.help_admin")),
    who={"checkin": Role.SECRETARY, "away": Role.SECRETARY, "schedule": may_schedule},
)
