"""The one adapter to python-telegram-bot: the outbox over PTB's Bot, jobs over its JobQueue, reply retries.

- `TelegramOutbox` sends one message with one request and classifies what came of it for
  services.delivery (which decides about retries): sent, blocked (403), refused (400), not
  delivered (429 with its wait, 5xx, a connection that never opened), or unknown (no answer).
- `ReplyRetry` is the Bot's rate limiter: PTB's AIORateLimiter (which waits out 429s) plus retries
  with backoff of 5xx and timeouts for every call but broadcasts and getUpdates — replies to a
  person's own action are promised at least once (see services.delivery).
- `AiohttpRequest` carries the Bot's HTTP requests (PTB's BaseRequest over aiohttp): a third of the
  CPU of PTB's default httpx per call, which is most of what a webhook process spends. In webhook
  mode (`answering_in_webhook`) a button's answer (answerCallbackQuery) is not sent but carried in
  the webhook's HTTP answer, as the Bot API allows: one request and one round trip less per tap.
- `JobQueueJobs` keeps one named job per weekly run in PTB's JobQueue (APScheduler underneath).
- `ServicesApplication` is the PTB Application carrying the `Services`; handlers reach them as
  `context.services`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import aiohttp
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import AIORateLimiter, Application, CallbackContext, ExtBot, JobQueue
from telegram.request import BaseRequest, RequestData

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
    cause = error.__cause__
    if isinstance(cause, (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError)):
        return True  # no connection from the pool in time, or none could be opened: nothing was sent
    # Sent, or perhaps sent, with no answer (read timeout, connection lost); else Telegram answered
    # with an error status (5xx): it did not take the message.
    return not isinstance(error, TimedOut) and not isinstance(cause, aiohttp.ClientError)


class WebhookReply:
    """The one Bot API call a webhook answer may carry (Telegram runs it; nobody learns its result).

    Only a button's answer goes there: its result is never read (a refused answer is ignored
    anyway, see handlers.common.answer), and handlers answer after their work, so carrying it in
    the HTTP answer sent after the update was handled changes nothing a person sees."""

    METHODS = frozenset({"answerCallbackQuery"})

    def __init__(self) -> None:
        self.call: dict[str, Any] | None = None
        self.closed = False

    def take(self, url: str, request_data: RequestData | None) -> bool:
        """Keep this call for the webhook answer if it may go there and nothing else does yet."""
        method = url.rpartition("/")[2]
        if self.closed or self.call is not None or method not in self.METHODS or request_data is None \
                or request_data.multipart_data:
            return False
        self.call = {**request_data.parameters, "method": method}
        return True

    def body(self) -> bytes | None:
        """Return the webhook answer's JSON body (None: nothing to carry)."""
        return None if self.call is None else json.dumps(self.call, ensure_ascii=False).encode()


_WEBHOOK_REPLY: ContextVar[WebhookReply | None] = ContextVar("webhook_reply", default=None)
_TAKEN = json.dumps({"ok": True, "result": True}).encode()  # what Telegram would have answered


@contextlib.contextmanager
def answering_in_webhook() -> Iterator[WebhookReply]:
    """Let the calls made while handling one webhook update put a button's answer in its HTTP answer
    (none is taken after the block: a task it left running sends its own)."""
    reply = WebhookReply()
    token = _WEBHOOK_REPLY.set(reply)
    try:
        yield reply
    finally:
        _WEBHOOK_REPLY.reset(token)
        reply.closed = True


class AiohttpRequest(BaseRequest):
    """PTB's BaseRequest over aiohttp, with HTTPXRequest's timeouts; `never_sent` reads its errors.

    Timeouts (seconds, PTB's names and defaults): `pool_timeout` to get a connection (waiting for a
    free one, or opening one), `connect_timeout` to open it, `read_timeout` between two reads of the
    answer, and `write_timeout` (`media_write_timeout` with files) bounding, with the others, the
    whole request. The session is opened by `initialize` (in the running loop) and closed by
    `shutdown`, as PTB calls them.
    """

    def __init__(self, pool_size: int = 256, *, connect_timeout: float = 5.0, read_timeout: float = 5.0,
                 write_timeout: float = 5.0, pool_timeout: float = 1.0, media_write_timeout: float = 20.0) -> None:
        self.pool_size = pool_size
        self.timeouts = {"connect": connect_timeout, "read": read_timeout, "write": write_timeout,
                         "pool": pool_timeout, "media_write": media_write_timeout}
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        """Return the default read timeout (PTB adds getUpdates' long-poll time to it)."""
        return self.timeouts["read"]

    async def initialize(self) -> None:
        """Open the session (again after a shutdown)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.pool_size))

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = BaseRequest.DEFAULT_NONE, write_timeout: Any = BaseRequest.DEFAULT_NONE,
                         connect_timeout: Any = BaseRequest.DEFAULT_NONE,
                         pool_timeout: Any = BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        """Send one request; return Telegram's status and body (TimedOut or NetworkError, with the cause, else)."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized")
        reply = _WEBHOOK_REPLY.get()
        if reply is not None and reply.take(url, request_data):
            return 200, _TAKEN
        files = request_data.multipart_data if request_data else {}
        given = {"read": read_timeout, "write": write_timeout, "connect": connect_timeout, "pool": pool_timeout}
        limit = {name: self.timeouts[name] if value is BaseRequest.DEFAULT_NONE else value
                 for name, value in given.items()}
        if files and write_timeout is BaseRequest.DEFAULT_NONE:
            limit["write"] = self.timeouts["media_write"]
        bounds = [limit[name] for name in ("pool", "connect", "write", "read")]
        timeout = aiohttp.ClientTimeout(total=None if None in bounds else sum(bounds), connect=limit["pool"],
                                        sock_connect=limit["connect"], sock_read=limit["read"])
        try:
            async with self._session.request(method, url, data=_body(request_data, files), timeout=timeout,
                                             headers={"User-Agent": self.USER_AGENT}) as answer:
                return answer.status, await answer.read()
        except TimeoutError as error:  # aiohttp's timeouts are TimeoutErrors too (sent or not: never_sent)
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}") from error


def _body(request_data: RequestData | None, files: dict[str, Any]) -> aiohttp.FormData | dict[str, str] | None:
    """Return a request's parameters as a form (urlencoded; multipart with its files), as PTB sends them."""
    if request_data is None:
        return None
    if not files:
        return request_data.json_parameters
    form = aiohttp.FormData(request_data.json_parameters)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form


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
