"""/invite: an admin makes a single-use invite for a unit of their subtree, with its link and QR code.

`/invite UNIT_CODE ROLE` makes it at once; `/invite UNIT_CODE` asks for the role with buttons;
bare `/invite` opens the form at the admin's own unit: its child units as buttons (ten a page, ◀ ▶,
⬆️ back up) to walk down to the unit, then the role. Units can be many (a province's communes), so
typing the code stays the quick way. The buttons are stateless and every press is checked again
against the presser's admin scope (a forged one is refused and makes nothing):
  inv:home                          the admin's units (when they administer several)
  inv:u:<unit id>:<page>            the form at that unit, one page of its children
  inv:r:<unit id>:<s|c|a>           make the invite for that unit and role

The reply gives the code alone on its own line (to copy, or to read out over the phone), the
t.me link and, as a photo, the link's QR code to print or show on a screen. Same code, hashing and
expiry as the command line's `invite` ([bot] invite_days); each invite is an audit entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from core.i18n import Translator
from handlers.common import answer, cached_person, current_person, edit_in_place, esc, paging_row, reply, translator
from handlers.context import BotContext, Feature
from models.entities import AuditChannel, Person, Role, Unit
from models.invites import IssuedInvite, invite_to, parse_role
from models.people import Scope
from models.roster import outermost
from models.units import children_of, is_within, unit_by_code, unit_by_id
from reports.qr import qr_png

UNITS_PER_PAGE = 10
ROLE_LETTER = {Role.SECRETARY: "s", Role.COMMITTEE: "c", Role.ADMIN: "a"}
LETTER_ROLE = {letter: role for role, letter in ROLE_LETTER.items()}
# What an admin may type as the role: the CLI's words, and the Vietnamese ones without diacritics.
ROLE_WORDS = {"bithu": Role.SECRETARY, "uyvien": Role.COMMITTEE, "capuy": Role.COMMITTEE, "quantri": Role.ADMIN}

HOME, UNIT, MAKE = r"^inv:home$", r"^inv:u:\d{1,18}:\d{1,4}$", r"^inv:r:\d{1,18}:[sca]$"


def admin_units(person: Person) -> list[Unit]:
    """Return the units whose subtrees the person administers (none: not an admin)."""
    return outermost(Scope(person).units(Role.ADMIN))


def may_invite(roots: Sequence[Unit], unit: Unit) -> bool:
    """Tell whether `unit` lies in the subtree of one of the admin's units."""
    return any(is_within(unit.path, root.path) for root in roots)


def role_name(tr: Translator, role: Role) -> str:
    """Return the role as said inside a sentence ("bí thư chi bộ")."""
    return tr(f"invites.role_{role.value}")


def invite_link(username: str | None, code: str) -> str | None:
    """Return the t.me deep link that registers with `code`, when the bot's username is known."""
    return f"https://t.me/{username}?start={code}" if username else None


def _local(context: BotContext, at: datetime) -> str:
    return at.astimezone(context.services.config.bot.tz).strftime("%d/%m/%Y %H:%M")


async def send_invite(update: Update, context: BotContext, tr: Translator, issued: IssuedInvite,
                      note: str | None = None) -> None:
    """Send the invite: the code alone on its line, the link, then the link's QR code as a photo."""
    chat = update.effective_chat
    assert chat is not None
    link = invite_link(context.bot.username, issued.code)
    lines = [tr("invites.made", role=role_name(tr, issued.role), unit=esc(issued.unit.name)),
             tr("invites.expires", expires=_local(context, issued.expires_at)), "",
             tr("invites.code_intro"), f"<code>{issued.code}</code>", ""]
    lines.append(tr("invites.link", link=link) if link else tr("invites.no_link", code=issued.code))
    if note:
        lines.extend(["", note])
    await reply(update, context, "\n".join(lines))
    if link:
        await context.bot.send_photo(chat.id, photo=qr_png(link), caption=tr(
            "invites.qr_caption", role=role_name(tr, issued.role), unit=esc(issued.unit.name)))


def short_name(name: str, limit: int = 30) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def home_view(tr: Translator, roots: Sequence[Unit]) -> tuple[str, InlineKeyboardMarkup]:
    """Return the choice between the admin's own units (an admin of several subtrees)."""
    buttons = [[InlineKeyboardButton(short_name(u.name, 40), callback_data=f"inv:u:{u.id}:0")] for u in roots]
    return tr("invites.pick_home"), InlineKeyboardMarkup(buttons)


async def unit_view(session, tr: Translator, roots: Sequence[Unit], unit: Unit,  # type: ignore[no-untyped-def]
                    page: int) -> tuple[str, InlineKeyboardMarkup]:
    """Return the form at `unit`: the role buttons, a page of its children, ⬆️ up within the scope."""
    children = await children_of(session, unit)
    pages = max(1, -(-len(children) // UNITS_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = children[page * UNITS_PER_PAGE:(page + 1) * UNITS_PER_PAGE]
    lines = [tr("invites.form_header", unit=esc(unit.name), code=esc(unit.code)), tr("invites.form_pick_role")]
    if children:
        lines.append(tr("invites.form_children") if pages == 1 else tr(
            "invites.form_children_page", page=tr.number(page + 1), pages=tr.number(pages)))
    lines.append(tr("invites.form_type_code"))
    buttons = [[InlineKeyboardButton(tr(f"invites.button_{role.value}"), callback_data=f"inv:r:{unit.id}:{letter}")]
               for role, letter in ROLE_LETTER.items()]
    for pair in range(0, len(shown), 2):
        buttons.append([InlineKeyboardButton("📂 " + short_name(child.name), callback_data=f"inv:u:{child.id}:0")
                        for child in shown[pair:pair + 2]])
    buttons += paging_row(page, pages, tr("invites.button_previous"), tr("invites.button_next"),
                          lambda shown_page: f"inv:u:{unit.id}:{shown_page}")
    parent = await unit_by_id(session, unit.parent_id) if unit.parent_id is not None else None
    if parent is not None and may_invite(roots, parent):
        buttons.append([InlineKeyboardButton(tr("invites.button_up", unit=short_name(parent.name)),
                                             callback_data=f"inv:u:{parent.id}:0")])
    elif len(roots) > 1:
        buttons.append([InlineKeyboardButton(tr("invites.button_home"), callback_data="inv:home")])
    return "\n".join(lines), InlineKeyboardMarkup(buttons)


def _role_from(text: str) -> Role | None:
    word = text.strip().lower().replace("-", "").replace("_", "")
    return parse_role(text) or ROLE_WORDS.get(word)


async def invite(update: Update, context: BotContext) -> None:
    """Make the invite `/invite UNIT_CODE ROLE`, or open the form for what is missing."""
    assert update.message is not None
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    tr = translator(context, update, person)
    roots = admin_units(person)
    if not roots:
        await reply(update, context, tr("invites.admins_only"))
        return
    args = context.args or []
    if len(args) > 2:
        await reply(update, context, tr("invites.usage"))
        return
    role = _role_from(args[1]) if len(args) == 2 else None
    if len(args) == 2 and role is None:
        await reply(update, context, tr("invites.bad_role", role=esc(args[1][:32])))
        return
    services = context.services
    if role is not None:
        async with services.db.writing() as session:
            unit = await unit_by_code(session, args[0])
            if unit is None or not may_invite(roots, unit):
                issued = None
            else:
                admin = await current_person(session, update)
                issued = await invite_to(session, unit, role, by=admin, now=services.clock.now(),
                                         days=services.config.bot.invite_days, channel=AuditChannel.CHAT)
        if issued is None:
            await reply(update, context, tr("invites.unknown_unit", code=esc(args[0][:64])))
            return
        await send_invite(update, context, tr, issued)
        return
    async with services.db.reading() as session:
        if args:
            unit = await unit_by_code(session, args[0])
            if unit is None or not may_invite(roots, unit):
                await reply(update, context, tr("invites.unknown_unit", code=esc(args[0][:64])))
                return
            text, markup = await unit_view(session, tr, roots, unit, 0)
        elif len(roots) == 1:
            text, markup = await unit_view(session, tr, roots, roots[0], 0)
        else:
            text, markup = home_view(tr, roots)
    await reply(update, context, text, markup)


async def _pressed(update: Update, context: BotContext) -> tuple[CallbackQuery, Translator, list[Unit]]:
    query = update.callback_query
    assert query is not None and query.data is not None
    person = await cached_person(context, update)
    assert person is not None
    return query, translator(context, update, person), admin_units(person)


async def show_home(update: Update, context: BotContext) -> None:
    """Show the admin's own units to choose from."""
    query, tr, roots = await _pressed(update, context)
    if not roots:
        await answer(query, tr("invites.out_of_scope"), alert=True)
        return
    await edit_in_place(query, *home_view(tr, roots))
    await answer(query)


async def show_unit(update: Update, context: BotContext) -> None:
    """Show the form at the pressed unit, if it lies in the presser's admin scope."""
    query, tr, roots = await _pressed(update, context)
    _, _, unit_id, page = (query.data or "").split(":")
    async with context.services.db.reading() as session:
        unit = await unit_by_id(session, int(unit_id))
        view = await unit_view(session, tr, roots, unit, int(page)) if unit and may_invite(roots, unit) else None
    if view is None:
        await answer(query, tr("invites.out_of_scope"), alert=True)
        return
    await edit_in_place(query, *view)
    await answer(query)


async def make(update: Update, context: BotContext) -> None:
    """Make the invite the pressed role button names, if its unit lies in the presser's admin scope."""
    query, tr, roots = await _pressed(update, context)
    _, _, unit_id, letter = (query.data or "").split(":")
    services = context.services
    issued = None
    async with services.db.writing() as session:
        unit = await unit_by_id(session, int(unit_id))
        if unit is not None and may_invite(roots, unit):
            admin = await current_person(session, update)
            issued = await invite_to(session, unit, LETTER_ROLE[letter], by=admin, now=services.clock.now(),
                                     days=services.config.bot.invite_days, channel=AuditChannel.CHAT)
    if issued is None:
        await answer(query, tr("invites.out_of_scope"), alert=True)
        return
    await send_invite(update, context, tr, issued)
    await answer(query)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("invite", invite), CallbackQueryHandler(show_home, pattern=HOME),
            CallbackQueryHandler(show_unit, pattern=UNIT), CallbackQueryHandler(make, pattern=MAKE)]


FEATURE = Feature(handlers=build_handlers, commands={"invite": "invites.commands.invite"},
                  help=((Role.ADMIN, "invites.help"),))
