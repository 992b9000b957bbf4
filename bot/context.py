"""Typed callback context: handlers reach the database, config, texts and clock through it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram.ext import Application, CallbackContext, ExtBot

from bot.cache import FreshCache
from bot.clock import Clock
from bot.config import Config
from bot.i18n import Texts, Translator, language_of

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager


class WriteCount:
    """How many commits wrote anything; the session factory counts them (see models.db)."""

    def __init__(self) -> None:
        self.value = 0

    def add(self) -> None:
        """Count one more writing commit."""
        self.value += 1


class BotData:
    """What every callback shares: set once by bot.app.build_application."""

    def __init__(self) -> None:
        self.config: Config | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self.texts: Texts | None = None
        self.clock: Clock = Clock()
        self.engine: AsyncEngine | None = None
        self.cache: FreshCache = FreshCache()  # forgotten on every change of domain data
        self.writes = WriteCount()
        self.unrecorded: list[int] = []  # handled update ids not yet recorded as processed
        # Collected from the feature modules by bot.app: (command, catalog key) and (role, catalog key).
        self.menu: list[tuple[str, str]] = []
        self.help_lines: list[tuple[Any, str]] = []


class BotContext(CallbackContext[ExtBot, dict[str, Any], dict[str, Any], BotData]):
    """CallbackContext with the project's shared objects as properties."""

    def __init__(self, application: Application, chat_id: int | None = None, user_id: int | None = None):
        super().__init__(application=application, chat_id=chat_id, user_id=user_id)
        self.language: str | None = None

    @property
    def config(self) -> Config:
        """Return the configuration."""
        assert self.bot_data.config is not None
        return self.bot_data.config

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """Return the session factory."""
        assert self.bot_data.sessions is not None
        return self.bot_data.sessions

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """Open a session in a transaction: committed on success, rolled back on error."""
        return self.sessions.begin()

    @property
    def clock(self) -> Clock:
        """Return the time source."""
        return self.bot_data.clock

    @property
    def texts(self) -> Texts:
        """Return the message catalogs."""
        assert self.bot_data.texts is not None
        return self.bot_data.texts

    def tr(self, language: str | None = None) -> Translator:
        """Return texts in the person's language (their stored choice, else Telegram's, else the default)."""
        lang = language or self.language
        if lang is None and self.user_data is not None:
            lang = self.user_data.get("lang")
        return self.texts.for_language(language_of(lang, self.config.bot.language) if lang else self.config.bot.language)
