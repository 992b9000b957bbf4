"""Small helpers every feature uses: who is writing, in which language, and shared formatting."""

from __future__ import annotations

import html
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update

from bot.context import BotContext
from bot.i18n import Translator, language_of
from models.entities import Person
from models.db import reading
from models.people import person_by_telegram_id
from models.progress import Progress


def esc(text: object) -> str:
    """Escape a value for Telegram HTML."""
    return html.escape(str(text), quote=False)


async def current_person(session: AsyncSession, update: Update) -> Person | None:
    """Return the registered person who sent this update, or None."""
    user = update.effective_user
    if user is None:
        return None
    return await person_by_telegram_id(session, user.id)


async def cached_person(context: BotContext, update: Update) -> Person | None:
    """Return the registered sender for reading only (kept until the data changes), or None.

    The person comes with their assignments and units loaded and belongs to no session: use it
    for scope and language; a handler that changes a person loads them in its own transaction."""
    user = update.effective_user
    if user is None:
        return None
    cache = context.bot_data.cache
    await cache.refresh(context.sessions)
    key = ("person", user.id)
    person: Person | None = cache.get(key)
    if person is None:
        generation = cache.generation
        async with reading(context.sessions) as session:
            person = await person_by_telegram_id(session, user.id)
        if person is not None:
            cache.put(key, person, generation)
    return person


def translator(context: BotContext, update: Update | None, person: Person | None = None) -> Translator:
    """Return texts in the person's language, else their Telegram language, else the default."""
    default = context.config.bot.language
    if person is not None:
        return context.texts.for_language(language_of(person.language, default))
    user = update.effective_user if update is not None else None
    return context.texts.for_language(language_of(user.language_code if user else None, default))


def today(context: BotContext) -> date:
    """Return today's date in the configured timezone."""
    return context.clock.today(context.config.bot.tz)


def unit_progress_line(tr: Translator, progress: Progress) -> str:
    """Return e.g. `Chi bộ thôn Nà Lạn: 3/4 (75,0 %) kế hoạch năm 2026`."""
    if progress.target is None:
        return tr("progress.unit_line_no_target", unit=esc(progress.unit.name),
                  count=tr.number(progress.admitted), period=progress.period.label())
    return tr(
        "progress.unit_line",
        unit=esc(progress.unit.name),
        count=tr.number(progress.admitted),
        target=tr.number(progress.target),
        percent=tr.percent(progress.percent),
        period=progress.period.label(),
    )
