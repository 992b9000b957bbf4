"""One error handler: log with context (no personal data), tell the person briefly, never show the error."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import ApplicationHandlerStop

from handlers.common import answer, translator
from handlers.context import BotContext
from models.db import is_busy

logger = logging.getLogger(__name__)


async def on_error(update: object, context: BotContext) -> None:
    """Log the exception and tell the person, in one short line, that it failed (or to try again)."""
    error = context.error
    if isinstance(error, Forbidden):
        logger.info("Chat unreachable (bot blocked or chat gone): %s", type(error).__name__)
        return
    busy = error is not None and is_busy(error)
    # BadRequest is a NetworkError in PTB 22: it is a refusal, not a network problem, so it is
    # logged as a failure below; only what the reply retries already gave up on lands here.
    if isinstance(error, (RetryAfter, NetworkError)) and not isinstance(error, BadRequest):
        logger.warning("Telegram network problem: %s", type(error).__name__)
        return
    where = ""
    if isinstance(update, Update):
        kind = "callback" if update.callback_query else "message" if update.message else "other"
        user = update.effective_user.id if update.effective_user else None
        where = f"update_id={update.update_id} kind={kind} user_id={user}"
    if busy:
        logger.warning("Database busy (another process holds the write lock) while processing %s", where)
    else:
        logger.error("Unhandled error while processing %s", where or type(update).__name__, exc_info=error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if update.callback_query is not None:
        await answer(update.callback_query)
    key = "common.busy" if busy else "common.error"
    try:
        await context.bot.send_message(update.effective_chat.id, translator(context, update)(key))
    except Exception:  # noqa: BLE001 - the apology is best effort
        logger.warning("Could not send the apology", exc_info=False)
    raise ApplicationHandlerStop  # no other handler acts on an update that failed half-way
