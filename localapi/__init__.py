"""A local fake of the Telegram Bot API for tests and the sandbox web chat (standard library only).

Start :class:`BotApiServer`, point python-telegram-bot at ``server.base_url`` and
``server.base_file_url``, act as users through ``server.state`` (:class:`BotApiState`) and check
what the bot sent in ``state.calls`` / ``state.messages(chat_id)``. The rules the fake enforces are
listed in :mod:`localapi.server`; Telegram-HTML parsing is in :mod:`localapi.telegram_html`,
webhook delivery in :mod:`localapi.webhook`.
"""

from localapi.errors import ApiError
from localapi.server import METHOD_PARAMS, BotApiServer, BotApiState, Call
from localapi.telegram_html import visible_html
from localapi.webhook import WebhookDeliverer

__all__ = ["METHOD_PARAMS", "ApiError", "BotApiServer", "BotApiState", "Call", "WebhookDeliverer", "visible_html"]
