"""A local fake of the Telegram Bot API for tests and the sandbox web chat (standard library only).

Start :class:`BotApiServer`, point python-telegram-bot at ``server.base_url`` and
``server.base_file_url``, act as users through ``server.state`` (:class:`BotApiState`) and check
what the bot sent in ``state.calls`` / ``state.messages(chat_id)``.
"""

from localapi.server import ApiError, BotApiServer, BotApiState, Call

__all__ = ["ApiError", "BotApiServer", "BotApiState", "Call"]
