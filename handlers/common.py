"""Small helpers every feature uses: who is writing, in which language, and shared formatting."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import Application, BaseHandler, ConversationHandler, TypeHandler

from core.i18n import Translator, language_of
from core.text import esc, split_message
from handlers.context import BotContext, ChatApplication
from models.entities import Person
from models.people import person_by_telegram_id
from models.progress import Progress
from services.telegram import services_of

__all__ = ["answer", "paging_row", "cached_person", "current_person", "DraftConversation", "edit_in_place", "esc", "forget_old_drafts",
           "reply", "today", "translator", "unit_progress_line"]


async def current_person(session: AsyncSession, update: Update) -> Person | None:
    """Return the registered person who sent this update (to change them in this session), or None."""
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
    services = context.services
    cache = services.cache
    await cache.refresh(services.db)
    key = ("person", user.id)
    person: Person | None = cache.get(key)
    if person is None:
        generation = cache.generation
        async with services.db.reading() as session:
            person = await person_by_telegram_id(session, user.id)
        if person is not None:
            cache.put(key, person, generation)
    return person


def translator(context: BotContext, update: Update | None, person: Person | None = None) -> Translator:
    """Return texts in the person's language: a registered person's stored one, else Telegram's, else the default."""
    if person is not None:
        language = person.language
    elif context.language is not None:
        language = context.language
    else:
        user = update.effective_user if update is not None else None
        language = user.language_code if user else None
    return context.services.texts.for_language(language_of(language, context.services.config.bot.language))


def today(context: BotContext) -> date:
    """Return today's date in the configured timezone."""
    return context.services.today()


async def answer(query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
    """Answer a button press AFTER its work is done; a failed answer never undoes or skips that work.

    Telegram refuses an answer to a query that is too old (e.g. re-delivered after a restart) or
    already answered: the person then learns the outcome from the message the handler sends.
    """
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest:
        pass


async def edit_in_place(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Show `text` in place of the pressed message; the same text again (a second tap, or a tap
    delivered again after a crash) changes nothing and is no error ("message is not modified")."""
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise


async def reply(update: Update, context: BotContext, text: str,
                markup: InlineKeyboardMarkup | None = None) -> Message:
    """Send `text` to the update's chat as new message(s): a text that grew past Telegram's limit is
    split between lines, the buttons go with the last part. Return the last message."""
    chat = update.effective_chat
    assert chat is not None
    parts = split_message(text)
    sent: Message | None = None
    for i, part in enumerate(parts):
        sent = await context.bot.send_message(chat.id, part, reply_markup=markup if i == len(parts) - 1 else None)
    assert sent is not None
    return sent


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


async def forget_old_drafts(application: Application[Any, Any, Any, Any, Any, Any], key: str,
                            lifetime: timedelta) -> None:
    """At start, forget the `user_data[key]` drafts started (their "started" time) longer than `lifetime`
    ago: a conversation's in-process timeout does not survive a restart."""
    now = services_of(application).clock.now()
    stale = [
        user_id for user_id, data in application.user_data.items()
        if key in data and now - datetime.fromisoformat(data[key].get("started", "1970-01-01T00:00:00+00:00"))
        > lifetime
    ]
    for user_id in stale:
        application.user_data[user_id].pop(key, None)
    if stale:
        application.mark_data_for_update_persistence(user_ids=stale)
        await application.update_persistence()


class DraftConversation(ConversationHandler[BotContext]):
    """A persistent conversation whose draft (`user_data[draft]`) is forgotten `lifetime` after the last answer.

    Personal data is not kept without reason. PTB's timer lives in the process that handled the
    last answer it saw; with several processes on one database (PostgreSQL) the person's next
    answer may have gone to another one, which set a timer of its own. So the timer fires in the
    chat's turn with the state read afresh (ChatApplication.in_turn), and forgets the draft only
    if it is still the one this process left; otherwise it just ends. A restart forgets drafts by
    age instead (forget_old_drafts): timers do not survive it.
    """

    def __init__(self, *, draft: str, lifetime: timedelta, name: str,
                 states: dict[object, list[BaseHandler[Any, BotContext, Any]]], **kwargs: Any) -> None:
        states = {**states, ConversationHandler.TIMEOUT: [TypeHandler(Update, self._forget_draft)]}
        super().__init__(name=name, states=states, persistent=True, allow_reentry=True,
                         conversation_timeout=lifetime, **kwargs)
        self.draft = draft
        self._left: dict[tuple[int | str, ...], tuple[str, bytes]] = {}  # key: (its timer's id, the draft as left)

    def _fingerprint(self, user_data: dict[str, Any] | None) -> bytes:
        data = (user_data or {}).get(self.draft)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).digest()

    def _schedule_job(self, new_state: object, application: Application,  # type: ignore[type-arg,override]
                      update: Update, context: BotContext, conversation_key: tuple[int | str, ...]) -> None:
        super()._schedule_job(new_state, application, update, context, conversation_key)  # type: ignore[arg-type]
        job = self.timeout_jobs.get(conversation_key)
        if job is not None:
            self._left[conversation_key] = (job.id, self._fingerprint(context.user_data))

    async def _trigger_timeout(self, context: BotContext) -> None:  # type: ignore[override]
        """Forget the draft in the chat's turn, unless another process took a newer answer (see the class)."""
        job = context.job
        assert job is not None
        timeout = job.data
        key = timeout.conversation_key  # type: ignore[union-attr]
        timer, left = self._left.get(key, (None, b""))
        trigger = super()._trigger_timeout

        async def expire() -> None:
            if timer == job.id:
                del self._left[key]
                if self._fingerprint(timeout.application.user_data.get(  # type: ignore[union-attr]
                        timeout.update.effective_user.id)) != left:  # type: ignore[union-attr]
                    if self.timeout_jobs.get(key) is job:  # moved on elsewhere: that process's timer counts
                        del self.timeout_jobs[key]
                    return
            await trigger(context)

        application = timeout.application  # type: ignore[union-attr]
        if isinstance(application, ChatApplication):
            await application.in_turn(timeout.update, expire)  # type: ignore[union-attr]
        else:
            await expire()

    async def _forget_draft(self, update: Update, context: BotContext) -> None:
        """Forget the draft left unfinished (it may hold names)."""
        context.user_data.pop(self.draft, None)  # type: ignore[union-attr]


def paging_row(page: int, pages: int, previous: str, following: str,
               data_of: Callable[[int], str]) -> list[list[InlineKeyboardButton]]:
    """Return the ◀ ▶ row of a list shown a page at a time (none on a single page); `data_of(page)` is
    the callback data that shows that page."""
    row = ([InlineKeyboardButton(previous, callback_data=data_of(page - 1))] if page > 0 else []) + (
        [InlineKeyboardButton(following, callback_data=data_of(page + 1))] if page < pages - 1 else [])
    return [row] if row else []
