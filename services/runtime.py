"""The one typed object every handler, job, command and the sandbox share.

`Services` is built once (bot.app.build_application, or the command line for its own work) and
never changes; every field is always there. Handlers reach it as `context.services`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date

from core.cache import FreshCache
from core.clock import Clock
from core.config import Config
from core.i18n import Texts, Translator, language_of
from models.crypto import load_keys
from models.db import Database
from services.leadership import SchedulerRole

Sleep = Callable[[float], Awaitable[object]]


class WriteCount:
    """How many commits wrote anything; the database's sessions count them (see models.db)."""

    def __init__(self) -> None:
        self.value = 0

    def add(self) -> None:
        """Count one more writing commit."""
        self.value += 1


@dataclass(frozen=True)
class Services:
    """Configuration, texts, clock, database and cache: what the use cases run on."""

    config: Config
    texts: Texts
    clock: Clock
    db: Database
    cache: FreshCache
    writes: WriteCount
    sleep: Sleep = field(default=asyncio.sleep)  # waits between retries; tests record them instead
    scheduler: SchedulerRole = field(default_factory=SchedulerRole)  # leader unless services.leadership says not

    @classmethod
    def build(cls, config: Config, *, clock: Clock | None = None, sleep: Sleep | None = None,
              updates_at_once: int | None = None) -> Services:
        """Open the database of `config` (not connected until first use) with its cache and write counter.

        `updates_at_once`: how many updates the application handles together (sizes the pool)."""
        cache, writes = FreshCache(), WriteCount()
        db = Database(config.database.url, on_change=cache.forget, on_write=writes.add,
                      keys=load_keys(config.security.key_file), updates_at_once=updates_at_once)
        return cls(config=config, texts=Texts.load(config.bot.language), clock=clock or Clock(), db=db,
                   cache=cache, writes=writes, sleep=sleep or asyncio.sleep)

    def today(self) -> date:
        """Return today's date in the configured timezone."""
        return self.clock.today(self.config.bot.tz)

    def translator(self, language: str | None) -> Translator:
        """Return the texts of a stored or Telegram language code (the default language when unknown)."""
        return self.texts.for_language(language_of(language, self.config.bot.language))
