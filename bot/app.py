"""Build the PTB Application: services, persistence, handlers, hooks. Only wiring here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from telegram import LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application, ApplicationBuilder, CallbackQueryHandler, ContextTypes, ConversationHandler, Defaults, MessageHandler,
)
from telegram.ext import filters

from bot.persistence import DatabasePersistence
from core.clock import Clock
from core.config import Config
from handlers import (
    candidates, chart, corrections, errors, export, files, invites, locks, people, progress, registration, report,
    reports, undo, weekly,
)
from handlers.common import answer, translator
from handlers.context import BotContext, ChatApplication, Feature
from models.people import registered_people
from models.updates import forget_processed_before, highest_processed, mark_processed, was_processed
from services.runtime import Services, Sleep
from services.telegram import AiohttpRequest, ReplyRetry, services_of

logger = logging.getLogger(__name__)

# Order matters: the order of matching in group 0, of the command menu and of /help.
# locks and corrections before report: their conversations must see /cancel before report's "nothing to cancel".
FEATURES: tuple[Feature, ...] = (
    registration.FEATURE, locks.FEATURE, corrections.FEATURE, report.FEATURE, undo.FEATURE, progress.FEATURE,
    chart.FEATURE, export.FEATURE, weekly.FEATURE, reports.FEATURE, invites.FEATURE, people.FEATURE, files.FEATURE,
    candidates.FEATURE,
)
GUARD_GROUP = -1  # runs first: unregistered people are stopped here
FEATURE_GROUP = 0
PROCESSED_KEPT = timedelta(days=7)  # Telegram redelivers only recent updates


class ChatTurns:
    """In-process locks per chat: the updates of one chat are handled one after another."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, chat_id: int) -> AsyncIterator[None]:
        """Hold this chat's turn for the block (a lock forgotten again once nobody waits for it)."""
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._waiting[chat_id] = self._waiting.get(chat_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[chat_id] -= 1
            if not self._waiting[chat_id]:
                del self._waiting[chat_id], self._locks[chat_id]


class AdmissionsApplication(ChatApplication):
    """Application that skips repeated updates and persists state right after each update.

    An update that wrote anything (data, conversation state) is recorded as processed right after
    it, so a redelivery after a crash cannot repeat its effects. Updates that only read (most of
    /progress) are recorded in groups of RECORD_BATCH, and whenever the poller finishes a batch
    (bot.polling), saving a transaction each: after a crash, at worst those few answers repeat.

    Updates of one chat are handled one at a time, in this process (ChatTurns) and, on PostgreSQL,
    across every process sharing the database (models.db.Database.serialised: a transaction-level
    advisory lock keyed by the chat). There, under that lock, the update is looked up in the
    processed-update record (another process may have handled a re-delivery), the sender's
    conversation state is read afresh from the database (another process may have moved it), and
    the states the update changed and its processed-record are written in the lock's own
    transaction, committed together before the next update of that chat runs.
    """

    RECORD_BATCH = 20
    # Polling confirms by offset, so within one run no update comes twice; a webhook's can (Telegram
    # missed our 200): bot.lifecycle sets this in webhook mode, and every update is looked up.
    repeats_any_time = False
    UPDATES_AT_ONCE = 4

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unrecorded: list[int] = []  # handled update ids not yet recorded as processed
        # After a start, updates up to the highest id recorded before are checked one by one (only
        # redelivered ones can have been handled; recorded ids need not be a prefix, as /undo records
        # its own at once). Telegram's ids only grow, so later ones are new. Unknown until looked up.
        self._repeats_looked_up = False
        self._check_up_to: int | None = None
        # One update per chat at a time (a chat's updates in order), a few chats at once (webhook
        # requests arrive together; each holds a pooled connection for its chat lock on PostgreSQL).
        self._turns = ChatTurns()
        self._updates_at_once = asyncio.Semaphore(self.UPDATES_AT_ONCE)
        self._persistent: list[tuple[str, ConversationHandler]] | None = None

    async def process_update(self, update: object) -> None:
        """Process an update once, in its chat's turn; flush conversation state before confirming it."""
        if not isinstance(update, Update):
            await super().process_update(update)
            return
        chat_id = _chat_of(update)
        if chat_id is None:  # nothing the bot handles comes without a chat; kept for completeness
            await self._process_once(update, None)
            return
        async with self._turn_of(chat_id) as shared:
            await self._process_once(update, shared)

    @contextlib.asynccontextmanager
    async def _turn_of(self, chat_id: int) -> AsyncIterator[AsyncConnection | None]:
        """Hold this chat's turn: in this process, among the updates at once, and across processes
        (PostgreSQL: yield the chat lock's connection; None on SQLite)."""
        async with self._turns.turn(chat_id), self._updates_at_once:
            async with self.services.db.serialised(chat_id) as shared:
                yield shared

    async def in_turn(self, update: Update, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` (a conversation's timeout) in the chat's turn; on PostgreSQL with the sender's
        state read afresh first and what it changed committed with the chat's lock."""
        chat_id = _chat_of(update)
        if chat_id is None:
            await super().in_turn(update, work)
            return
        async with self._turn_of(chat_id) as shared:
            if shared is None:
                await super().in_turn(update, work)
                return
            await self._read_fresh_state(update, shared)
            async with self._writing_state_on(shared):
                await super().in_turn(update, work)

    async def _process_once(self, update: Update, shared: AsyncConnection | None) -> None:
        """Skip a repeat, else handle it and flush; `shared`: the chat lock's connection (PostgreSQL)."""
        if shared is not None:
            # Another process may have handled this very update (a re-delivery) or this person's
            # previous one: ask the database, under the chat's lock, and read their state afresh.
            if await self._read_fresh_state(update, shared, update.update_id):
                logger.info("Skipping repeated update %s", update.update_id)
                return
            await super().process_update(update)
            written: list[tuple[str, str, str | None]] = []
            try:
                # The changed states and the processed-record commit together, with the lock.
                async with self._writing_state_on(shared) as written:
                    await self.update_persistence()
                await mark_processed(shared, [update.update_id], self.services.clock.now())
            except Exception:  # noqa: BLE001 - handled already: never run the handlers again for this
                logger.exception("Could not record processed update yet; retried before confirming it")
                await shared.rollback()  # the lock's transaction may be broken: end it (the turn is over)
                if isinstance(self.persistence, DatabasePersistence):
                    await self.persistence.rewrite(written)
                self.unrecorded.append(update.update_id)
            return
        db = self.services.db
        if not self._repeats_looked_up:
            async with db.reading() as session:
                self._check_up_to = await highest_processed(session)
            self._repeats_looked_up = True
        if self.repeats_any_time or (self._check_up_to is not None and update.update_id <= self._check_up_to):
            async with db.reading() as session:
                if await was_processed(session, update.update_id):
                    logger.info("Skipping repeated update %s", update.update_id)
                    return
        writes = self.services.writes.value
        await super().process_update(update)
        await self.update_persistence()
        self.unrecorded.append(update.update_id)
        if self.services.writes.value != writes or len(self.unrecorded) >= self.RECORD_BATCH:
            try:
                await self.record_processed()
            except Exception:  # noqa: BLE001 - handled already: never run the handlers again for this
                logger.exception("Could not record processed updates yet; retried before confirming them")

    async def _read_fresh_state(self, update: Update, connection: AsyncConnection,
                                update_id: int | None = None) -> bool:
        """Replace this process's copy of the sender's user_data and conversation states by the database's;
        return whether update `update_id` was handled already (asked in the same round trip)."""
        user = update.effective_user
        if user is None or not isinstance(self.persistence, DatabasePersistence):
            return update_id is not None and await was_processed(connection, update_id)
        keys = {name: key for name, key in ((name, _conversation_key(handler, update))
                                            for name, handler in self._persistent_conversations())
                if key is not None}
        user_data, states, seen = await self.persistence.fresh(user.id, keys, connection, update_id)
        # PTB keeps both in private dicts; writing them untracked means "this is what is stored".
        if user_data is None:
            self._user_data.pop(user.id, None)
        else:
            self._user_data[user.id] = user_data
        for name, state in states.items():
            conversations = self._conversation_handler_conversations[name]
            if state is None:
                conversations.data.pop(keys[name], None)
            else:
                conversations.update_no_track({keys[name]: state})
        return seen

    def _writing_state_on(self, connection: AsyncConnection) -> contextlib.AbstractAsyncContextManager[Any]:
        """Make the persistence write on `connection` for the block (a no-op for another persistence)."""
        if isinstance(self.persistence, DatabasePersistence):
            return self.persistence.writing_on(connection)
        return contextlib.nullcontext([])

    def _persistent_conversations(self) -> list[tuple[str, ConversationHandler]]:
        if self._persistent is None:
            self._persistent = [(handler.name, handler) for group in self.handlers.values() for handler in group
                                   if isinstance(handler, ConversationHandler) and handler.persistent and handler.name]
        return self._persistent

    async def record_processed(self) -> None:
        """Record every handled update not yet recorded, in one statement (no session: bookkeeping only)."""
        if not self.unrecorded:
            return
        update_ids = list(self.unrecorded)
        async with self.services.db.engine.begin() as connection:
            await mark_processed(connection, update_ids, self.services.clock.now())
        del self.unrecorded[: len(update_ids)]


def _chat_of(update: Update) -> int | None:
    """Return the chat an update belongs to (its sender's, for a button on a message of theirs)."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    return update.effective_user.id if update.effective_user is not None else None


def _conversation_key(handler: ConversationHandler, update: Update) -> tuple[int, ...] | None:  # type: ignore[type-arg]
    """Return the key under which `handler` keeps this update's conversation (as PTB builds it)."""
    chat, user = update.effective_chat, update.effective_user
    key: list[int] = []
    if handler.per_chat:
        if chat is None:
            return None
        key.append(chat.id)
    if handler.per_user:
        if user is None:
            return None
        key.append(user.id)
    if handler.per_message:
        if update.callback_query is None or update.callback_query.message is None:
            return None
        key.append(update.callback_query.message.message_id)
    return tuple(key)


async def stale_button(update: Update, context: BotContext) -> None:
    """Answer a button that no conversation is waiting for."""
    assert update.callback_query is not None
    await answer(update.callback_query, translator(context, update)("common.stale_button"), alert=True)


async def unknown_message(update: Update, context: BotContext) -> None:
    """Point a registered person who wrote something unexpected to /help."""
    if update.effective_message is not None and update.effective_chat and update.effective_chat.type == "private":
        await update.effective_message.reply_text(translator(context, update)("common.unknown_command"))


async def publish_commands(application: Application) -> None:  # type: ignore[type-arg]
    """Publish the default menu: what someone unregistered can use."""
    await registration.publish_default_menu(application.bot, FEATURES, services_of(application).texts)


async def refresh_menus(application: Application) -> None:  # type: ignore[type-arg]
    """Publish each registered person's menu again (bot.lifecycle runs it in the background of `run`).

    One setMyCommands per person's chat, one after another through the Bot's rate limiter, so a
    large deployment is paced within Telegram's limits rather than sent in a burst, and the bot
    answers meanwhile. A person's menu is also set whenever they register or take on a role.
    """
    services = services_of(application)
    async with services.db.reading() as session:
        people = await registered_people(session)
    done = await registration.publish_menus(application.bot, FEATURES, services.texts, people)
    logger.info("Command menus published for %d of %d registered people", done, len(people))


async def post_init(application: Application) -> None:  # type: ignore[type-arg]
    """Publish commands, prune old bookkeeping, run the features' start-up work (bot.lifecycle calls it)."""
    services = services_of(application)
    await publish_commands(application)
    async with services.db.writing() as session:
        await forget_processed_before(session, services.clock.now() - PROCESSED_KEPT)
    for feature in FEATURES:
        if feature.on_start is not None:
            await feature.on_start(application)


async def post_shutdown(application: Application) -> None:  # type: ignore[type-arg]
    """Close the database's connections."""
    await services_of(application).db.dispose()


def build_application(config: Config, *, clock: Clock | None = None, sleep: Sleep | None = None,
                      rate_limit: bool = True) -> AdmissionsApplication:
    """Return the configured Application (not started); its services are built here, once."""
    if not config.telegram.token:
        raise ValueError("telegram.token is required to build the application")
    services = Services.build(config, clock=clock, sleep=sleep, updates_at_once=AdmissionsApplication.UPDATES_AT_ONCE)
    builder = (
        ApplicationBuilder()
        .application_class(AdmissionsApplication, kwargs={"services": services, "features": FEATURES})
        .token(config.telegram.token)
        .base_url(config.telegram.base_url)
        .request(AiohttpRequest())
        .get_updates_request(AiohttpRequest(pool_size=1))
        .base_file_url(config.telegram.base_file_url or config.telegram.base_url.replace("/bot", "/file/bot"))
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=config.bot.tz,
                           link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .context_types(ContextTypes(context=BotContext))
        .persistence(DatabasePersistence(services.db))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .concurrent_updates(False)  # one update at a time: per-update transactions stay simple
        .updater(None)  # bot.polling.Poller confirms an update only after it was handled
    )
    if rate_limit:
        builder = builder.rate_limiter(ReplyRetry(max_retries=3, sleep=services.sleep))
    application = builder.build()
    assert isinstance(application, AdmissionsApplication)
    register_handlers(application)
    return application


def register_handlers(application: Application) -> None:  # type: ignore[type-arg]
    """Register the guard, every feature's handlers, the stale-button answer and the error handler."""
    # Order matters: the guard (group -1) stops unregistered people before any feature sees them.
    application.add_handler(registration.build_guard(), group=GUARD_GROUP)
    for feature in FEATURES:
        for handler in feature.handlers():
            application.add_handler(handler, group=FEATURE_GROUP)
    # Last in the same group, so they answer only what no feature took.
    application.add_handler(CallbackQueryHandler(stale_button), group=FEATURE_GROUP)
    application.add_handler(MessageHandler(filters.ALL, unknown_message), group=FEATURE_GROUP)
    application.add_error_handler(errors.on_error)
