"""Which process runs the scheduled jobs when several share one PostgreSQL database.

Exactly one process at a time is the *leader*: it holds a session-level PostgreSQL advisory lock
(`pg_try_advisory_lock`) on a connection of its own, kept open for as long as it leads. The others
are *standbys*: every `retry_seconds` they try the lock again. When the leader dies (even by
kill -9) its connection ends, PostgreSQL releases the lock, and a standby takes it at its next
try: the weekly jobs move within `retry_seconds` (10 s by default, well within a minute), and the
takeover's catch-up (services.scheduling.start) finishes a run the old leader left half-way. The
sent-log already makes a second run send nobody anything twice; leadership only prevents the
waste of two runs.

The leader checks its connection on every tick; a connection that broke (the database restarted)
means the lock may be someone else's now, so the process steps down and tries again like a standby.

On SQLite there is only ever one process (bot.lifecycle refuses a second), so it simply leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from models.db import Database, advisory_key

logger = logging.getLogger(__name__)

LOCK_NAME = "scheduler"
RETRY_SECONDS = 10.0

Hook = Callable[[], Awaitable[None]]


class SchedulerRole:
    """Whether this process runs the scheduled jobs now (services.scheduling asks before scheduling)."""

    def __init__(self, leader: bool = True) -> None:
        self.leader = leader

    @property
    def name(self) -> str:
        """Return "leader" or "standby" (what /healthz says)."""
        return "leader" if self.leader else "standby"


class Leadership:
    """Take and keep the scheduler lock; call `on_elected` on becoming leader, `on_deposed` on losing it.

    `on_tick` runs on the leader at every check (it picks up a schedule changed in another process).
    """

    def __init__(self, db: Database, role: SchedulerRole, *, on_elected: Hook, on_deposed: Hook,
                 on_tick: Hook | None = None, retry_seconds: float = RETRY_SECONDS) -> None:
        self.db = db
        self.role = role
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.on_tick = on_tick
        self.retry_seconds = retry_seconds
        self._connection: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Try once now (so a lone process leads from the start), then keep trying in the background."""
        if self.db.dialect != "postgresql":
            self.role.leader = True
            await self.on_elected()
            return
        self.role.leader = False
        await self._check()
        self._task = asyncio.create_task(self._run(), name="Leadership")

    async def stop(self) -> None:
        """Stop trying; a leader releases the lock (by closing its connection) so a standby takes over."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()
        self.role.leader = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.retry_seconds)
            await self._check()

    async def _check(self) -> None:
        """One tick: a standby tries the lock; a leader makes sure its connection (and so the lock) lives."""
        try:
            if self.role.leader:
                assert self._connection is not None
                await self._connection.scalar(text("SELECT 1"))
                await self._connection.commit()
                if self.on_tick is not None:
                    await self.on_tick()
                return
            if self._connection is None:
                self._connection = await self.db.engine.connect()
            held = bool(await self._connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                                      {"key": advisory_key(LOCK_NAME)}))
            await self._connection.commit()
        except Exception:  # noqa: BLE001 - the database is unreachable: a standby now, try again later
            logger.warning("Scheduler lock check failed; running as standby until the database answers",
                           exc_info=True)
            await self._step_down()
            return
        if held:
            self.role.leader = True
            logger.info("This process now runs the scheduled jobs (leader)")
            await self.on_elected()

    async def _step_down(self) -> None:
        await self._close()
        if self.role.leader:
            self.role.leader = False
            logger.warning("This process no longer runs the scheduled jobs (standby)")
            await self.on_deposed()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                # Not back to the pool: closing the DBAPI connection ends the session, which releases the lock.
                await connection.invalidate()
                await connection.close()
