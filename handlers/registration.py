"""Registration with invite codes, the guard for unregistered people, /help and the command menus.

What a person can do is said in three places — the welcome, /help and their command menu — and all
three come from the features' data (handlers.context.Feature: help lines and commands, each with
its "who"), so they cannot drift apart. The default menu (every private chat) holds only what
someone unregistered can use; each registered person gets their own menu (BotCommandScopeChat) in
their language when they register or take a new role, and at start (bot.app.publish_commands).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from telegram import Bot, BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, BaseHandler, CommandHandler, TypeHandler

from core.i18n import Texts, Translator
from handlers.context import ANYONE, BotContext, Feature, HelpTarget, is_for
from handlers.common import answer, cached_person, current_person, esc, reply, translator
from models.attempts import note_failed_start, start_wait
from models.entities import Person, Role
from models.people import InviteRejected, Scope, reactivate, redeem_invite

logger = logging.getLogger(__name__)
LANGUAGES = ("vi", "en")  # the default menu's languages; "vi" is published without a language code

WELCOME = {Role.SECRETARY: "registration.welcome_secretary", Role.COMMITTEE: "registration.welcome_committee",
           Role.ADMIN: "registration.welcome_admin"}
ROLE_NAME = {Role.SECRETARY: "registration.role_secretary", Role.COMMITTEE: "registration.role_committee",
             Role.ADMIN: "registration.role_admin"}


def _is_start(update: Update) -> bool:
    message = update.message
    words = (message.text or "").split(maxsplit=1) if message else []
    return bool(words) and words[0].split("@")[0] == "/start"


async def guard(update: Update, context: BotContext) -> None:
    """Stop every update from someone unregistered (except /start) with a note on how to register."""
    if update.edited_message is not None:
        raise ApplicationHandlerStop  # an edited message is not a new answer (nor a new command)
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None:
        return
    if chat.type != ChatType.PRIVATE:
        # Progress, exports and reports hold personal data: never answered where others can read.
        if update.callback_query is not None:
            await update.callback_query.answer(translator(context, update)("registration.private_only"), show_alert=True)
        elif update.message is not None and (update.message.text or "").startswith("/"):
            await update.message.reply_text(translator(context, update)("registration.private_only"))
        raise ApplicationHandlerStop
    if _is_start(update):
        return
    person = await cached_person(context, update)
    if person is not None and person.assignments:  # a person whose roles were all revoked is a stranger again
        context.language = person.language  # every handler of this update speaks it (handlers.common.translator)
        if not person.active:  # they wrote again, so they unblocked the bot
            async with context.services.db.writing() as session:
                await reactivate(session, person.id)
        return
    tr = translator(context, update)
    await context.bot.send_message(chat.id, tr("registration.unregistered"))
    if update.callback_query is not None:
        await answer(update.callback_query)
    raise ApplicationHandlerStop


async def start(update: Update, context: BotContext) -> None:
    """Register with the code in `/start CODE`, or explain how to get one."""
    user = update.effective_user
    assert user is not None and update.message is not None
    code = context.args[0] if context.args else ""
    menu: list[BotCommand] | None = None
    async with context.services.db.writing() as session:
        person = await current_person(session, update)
        if not code:
            text = (help_text(context, person) if person and person.assignments
                    else translator(context, update)("registration.unregistered"))
        elif (minutes := await start_wait(session, user.id, context.services.clock.now())) is not None:
            text = translator(context, update, person)("security.start_wait", minutes=minutes)  # not even checked
        else:
            text, menu = await _register(context, update, session, code, person)
    await reply(update, context, text)
    if menu is not None:  # registered, or a new role: the menu follows (after the commit)
        await publish_menu(context.bot, user.id, menu)


async def _register(context: BotContext, update: Update, session, code: str,  # type: ignore[no-untyped-def]
                    person: Person | None) -> tuple[str, list[BotCommand] | None]:
    """Redeem the code; return the answer, and the person's new menu when they got a role."""
    user = update.effective_user
    assert user is not None
    try:
        async with session.begin_nested():
            person, assignment = await redeem_invite(
                session, code, user.id, user.full_name, translator(context, update).lang, context.services.clock.now()
            )
    except InviteRejected as rejected:
        await note_failed_start(session, user.id, context.services.clock.now())  # brute force: models.attempts
        tr = translator(context, update, person)
        text = tr("registration.code_" + rejected.reason)
        return (text if person else text + "\n\n" + tr("registration.unregistered")), None
    tr = translator(context, update, person)
    scope = Scope(person)
    lines = [tr(WELCOME[assignment.role], name=esc(user.first_name), unit=esc(assignment.unit.name)), "",
             tr("registration.you_can"), *can_do(context, tr, scope)]
    return "\n".join(lines), menu_of(features_of(context), context.services.texts, scope, person.language)


def features_of(context: BotContext) -> tuple[Feature, ...]:
    """Return the features registered on the application, in order."""
    return tuple(getattr(context.application, "features", ()))


def _first_specific(line: tuple[HelpTarget, str]) -> bool:
    return line[0] is None or line[0] == ANYONE


def can_do(context: BotContext, tr: Translator, scope: Scope) -> list[str]:
    """Return the help lines for this person: role-specific lines first, then what everyone can do."""
    seen: set[str] = set()
    lines = []
    for who, key in sorted(context.help_lines, key=_first_specific):
        if key not in seen and is_for(who, scope):
            seen.add(key)
            lines.append(tr(key, hours=context.services.config.bot.undo_hours))
    return lines


def help_text(context: BotContext, person: Person) -> str:
    """Return the help for this person's roles."""
    tr = translator(context, None, person)
    lines = [tr("registration.help_header", name=esc(person.display_name))]
    for a in person.assignments:
        lines.append(tr("registration.help_role_line", role=tr(ROLE_NAME[a.role]), unit=esc(a.unit.name)))
    lines.append("")
    lines.extend(can_do(context, tr, Scope(person)))
    return "\n".join(lines)


# The command menus ------------------------------------------------------------------------------


def menu_of(features: Iterable[Feature], texts: Texts, scope: Scope | None, lang: str) -> list[BotCommand]:
    """Return the menu of a person with this scope (None: someone unregistered), in `lang`."""
    return [BotCommand(name, texts.get(key, lang)) for feature in features for name, key in feature.commands.items()
            if feature.command_for(name, scope)]


async def publish_menu(bot: Bot, chat_id: int, menu: list[BotCommand]) -> bool:
    """Set one person's menu in their private chat; a refusal is logged, never raised (the menu is a convenience)."""
    try:
        await bot.set_my_commands(menu, scope=BotCommandScopeChat(chat_id))
    except TelegramError as error:
        logger.warning("Could not set a person's command menu (%s)", type(error).__name__)
        return False
    return True


async def publish_default_menu(bot: Bot, features: Sequence[Feature], texts: Texts) -> None:
    """Set the menu of every private chat (what someone unregistered can use) in Vietnamese and English."""
    for lang in LANGUAGES:
        await bot.set_my_commands(menu_of(features, texts, None, lang), scope=BotCommandScopeAllPrivateChats(),
                                  language_code=None if lang == "vi" else lang)


async def publish_menus(bot: Bot, features: Sequence[Feature], texts: Texts, people: Iterable[Person]) -> int:
    """Set each registered person's menu, one setMyCommands per chat (the Bot's rate limiter paces them);
    return how many were set."""
    done = 0
    for person in people:
        done += await publish_menu(bot, person.telegram_id, menu_of(features, texts, Scope(person), person.language))
    return done


async def show_help(update: Update, context: BotContext) -> None:
    """Send the commands this person can use."""
    assert update.message is not None
    person = await cached_person(context, update)
    assert person is not None  # the guard let only registered people through
    await reply(update, context, help_text(context, person))


def build_guard() -> BaseHandler:
    """Return the guard; bot.app registers it in a group before every feature."""
    return TypeHandler(Update, guard)


def build_handlers() -> list[BaseHandler]:
    """Return this feature's handlers."""
    return [CommandHandler("start", start), CommandHandler("help", show_help)]


FEATURE = Feature(handlers=build_handlers,
                  commands={"start": "registration.commands.start", "help": "registration.commands.help"},
                  help=((Role.SECRETARY, "registration.help_cancel"), (None, "registration.help_common")),
                  who={"start": ANYONE, "help": ANYONE})
