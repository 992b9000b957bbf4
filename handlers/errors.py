"""One error handler: log with context (no personal data), apologise briefly, never show the error."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Forbidden, NetworkError, RetryAfter
from telegram.ext import ApplicationHandlerStop

from bot.context import BotContext
from handlers.common import translator

logger = logging.getLogger(__name__)


async def on_error(update: object, context: BotContext) -> None:
    """Log the exception and tell the user, in one short line, that it failed."""
    error = context.error
    if isinstance(error, Forbidden):
        logger.info("Chat unreachable (bot blocked or chat gone): %s", type(error).__name__)
        return
    if isinstance(error, (RetryAfter, NetworkError)):
        logger.warning("Telegram network problem: %s", type(error).__name__)
        return
    where = ""
    if isinstance(update, Update):
        kind = "callback" if update.callback_query else "message" if update.message else "other"
        where = f"update_id={update.update_id} kind={kind} user_id={update.effective_user.id if update.effective_user else None}"
    logger.error("Unhandled error while processing %s", where or type(update).__name__, exc_info=error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if update.callback_query is not None:
        try:
            await update.callback_query.answer()
        except Exception:  # noqa: BLE001 - it may have been answered before the failure
            pass
    try:
        await context.bot.send_message(update.effective_chat.id, translator(context, update)("common.error"))
    except Exception:  # noqa: BLE001 - the apology is best effort
        logger.warning("Could not send the apology", exc_info=False)
    raise ApplicationHandlerStop  # no other handler acts on an update that failed half-way
