"""Failed `/start CODE` attempts per Telegram user: at most FAILED_STARTS in START_WINDOW.

Kept in the database (`start_attempt`, bookkeeping), so a restart forgets nothing and waiting for
one does not reset the count. A failed attempt is recorded in the transaction that checked the
code; rows older than the window are deleted as the same user tries again.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import StartAttempt

FAILED_STARTS = 5  # wrong codes checked per user and window; the next one is refused unchecked
START_WINDOW = timedelta(hours=1)


async def start_wait(session: AsyncSession, telegram_id: int, now: datetime) -> int | None:
    """Return the minutes this user must wait before a code is checked again, or None when it may be."""
    since = now - START_WINDOW
    count, oldest = (await session.execute(
        select(func.count(), func.min(StartAttempt.at))
        .where(StartAttempt.telegram_id == telegram_id, StartAttempt.at > since))).one()
    if count < FAILED_STARTS:
        return None
    return max(1, math.ceil((oldest + START_WINDOW - now).total_seconds() / 60))


async def note_failed_start(session: AsyncSession, telegram_id: int, now: datetime) -> None:
    """Record one wrong code of this user (and forget their attempts older than the window)."""
    await session.execute(delete(StartAttempt).where(StartAttempt.telegram_id == telegram_id,
                                                     StartAttempt.at <= now - START_WINDOW))
    session.add(StartAttempt(telegram_id=telegram_id, at=now))
