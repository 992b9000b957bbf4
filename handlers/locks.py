"""/lock and /unlock: an admin closes a subtree's books up to a day (khóa sổ), or opens them with a reason.

The rules (who may, which days, inheritance, the audit entry) are models/locks.py; this module
only translates chat to them. /lock is stateless: its buttons carry the unit and the day, and
every press is checked again against the presser's scope (a forged one changes nothing):
  lock:pick:<unit id>:<yyyymmdd>   the unit chosen by an admin of several units → the ✅ card
  lock:set:<unit id>:<yyyymmdd>    ✅ close the books
  lock:cancel                      ❌ change nothing
/unlock is a conversation, since it asks for a reason (3–500 characters) before its ✅:
  PICK ─unlock:pick:<unit id>→ REASON ─text→ CONFIRM ─unlock:confirm:<unit id>:<yyyymmdd>→ END
  (/cancel or unlock:cancel ends it at any step; nothing changes before ✅). The ✅ names the day
  it was shown, so a lock changed meanwhile is not removed unseen.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from core.i18n import Translator
from handlers.common import (
    DraftConversation, answer, current_person, edit_in_place, esc, forget_old_drafts, reply, today, translator,
)
from handlers.context import BotContext, Feature
from models.audit import REASON_MAX, REASON_MIN, valid_reason
from models.entities import AuditChannel, Person, Role, Unit, UnitLock
from models.locks import LockRefused, closed_for, lock_books, lock_of, locks_within, may_override, open_books, refusal
from models.people import Scope
from models.units import unit_by_code, unit_by_id
from models.updates import mark_processed
from models.values import parse_date

LOCK_PICK, LOCK_SET, LOCK_CANCEL = r"^lock:pick:(\d{1,18}):(\d{8})$", r"^lock:set:(\d{1,18}):(\d{8})$", r"^lock:cancel$"
UNLOCK_PICK, UNLOCK_CONFIRM = r"^unlock:pick:(\d{1,18})$", r"^unlock:confirm:(\d{1,18}):(\d{8})$"
UNLOCK_CANCEL = r"^unlock:cancel$"
PICK, REASON, CONFIRM = range(3)  # persisted: new states go at the end
END = ConversationHandler.END
DRAFT = "unlock"
# An /unlock left unanswered is dropped after this: its REASON step takes any text, and a text meant
# for something else (a report, later) must not become a reason.
UNLOCK_LIFETIME = timedelta(minutes=30)


def _day(text: str) -> date | None:
    """Return the day a button carries (yyyymmdd), or None for a forged one."""
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _markup(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text[:64], callback_data=data) for text, data in row]
                                 for row in rows])


async def _sender(session: AsyncSession, update: Update, context: BotContext) -> tuple[Person, Translator, Scope]:
    person = await current_person(session, update)
    assert person is not None  # the guard let only registered people through
    return person, translator(context, update, person), Scope(person)


async def _unit_in_scope(session: AsyncSession, scope: Scope, unit_id: int) -> Unit | None:
    """Return the unit if the person administers a subtree holding it, else None (whether or not it exists)."""
    unit = await unit_by_id(session, unit_id)
    return unit if unit is not None and may_override(scope, unit) else None


def _carries(query: CallbackQuery, prefix: str) -> bool:
    """Tell whether the pressed message has a button whose data starts with `prefix` (a ❌ acts only on its own card)."""
    message = query.message
    markup = getattr(message, "reply_markup", None)
    return markup is not None and any((button.callback_data or "").startswith(prefix)
                                      for row in markup.inline_keyboard for button in row)


async def _refuse(query: CallbackQuery, tr: Translator) -> None:
    """Answer a button the presser may not use: politely, changing nothing."""
    await answer(query, tr("common.not_allowed"), alert=True)


# /lock -----------------------------------------------------------------------------------------


async def overview(session: AsyncSession, tr: Translator, units: list[Unit]) -> str:
    """Return the books' state of each administered unit (its own lock or an ancestor's) and the locks below it."""
    lines = [tr("locks.overview_header")]
    for unit in units:
        closed = await closed_for(session, unit)
        if closed is None:
            lines.append(tr("locks.overview_open", unit=esc(unit.name)))
        elif closed.locked_unit.id == unit.id:
            lines.append(tr("locks.overview_closed", unit=esc(unit.name), date=tr.date(closed.until)))
        else:
            lines.append(tr("locks.overview_inherited", unit=esc(unit.name), date=tr.date(closed.until),
                            locked=esc(closed.locked_unit.name)))
        for lock, locked in await locks_within(session, unit):
            if locked.id != unit.id:
                lines.append(tr("locks.overview_below", unit=esc(locked.name), date=tr.date(lock.closed_until)))
    return "\n".join(lines) + "\n\n" + tr("locks.usage")


def _lock_card(tr: Translator, unit: Unit, until: date, current: UnitLock | None) -> tuple[str, InlineKeyboardMarkup]:
    text = tr("locks.confirm", unit=esc(unit.name), date=tr.date(until))
    if current is not None:
        text += "\n" + tr("locks.confirm_current", date=tr.date(current.closed_until))
    return text, _markup([[(tr("locks.button_lock"), f"lock:set:{unit.id}:{until:%Y%m%d}"),
                           (tr("locks.button_cancel"), "lock:cancel")]])


def _refused(tr: Translator, unit: Unit, problem: LockRefused, until: date) -> str:
    current = tr.date(problem.current) if problem.current else ""
    return tr(f"locks.refused_{problem.reason}", unit=esc(unit.name), date=tr.date(until), current=current)


def _card_or_refusal(tr: Translator, unit: Unit, until: date, current: UnitLock | None,
                     day: date) -> tuple[str, InlineKeyboardMarkup | None]:
    """Return the ✅ card for closing `unit`'s books up to `until`, or why that cannot be done."""
    problem = refusal(current.closed_until if current else None, until, day)
    return (_refused(tr, unit, problem, until), None) if problem else _lock_card(tr, unit, until, current)


async def show_or_lock(update: Update, context: BotContext) -> None:
    """Show the locks of the sender's units (bare), or ask to confirm closing the books up to a day."""
    args = context.args or []
    day = today(context)
    async with context.services.db.reading() as session:
        _, tr, scope = await _sender(session, update, context)
        units = scope.units(Role.ADMIN)
        if not units:
            await reply(update, context, tr("locks.admins_only"))
            return
        if len(args) > 2:
            await reply(update, context, tr("locks.usage"))
            return
        code, typed = (args[0], args[1]) if len(args) == 2 else (None, args[0] if args else None)
        until: date | None = None
        if typed is not None:
            try:
                until = parse_date(typed, day)
            except ValueError as error:
                if error.args[0] != "not_date" or len(args) == 2:
                    await reply(update, context, tr(f"locks.invalid.{error.args[0]}", today=tr.date(day)))
                    return
                code = typed  # `/lock CODE`: that unit's books
        if code is not None:
            unit = await unit_by_code(session, code)
            if unit is None or not may_override(scope, unit):
                await reply(update, context, tr("locks.not_your_unit", code=esc(code)))
                return
            units = [unit]
        if until is None:
            await reply(update, context, await overview(session, tr, units))
            return
        if len(units) > 1:
            rows = [[(u.name, f"lock:pick:{u.id}:{until:%Y%m%d}")] for u in units]
            await reply(update, context, tr("locks.pick", date=tr.date(until)), _markup(rows))
            return
        text, markup = _card_or_refusal(tr, units[0], until, await lock_of(session, units[0]), day)
    await reply(update, context, text, markup)


async def pick_lock_unit(update: Update, context: BotContext) -> None:
    """Show the ✅ card for the unit an admin of several units picked."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, _, unit_id, stamp = query.data.split(":")
    until = _day(stamp)
    async with context.services.db.reading() as session:
        _, tr, scope = await _sender(session, update, context)
        unit = await _unit_in_scope(session, scope, int(unit_id))
        current = await lock_of(session, unit) if unit is not None else None
    if unit is None or until is None:
        await _refuse(query, tr)
        return
    await edit_in_place(query, *_card_or_refusal(tr, unit, until, current, today(context)))
    await answer(query)


async def confirm_lock(update: Update, context: BotContext) -> None:
    """Close the books the ✅ names, checked again against the presser's scope and today."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, _, unit_id, stamp = query.data.split(":")
    until = _day(stamp)
    services = context.services
    async with services.db.writing() as session:
        person, tr, scope = await _sender(session, update, context)
        unit = await _unit_in_scope(session, scope, int(unit_id))
        if unit is None or until is None:
            text = None
        else:
            try:
                await lock_books(session, unit, until, person=person, now=services.clock.now(), today=today(context),
                                 channel=AuditChannel.CHAT)
                text = tr("locks.locked", unit=esc(unit.name), date=tr.date(until))
            except LockRefused as problem:
                text = _refused(tr, unit, problem, until)
            # In the same transaction: a redelivered ✅ must not answer "already closed" for this very act.
            await mark_processed(session, [update.update_id], services.clock.now())
    if text is None:
        await _refuse(query, tr)
        return
    await edit_in_place(query, text)
    await answer(query)


async def cancel_lock(update: Update, context: BotContext) -> None:
    """Leave the books as they are (❌)."""
    query = update.callback_query
    assert query is not None
    tr = translator(context, update)
    if not _carries(query, "lock:set:"):
        await _refuse(query, tr)
        return
    await edit_in_place(query, tr("locks.lock_cancelled"))
    await answer(query)


# /unlock ---------------------------------------------------------------------------------------


def _draft(context: BotContext) -> dict:
    return context.user_data.setdefault(DRAFT, {})  # type: ignore[union-attr]


async def _ask_reason(update: Update, context: BotContext, tr: Translator, unit: Unit, until: date) -> int:
    context.user_data[DRAFT] = {"unit_id": unit.id, "until": until.isoformat(), "name": unit.name,  # type: ignore[index]
                                "started": context.services.clock.now().isoformat()}
    await reply(update, context, tr("locks.ask_reason", unit=esc(unit.name), date=tr.date(until),
                                    min=REASON_MIN, max=REASON_MAX))
    return REASON


async def start_unlock(update: Update, context: BotContext) -> int:
    """Find the lock to remove (pick one of several), then ask for the reason."""
    args = context.args or []
    async with context.services.db.reading() as session:
        person, tr, scope = await _sender(session, update, context)
        units = scope.units(Role.ADMIN)
        if not units:
            await reply(update, context, tr("locks.admins_only"))
            return END
        if args:
            unit = await unit_by_code(session, args[0])
            if unit is None or not may_override(scope, unit):
                await reply(update, context, tr("locks.not_your_unit", code=esc(args[0])))
                return END
            units = [unit]
        found: dict[int, tuple[UnitLock, Unit]] = {}
        for unit in units:
            for own, locked in await locks_within(session, unit):
                if not args or locked.id == unit.id:
                    found.setdefault(locked.id, (own, locked))
        if not found:
            inherited = [(u, c) for u in units if (c := await closed_for(session, u)) is not None]
            text = "\n".join(tr("locks.unlock_inherited", unit=esc(u.name), date=tr.date(c.until),
                                locked=esc(c.locked_unit.name)) for u, c in inherited) or tr("locks.unlock_nothing")
            await reply(update, context, text)
            return END
    if len(found) == 1:
        [(own, locked)] = found.values()
        return await _ask_reason(update, context, tr, locked, own.closed_until)
    rows = [[(tr("locks.button_pick_unlock", unit=locked.name, date=tr.date(own.closed_until)),
              f"unlock:pick:{locked.id}")] for own, locked in found.values()]
    await reply(update, context, tr("locks.unlock_pick"), _markup(rows))
    return PICK


async def pick_unlock_unit(update: Update, context: BotContext) -> int | None:
    """Take the unit whose lock to remove, checked again against the presser's scope."""
    query = update.callback_query
    assert query is not None and query.data is not None
    async with context.services.db.reading() as session:
        person, tr, scope = await _sender(session, update, context)
        unit = await _unit_in_scope(session, scope, int(query.data.rsplit(":", 1)[1]))
        own = await lock_of(session, unit) if unit is not None else None
    if unit is None:
        await _refuse(query, tr)
        return None
    if own is None:
        await edit_in_place(query, tr("locks.unlock_already", unit=esc(unit.name)))
        await answer(query)
        context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
        return END
    await edit_in_place(query, tr("locks.unlock_chosen", unit=esc(unit.name), date=tr.date(own.closed_until)))
    await answer(query)
    return await _ask_reason(update, context, tr, unit, own.closed_until)


async def take_reason(update: Update, context: BotContext) -> int | None:
    """Take the reason (3–500 characters), then show the ✅ card."""
    tr = translator(context, update)
    draft = _draft(context)
    if "unit_id" not in draft:
        return await cancel_unlock(update, context)
    message = update.effective_message
    reason = valid_reason(message.text if message is not None else None)
    if reason is None:
        await reply(update, context, tr("locks.invalid_reason", min=REASON_MIN, max=REASON_MAX))
        return None
    draft["reason"] = reason
    until = date.fromisoformat(draft["until"])
    text = tr("locks.unlock_confirm", unit=esc(draft["name"]), date=tr.date(until), reason=esc(reason))
    markup = _markup([[(tr("locks.button_unlock"), f"unlock:confirm:{draft['unit_id']}:{until:%Y%m%d}"),
                       (tr("locks.button_cancel"), "unlock:cancel")]])
    await reply(update, context, text, markup)
    return CONFIRM


async def use_buttons(update: Update, context: BotContext) -> None:
    """Remind that this step is answered with the buttons above."""
    await reply(update, context, translator(context, update)("locks.use_buttons"))


async def confirm_unlock(update: Update, context: BotContext) -> int | None:
    """Remove the lock the ✅ names if it is still the one shown, recording the reason."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, _, unit_id, stamp = query.data.split(":")
    draft = _draft(context)
    shown = _day(stamp)
    services = context.services
    async with services.db.writing() as session:
        person, tr, scope = await _sender(session, update, context)
        unit = await _unit_in_scope(session, scope, int(unit_id))
        if unit is None or shown is None or draft.get("unit_id") != unit.id or draft.get("until") != shown.isoformat():
            text = None
        else:
            own = await lock_of(session, unit)
            if own is None:
                text = tr("locks.unlock_already", unit=esc(unit.name))
            elif own.closed_until != shown:
                text = tr("locks.unlock_changed", unit=esc(unit.name), date=tr.date(own.closed_until))
            else:
                await open_books(session, unit, person=person, now=services.clock.now(), reason=draft["reason"],
                                 channel=AuditChannel.CHAT)
                await mark_processed(session, [update.update_id], services.clock.now())
                text = tr("locks.unlocked", unit=esc(unit.name), date=tr.date(shown))
    if text is None:
        await _refuse(query, tr)
        return None
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    await edit_in_place(query, text)
    await answer(query)
    return END


async def cancel_unlock(update: Update, context: BotContext) -> int | None:
    """Drop the unlock in progress; the books stay as they are."""
    tr = translator(context, update)
    if update.callback_query is not None and not _carries(update.callback_query, "unlock:confirm:"):
        await _refuse(update.callback_query, tr)
        return None
    context.user_data.pop(DRAFT, None)  # type: ignore[union-attr]
    if update.callback_query is not None:
        await edit_in_place(update.callback_query, tr("locks.unlock_cancelled"))
        await answer(update.callback_query)
    else:
        await reply(update, context, tr("locks.unlock_cancelled"))
    return END


async def forget_abandoned_unlocks(application: Application) -> None:  # type: ignore[type-arg]
    """At start, forget /unlock drafts older than UNLOCK_LIFETIME (the in-process timeout does not survive a
    restart); a text then reaching the REASON step is answered as cancelled."""
    await forget_old_drafts(application, DRAFT, UNLOCK_LIFETIME)


def build_handlers() -> list[BaseHandler]:
    """Return /lock with its buttons and the /unlock conversation."""
    text = filters.TEXT & ~filters.COMMAND
    unlock = DraftConversation(
        draft=DRAFT, lifetime=UNLOCK_LIFETIME,
        entry_points=[CommandHandler("unlock", start_unlock)],
        states={
            PICK: [CallbackQueryHandler(pick_unlock_unit, pattern=UNLOCK_PICK), MessageHandler(text, use_buttons)],
            REASON: [MessageHandler(text, take_reason)],
            CONFIRM: [CallbackQueryHandler(confirm_unlock, pattern=UNLOCK_CONFIRM), MessageHandler(text, use_buttons)],
        },
        fallbacks=[CommandHandler("cancel", cancel_unlock), CallbackQueryHandler(cancel_unlock, pattern=UNLOCK_CANCEL)],
        name="unlock",
    )
    return [CommandHandler("lock", show_or_lock), CallbackQueryHandler(pick_lock_unit, pattern=LOCK_PICK),
            CallbackQueryHandler(confirm_lock, pattern=LOCK_SET), CallbackQueryHandler(cancel_lock, pattern=LOCK_CANCEL),
            unlock]


FEATURE = Feature(handlers=build_handlers, commands={"lock": "locks.commands.lock", "unlock": "locks.commands.unlock"},
                  help=((Role.ADMIN, "locks.help_lock"), (Role.ADMIN, "locks.help_unlock")),
                  on_start=forget_abandoned_unlocks)
