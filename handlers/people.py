"""/people: who uses the bot in an admin's subtree, ten lines a page, each opening a card with
🚫 revoke (asked again with ✅) and, for a secretary, 🔁 hand over (a one-time invite for the same
cell and role; the old secretary's role ends when the successor uses it).

The buttons are stateless; every press reads the presser's admin units again and acts only on
roles within them, so a forged or stale button is refused politely and changes nothing:
  ppl:p:<page>              the list, that page
  ppl:c:<person id>         the person's card
  ppl:r:<person id>         ask to revoke their roles within the presser's subtree
  ppl:rc:<person id>        revoke them (✅)
  ppl:h:<assignment id>     hand that secretary's role over (a new invite)

A revoked person's next message gets the unregistered reply (the guard sees no role; the person
cache forgets them when the write bumps the data revision); their past reports stay counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from core.collation import vietnamese_key
from core.i18n import Translator
from core.text import SAFE_LIMIT, shorten
from handlers.common import answer, cached_person, current_person, edit_in_place, esc, paging_row, reply, today, translator
from handlers.context import BotContext, Feature
from handlers.invites import short_name, admin_units, role_name, send_invite
from handlers.registration import features_of, menu_of, publish_menu
from models.entities import AuditChannel, Person, Role, Unit
from models.invites import invite_to
from models.people import Scope, person_by_telegram_id
from models.roster import (Card, RosterLine, Status, card_of, cells_without_secretary, last_seen, revoke, roster,
                           secretary_in_scope, status_of)

PER_PAGE = 10
NO_SECRETARY_SHOWN = 30  # cells named at the end of the list; more are counted
ROLE_ORDER = {Role.SECRETARY: 0, Role.COMMITTEE: 1, Role.ADMIN: 2}
PAGE, CARD = r"^ppl:p:\d{1,4}$", r"^ppl:c:\d{1,18}$"
ASK, REVOKE, HAND_OVER = r"^ppl:r:\d{1,18}$", r"^ppl:rc:\d{1,18}$", r"^ppl:h:\d{1,18}$"


def _tree_key(unit: Unit) -> tuple[int, ...]:
    """Order units as the tree: each unit followed by its subtree (ids along the path)."""
    return tuple(int(part) for part in unit.path.strip("/").split("/"))


def _name(tr: Translator, name: str) -> str:
    return esc(name) if name.strip() else tr("people.no_name")


def _status(tr: Translator, status: str, away_until: date | None) -> str:
    if status == Status.AWAY and away_until is not None:
        return tr("people.status_away", until=tr.date(away_until))
    return tr(f"people.status_{status}")


def _seen(tr: Translator, context: BotContext, line: RosterLine) -> str | None:
    if line.role != Role.SECRETARY:
        return None
    if line.last_seen is None:
        return tr("people.seen_never")
    return tr("people.seen", date=tr.date(line.last_seen.astimezone(context.services.config.bot.tz).date()))


def sorted_roster(lines: Sequence[RosterLine]) -> list[RosterLine]:
    """Return the lines grouped by unit in tree order; in a unit, roles held now first, then by role and name."""
    return sorted(lines, key=lambda l: (_tree_key(l.unit), l.status == Status.REVOKED, ROLE_ORDER[l.role],
                                        vietnamese_key(l.name), l.assignment_id))


async def list_view(context: BotContext, tr: Translator, roots: Sequence[Unit],
                    page: int) -> tuple[str, InlineKeyboardMarkup | None]:
    """Return one page of the roster; the last page ends with the cells that have no secretary."""
    async with context.services.db.reading() as session:
        lines = sorted_roster(await roster(session, roots, today(context)))
        vacant = sorted(await cells_without_secretary(session, roots), key=_tree_key)
    pages = max(1, -(-len(lines) // PER_PAGE))
    page = min(max(page, 0), pages - 1)
    first = page * PER_PAGE
    shown = lines[first:first + PER_PAGE]
    where = ", ".join(esc(root.name) for root in roots)
    text = [tr("people.header", units=where)]
    if not lines:
        text.append(tr("people.nobody"))
    elif pages > 1:
        text.append(tr("people.page", first=tr.number(first + 1), last=tr.number(first + len(shown)),
                       total=tr.number(len(lines))))
    unit_id = None
    buttons: list[InlineKeyboardButton] = []
    for number, line in enumerate(shown, start=first + 1):
        if line.unit.id != unit_id:
            unit_id = line.unit.id
            text.extend(["", f"<b>{esc(line.unit.name)}</b>"])
        parts = [role_name(tr, line.role), _status(tr, line.status, line.away_until), _seen(tr, context, line)]
        text.append(tr("people.line", number=number, name=_name(tr, line.name),
                       details=" · ".join(p for p in parts if p)))
        buttons.append(InlineKeyboardButton(f"{number}. {short_name(line.name or '—', 24)}",
                                            callback_data=f"ppl:c:{line.person_id}"))
    if page == pages - 1 and vacant:
        text.extend(["", tr("people.no_secretary", count=tr.number(len(vacant)))])
        text.extend(f"• {esc(unit.name)}" for unit in vacant[:NO_SECRETARY_SHOWN])
        if len(vacant) > NO_SECRETARY_SHOWN:
            text.append(tr("people.no_secretary_more", count=tr.number(len(vacant) - NO_SECRETARY_SHOWN)))
    rows = [buttons[i:i + 2] for i in range(0, len(buttons), 2)]
    rows += paging_row(page, pages, tr("people.button_previous"), tr("people.button_next"),
                       lambda shown_page: f"ppl:p:{shown_page}")
    body = shorten("\n".join(text), SAFE_LIMIT, tr("people.cut"))
    return body, InlineKeyboardMarkup(rows) if rows else None


def card_view(context: BotContext, tr: Translator, card: Card, admin: Person,
              seen_at: object) -> tuple[str, InlineKeyboardMarkup]:
    """Return the person's card: their roles in the admin's subtree and the actions on them."""
    person, day = card.person, today(context)
    tz = context.services.config.bot.tz
    text = [tr("people.card_header", name=_name(tr, person.display_name))]
    for a in card.assignments:
        text.append(tr("people.card_role", role=role_name(tr, a.role), unit=esc(a.unit.name),
                       status=_status(tr, status_of(person, a, day), person.away_until)))
    seen = tr.date(seen_at.astimezone(tz).date()) if seen_at is not None else "—"  # type: ignore[attr-defined]
    text.append(tr("people.card_since", since=tr.date(person.registered_at.astimezone(tz).date()), seen=seen))
    held = [a for a in card.assignments if a.ended_at is None]
    rows = []
    if held and person.id != admin.id:
        rows.append([InlineKeyboardButton(tr("people.button_revoke"), callback_data=f"ppl:r:{person.id}")])
    for a in held:
        if a.role == Role.SECRETARY:
            rows.append([InlineKeyboardButton(tr("people.button_hand_over", unit=short_name(a.unit.name, 28)),
                                              callback_data=f"ppl:h:{a.id}")])
    if not held:
        text.append(tr("people.card_no_role"))
    elif person.id == admin.id:
        text.append(tr("people.card_self"))
    rows.append([InlineKeyboardButton(tr("people.button_list"), callback_data="ppl:p:0")])
    return "\n".join(text), InlineKeyboardMarkup(rows)


async def people(update: Update, context: BotContext) -> None:
    """Send the first page of the people of the admin's subtree."""
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    tr = translator(context, update, person)
    roots = admin_units(person)
    if not roots:
        await reply(update, context, tr("people.admins_only"))
        return
    await reply(update, context, *await list_view(context, tr, roots, 0))


async def _pressed(update: Update, context: BotContext) -> tuple[Translator, Person, list[Unit], int]:
    query = update.callback_query
    assert query is not None and query.data is not None
    person = await cached_person(context, update)
    assert person is not None
    return translator(context, update, person), person, admin_units(person), int(query.data.rsplit(":", 1)[1])


async def _refuse(update: Update, tr: Translator) -> None:
    assert update.callback_query is not None
    await answer(update.callback_query, tr("people.out_of_scope"), alert=True)


async def show_page(update: Update, context: BotContext) -> None:
    """Show the pressed page of the list in place."""
    tr, _, roots, page = await _pressed(update, context)
    if not roots:
        await _refuse(update, tr)
        return
    assert update.callback_query is not None
    await edit_in_place(update.callback_query, *await list_view(context, tr, roots, page))
    await answer(update.callback_query)


async def show_card(update: Update, context: BotContext) -> None:
    """Show the pressed person's card, if they hold or held a role within the presser's subtree."""
    tr, admin, roots, person_id = await _pressed(update, context)
    async with context.services.db.reading() as session:
        card = await card_of(session, person_id, roots)
        seen = (await last_seen(session, [person_id])).get(person_id) if card else None
    if card is None:
        await _refuse(update, tr)
        return
    assert update.callback_query is not None
    await edit_in_place(update.callback_query, *card_view(context, tr, card, admin, seen))
    await answer(update.callback_query)


def _roles_text(tr: Translator, assignments: Sequence) -> str:  # type: ignore[type-arg]
    return "; ".join(tr("people.role_at", role=role_name(tr, a.role), unit=esc(a.unit.name)) for a in assignments)


async def ask_revoke(update: Update, context: BotContext) -> None:
    """Ask to confirm revoking the person's roles within the presser's subtree (✅ / ❌)."""
    tr, admin, roots, person_id = await _pressed(update, context)
    async with context.services.db.reading() as session:
        card = await card_of(session, person_id, roots)
    held = [a for a in card.assignments if a.ended_at is None] if card else []
    if card is None or person_id == admin.id:
        await _refuse(update, tr)
        return
    query = update.callback_query
    assert query is not None
    if not held:
        await edit_in_place(query, tr("people.nothing_to_revoke", name=_name(tr, card.person.display_name)),
                    InlineKeyboardMarkup([[InlineKeyboardButton(tr("people.button_list"), callback_data="ppl:p:0")]]))
    else:
        markup = InlineKeyboardMarkup([[
            InlineKeyboardButton(tr("people.button_confirm"), callback_data=f"ppl:rc:{person_id}"),
            InlineKeyboardButton(tr("people.button_keep"), callback_data=f"ppl:c:{person_id}"),
        ]])
        await edit_in_place(query, tr("people.confirm_revoke", name=_name(tr, card.person.display_name),
                              roles=_roles_text(tr, held)), markup)
    await answer(query)


async def do_revoke(update: Update, context: BotContext) -> None:
    """Revoke (✅) the person's roles within the presser's subtree, audited; their reports stay counted."""
    tr, admin, roots, person_id = await _pressed(update, context)
    if person_id == admin.id:
        await _refuse(update, tr)
        return
    services = context.services
    async with services.db.writing() as session:
        card = await card_of(session, person_id, roots)
        ended = []
        if card is not None:
            by = await current_person(session, update)
            assert by is not None
            ended = await revoke(session, person_id, roots, by=by, now=services.clock.now())
        roles = _roles_text(tr, ended)
    if card is None:
        await _refuse(update, tr)
        return
    query = update.callback_query
    assert query is not None
    name = _name(tr, card.person.display_name)
    text = tr("people.revoked", name=name, roles=roles) if ended else tr("people.nothing_to_revoke", name=name)
    await edit_in_place(query, text, InlineKeyboardMarkup([[InlineKeyboardButton(tr("people.button_list"),
                                                                         callback_data="ppl:p:0")]]))
    await answer(query)
    if ended:
        await _refresh_menu(context, card.person.telegram_id)


async def _refresh_menu(context: BotContext, telegram_id: int) -> None:
    """Give the person the menu of the roles they still hold (none: what someone unregistered sees)."""
    async with context.services.db.reading() as session:
        person = await person_by_telegram_id(session, telegram_id)
    if person is None:
        return
    scope = Scope(person) if person.assignments else None
    await publish_menu(context.bot, telegram_id,
                       menu_of(features_of(context), context.services.texts, scope, person.language))


async def hand_over(update: Update, context: BotContext) -> None:
    """Make the one-time invite that hands the pressed secretary's role over to a successor."""
    tr, _, roots, assignment_id = await _pressed(update, context)
    services = context.services
    issued = name = None
    async with services.db.writing() as session:
        old = await secretary_in_scope(session, assignment_id, roots)
        if old is not None:
            admin = await current_person(session, update)
            name = old.person.display_name
            issued = await invite_to(session, old.unit, old.role, by=admin, now=services.clock.now(),
                                     days=services.config.bot.invite_days, channel=AuditChannel.CHAT, replaces=old)
    if issued is None:
        await _refuse(update, tr)
        return
    await send_invite(update, context, tr, issued,
                      note=tr("people.hand_over_note", name=_name(tr, name or ""), unit=esc(issued.unit.name)))
    assert update.callback_query is not None
    await answer(update.callback_query)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("people", people), CallbackQueryHandler(show_page, pattern=PAGE),
            CallbackQueryHandler(show_card, pattern=CARD), CallbackQueryHandler(ask_revoke, pattern=ASK),
            CallbackQueryHandler(do_revoke, pattern=REVOKE), CallbackQueryHandler(hand_over, pattern=HAND_OVER)]


FEATURE = Feature(handlers=build_handlers, commands={"people": "people.commands.people"},
                  help=((Role.ADMIN, "people.help"),))
