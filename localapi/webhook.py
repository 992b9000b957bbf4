"""Webhook delivery of the fake Bot API: POSTs pending updates to the bot like Telegram does.

While a webhook is set, one background thread takes the oldest pending update, POSTs it as JSON to
the webhook URL (header ``X-Telegram-Bot-Api-Secret-Token`` when a secret token was set) and drops
it only after a 2xx answer. Updates go one at a time, in order. On a non-2xx answer or a
connection error the same update is retried after a back-off that doubles from
``state.webhook_backoff[0]`` up to ``state.webhook_backoff[1]`` seconds (Telegram backs off for
seconds to minutes; the fake is faster so tests stay quick), and the error is recorded for
``getWebhookInfo`` (``last_error_date``, ``last_error_message`` in Telegram's wording).

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

__all__ = ["WebhookDeliverer"]


class WebhookDeliverer:
    """A daemon thread delivering ``state``'s pending updates to one webhook URL."""

    def __init__(self, state: BotApiState, url: str, secret_token: str, *, timeout: float = 10.0) -> None:
        """Prepare delivery to url (nothing runs until :meth:`start`)."""
        self.state = state
        self.url = url
        self.secret_token = secret_token
        self.timeout = timeout
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"localapi-webhook:{url}", daemon=True)

    def start(self) -> WebhookDeliverer:
        """Start the delivery thread; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to stop (it finishes at most the one POST in flight); does not wait."""
        self.stopped.set()
        with self.state._cond:
            self.state._cond.notify_all()

    def join(self, timeout: float = 2.0) -> None:
        """Wait for the thread to end (call without holding the state's lock)."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = 0.0
        while not self.stopped.is_set():
            update = self.state._next_webhook_update(self)
            if update is None:
                return
            error = self._post(update)
            if error is None:
                self.state._webhook_delivered(self, update["update_id"])
                delay = 0.0
                continue
            self.state._webhook_failed(self, error)
            initial, maximum = self.state.webhook_backoff
            delay = min(maximum, delay * 2) if delay else initial
            self.stopped.wait(delay)

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
            response.read()
            if 200 <= response.status <= 299:
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
