"""Registration with invite codes, the guard for unregistered people, and /help."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, BaseHandler, CommandHandler, TypeHandler

from handlers.context import BotContext, Feature
from handlers.common import answer, cached_person, current_person, esc, reply, translator
from models.entities import Person, Role
from models.people import InviteRejected, Scope, reactivate, redeem_invite

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
    if person is not None:
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
    async with context.services.db.writing() as session:
        person = await current_person(session, update)
        if not code:
            text = help_text(context, person) if person else translator(context, update)("registration.unregistered")
        else:
            text = await _register(context, update, session, code, person)
    await reply(update, context, text)


async def _register(context: BotContext, update: Update, session, code: str, person: Person | None) -> str:  # type: ignore[no-untyped-def]
    user = update.effective_user
    assert user is not None
    try:
        async with session.begin_nested():
            person, assignment = await redeem_invite(
                session, code, user.id, user.full_name, translator(context, update).lang, context.services.clock.now()
            )
    except InviteRejected as rejected:
        tr = translator(context, update, person)
        text = tr("registration.code_" + rejected.reason)
        return text if person else text + "\n\n" + tr("registration.unregistered")
    tr = translator(context, update, person)
    return tr(WELCOME[assignment.role], name=esc(user.first_name), unit=esc(assignment.unit.name),
              hours=context.services.config.bot.undo_hours)


def help_text(context: BotContext, person: Person) -> str:
    """Return the help for this person's roles."""
    tr = translator(context, None, person)
    scope = Scope(person)
    lines = [tr("registration.help_header", name=esc(person.display_name))]
    for a in person.assignments:
        lines.append(tr("registration.help_role_line", role=tr(ROLE_NAME[a.role]), unit=esc(a.unit.name)))
    lines.append("")
    # Role-specific lines first, then what everyone can do. A line is for a role, for whoever
    # passes a test of their scope (a callable), or for everyone (None).
    for who, key in sorted(context.help_lines, key=lambda line: line[0] is None):
        if who is None or (who(scope) if callable(who) else who in scope.roles):
            lines.append(tr(key, hours=context.services.config.bot.undo_hours))
    return "\n".join(lines)


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
                  help=((None, "registration.help_common"),))
