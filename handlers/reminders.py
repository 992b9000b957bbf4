"""Weekly reminders, check-ins, committee digests and their schedule.

Scheduling. The schedule of each kind ("reminder", "digest") is the one an admin stored with
/schedule, else the `[reminders]` section of the configuration. On start (`startup`) one PTB job
per kind is rebuilt under a fixed name (`weekly:reminder`, `weekly:digest`), due at the next
*allowed* time: a nominal time inside quiet hours or on a holiday moves to the first moment after
them. Each job, once run, schedules the next one. A run missed while the bot was down is run once
on start when its (allowed) due time lies within `catch_up_hours` and the `weekly_run` record of
that kind and week is not completed.

Transactions stay short (on SQLite each one takes the write lock): the run is recorded in one,
the recipients are picked in another, each committee member's digest is built in its own (a unit's
section once per run and language), and none spans a send.

Sending and the sent-log. `run_weekly` picks the recipients, then for each one: (1) claims the
sent-log row (person, kind, week) as `pending` in its own transaction — an existing row means
someone else already has it, so nobody gets a second copy, even from a second process or a
repeated `remind-now`; (2) sends; (3) records `sent`, `blocked` (403: the person is marked
inactive) or `failed` (gave up after retries; a later run claims it again) in another short
transaction. Sends are paced below Telegram's 30 messages/s so that no one-second window
can hold more, whatever the network jitter (see `_Pacer`; they also go through PTB's
AIORateLimiter), 429 `retry_after` is waited out, timeouts and 5xx are retried with exponential
backoff, a bounded number of times.

The crash rule. A row left `pending` (the process died between claim and outcome) is never sent
again: the message may already have left, and Telegram offers no way to ask, so we prefer "at most
once". The window is one HTTP request per worker, so at most `WORKERS` recipients per crash can be
left uncertain; `RunSummary.uncertain` counts pending rows older than `PENDING_GRACE` (younger ones
belong to a run still in progress elsewhere) and the run logs that count for the operator. Every
recipient not claimed before the crash still gets their message on the next run.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, BaseHandler, CallbackQueryHandler, CommandHandler

from bot.config import WEEKDAYS, ConfigError, ReminderSettings, parse_hhmm
from bot.context import BotContext, BotData
from bot.i18n import Translator, language_of
from handlers.common import current_person, esc, today, translator
from models.entities import Person, Role, Unit
from models.people import Scope
from models.progress import Period, progress_of, term_progress
from models.reminders import (
    KINDS,
    CellStanding,
    SendStatus,
    away_secretaries,
    blocked_secretaries,
    cell_standings,
    cells_of_subtree,
    check_in,
    checked_in_ids,
    claim,
    committee_members,
    complete_run,
    due_secretaries,
    finish,
    last_reported_weeks,
    mark_blocked,
    reported_cell_ids,
    reporting_rate,
    run_completed,
    stale_pending,
    start_run,
    store_schedule,
    stored_schedules,
    undo_check_in,
    week_start,
)

logger = logging.getLogger(__name__)

COMMANDS = {
    "checkin": "weekly.commands.checkin",
    "away": "weekly.commands.away",
    "schedule": "weekly.commands.schedule",
}
def may_schedule(scope: Scope) -> bool:
    """Tell whether the person may change the weekly schedule (it is global: admins of a root unit)."""
    return any(unit.parent_id is None for unit in scope.units(Role.ADMIN))


# Help lines: (role, or a test of the person's scope, or None for everyone; catalog key).
HELP = ((Role.SECRETARY, "weekly.help_secretary"), (may_schedule, "weekly.help_admin"))

SEND_RATE = 29  # messages per second and bot (Telegram allows about 30; one is left for replies)
WORKERS = 4  # recipients in flight at once (claim, send, record)
MAX_ATTEMPTS = 5  # per recipient, for 429, timeouts and 5xx
BACKOFF_START = 0.5  # seconds; doubles per retry
BACKOFF_MAX = 30.0
PENDING_GRACE = timedelta(minutes=1)
MAX_AWAY_DAYS = 90
LIST_LIMIT = 15  # lines per list in a digest
MESSAGE_LIMIT = 4000  # characters; Telegram allows 4096
JOB_PREFIX = "weekly:"
CHECKIN_PATTERN = r"^remind:checkin:(\d+):(\d{8})$"
UNDO_PATTERN = r"^remind:undo:(\d+):(\d{8})$"
UNDO_WORDS = ("undo", "huy", "hủy", "bo", "bỏ")  # catalog: words people type
KIND_WORDS = {
    "reminder": "reminder", "remind": "reminder", "nhac": "reminder", "nhắc": "reminder",  # catalog: typed
    "nhacviec": "reminder", "nhắcviệc": "reminder",  # catalog: words people type
    "digest": "digest", "tonghop": "digest", "tổnghợp": "digest",  # catalog: words people type
}
DAY_WORDS = {**{d: d for d in WEEKDAYS}, "t2": "mon", "t3": "tue", "t4": "wed", "t5": "thu", "t6": "fri",
             "t7": "sat", "cn": "sun"}

# Waits between retries; tests swap it to record the delays instead of sleeping.
_sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep


# Schedules: pure functions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """When a kind of run is due each week (local time)."""

    kind: str
    weekday: str
    at: time

    def nominal(self, week: date, tz: tzinfo) -> datetime:
        """Return the nominal due time in the week starting `week`."""
        return datetime.combine(week + timedelta(days=WEEKDAYS.index(self.weekday)), self.at, tzinfo=tz)


@dataclass(frozen=True)
class Calendar:
    """Where runs may not happen: quiet hours and holidays, in a timezone."""

    tz: tzinfo
    quiet_hours: tuple[time, time] | None = None
    holidays: tuple[tuple[date, date], ...] = ()

    @classmethod
    def of(cls, settings: ReminderSettings, tz: tzinfo) -> Calendar:
        """Return the calendar of the `[reminders]` settings."""
        return cls(tz, settings.quiet_hours, settings.holidays)

    def is_holiday(self, day: date) -> bool:
        """Tell whether `day` is a configured holiday."""
        return any(first <= day <= last for first, last in self.holidays)

    def is_quiet(self, moment: time) -> bool:
        """Tell whether a local time of day lies in quiet hours (which may wrap past midnight)."""
        if self.quiet_hours is None:
            return False
        start, end = self.quiet_hours
        if start == end:
            return False
        if start < end:
            return start <= moment < end
        return moment >= start or moment < end

    def next_allowed(self, moment: datetime) -> datetime:
        """Return `moment`, or the first later moment outside quiet hours and holidays."""
        local = moment.astimezone(self.tz)
        for _ in range(3 * 366):
            if self.is_holiday(local.date()):
                local = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=self.tz)
                continue
            if self.is_quiet(local.time()):
                assert self.quiet_hours is not None
                end = self.quiet_hours[1]
                day = local.date() if local.time() < end else local.date() + timedelta(days=1)
                local = datetime.combine(day, end, tzinfo=self.tz)
                continue
            return local
        raise ValueError("no allowed time within three years: check reminders.holidays")


def next_run(schedule: Schedule, calendar: Calendar, after: datetime) -> tuple[date, datetime]:
    """Return (nominal day, allowed due time) of the first run due strictly after `after`."""
    week = week_start(after.astimezone(calendar.tz).date()) - timedelta(days=7)
    for _ in range(200):
        nominal = schedule.nominal(week, calendar.tz)
        due = calendar.next_allowed(nominal)
        if due > after:
            return nominal.date(), due
        week += timedelta(days=7)
    raise ValueError("no run within 200 weeks")


def latest_due(schedule: Schedule, calendar: Calendar, now: datetime) -> tuple[date, datetime] | None:
    """Return (nominal day, allowed due time) of the most recent run due at or before `now`."""
    week = week_start(now.astimezone(calendar.tz).date())
    for _ in range(60):
        nominal = schedule.nominal(week, calendar.tz)
        due = calendar.next_allowed(nominal)
        if due <= now:
            return nominal.date(), due
        week -= timedelta(days=7)
    return None


def catch_up_candidate(schedule: Schedule, calendar: Calendar, now: datetime, hours: int) -> date | None:
    """Return the nominal day of a run that was due within the last `hours` (the caller checks it ran)."""
    if hours <= 0:
        return None
    found = latest_due(schedule, calendar, now)
    if found is None:
        return None
    day, due = found
    return day if now - due <= timedelta(hours=hours) else None


async def effective_schedules(session: AsyncSession, settings: ReminderSettings) -> dict[str, tuple[Schedule, bool]]:
    """Return kind -> (schedule, stored): the stored schedule wins over the configuration file."""
    stored = await stored_schedules(session)
    defaults = {"reminder": (settings.reminder_day, settings.reminder_time),
                "digest": (settings.digest_day, settings.digest_time)}
    out: dict[str, tuple[Schedule, bool]] = {}
    for kind in KINDS:
        weekday, at = stored.get(kind, defaults[kind])
        out[kind] = (Schedule(kind, weekday, at), kind in stored)
    return out


# Jobs ------------------------------------------------------------------------------------------


def _data(application: Application) -> BotData:  # type: ignore[type-arg]
    return application.bot_data  # type: ignore[return-value]


async def startup(application: Application) -> None:  # type: ignore[type-arg]
    """Rebuild the weekly jobs from the stored schedule and catch up a run missed while down."""
    data = _data(application)
    assert data.config is not None and data.sessions is not None
    tz = data.config.bot.tz
    calendar = Calendar.of(data.config.reminders, tz)
    now = data.clock.now()
    async with data.sessions() as session:
        schedules = await effective_schedules(session, data.config.reminders)
        missed: list[tuple[str, date]] = []
        for kind, (schedule, _) in schedules.items():
            day = catch_up_candidate(schedule, calendar, now, data.config.reminders.catch_up_hours)
            if day is not None and not await run_completed(session, kind, week_start(day)):
                missed.append((kind, day))
    _schedule_jobs(application, {k: s for k, (s, _) in schedules.items()}, calendar, now)
    if application.job_queue is None:
        return
    for kind, day in missed:
        logger.info("Catching up the %s run of the week of %s", kind, week_start(day).isoformat())
        application.job_queue.run_once(
            weekly_job, when=0, name=f"{JOB_PREFIX}{kind}:catch-up",
            data={"kind": kind, "as_of": day.isoformat(), "catch_up": True},
        )


def _schedule_jobs(application: Application, schedules: dict[str, Schedule], calendar: Calendar,  # type: ignore[type-arg]
                   now: datetime) -> None:
    """Replace the job of each kind with one due at its next allowed time."""
    queue = application.job_queue
    if queue is None:
        logger.warning("No job queue: weekly reminders will only run with remind-now")
        return
    grace = max(60, _data(application).config.reminders.catch_up_hours * 3600)  # type: ignore[union-attr]
    for kind, schedule in schedules.items():
        for job in queue.get_jobs_by_name(JOB_PREFIX + kind):
            job.schedule_removal()
        day, due = next_run(schedule, calendar, now)
        queue.run_once(
            weekly_job, when=max(due - now, timedelta(0)), name=JOB_PREFIX + kind,
            data={"kind": kind, "as_of": day.isoformat(), "due": due.isoformat()},
            job_kwargs={"misfire_grace_time": grace},
        )


async def rebuild_jobs(application: Application) -> None:  # type: ignore[type-arg]
    """Re-read the schedules and replace the weekly jobs (after /schedule changed one)."""
    data = _data(application)
    assert data.config is not None and data.sessions is not None
    async with data.sessions() as session:
        schedules = await effective_schedules(session, data.config.reminders)
    calendar = Calendar.of(data.config.reminders, data.config.bot.tz)
    _schedule_jobs(application, {k: s for k, (s, _) in schedules.items()}, calendar, data.clock.now())


async def weekly_job(context: BotContext) -> None:
    """Run one scheduled (or caught-up) weekly run, then schedule the next one of its kind."""
    assert context.job is not None
    job_data: dict[str, Any] = context.job.data  # type: ignore[assignment]
    kind = job_data["kind"]
    try:
        await run_weekly(context.application, kind, date.fromisoformat(job_data["as_of"]))
    finally:
        if not job_data.get("catch_up"):
            data = context.bot_data
            assert data.config is not None and data.sessions is not None
            async with data.sessions() as session:
                schedule = (await effective_schedules(session, data.config.reminders))[kind][0]
            calendar = Calendar.of(data.config.reminders, data.config.bot.tz)
            after = max(data.clock.now(), datetime.fromisoformat(job_data["due"]))
            _schedule_jobs(context.application, {kind: schedule}, calendar, after)


# Runs ------------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What one run did."""

    kind: str
    week_start: date
    recipients: int = 0
    sent: int = 0
    skipped: int = 0  # already in the sent-log (sent, blocked, or claimed elsewhere / uncertain)
    failed: int = 0
    blocked: int = 0
    uncertain: int = 0  # pending rows left by an earlier crash, not resent
    away: int = 0


@dataclass
class Outgoing:
    """One recipient's message(s), ready to send."""

    person_id: int
    chat_id: int
    texts: list[str]
    markup: InlineKeyboardMarkup | None = None


class _Pacer:
    """Keeps sends within Telegram's per-bot limit whatever the network jitter (real time, all workers).

    Sends start at least 1/`per_second` apart, and a send starts only one second after the send
    `per_second` places before it has *finished*: Telegram counts a request somewhere between its
    start and its end, so no one-second window can then hold more than `per_second` of them.
    """

    def __init__(self, per_second: int):
        self.per_second = per_second
        self._slots: deque[asyncio.Future[float]] = deque(maxlen=per_second)
        self._lock = asyncio.Lock()
        self._next = 0.0

    async def acquire(self) -> asyncio.Future[float]:
        """Wait for this send's turn; finish the returned slot with `release` when the send is over."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            if len(self._slots) == self.per_second:
                ended = await asyncio.shield(self._slots[0])
                await _wait_until(loop, ended + 1.0)
            await _wait_until(loop, self._next)
            self._next = loop.time() + 1.0 / self.per_second
            slot: asyncio.Future[float] = loop.create_future()
            self._slots.append(slot)
            return slot

    @staticmethod
    def release(slot: asyncio.Future[float]) -> None:
        """Record that the send of `slot` is over."""
        if not slot.done():
            slot.set_result(asyncio.get_running_loop().time())


async def _wait_until(loop: asyncio.AbstractEventLoop, at: float) -> None:
    delay = at - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_weekly(application: Application, kind: str, as_of: date | None = None) -> RunSummary:  # type: ignore[type-arg]
    """Run one weekly run of `kind` now, as on `as_of` (default today); quiet hours do not apply.

    Recipients already in the sent-log for this kind and week are skipped, so repeating a run is
    safe. The run is recorded as completed when every recipient was handled.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    data = _data(application)
    assert data.config is not None and data.sessions is not None and data.texts is not None
    tz = data.config.bot.tz
    day = as_of or data.clock.today(tz)
    week = week_start(day)
    summary = RunSummary(kind=kind, week_start=week)
    # Short transactions only (on SQLite each one holds the write lock): none spans the sends.
    async with data.sessions.begin() as session:
        await start_run(session, kind, week, data.clock.now())
        summary.uncertain = await stale_pending(session, kind, week, data.clock.now() - PENDING_GRACE)
    if kind == "reminder":
        async with data.sessions.begin() as session:
            outgoing, summary.away = await _reminders(session, data, day)
    else:
        outgoing = await _digests(data, day)
    summary.recipients = len(outgoing)
    if summary.uncertain:
        logger.warning("%s run, week of %s: %d recipient(s) left pending by an earlier crash are not resent",
                       kind, week.isoformat(), summary.uncertain)
    await _send_all(application, outgoing, kind, week, summary)
    async with data.sessions.begin() as session:
        await complete_run(session, kind, week, data.clock.now())
    logger.info("%s run, week of %s: %d recipients, %d sent, %d skipped, %d failed, %d blocked",
                kind, week.isoformat(), summary.recipients, summary.sent, summary.skipped, summary.failed,
                summary.blocked)
    return summary


async def _send_all(application: Application, outgoing: list[Outgoing], kind: str, week: date,  # type: ignore[type-arg]
                    summary: RunSummary) -> None:
    data = _data(application)
    assert data.sessions is not None
    sessions = data.sessions
    pacer = _Pacer(SEND_RATE)
    items = iter(outgoing)

    async def worker() -> None:
        for item in items:
            async with sessions.begin() as session:
                claimed = await claim(session, item.person_id, kind, week, data.clock.now())
            if not claimed:
                summary.skipped += 1
                continue
            status, attempts = SendStatus.SENT, 0
            for text in item.texts:
                markup = item.markup if text is item.texts[-1] else None
                status, used = await _deliver(application, pacer, item.chat_id, text, markup)
                attempts += used
                if status != SendStatus.SENT:
                    break
            async with sessions.begin() as session:
                await finish(session, item.person_id, kind, week, status, data.clock.now(), attempts)
                if status == SendStatus.BLOCKED:
                    await mark_blocked(session, item.person_id, data.clock.now())
            if status == SendStatus.SENT:
                summary.sent += 1
            elif status == SendStatus.BLOCKED:
                summary.blocked += 1
            else:
                summary.failed += 1

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(WORKERS, max(len(outgoing), 1))):
                group.create_task(worker())
    except BaseExceptionGroup as errors:  # report the first cause, as a plain loop would
        raise errors.exceptions[0] from None


async def _deliver(application: Application, pacer: _Pacer, chat_id: int, text: str,  # type: ignore[type-arg]
                   markup: InlineKeyboardMarkup | None) -> tuple[SendStatus, int]:
    """Send one message with retries; return (outcome, attempts)."""
    backoff = BACKOFF_START
    for attempt in range(1, MAX_ATTEMPTS + 1):
        slot = await pacer.acquire()
        try:
            await application.bot.send_message(chat_id, text, reply_markup=markup)
            return SendStatus.SENT, attempt
        except Forbidden:
            return SendStatus.BLOCKED, attempt
        except RetryAfter as exc:
            # AIORateLimiter already waited and retried; Telegram still says wait: do so.
            wait = exc._retry_after.total_seconds()  # noqa: SLF001 - the int/timedelta property is deprecated
            logger.warning("Flood control: waiting %.1f s", wait)
            if attempt < MAX_ATTEMPTS:
                await _sleep(wait)
        except BadRequest as exc:  # e.g. chat not found: retrying cannot help
            logger.warning("Message refused by Telegram: %s", type(exc).__name__)
            return SendStatus.FAILED, attempt
        except NetworkError as exc:  # timeouts, 5xx, connection errors
            logger.warning("Send failed (%s), attempt %d of %d", type(exc).__name__, attempt, MAX_ATTEMPTS)
            if attempt < MAX_ATTEMPTS:
                await _sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        except TelegramError as exc:
            logger.warning("Send failed (%s), not retried", type(exc).__name__)
            return SendStatus.FAILED, attempt
        finally:
            pacer.release(slot)
    return SendStatus.FAILED, MAX_ATTEMPTS


def _tr(data: BotData, language: str | None) -> Translator:
    assert data.texts is not None and data.config is not None
    return data.texts.for_language(language_of(language, data.config.bot.language))


def _week_label(tr: Translator, week: date) -> str:
    return tr("weekly.week_range", first=week.strftime("%d/%m"), last=(week + timedelta(days=6)).strftime("%d/%m/%Y"))


def _cell_line(tr: Translator, cell: CellStanding, year: int) -> str:
    if cell.target is None:
        return tr("weekly.cell_line_no_target", cell=esc(cell.name), count=tr.number(cell.admitted), year=year)
    key = "weekly.cell_line_behind" if cell.behind else "weekly.cell_line"
    return tr(key, cell=esc(cell.name), count=tr.number(cell.admitted), target=tr.number(cell.target),
              percent=tr.percent(_pct(cell.admitted, cell.target)), year=year,
              expected=tr.number(cell.expected or 0))


def _pct(part: int, whole: int | None):  # type: ignore[no-untyped-def]
    from models.progress import percent

    return percent(part, whole)


def reminder_markup(tr: Translator, cells: tuple[CellStanding, ...], week: date) -> InlineKeyboardMarkup:
    """Return the two buttons of a reminder (one check-in button per cell when several)."""
    rows = [[InlineKeyboardButton(tr("weekly.button_report"), callback_data="report:start")]]
    for cell in cells:
        label = tr("weekly.button_checkin") if len(cells) == 1 else tr("weekly.button_checkin_cell", cell=cell.name)
        rows.append([InlineKeyboardButton(label[:64], callback_data=f"remind:checkin:{cell.unit_id}:{week:%Y%m%d}")])
    return InlineKeyboardMarkup(rows)


async def _reminders(session: AsyncSession, data: BotData, day: date) -> tuple[list[Outgoing], int]:
    assert data.config is not None
    due, away = await due_secretaries(session, day, data.config.bot.tz)
    week = week_start(day)
    out = []
    for person in due:
        tr = _tr(data, person.language)
        lines = [tr("weekly.reminder_header", week=_week_label(tr, week))]
        lines.append(tr("weekly.reminder_body"))
        lines.extend(_cell_line(tr, cell, day.year) for cell in person.cells)
        lines.append("")
        lines.append(tr("weekly.reminder_footer"))
        out.append(Outgoing(person.person_id, person.telegram_id, ["\n".join(lines)],
                            reminder_markup(tr, person.cells, week)))
    return out, away


async def _digests(data: BotData, day: date) -> list[Outgoing]:
    """Build each committee member's digest, each in its own short transaction.

    A unit's section is built once per run and language, however many members follow the unit.
    """
    assert data.config is not None and data.sessions is not None
    async with data.sessions.begin() as session:
        members = [(p.id, p.telegram_id, p.language, [u.id for u in units])
                   for p, units in await committee_members(session)]
    sections: dict[tuple[int, str], str] = {}
    out = []
    for person_id, chat_id, language, unit_ids in members:
        tr = _tr(data, language)
        async with data.sessions.begin() as session:
            for unit_id in unit_ids:
                if (unit_id, tr.lang) not in sections:
                    unit = await session.get(Unit, unit_id)
                    if unit is not None:
                        sections[unit_id, tr.lang] = await digest_section(
                            session, tr, unit, day, data.config.bot.tz)
        texts = [sections[u, tr.lang] for u in unit_ids if (u, tr.lang) in sections]
        if texts:
            out.append(Outgoing(person_id, chat_id, _pack(tr, texts)))
    return out


def _pack(tr: Translator, sections: list[str]) -> list[str]:
    """Join sections into as few messages as fit Telegram's length limit."""
    messages: list[str] = []
    for section in sections:
        if messages and len(messages[-1]) + 2 + len(section) <= MESSAGE_LIMIT:
            messages[-1] += "\n\n" + section
        else:
            messages.append(shorten(section, MESSAGE_LIMIT, tr("weekly.digest_shortened")))
    return messages


def shorten(text: str, limit: int, note: str) -> str:
    """Return `text`, or as many of its first whole lines as fit in `limit` with `note` after them.

    Cutting only between lines keeps the HTML whole: no tag or entity spans a line.
    """
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size = len(note)
    for line in text.split("\n"):
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join([*kept, note])


def _capped(tr: Translator, lines: list[str]) -> list[str]:
    if len(lines) <= LIST_LIMIT:
        return lines
    return lines[:LIST_LIMIT] + [tr("weekly.digest_more", count=tr.number(len(lines) - LIST_LIMIT))]


async def digest_section(session: AsyncSession, tr: Translator, unit: Unit, day: date, tz: tzinfo) -> str:
    """Return the digest of one unit's subtree as of `day` (the week before `day`'s week is "last week")."""
    this_week = week_start(day)
    last_week = this_week - timedelta(days=7)
    lines = [tr("weekly.digest_header", unit=esc(unit.name), week=_week_label(tr, last_week))]
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
                    percent=tr.percent(_pct(reported, total))))

    cells = await cells_of_subtree(session, unit)
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
    latest = await last_reported_weeks(session, unit, this_week, tz)
    silent: list[str] = []
    for cell in cells:
        last = latest.get(cell.id)
        if last is None:
            silent.append(tr("weekly.digest_silent_never", cell=esc(cell.name)))
        else:
            weeks = (this_week - last).days // 7 - 1
            if weeks >= 2:
                silent.append(tr("weekly.digest_silent_line", cell=esc(cell.name), weeks=tr.number(weeks)))
    if silent:
        lines.append("")
        lines.append(tr("weekly.digest_silent_header", count=tr.number(len(silent))))
        lines.extend(_capped(tr, silent))
    blocked = await blocked_secretaries(session, unit, tz)
    if blocked:
        lines.append("")
        lines.append(tr("weekly.digest_blocked_header", count=tr.number(len(blocked))))
        lines.extend(_capped(tr, [tr("weekly.digest_person_line", name=esc(n.display_name), cell=esc(n.cell_name))
                                  for n in blocked]))
    away = await away_secretaries(session, unit, day)
    if away:
        lines.append("")
        lines.append(tr("weekly.digest_away_header", count=tr.number(len(away))))
        lines.extend(_capped(tr, [tr("weekly.digest_away_line", name=esc(n.display_name), cell=esc(n.cell_name),
                                     until=tr.date(n.since)) for n in away if n.since]))
    if not behind and not silent:
        lines.append("")
        lines.append(tr("weekly.digest_all_good"))
    return "\n".join(lines)


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
    async with context.transaction() as session:
        person = await current_person(session, update)
        assert person is not None  # the guard let only registered people through
        tr = translator(context, update, person)
        cells = Scope(person).units(Role.SECRETARY)
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
    await update.message.reply_text(text, reply_markup=markup)


async def _checked_in_reply(session: AsyncSession, tr: Translator, person: Person, cells: list[Unit], week: date,
                            context: BotContext) -> tuple[str, InlineKeyboardMarkup | None]:
    """Check in `cells` for `week` and return the reply (a cell that reported an admission needs none)."""
    ids = [c.id for c in cells]
    reported = await reported_cell_ids(session, week, context.config.bot.tz, ids)
    checked = await checked_in_ids(session, week, ids)
    new: list[Unit] = []
    already: list[Unit] = []
    by_chat: list[Unit] = []
    for cell in cells:
        if cell.id in checked:
            already.append(cell)
        elif cell.id in reported:
            by_chat.append(cell)
        elif await check_in(session, cell, person, week, context.clock.now()):
            new.append(cell)
        else:
            already.append(cell)
    lines = []
    if new:
        lines.append(tr("weekly.checked_in", cells=", ".join(esc(c.name) for c in new),
                        week=_week_label(tr, week)))
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


async def _button_target(update: Update, context: BotContext, pattern: str) -> tuple[int, date | None, date]:
    """Answer the button and return (cell id, week on the button, this week)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer()
    match = re.match(pattern, query.data)
    assert match is not None
    return int(match.group(1)), _parse_week(match.group(2)), week_start(today(context))


def _own_cell(person: Person, unit_id: int) -> Unit | None:
    """Return the cell with this id if the person is its secretary."""
    return next((c for c in Scope(person).units(Role.SECRETARY) if c.id == unit_id), None)


async def checkin_button(update: Update, context: BotContext) -> None:
    """Check in one cell from a reminder's button."""
    assert update.effective_message is not None
    unit_id, week, this_week = await _button_target(update, context, CHECKIN_PATTERN)
    async with context.transaction() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        cell = _own_cell(person, unit_id)
        if cell is None:
            text, markup = tr("weekly.not_your_cell"), None
        elif week != this_week:
            text, markup = tr("weekly.stale_week"), None
        else:
            text, markup = await _checked_in_reply(session, tr, person, [cell], this_week, context)
    await update.effective_message.reply_text(text, reply_markup=markup)


async def undo_button(update: Update, context: BotContext) -> None:
    """Undo a check-in from its button, within the same week."""
    assert update.effective_message is not None
    unit_id, week, this_week = await _button_target(update, context, UNDO_PATTERN)
    async with context.transaction() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        cell = _own_cell(person, unit_id)
        if cell is None:
            text = tr("weekly.not_your_cell")
        elif week != this_week:
            text = tr("weekly.undo_too_late")
        elif await undo_check_in(session, cell, this_week):
            text = tr("weekly.undone", cells=esc(cell.name))
        else:
            text = tr("weekly.nothing_to_undo")
    await update.effective_message.reply_text(text)


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
    async with context.transaction() as session:
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
                    text = tr("weekly.away_set", days=tr.number(days), until=tr.date(person.away_until))
    await update.message.reply_text(text)


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


async def schedule_text(session: AsyncSession, tr: Translator, context: BotContext) -> str:
    """Return the current schedule with the next run of each kind."""
    settings = context.config.reminders
    calendar = Calendar.of(settings, context.config.bot.tz)
    now = context.clock.now()
    lines = [tr("weekly.schedule_header")]
    for kind, (schedule, stored) in (await effective_schedules(session, settings)).items():
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
    async with context.transaction() as session:
        person = await current_person(session, update)
        assert person is not None
        tr = translator(context, update, person)
        if not may_schedule(Scope(person)):
            text = tr("weekly.admins_only")  # the schedule is global: admins of a root unit only
        elif not context.args:
            text = await schedule_text(session, tr, context)
        else:
            try:
                kind, weekday, at = parse_schedule_change(context.args)
            except ValueError as problem:
                text = tr("weekly.schedule_bad_time" if str(problem) == "time" else "weekly.schedule_bad")
            else:
                await store_schedule(session, kind, weekday, at, person, context.clock.now())
                changed = True
                text = tr("weekly.schedule_changed") + "\n\n" + await schedule_text(session, tr, context)
    if changed:
        await rebuild_jobs(context.application)
    await update.message.reply_text(text)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [
        CommandHandler("checkin", checkin_command),
        CommandHandler("away", away_command),
        CommandHandler("schedule", schedule_command),
        CallbackQueryHandler(checkin_button, pattern=CHECKIN_PATTERN),
        CallbackQueryHandler(undo_button, pattern=UNDO_PATTERN),
    ]
