"""The one adapter to python-telegram-bot: the outbox over PTB's Bot, jobs over its JobQueue, reply retries.

- `TelegramOutbox` sends one message with one request and classifies what came of it for
  services.delivery (which decides about retries): sent, blocked (403), refused (400), not
  delivered (429 with its wait, 5xx, a connection that never opened), or unknown (no answer).
- `ReplyRetry` is the Bot's rate limiter: PTB's AIORateLimiter (which waits out 429s) plus retries
  with backoff of 5xx and timeouts for every call but broadcasts and getUpdates — replies to a
  person's own action are promised at least once (see services.delivery).
- `JobQueueJobs` keeps one named job per weekly run in PTB's JobQueue (APScheduler underneath).
- `ServicesApplication` is the PTB Application carrying the `Services`; handlers reach them as
  `context.services`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import httpx
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import AIORateLimiter, Application, CallbackContext, ExtBot, JobQueue

from services.delivery import Attempt, Button, Message, Outcome
from services.runtime import Services

logger = logging.getLogger(__name__)

ONCE = -1  # rate_limit_args of a broadcast send: only the 429 waits, never a retry of a lost answer
REPLY_ATTEMPTS = 4
REPLY_BACKOFF = 0.5  # seconds; doubles per retry
UNRETRIED = frozenset({"getUpdates", "answerCallbackQuery"})  # the poller retries; a late answer is useless


class ServicesApplication(Application):  # type: ignore[type-arg]
    """The PTB Application with the project's services (given once, by bot.app.build_application)."""

    def __init__(self, *, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services


def services_of(application: Application) -> Services:  # type: ignore[type-arg]
    """Return the services an application carries."""
    if not isinstance(application, ServicesApplication):
        raise TypeError("the application was not built by bot.app.build_application")
    return application.services


def retry_seconds(error: RetryAfter) -> float:
    """Return how long Telegram asked to wait (PTB gives an int or a timedelta, by its settings)."""
    value = error._retry_after  # noqa: SLF001 - the int/timedelta `retry_after` property is deprecated
    return float(value.total_seconds())


def never_sent(error: NetworkError) -> bool:
    """Tell whether a failed request provably never reached Telegram (no connection, or an error answer)."""
    if isinstance(error, TimedOut):
        return isinstance(error.__cause__, (httpx.ConnectTimeout, httpx.PoolTimeout))
    cause = error.__cause__
    if isinstance(cause, httpx.HTTPError):
        return isinstance(cause, httpx.ConnectError)
    return True  # Telegram answered with an error status (5xx): it did not take the message


def markup_of(buttons: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    """Return the inline keyboard of rows of buttons (None without any)."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.text, callback_data=b.data) for b in row] for row in buttons])


class TelegramOutbox:
    """services.delivery.Outbox over PTB's Bot."""

    def __init__(self, bot: ExtBot[Any]) -> None:
        self.bot = bot

    async def send(self, message: Message) -> Attempt:
        """Send `message` with one request (PTB's limiter may wait out a 429 first)."""
        try:
            once = {"rate_limit_args": ONCE} if self.bot.rate_limiter is not None else {}
            await self.bot.send_message(message.chat_id, message.text, reply_markup=markup_of(message.buttons),
                                        **once)
            return Attempt(Outcome.SENT)
        except Forbidden:
            return Attempt(Outcome.BLOCKED)
        except RetryAfter as error:
            return Attempt(Outcome.NOT_DELIVERED, retry_after=retry_seconds(error))
        except BadRequest as error:  # e.g. chat not found: retrying cannot help
            logger.warning("Message refused by Telegram: %s", type(error).__name__)
            return Attempt(Outcome.REFUSED)
        except NetworkError as error:  # timeouts, 5xx, connection errors
            if never_sent(error):
                logger.warning("Send failed before reaching Telegram (%s)", type(error).__name__)
                return Attempt(Outcome.NOT_DELIVERED)
            logger.warning("Send got no answer (%s): it may have been delivered", type(error).__name__)
            return Attempt(Outcome.UNKNOWN)
        except TelegramError as error:
            logger.warning("Send failed (%s), not retried", type(error).__name__)
            return Attempt(Outcome.REFUSED)


class ReplyRetry(AIORateLimiter):
    """PTB's rate limiter, plus retries with backoff of 5xx and timeouts for replies (at least once)."""

    def __init__(self, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sleep = sleep

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Run the request through the limiter; retry replies Telegram did not answer or answered with 5xx."""
        if rate_limit_args == ONCE or endpoint in UNRETRIED:
            return await super().process_request(callback, args, kwargs, endpoint, data, None)
        backoff = REPLY_BACKOFF
        for attempt in range(1, REPLY_ATTEMPTS + 1):
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
            except BadRequest:
                raise
            except NetworkError as error:
                if attempt == REPLY_ATTEMPTS:
                    raise
                logger.warning("%s failed (%s), attempt %d of %d", endpoint, type(error).__name__, attempt,
                               REPLY_ATTEMPTS)
                await self._sleep(backoff)
                backoff *= 2
        raise AssertionError("unreachable")


class JobQueueJobs:
    """services.scheduling.Jobs over PTB's JobQueue: one named job per weekly run, replaced when rescheduled."""

    def __init__(self, queue: JobQueue[Any]) -> None:
        self.queue = queue

    def replace(self, name: str, delay: timedelta, data: dict[str, Any], grace_seconds: int) -> None:
        """Schedule the job `name` alone, `delay` from now (an earlier job of that name is removed)."""
        for job in self.queue.get_jobs_by_name(name):
            job.schedule_removal()
        self.queue.run_once(self._callback, when=max(delay, timedelta(0)), name=name, data=data,
                            job_kwargs={"misfire_grace_time": grace_seconds})

    @staticmethod
    async def _callback(context: CallbackContext[Any, Any, Any, Any]) -> None:
        """Run the due weekly run with the application's services, then schedule the next one."""
        from services.scheduling import run_due

        assert context.job is not None and context.job_queue is not None
        await run_due(services_of(context.application), JobQueueJobs(context.job_queue),
                      TelegramOutbox(context.bot), dict(context.job.data or {}))
