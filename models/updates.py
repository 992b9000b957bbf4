"""Bookkeeping of Telegram updates already handled (a repeated delivery is skipped)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Insert, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from models.db import insert_for
from models.entities import ProcessedUpdate


_PROCESSED = select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id == bindparam("update_id"))


async def was_processed(session: AsyncSession | AsyncConnection, update_id: int) -> bool:
    """Tell whether this update id was handled before (a statement built once: it runs every update)."""
    return await session.scalar(_PROCESSED, {"update_id": update_id}) is not None


@functools.cache
def _insert_once(dialect: str) -> Insert:
    """Return an INSERT of a processed update that does nothing when the id is already there."""
    return insert_for(dialect)(ProcessedUpdate).on_conflict_do_nothing(index_elements=[ProcessedUpdate.update_id])


async def highest_processed(session: AsyncSession) -> int | None:
    """Return the highest update id recorded as handled, or None when there is none."""
    return await session.scalar(select(func.max(ProcessedUpdate.update_id)))


async def mark_processed(db: AsyncSession | AsyncConnection, update_ids: Iterable[int], now: datetime) -> None:
    """Remember that these update ids were handled (marking one again is harmless).

    One plain statement, no savepoint, in a session or, cheaper, on a connection (bot.app)."""
    rows = [{"update_id": update_id, "processed_at": now} for update_id in sorted(set(update_ids))]
    if not rows:
        return
    dialect = db.dialect.name if isinstance(db, AsyncConnection) else db.get_bind().dialect.name
    await db.execute(_insert_once(dialect), rows)


async def forget_processed_before(session: AsyncSession, before: datetime) -> int:
    """Drop the bookkeeping older than `before` (Telegram redelivers only recent updates)."""
    result = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < before))
    return int(result.rowcount or 0)
