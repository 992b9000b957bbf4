"""The one way to start and stop the bot: `running(application, poll=…, jobs=…)`.

    async with running(application, poll=True, jobs=True):
        await stop.wait()

In order: initialise PTB (the Bot, persistence loading the conversations), the start-up work
(`post_init`: menu, bookkeeping, the features' hooks), the JobQueue with the weekly runs and their
catch-up, the poller; and back down in reverse, the update in hand finished first, then the
engine disposed (`post_shutdown`). `run`, the sandbox, `remind-now` and the tests all use it.

Only one process may poll one bot on one database: a second `run` would answer every message
twice and fight over the conversations. The poller therefore holds a lock for as long as it runs
(a lock file beside a SQLite database; a PostgreSQL advisory lock otherwise) and a second one
refuses to start with `AlreadyRunning`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from telegram.ext import Application

from bot.polling import Poller
from services import scheduling
from services.telegram import JobQueueJobs, services_of

POLLER_LOCK_KEY = 0x61646D6973  # PostgreSQL advisory lock key of "the process that polls"


class AlreadyRunning(Exception):
    """Another process already polls this bot on this database."""


@contextlib.asynccontextmanager
async def running(application: Application[Any, Any, Any, Any, Any, Any], *, poll: bool = True,
                  jobs: bool = True, poll_timeout: int = 30) -> AsyncIterator[Poller | None]:
    """Run the application (and its poller and weekly jobs when asked) for the duration of the block."""
    services = services_of(application)
    poller: Poller | None = None
    async with contextlib.AsyncExitStack() as stack:
        if poll:
            await stack.enter_async_context(_single_poller(services.db.url, services.db))
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
        yield poller


async def _stop(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if application.running:
        await application.stop()


async def _shutdown(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    await application.shutdown()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)


@contextlib.asynccontextmanager
async def _single_poller(url: str, db: Any) -> AsyncIterator[None]:
    """Hold the one-poller lock of this database for the duration of the block, or raise AlreadyRunning."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").expanduser()
        if not parsed.database or parsed.database == ":memory:":
            yield
            return
        lock_path = path.with_name(path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AlreadyRunning(str(lock_path)) from None
            yield
        finally:
            os.close(fd)  # closing releases the lock
        return
    connection = await db.engine.connect()  # a dedicated connection: the lock lives as long as it
    try:
        taken = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": POLLER_LOCK_KEY})
        await connection.commit()
        if not taken:
            raise AlreadyRunning("pg_advisory_lock")
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": POLLER_LOCK_KEY})
            await connection.commit()
    finally:
        await connection.close()
