"""Long polling that confirms an update to Telegram only after it has been fully handled.

PTB's Updater asks for the next batch (which confirms the previous one to Telegram) while the
previous update is still being processed, so a `kill -9` at the wrong moment loses that update.
Here the offset moves past an update only after AdmissionsApplication.process_update has run the
handlers and flushed the conversation state, and after the batch's update ids were recorded (an
update that wrote anything is recorded at once). A crash at any point means Telegram delivers the
update again, and the recorded ids make the repeat harmless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import Update
from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from services.telegram import retry_seconds

logger = logging.getLogger(__name__)

# Only what the bot handles: an edited message is not a new answer, so it is never asked for.
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]


class Poller:
    """Fetch updates with getUpdates and process them one by one, acknowledging each afterwards."""

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any], timeout: int = 30,
                 max_backoff: float = 30.0):
        self.application = application
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Future[None] | None = None
        self._stopping = asyncio.Event()
        self.handled_up_to: int | None = None  # the last update whose handling has finished

    async def start(self) -> None:
        """Drop any webhook and start polling in the background."""
        await self.application.bot.delete_webhook(drop_pending_updates=False)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="Poller")

    async def stop(self) -> None:
        """Stop polling; an update being processed is finished first, and the handled ones recorded."""
        self._stopping.set()
        if self._current is not None and not self._current.done():
            await asyncio.wait({self._current})
        try:
            await _record(self.application)
        except Exception:  # noqa: BLE001 - unrecorded updates are only answered again after the restart
            logger.exception("Could not record processed updates before stopping")
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait(self) -> None:
        """Wait until polling ends (after stop(), or a fatal error such as an invalid token)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        offset: int | None = None
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                updates = await self.application.bot.get_updates(
                    offset=offset, timeout=self.timeout, allowed_updates=ALLOWED_UPDATES,
                    read_timeout=self.timeout + 10,
                )
            except InvalidToken:
                logger.error("Telegram rejected the bot token; stopping")
                raise
            except RetryAfter as error:
                await asyncio.sleep(retry_seconds(error))
                continue
            except (NetworkError, TelegramError) as error:
                logger.warning("getUpdates failed (%s); retrying in %.0f s", type(error).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 1.0
            for update in updates:
                if self._stopping.is_set():
                    return  # not confirmed: Telegram delivers the rest again after the restart
                # Shielded: stop() waits for the update in hand instead of cutting it in half.
                self._current = asyncio.ensure_future(self._process(update))
                await asyncio.shield(self._current)
                offset = update.update_id + 1
                self.handled_up_to = update.update_id
            if updates:
                self._current = asyncio.ensure_future(self._record_processed())
                await asyncio.shield(self._current)

    async def _record_processed(self) -> None:
        """Record the handled updates the application has not recorded yet (retried until stopping)."""
        while True:
            try:
                await _record(self.application)
                return
            except Exception:  # noqa: BLE001 - the database is unreachable: keep trying
                logger.exception("Could not record processed updates; retrying")
                if self._stopping.is_set():
                    return  # stop() tries once more; unrecorded ones are only answered again later
                await asyncio.sleep(5)

    async def _process(self, update: Update) -> None:
        while True:
            try:
                await self.application.process_update(update)
                return
            except Exception:  # noqa: BLE001 - e.g. the database is unreachable: keep the update
                logger.exception("Could not process update %s; retrying", update.update_id)
                await asyncio.sleep(5)


async def _record(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    record = getattr(application, "record_processed", None)  # bot.app.AdmissionsApplication
    if record is not None:
        await record()
