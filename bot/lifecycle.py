"""The one way to start and stop the bot: `running(application, poll=…, jobs=…)`.

    async with running(application, poll=True, jobs=True):
        await stop.wait()

In order: initialise PTB (the Bot, persistence loading the conversations), the start-up work
(`post_init`: default menu, bookkeeping, the features' hooks), the JobQueue with the weekly runs
and their catch-up, the poller and, in its background, everyone's own menu; and back down in reverse, the update in hand finished first, then the
engine disposed (`post_shutdown`). `run`, the sandbox, `remind-now` and the tests all use it.

Only one process may poll one bot on one database: a second `run` would answer every message
twice and fight over the conversations. The poller therefore holds the database's "poller" lock
(models.db.Database.exclusive) for as long as it runs, and a second one refuses to start with
`AlreadyRunning`. SQLite is one process whatever the mode (its lock file is taken in webhook
mode too).

Webhook mode (bot.webhook) on PostgreSQL: any number of processes serve the same URL behind a
proxy; each sets the webhook, and exactly one runs the weekly jobs (services.leadership), the
others taking over within a minute when it dies. Whoever leads at start publishes the menus.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from telegram.ext import Application

from telegram.ext import JobQueue

from bot.app import AdmissionsApplication, refresh_menus
from bot.polling import ALLOWED_UPDATES, Poller
from bot.webhook import WebhookServer
from models.db import Database
from services import scheduling
from services.leadership import RETRY_SECONDS, Leadership
from services.runtime import Services
from services.telegram import JobQueueJobs, services_of

class AlreadyRunning(Exception):
    """Another process already polls this bot on this database (or runs at all on this SQLite file)."""


@contextlib.asynccontextmanager
async def running(application: Application[Any, Any, Any, Any, Any, Any], *, poll: bool = True,
                  jobs: bool = True, poll_timeout: int = 30, webhook: bool = False,
                  leader_retry: float = RETRY_SECONDS) -> AsyncIterator[Poller | WebhookServer | None]:
    """Run the application (and its poller or webhook listener, and the weekly jobs, when asked) for the block.

    Yields the Poller (poll=True), the WebhookServer (webhook=True) or None.
    """
    services = services_of(application)
    receiver: Poller | WebhookServer | None = None
    async with contextlib.AsyncExitStack() as stack:
        await services.db.check_key()  # another key, or none: stop before any name is read (models.keys)
        if poll or (webhook and services.db.dialect != "postgresql"):
            await stack.enter_async_context(_single_poller(services.db))
        await application.initialize()
        stack.push_async_callback(_shutdown, application)
        if application.post_init is not None:
            await application.post_init(application)
        if poll or jobs or webhook:
            await application.start()
            stack.push_async_callback(_stop, application)
        if jobs and application.job_queue is not None:
            leadership = _leadership(services, application.job_queue, leader_retry)
            await leadership.start()
            stack.push_async_callback(leadership.stop)
        if poll:
            receiver = Poller(application, timeout=poll_timeout)
            await receiver.start()
            stack.push_async_callback(receiver.stop)
        elif webhook:
            if isinstance(application, AdmissionsApplication):
                application.repeats_any_time = True
            receiver = WebhookServer(application, services.config.webhook, services.scheduler)
            await receiver.start()
            stack.push_async_callback(receiver.stop)
            # Every process sets the same webhook (the proxy's URL); none deletes it on stopping,
            # since the others go on serving it.
            await application.bot.set_webhook(url=services.config.webhook.url, secret_token=services.config.webhook.secret_token,
                                              allowed_updates=ALLOWED_UPDATES)
        if poll or (webhook and services.scheduler.leader):  # one process publishes everyone's menu
            menus = asyncio.ensure_future(refresh_menus(application))  # paced; the bot answers meanwhile
            stack.callback(menus.cancel)
        yield receiver


def _leadership(services: Services, queue: JobQueue[Any], retry_seconds: float) -> Leadership:
    """Return the leadership that starts the weekly jobs in the leader and removes them from a standby."""
    jobs = JobQueueJobs(queue)
    applied: dict[str, Any] = {}

    async def elected() -> None:
        applied.update(await scheduling.effective_schedules(services))
        await scheduling.start(services, jobs)

    async def deposed() -> None:
        for job in queue.jobs():
            if job.name and job.name.startswith(scheduling.JOB_PREFIX):
                job.schedule_removal()

    async def tick() -> None:  # a schedule changed with /schedule in another process
        now = await scheduling.effective_schedules(services)
        if now != applied:
            applied.clear()
            applied.update(now)
            await scheduling.reschedule(services, jobs)

    return Leadership(services.db, services.scheduler, on_elected=elected, on_deposed=deposed, on_tick=tick,
                      retry_seconds=retry_seconds)


async def _stop(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if application.running:
        await application.stop()


async def _shutdown(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    await application.shutdown()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)


@contextlib.asynccontextmanager
async def _single_poller(db: Database) -> AsyncIterator[None]:
    """Hold the one-poller lock of this database for the duration of the block, or raise AlreadyRunning."""
    async with db.exclusive("poller") as held:
        if not held:
            raise AlreadyRunning(db.url)
        yield
