"""The typed callback context handlers receive, and the shape of a feature module.

Every callback is typed `(update: Update, context: BotContext)`; `context.services` is the one
`services.runtime.Services` object built in bot.app.build_application.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from telegram import Update
from telegram.ext import Application, BaseHandler, CallbackContext, ExtBot

from models.entities import Role
from models.people import Scope
from services.runtime import Services
from services.telegram import ServicesApplication, services_of

# Who a help line or a menu command is for: a role, a test of the person's scope, None for every
# registered person, or ANYONE for people not registered yet too (the default menu: /start, /help).
ANYONE = "anyone"
HelpTarget = Role | Callable[[Scope], bool] | Literal["anyone"] | None


def is_for(who: HelpTarget, scope: Scope | None) -> bool:
    """Tell whether a help line or a command is for this person (`scope` None: someone unregistered)."""
    if who == ANYONE:
        return True
    if scope is None:
        return False
    if who is None:
        return True
    if callable(who):
        return who(scope)
    return who in scope.roles


@dataclass(frozen=True)
class Feature:
    """What one handlers/ module gives bot.app: handlers, menu commands, help lines, start-up work."""

    handlers: Callable[[], list[BaseHandler[Any, Any, Any]]]
    commands: Mapping[str, str] = field(default_factory=dict)  # command -> catalog key of its menu text
    help: tuple[tuple[HelpTarget, str], ...] = ()  # (who, catalog key)
    on_start: Callable[[Application[Any, Any, Any, Any, Any, Any]], Awaitable[None]] | None = None
    # command -> who has it in their menu; a command not named here is for whoever the feature's
    # help lines are for, so the menu and /help come from the same data (tests/test_menus.py).
    who: Mapping[str, HelpTarget] = field(default_factory=dict)

    def command_for(self, command: str, scope: Scope | None) -> bool:
        """Tell whether `command` belongs in the menu of this person (`scope` None: someone unregistered)."""
        if command in self.who:
            return is_for(self.who[command], scope)
        return any(is_for(who, scope) for who, _ in self.help)


class ChatApplication(ServicesApplication):
    """The Application with its services and the features registered on it (bot.app builds it)."""

    def __init__(self, *, features: tuple[Feature, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.features = features

    async def in_turn(self, update: Update, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` about `update`'s chat, not as an update (a conversation's timeout), then flush.

        bot.app runs it in the chat's turn across processes, with the sender's state read afresh."""
        await work()
        user = update.effective_user
        if user is not None:
            self.mark_data_for_update_persistence(user_ids=[user.id])
        await self.update_persistence()


class BotContext(CallbackContext[ExtBot[None], dict[str, Any], dict[str, Any], dict[str, Any]]):
    """CallbackContext with the project's services."""

    def __init__(self, application: Application, chat_id: int | None = None,  # type: ignore[type-arg]
                 user_id: int | None = None):
        super().__init__(application=application, chat_id=chat_id, user_id=user_id)
        # The registered sender's stored language, set by the guard (handlers/registration.py);
        # one context serves all the handlers of one update.
        self.language: str | None = None

    @property
    def services(self) -> Services:
        """Return the services of the application."""
        return services_of(self.application)

    @property
    def help_lines(self) -> list[tuple[HelpTarget, str]]:
        """Return every feature's help lines, in the order the features are registered."""
        application = self.application
        features = application.features if isinstance(application, ChatApplication) else ()
        return [line for feature in features for line in feature.help]

