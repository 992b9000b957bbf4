"""What the bot computed from the database and may answer again until the data changes.

Committee members ask `/progress` far more often than the figures change, so the rendered views
and the people asking are kept here. Entries are forgotten
- at once when this process commits a change to domain data (models.revision calls `forget`);
- within `check_every` seconds when another process did (the command line importing targets): the
  data revision is read again at most that often, never per update.
A value computed while the data changed under it is not stored (the generation moved on).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from models.db import Database
from models.revision import current_revision


class FreshCache:
    """A bounded map of computed values, emptied whenever the domain data changes."""

    def __init__(self, check_every: float = 1.0, max_entries: int = 2000,
                 monotonic: Callable[[], float] = time.monotonic):
        self.check_every = check_every
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._revision: int | None = None
        self._checked_at = float("-inf")
        self.generation = 0  # moves on every time the entries are forgotten

    def forget(self) -> None:
        """Drop every entry (the data changed)."""
        self._entries.clear()
        self.generation += 1

    async def refresh(self, db: Database) -> None:
        """Forget everything if another process changed the data since the last look (at most every `check_every` s)."""
        now = self._monotonic()
        if now - self._checked_at < self.check_every:
            return
        self._checked_at = now
        async with db.reading() as session:
            revision = await current_revision(session)
        if revision != self._revision:
            if self._revision is not None:
                self.forget()
            self._revision = revision

    def get(self, key: Hashable) -> Any | None:
        """Return the value stored under `key`, or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any, generation: int) -> None:
        """Store a value computed during `generation`; dropped if the data changed meanwhile."""
        if generation != self.generation:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
