"""PTB persistence kept in the project's database, so conversations survive a restart.

Only user data and conversation states are stored (as JSON in `stored_state`); bot data holds
live objects (engine, config) and is never persisted. Each write is one upsert (or delete) in a
transaction of its own, or, on PostgreSQL, on the chat lock's connection (`writing_on`: one upsert
for all the update's rows), so the state commits together with the update's processed-record;
the application flushes after each update (see bot.app.AdmissionsApplication).

The database is the one truth when several processes share it (PostgreSQL): before each update
the application takes the chat's lock and reads that person's state afresh (`fresh`), so an
answer handled by another process a moment ago is seen here, and flushes before releasing it.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any, NamedTuple

from sqlalchemy import Delete, Insert, bindparam, delete, literal, null, select
from sqlalchemy.ext.asyncio import AsyncConnection
from telegram.ext import BasePersistence, PersistenceInput

from models.db import Database, insert_for
from models.entities import ProcessedUpdate, StoredState

ConversationKey = tuple[int | str, ...]
ConversationDict = dict[ConversationKey, object]

USER_DATA = "user_data"
CONVERSATION = "conversation"

Written = list[tuple[str, str, str | None]]  # (kind, key, data or None for deleted), written on a bound connection


@functools.cache
def _upsert(dialect: str, rows: int | None = None) -> Insert:
    """Return the statement that stores rows under (kind, key), inserted or replaced (built once: it is
    hot): one row whose kind, key and data are given at execution, or `rows` rows (:kind0, :key0, :data0, …)."""
    statement = insert_for(dialect)(StoredState)
    if rows is not None:
        columns = (StoredState.kind, StoredState.key, StoredState.data)  # typed: `data` is sealed on its way in
        statement = statement.values(
            [{column.key: bindparam(f"{column.key}{i}", type_=column.type) for column in columns} for i in range(rows)])
    return statement.on_conflict_do_update(index_elements=[StoredState.kind, StoredState.key],
                                           set_={"data": statement.excluded.data})


_SEEN = "processed_update"  # the kind of the row `fresh` adds when the update was handled before

# One person's rows: kinds × keys (a little more than wanted; the rest is dropped), built once: it runs
# every update; and, in the same round trip, a row of kind _SEEN when :update_id was recorded as handled.
_FRESH = select(StoredState.kind, StoredState.key, StoredState.data).where(
    StoredState.kind.in_(bindparam("kinds", expanding=True)), StoredState.key.in_(bindparam("keys", expanding=True))
).union_all(select(literal(_SEEN), literal(""), null()).where(ProcessedUpdate.update_id == bindparam("update_id")))


class Fresh(NamedTuple):
    """One person's state as the database holds it now (DatabasePersistence.fresh)."""

    user_data: dict[str, Any] | None
    states: dict[str, object | None]  # conversation name: state, or None
    seen: bool  # the update asked about was recorded as handled already


def _delete(kind: str, key: str) -> Delete:
    return delete(StoredState).where(StoredState.kind == kind, StoredState.key == key)


class DatabasePersistence(BasePersistence[dict[str, Any], dict[str, Any], dict[str, Any]]):
    """Store user_data and conversation states in the `stored_state` table."""

    def __init__(self, db: Database, update_interval: float = 60):
        super().__init__(
            store_data=PersistenceInput(bot_data=False, chat_data=False, user_data=True, callback_data=False),
            update_interval=update_interval,
        )
        self.db = db
        # What the database holds, as written: unchanged data is not written again (most updates
        # change nothing, and the application flushes after every update).
        self._stored: dict[tuple[str, str], str] = {}
        # Set by `writing_on` for the task flushing one update: write there instead of in sessions.
        self._bound: ContextVar[tuple[AsyncConnection, Written] | None] = ContextVar("bound", default=None)

    @contextlib.asynccontextmanager
    async def writing_on(self, connection: AsyncConnection) -> AsyncIterator[Written]:
        """Write on `connection` what the block stores, in one statement at its end; yield what is written
        (to `rewrite` if the connection's transaction is rolled back instead of committing)."""
        written: Written = []
        token = self._bound.set((connection, written))
        try:
            yield written
        finally:
            self._bound.reset(token)
        await self._write_all(connection, written)

    async def _write_all(self, connection: AsyncConnection, written: Written) -> None:
        """Execute the writes gathered on a bound connection: the stored rows in one upsert, deletions after."""
        last = {(kind, key): data for kind, key, data in written}  # a row written twice: its last value
        stored = [(kind, key, data) for (kind, key), data in last.items() if data is not None]
        if stored:
            values = {f"{name}{i}": value for i, row in enumerate(stored)
                      for name, value in zip(("kind", "key", "data"), row)}
            await connection.execute(_upsert(self.db.dialect, len(stored)), values)
        for (kind, key), data in last.items():
            if data is None:
                await connection.execute(_delete(kind, key))

    async def rewrite(self, written: Written) -> None:
        """Write again, each in its own transaction, what a connection rolled back instead of committing."""
        for kind, key, data in written:
            await self._write(kind, key, data, bound=None)

    async def _write(self, kind: str, key: str, data: str | None,
                     bound: tuple[AsyncConnection, Written] | None) -> None:
        """Store `data` under (kind, key), or delete the row for None: in a transaction of its own, or
        with the bound connection's other writes (`writing_on`)."""
        if bound is None:
            async with self.db.writing() as session:
                if data is None:
                    await session.execute(_delete(kind, key))
                else:
                    await session.execute(_upsert(self.db.dialect), {"kind": kind, "key": key, "data": data})
        else:
            bound[1].append((kind, key, data))
        if data is None:
            self._stored.pop((kind, key), None)
        else:
            self._stored[(kind, key)] = data

    async def _load(self, kind: str) -> dict[str, Any]:
        async with self.db.reading() as session:
            rows = list(await session.scalars(select(StoredState).where(StoredState.kind == kind)))
        self._stored.update({(kind, row.key): row.data for row in rows})
        return {row.key: json.loads(row.data) for row in rows}

    async def _save(self, kind: str, key: str, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False, sort_keys=True)
        if self._stored.get((kind, key)) != data:
            await self._write(kind, key, data, self._bound.get())

    async def _drop(self, kind: str, key: str) -> None:
        if (kind, key) in self._stored:  # else loaded at start and never written since: nothing to delete
            await self._write(kind, key, None, self._bound.get())

    async def fresh(self, user_id: int, conversations: dict[str, ConversationKey], connection: AsyncConnection,
                    update_id: int | None = None) -> Fresh:
        """Read one person's user_data and conversation states as the database holds them now, on
        `connection` (the chat lock's), and whether update `update_id` was handled already.

        Another process sharing the database may have moved them since this one last looked, or
        handled this very update (bot.app asks under the chat's lock before each update, in one
        round trip). What is read becomes what this process knows is stored, so an unchanged value
        is not written back and an ended conversation is deleted.
        """
        wanted = {(USER_DATA, str(user_id)): None}
        wanted.update({(f"{CONVERSATION}:{name}", json.dumps(list(key))): name for name, key in conversations.items()})
        values = {"kinds": sorted({kind for kind, _ in wanted}), "keys": sorted({key for _, key in wanted}),
                  "update_id": update_id}
        found = (await connection.execute(_FRESH, values)).all()
        seen = any(kind == _SEEN for kind, _, _ in found)
        rows = {(kind, key): data for kind, key, data in found if (kind, key) in wanted}
        user_data: dict[str, Any] | None = None
        states: dict[str, object | None] = {}
        for (kind, key), name in wanted.items():
            data = rows.get((kind, key))
            if data is None:
                self._stored.pop((kind, key), None)
            else:
                self._stored[(kind, key)] = data
            value = None if data is None else json.loads(data)
            if name is None:
                user_data = value
            else:
                states[name] = value
        return Fresh(user_data, states, seen)

    async def get_user_data(self) -> dict[int, dict[str, Any]]:
        """Return every stored user_data dict."""
        return {int(key): value for key, value in (await self._load(USER_DATA)).items()}

    async def update_user_data(self, user_id: int, data: dict[str, Any]) -> None:
        """Store one user's data (empty data is deleted)."""
        if data:
            await self._save(USER_DATA, str(user_id), data)
        else:
            await self._drop(USER_DATA, str(user_id))

    async def drop_user_data(self, user_id: int) -> None:
        """Forget one user's data."""
        await self._drop(USER_DATA, str(user_id))

    async def refresh_user_data(self, user_id: int, user_data: dict[str, Any]) -> None:
        """Nothing to refresh here: bot.app reads the sender's data afresh (`fresh`) before each update."""

    async def get_conversations(self, name: str) -> ConversationDict:
        """Return the stored states of one conversation handler."""
        stored = await self._load(f"{CONVERSATION}:{name}")
        return {tuple(json.loads(key)): state for key, state in stored.items()}

    async def update_conversation(self, name: str, key: ConversationKey, new_state: object | None) -> None:
        """Store (or clear) one conversation's state."""
        kind, row_key = f"{CONVERSATION}:{name}", json.dumps(list(key))
        if new_state is None:
            await self._drop(kind, row_key)
        else:
            await self._save(kind, row_key, new_state)

    async def get_chat_data(self) -> dict[int, dict[str, Any]]:
        """Chat data is not stored."""
        return {}

    async def update_chat_data(self, chat_id: int, data: dict[str, Any]) -> None:
        """Chat data is not stored."""

    async def drop_chat_data(self, chat_id: int) -> None:
        """Chat data is not stored."""

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[str, Any]) -> None:
        """Chat data is not stored."""

    async def get_bot_data(self) -> dict[str, Any]:
        """Bot data is not stored."""
        return {}

    async def update_bot_data(self, data: dict[str, Any]) -> None:
        """Bot data is not stored."""

    async def refresh_bot_data(self, bot_data: dict[str, Any]) -> None:
        """Bot data is not stored."""

    async def get_callback_data(self) -> None:
        """Callback data is plain strings; nothing to store."""
        return None

    async def update_callback_data(self, data: Any) -> None:
        """Callback data is plain strings; nothing to store."""

    async def flush(self) -> None:
        """Every write is already committed."""

