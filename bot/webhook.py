"""Webhook mode: the bot's own HTTP listener, answering Telegram's POST only after the update was handled.

PTB's webhook server (tornado) answers 200 as soon as the update is queued, so a crash before
it is handled loses it. Here the answer waits for AdmissionsApplication.process_update, which
handles the update, flushes the conversation state and records the update as processed: a
crash (kill -9) at any point before the answer makes Telegram deliver the update again, and the
record makes the repeat harmless — the same promise as bot.polling.

    POST <path of [webhook] url>   an Update as JSON, with X-Telegram-Bot-Api-Secret-Token
        200  handled (or a repeat, skipped); the body may carry the button's answer (a Bot API
             call as JSON, services.telegram.WebhookReply)
                                                   401  no or wrong secret token: not processed
        400  the body is not an Update             503  stopping, or the database failed: retried
    GET /healthz   200 {"db": "ok", "scheduler": "leader"|"standby"}; 503 with "db": "error"

Several processes may serve the same URL behind a reverse proxy: the chat lock and the
processed-update record (bot.app) keep one chat's updates in order and handled once.
Logs never carry a request's body (message texts are personal data), only its outcome.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from telegram import Update
from telegram.ext import Application
from tornado.httpserver import HTTPServer
from tornado.web import Application as TornadoApplication
from tornado.web import RequestHandler

from core.config import WebhookSettings
from services.leadership import SchedulerRole
from services.telegram import answering_in_webhook, services_of

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"


def webhook_path(url: str) -> str:
    """Return the path Telegram POSTs to (that of the public URL; the proxy passes it through)."""
    return urlsplit(url).path or "/"


class WebhookServer:
    """The listener of one process: the webhook path and /healthz on `[webhook] listen:port`."""

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any], settings: WebhookSettings,
                 role: SchedulerRole) -> None:
        if not settings.url or not settings.secret_token:
            raise ValueError("webhook.url and webhook.secret_token are required in webhook mode")
        self.application = application
        self.settings = settings
        self.role = role
        self.path = webhook_path(settings.url)
        self.in_flight = 0
        self.stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._ended = asyncio.Event()
        self._http: HTTPServer | None = None

    @property
    def port(self) -> int:
        """Return the bound port (the configured one; a test may configure 0 and read it here)."""
        assert self._http is not None
        return next(iter(self._http._sockets.values())).getsockname()[1]  # noqa: SLF001 - tornado keeps them

    async def start(self) -> None:
        """Bind the listener (before setWebhook, so the first delivery finds it)."""
        routes = [(HEALTH_PATH, HealthHandler, {"server": self}), (self.path, UpdateHandler, {"server": self})]
        self._http = HTTPServer(TornadoApplication(routes, log_function=_log_request))
        self._http.listen(self.settings.port, address=self.settings.listen)
        logger.info("Webhook listener on %s:%d%s", self.settings.listen, self.port, self.path)

    async def stop(self) -> None:
        """Refuse new updates (503: Telegram retries, the proxy tries another process); finish those in hand."""
        self.stopping = True
        if self._http is not None:
            self._http.stop()
            await self._idle.wait()
            await self._http.close_all_connections()
            self._http = None
        self._ended.set()

    async def wait(self) -> None:
        """Wait until the listener stops (like bot.polling.Poller.wait)."""
        await self._ended.wait()

    async def handle(self, body: bytes) -> tuple[int, bytes | None]:
        """Handle one delivered body; return the HTTP status to answer, and the answer's body if any."""
        if self.stopping:
            return 503, None
        update = self._parse(body)
        if update is None:
            return 400, None
        self.in_flight += 1
        self._idle.clear()
        try:
            with answering_in_webhook() as reply:
                await self.application.process_update(update)
            return 200, reply.body()
        except Exception:  # noqa: BLE001 - e.g. the database is unreachable: not handled, so not confirmed
            logger.exception("Could not process update %s; Telegram will deliver it again", update.update_id)
            return 503, None
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    def _parse(self, body: bytes) -> Update | None:
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or isinstance(data.get("update_id"), bool) \
                    or not isinstance(data.get("update_id"), int):
                return None
            return Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    async def health(self) -> tuple[int, dict[str, str]]:
        """Return the status and body of /healthz: a cheap query, and this process's scheduler role."""
        try:
            async with services_of(self.application).db.reading() as session:
                await session.execute(text("SELECT 1"))
            db = "ok"
        except Exception:  # noqa: BLE001 - whatever the failure, the proxy only needs "not healthy"
            logger.warning("Health check: the database does not answer", exc_info=True)
            db = "error"
        return (200 if db == "ok" else 503), {"db": db, "scheduler": self.role.name}


class UpdateHandler(RequestHandler):
    """POST of one update by Telegram (tornado calls it; the work is WebhookServer.handle)."""

    def initialize(self, server: WebhookServer) -> None:  # noqa: D401 - tornado's hook
        """Keep the server."""
        self.server = server

    async def post(self) -> None:
        """Check the secret token, then handle the update before answering."""
        given = self.request.headers.get(SECRET_HEADER, "")
        expected = self.server.settings.secret_token or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            logger.warning("Webhook request from %s %s the secret token: refused (401)", self.request.remote_ip,
                           "with a wrong" if given else "without")
            self.set_status(401)
            return
        status, body = await self.server.handle(self.request.body)
        self.set_status(status)
        if body is not None:
            self.set_header("Content-Type", "application/json")
            self.finish(body)


class HealthHandler(RequestHandler):
    """GET /healthz for the reverse proxy's health check."""

    def initialize(self, server: WebhookServer) -> None:  # noqa: D401 - tornado's hook
        """Keep the server."""
        self.server = server

    async def get(self) -> None:
        """Answer the database's state and this process's scheduler role as JSON."""
        status, body = await self.server.health()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


def _log_request(handler: RequestHandler) -> None:
    """Log refused or failed requests (method, path, status; never the body); successes are too many."""
    status = handler.get_status()
    if status >= 400 and status != 401:  # 401 is logged where it is refused
        logger.warning("Webhook %s %s answered %d", handler.request.method, handler.request.path, status)
