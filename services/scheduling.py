"""When the weekly runs happen: the effective schedule, the next due time, catch-up after downtime.

The schedule of each kind ("reminder", "digest") is the one an admin stored with /schedule, else
the `[reminders]` section of the configuration. One job per kind is kept under a fixed name
(`weekly:reminder`, `weekly:digest`), due at the next *allowed* time (models.calendar: a nominal
time in quiet hours or on a holiday moves to the first moment after them); each run, once done,
schedules the next one of its kind. On start, a run missed while the bot was down runs once when
its due time lies within `catch_up_hours` and its `weekly_run` record is not completed.

A run that meets a busy database (SQLite's write lock held by a long import) is retried with
backoff until it runs, and says so in the log: the week's reminders are never silently dropped.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import OperationalError

from core.config import Config, ReminderSettings
from models.db import is_busy
from models.calendar import Calendar, Schedule, catch_up_candidate, next_run, week_start
from models.deadlines import DEADLINES
from models.sentlog import KINDS, run_completed, stored_schedules
from services.delivery import Outbox
from services.runtime import Services
from services.weekly import run_weekly

logger = logging.getLogger(__name__)

JOB_PREFIX = "weekly:"
BUSY_RETRY_START = 5.0  # seconds; doubles up to BUSY_RETRY_MAX while the database stays busy
BUSY_RETRY_MAX = 300.0


class Jobs(Protocol):
    """Where the scheduled runs are kept (services.telegram.JobQueueJobs over PTB's JobQueue)."""

    def replace(self, name: str, delay: timedelta, data: dict[str, Any], grace_seconds: int) -> None:
        """Schedule the job `name` alone, `delay` from now."""
        ...


def calendar_of(config: Config) -> Calendar:
    """Return the calendar of quiet hours and holidays the configuration sets."""
    return Calendar(config.bot.tz, config.reminders.quiet_hours, config.reminders.holidays)


async def effective_schedules(services: Services) -> dict[str, tuple[Schedule, bool]]:
    """Return kind -> (schedule, stored): the stored schedule wins over the configuration file."""
    settings: ReminderSettings = services.config.reminders
    async with services.db.reading() as session:
        stored = await stored_schedules(session)
    defaults = {"reminder": (settings.reminder_day, settings.reminder_time),
                "digest": (settings.digest_day, settings.digest_time)}
    out: dict[str, tuple[Schedule, bool]] = {}
    for kind in KINDS:
        weekday, at = stored.get(kind, defaults[kind])
        out[kind] = (Schedule(kind, weekday, at), kind in stored)
    return out


async def reschedule(services: Services, jobs: Jobs, kinds: tuple[str, ...] = KINDS,
                     after: datetime | None = None) -> None:
    """Replace the job of each kind with one due at its next allowed time after `after` (default now).

    Only the leader keeps jobs (services.leadership): a standby that changed the schedule (/schedule)
    leaves it to the leader, which picks the stored schedule up at its next check."""
    if not services.scheduler.leader:
        return
    now = services.clock.now()
    after = after or now
    calendar = calendar_of(services.config)
    grace = max(60, services.config.reminders.catch_up_hours * 3600)
    schedules = await effective_schedules(services)
    for kind in kinds:
        day, due = next_run(schedules[kind][0], calendar, after)
        jobs.replace(JOB_PREFIX + kind, due - now, {"kind": kind, "as_of": day.isoformat(), "due": due.isoformat()},
                     grace)


async def start(services: Services, jobs: Jobs) -> None:
    """Schedule every kind's next run and catch up a run missed while the bot was down."""
    now = services.clock.now()
    calendar = calendar_of(services.config)
    missed: list[tuple[str, date]] = []
    schedules = await effective_schedules(services)
    async with services.db.reading() as session:
        for kind, (schedule, _) in schedules.items():
            day = catch_up_candidate(schedule, calendar, now, services.config.reminders.catch_up_hours)
            if day is not None and not await run_completed(session, kind, week_start(day)):
                missed.append((kind, day))
    await reschedule(services, jobs)
    for kind, day in missed:
        logger.info("Catching up the %s run of the week of %s", kind, week_start(day).isoformat())
        jobs.replace(f"{JOB_PREFIX}{kind}:catch-up", timedelta(0),
                     {"kind": kind, "as_of": day.isoformat(), "catch_up": True}, 3600)


async def run_due(services: Services, jobs: Jobs, outbox: Outbox, data: dict[str, Any]) -> None:
    """Run one scheduled (or caught-up) weekly run, waiting out a busy database; then schedule the next."""
    kind = data["kind"]
    delay = BUSY_RETRY_START
    try:
        while True:
            try:
                await run_weekly(services, outbox, kind, date.fromisoformat(data["as_of"]))
                if kind == "reminder":  # the deadlines nobody got in a reminder go alone, at the same time
                    await run_weekly(services, outbox, DEADLINES, date.fromisoformat(data["as_of"]))
                return
            except OperationalError as error:
                if not is_busy(error):
                    raise
                logger.warning("The %s run met a busy database (another process holds the write lock); "
                               "trying again in %.0f s", kind, delay)
                await services.sleep(delay)
                delay = min(delay * 2, BUSY_RETRY_MAX)
    finally:
        if not data.get("catch_up"):
            await reschedule(services, jobs, (kind,), max(services.clock.now(), datetime.fromisoformat(data["due"])))

