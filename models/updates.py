"""Bookkeeping of Telegram updates already handled (a repeated delivery is skipped)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import ProcessedUpdate


async def was_processed(session: AsyncSession, update_id: int) -> bool:
    """Tell whether this update id was handled before."""
    return await session.scalar(select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id == update_id)) is not None


async def mark_processed(session: AsyncSession, update_id: int, now: datetime) -> None:
    """Remember that this update id was handled (a second mark is harmless)."""
    try:
        async with session.begin_nested():
            session.add(ProcessedUpdate(update_id=update_id, processed_at=now))
    except IntegrityError:
        pass


async def forget_processed_before(session: AsyncSession, before: datetime) -> int:
    """Drop the bookkeeping older than `before` (Telegram redelivers only recent updates)."""
    result = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < before))
    return int(result.rowcount or 0)
