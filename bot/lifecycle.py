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
`AlreadyRunning`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from telegram.ext import Application

from bot.app import refresh_menus
from bot.polling import Poller
from models.db import Database
from services import scheduling
from services.telegram import JobQueueJobs, services_of

class AlreadyRunning(Exception):
    """Another process already polls this bot on this database."""


@contextlib.asynccontextmanager
async def running(application: Application[Any, Any, Any, Any, Any, Any], *, poll: bool = True,
                  jobs: bool = True, poll_timeout: int = 30) -> AsyncIterator[Poller | None]:
    """Run the application (and its poller and weekly jobs when asked) for the duration of the block."""
    services = services_of(application)
    poller: Poller | None = None
    async with contextlib.AsyncExitStack() as stack:
        await services.db.check_key()  # another key, or none: stop before any name is read (models.keys)
        if poll:
            await stack.enter_async_context(_single_poller(services.db))
        await application.initialize()
        stack.push_async_callback(_shutdown, application)
        if application.post_init is not None:
            await application.post_init(application)
        if poll or jobs:
            await application.start()
            stack.push_async_callback(_stop, application)
        if jobs and application.job_queue is not None:
            await scheduling.start(services, JobQueueJobs(application.job_queue))
        if poll:
            poller = Poller(application, timeout=poll_timeout)
            await poller.start()
            stack.push_async_callback(poller.stop)
            menus = asyncio.ensure_future(refresh_menus(application))  # paced; the bot answers meanwhile
            stack.callback(menus.cancel)
        yield poller


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
