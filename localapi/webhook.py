"""Webhook delivery of the fake Bot API: POSTs pending updates to the bot like Telegram does.

While a webhook is set, background threads take the oldest pending update, POST it as JSON to
the webhook URL (header ``X-Telegram-Bot-Api-Secret-Token`` when a secret token was set) and drop
it only after a 2xx answer. ``state.webhook_connections`` threads (1 by default: one update at a
time, in order; at most ``max_connections``) POST at once, like Telegram's parallel connections,
but never two updates of one chat at once: a chat's next update waits for the answer to its
previous one, as on Telegram. On a non-2xx answer or a
connection error the same update is retried (by the same thread, so its chat waits) after a back-off that doubles from
``state.webhook_backoff[0]`` up to ``state.webhook_backoff[1]`` seconds (Telegram backs off for
seconds to minutes; the fake is faster so tests stay quick), and the error is recorded for
``getWebhookInfo`` (``last_error_date``, ``last_error_message`` in Telegram's wording).
A 2xx answer may carry one Bot API call (``{"method": …}`` as ``application/json``, Telegram's
"reply to the webhook"): it is run before the update counts as delivered, its result unknown
to the bot.

Only loopback hosts are ever contacted: a test never reaches the internet. An ``https`` webhook on
another host is accepted by ``setWebhook`` (as Telegram does) but never delivered to; its
``last_error_message`` says so.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from localapi.server import BotApiState

__all__ = ["WebhookDeliverer", "chat_of"]


def chat_of(update: dict) -> int | None:
    """Return the chat an update dict belongs to (Telegram keeps one chat's updates in order)."""
    for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
        chat = (update.get(key) or {}).get("chat") or {}
        if isinstance(chat.get("id"), int):
            return int(chat["id"])
    query = update.get("callback_query") or {}
    chat = (query.get("message") or {}).get("chat") or {}
    if isinstance(chat.get("id"), int):
        return int(chat["id"])
    sender = query.get("from") or {}
    return int(sender["id"]) if isinstance(sender.get("id"), int) else None


class WebhookDeliverer:
    """A daemon thread delivering ``state``'s pending updates to one webhook URL."""

    def __init__(self, state: BotApiState, url: str, secret_token: str, *, timeout: float = 10.0,
                 connections: int = 1) -> None:
        """Prepare delivery to url over `connections` parallel connections (nothing runs until :meth:`start`)."""
        self.state = state
        self.url = url
        self.secret_token = secret_token
        self.timeout = timeout
        self.stopped = threading.Event()
        # Guarded by the state's lock: updates being POSTed, and the chats they belong to.
        self.taken: set[int] = set()
        self.busy_chats: set[int] = set()
        self._threads = [threading.Thread(target=self._run, name=f"localapi-webhook:{url}:{i}", daemon=True)
                         for i in range(max(1, connections))]
        self._thread = self._threads[0]

    def start(self) -> WebhookDeliverer:
        """Start the delivery threads; return self."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to stop (it finishes at most the one POST in flight); does not wait."""
        self.stopped.set()
        with self.state._cond:
            self.state._cond.notify_all()

    def join(self, timeout: float = 2.0) -> None:
        """Wait for the threads to end (call without holding the state's lock)."""
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout)

    def _run(self) -> None:
        while not self.stopped.is_set():
            update = self.state._next_webhook_update(self)
            if update is None:
                return
            delay = 0.0
            while not self.stopped.is_set():
                error = self._post(update)
                if error is None:
                    self.state._webhook_delivered(self, update)
                    break
                self.state._webhook_failed(self, error)
                initial, maximum = self.state.webhook_backoff
                delay = min(maximum, delay * 2) if delay else initial
                self.stopped.wait(delay)
            else:
                self.state._webhook_released(self, update)

    def _post(self, update: dict) -> str | None:
        """POST one update; return None on a 2xx answer, else Telegram's description of the failure."""
        parts = urlsplit(self.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json"}
        if self.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.secret_token
        if parts.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False  # a loopback test server with a self-signed certificate
            context.verify_mode = ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port or 443, timeout=self.timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=self.timeout)
        try:
            connection.request("POST", path, body=json.dumps(update, ensure_ascii=False).encode(), headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if 200 <= response.status <= 299:
                self.state._webhook_answer(response.getheader("Content-Type") or "", answer, self.stopped)
                return None
            return f"Wrong response from the webhook: {response.status} {response.reason}"
        except ConnectionRefusedError:
            return "Connection refused"
        except TimeoutError:
            return "Read timeout expired"
        except (OSError, http.client.HTTPException) as error:
            return f"Connection error: {type(error).__name__}: {error}"
        finally:
            connection.close()
