"""Build the PTB Application: configuration, database, persistence, handlers. Only wiring here."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import ModuleType

from telegram import BotCommand, BotCommandScopeAllPrivateChats, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from bot.cache import FreshCache
from bot.clock import Clock
from bot.config import Config
from bot.context import BotContext, BotData, WriteCount
from bot.i18n import Texts
from bot.logs import configure_logging
from bot.persistence import DatabasePersistence
from bot.polling import Poller
from handlers import chart, errors, export, progress, registration, reminders, report, undo
from handlers.common import translator
from models.db import create_engine_for, session_factory
from models.updates import forget_processed_before, highest_processed, mark_processed, was_processed

logger = logging.getLogger(__name__)

# Feature modules, each exporting build_handlers() and optionally COMMANDS (menu) and HELP (help
# lines); their order is the order of matching in group 0 and of the menu.
FEATURES: tuple[ModuleType, ...] = (registration, report, undo, progress, chart, export, reminders)
# Optional start-up hooks of features (e.g. rebuilding scheduled jobs): async fn(application).
STARTUP_HOOKS: list[Callable] = [report.forget_abandoned_drafts, reminders.startup]

GUARD_GROUP = -1  # runs first: unregistered people are stopped here
FEATURE_GROUP = 0


class AdmissionsApplication(Application):  # type: ignore[type-arg]
    """Application that skips repeated updates and persists state right after each update.

    An update that wrote anything (data, conversation state) is recorded as processed right after
    it, so a redelivery after a crash cannot repeat its effects. Updates that only read (most of
    /progress) are recorded in groups of RECORD_BATCH, and whenever the poller finishes a batch
    (bot.polling), saving a transaction each: after a crash, at worst those few answers repeat.
    """

    RECORD_BATCH = 20
    # After a start, updates up to the highest id recorded before are checked one by one (only
    # redelivered ones can have been handled; recorded ids need not be a prefix, as /undo records
    # its own at once). Telegram's ids only grow, so later ones are new. Unknown until looked up.
    _repeats_looked_up = False
    _check_up_to: int | None = None

    async def process_update(self, update: object) -> None:
        """Process an update once; flush conversation state before confirming it as processed."""
        data: BotData = self.bot_data  # type: ignore[assignment]
        if not isinstance(update, Update) or data.sessions is None:
            await super().process_update(update)
            return
        if not self._repeats_looked_up:
            async with data.sessions() as session:
                self._check_up_to = await highest_processed(session)
            self._repeats_looked_up = True
        if self._check_up_to is not None and update.update_id <= self._check_up_to:
            async with data.sessions() as session:
                if await was_processed(session, update.update_id):
                    logger.info("Skipping repeated update %s", update.update_id)
                    return
        writes = data.writes.value
        await super().process_update(update)
        await self.update_persistence()
        data.unrecorded.append(update.update_id)
        if data.writes.value != writes or len(data.unrecorded) >= self.RECORD_BATCH:
            try:
                await self.record_processed()
            except Exception:  # noqa: BLE001 - handled already: never run the handlers again for this
                logger.exception("Could not record processed updates yet; retried before confirming them")

    async def record_processed(self) -> None:
        """Record every handled update not yet recorded, in one transaction."""
        data: BotData = self.bot_data  # type: ignore[assignment]
        if not data.unrecorded or data.engine is None:
            return
        update_ids = list(data.unrecorded)
        async with data.engine.begin() as connection:
            await mark_processed(connection, update_ids, data.clock.now())
        del data.unrecorded[: len(update_ids)]


async def stale_button(update: Update, context: BotContext) -> None:
    """Answer a button that no conversation is waiting for."""
    assert update.callback_query is not None
    await update.callback_query.answer(translator(context, update)("common.stale_button"), show_alert=True)


async def unknown_message(update: Update, context: BotContext) -> None:
    """Point a registered person who wrote something unexpected to /help."""
    if update.effective_message is not None and update.effective_chat and update.effective_chat.type == "private":
        await update.effective_message.reply_text(translator(context, update)("common.unknown_command"))


async def publish_commands(application: Application) -> None:  # type: ignore[type-arg]
    """Publish the command menu in Vietnamese (default) and English with setMyCommands."""
    data: BotData = application.bot_data  # type: ignore[assignment]
    assert data.texts is not None
    for lang in ("vi", "en"):
        commands = [BotCommand(name, data.texts.get(key, lang)) for name, key in data.menu]
        await application.bot.set_my_commands(
            commands, scope=BotCommandScopeAllPrivateChats(), language_code=None if lang == "vi" else lang
        )


async def post_init(application: Application) -> None:  # type: ignore[type-arg]
    """Publish commands, prune old bookkeeping, run feature start-up hooks."""
    data: BotData = application.bot_data  # type: ignore[assignment]
    await publish_commands(application)
    assert data.sessions is not None
    async with data.sessions.begin() as session:
        await forget_processed_before(session, data.clock.now() - timedelta(days=7))
    for hook in STARTUP_HOOKS:
        await hook(application)


async def post_shutdown(application: Application) -> None:  # type: ignore[type-arg]
    """Dispose the database engine."""
    data: BotData = application.bot_data  # type: ignore[assignment]
    if data.engine is not None:
        await data.engine.dispose()


def build_application(config: Config, *, clock: Clock | None = None, rate_limit: bool = True) -> Application:  # type: ignore[type-arg]
    """Return the configured Application (not started)."""
    if not config.telegram.token:
        raise ValueError("telegram.token is required to build the application")
    engine = create_engine_for(config.database.url)
    cache, writes = FreshCache(), WriteCount()
    sessions = session_factory(engine, on_change=cache.forget, on_write=writes.add)
    context_types = ContextTypes(context=BotContext, bot_data=BotData)
    builder = (
        ApplicationBuilder()
        .application_class(AdmissionsApplication)
        .token(config.telegram.token)
        .base_url(config.telegram.base_url)
        .base_file_url(config.telegram.base_file_url or config.telegram.base_url.replace("/bot", "/file/bot"))
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=config.bot.tz,
                           link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .context_types(context_types)
        .persistence(DatabasePersistence(sessions))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .concurrent_updates(False)  # one update at a time: per-update transactions stay simple
        .updater(None)  # bot.polling.Poller confirms an update only after it was handled
    )
    if rate_limit:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    application = builder.build()
    data: BotData = application.bot_data  # type: ignore[assignment]
    data.config = config
    data.sessions = sessions
    data.engine = engine
    data.cache = cache
    data.writes = writes
    data.texts = Texts.load(config.bot.language)
    if clock is not None:
        data.clock = clock
    data.menu = [item for feature in FEATURES for item in getattr(feature, "COMMANDS", {}).items()]
    data.help_lines = [line for feature in FEATURES for line in getattr(feature, "HELP", ())]
    register_handlers(application, FEATURES)
    return application


def register_handlers(application: Application, features: Sequence[ModuleType]) -> None:  # type: ignore[type-arg]
    """Register the guard, every feature's handlers, the stale-button answer and the error handler."""
    # Order matters: the guard (group -1) stops unregistered people before any feature sees them.
    application.add_handler(registration.build_guard(), group=GUARD_GROUP)
    for feature in features:
        for handler in feature.build_handlers():
            application.add_handler(handler, group=FEATURE_GROUP)
    # Last in the same group, so they answer only what no feature took.
    application.add_handler(CallbackQueryHandler(stale_button), group=FEATURE_GROUP)
    application.add_handler(MessageHandler(filters.ALL, unknown_message), group=FEATURE_GROUP)
    application.add_error_handler(errors.on_error)


def run_bot(config: Config) -> None:
    """Run the bot with long polling until interrupted (Ctrl+C or SIGTERM)."""
    configure_logging()
    asyncio.run(serve(build_application(config)))


async def serve(application: Application, stop: asyncio.Event | None = None) -> None:  # type: ignore[type-arg]
    """Start the application and the poller; stop cleanly on SIGINT/SIGTERM or when `stop` is set."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or not supported
            pass
    poller = Poller(application)
    async with application:
        await post_init(application)
        await application.start()
        await poller.start()
        try:
            stopped = asyncio.create_task(stop.wait())
            polling = asyncio.create_task(poller.wait())
            await asyncio.wait({stopped, polling}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if polling.done() and polling.exception() is not None:
                raise polling.exception()  # type: ignore[misc]
            polling.cancel()
        finally:
            await poller.stop()
            await application.stop()
    await post_shutdown(application)
