"""Drive the real PTB Application over real HTTP against the project's local Bot API server."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

import contextlib

from bot.app import AdmissionsApplication, build_application
from bot.lifecycle import running
from bot.polling import Poller
from core.clock import FixedClock
from core.config import BotSettings, Config, DatabaseSettings, TelegramSettings
from services.telegram import TelegramOutbox
from services.weekly import RunSummary
from services.weekly import run_weekly as run_weekly_service
from localapi.server import BotApiServer, BotApiState
from models.entities import Admission, Role, Target, UnitKind
from models.people import create_invite
from models.periods import Period
from models.units import UnitRow, load_units, unit_by_code
from models.updates import was_processed

TOKEN = "123456789:" + "A" * 35
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_NOW = datetime(2026, 7, 1, 9, 0, tzinfo=TZ)


def make_config(database_url: str, server: BotApiServer, **bot: Any) -> Config:
    """Return a config pointing the bot at the local server and the test database."""
    config = Config(
        telegram=TelegramSettings(token=TOKEN, base_url=server.base_url, base_file_url=server.base_file_url,
                                  bot_username=server.state.bot_username),
        database=DatabaseSettings(url=database_url),
    )
    if bot:
        config = replace(config, bot=replace(config.bot, **bot))
    return config


class BotHarness:
    """A running bot plus the fake server, with helpers that act as a Telegram user would."""

    def __init__(self, config: Config, server: BotApiServer, clock: FixedClock):
        self.config = config
        self.server = server
        self.api: BotApiState = server.state
        self.clock = clock
        self.application: AdmissionsApplication | None = None
        self.poller: Poller | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def sessions(self) -> Sessions:
        """Return the bot's database as tests open it: `sessions()` to read, `sessions.begin()` to write."""
        assert self.application is not None
        return Sessions(self.application)

    async def start(self) -> BotHarness:
        """Build and run the Application with long polling and the weekly jobs, as `run` does."""
        self.application = build_application(self.config, clock=self.clock)
        self._stack = contextlib.AsyncExitStack()
        self.poller = await self._stack.enter_async_context(
            running(self.application, poll=True, jobs=True, poll_timeout=1))
        return self

    async def stop(self) -> None:
        """Stop polling and shut down cleanly."""
        if self.application is None:
            return
        self.application = None
        await self._stack.aclose()

    async def crash(self) -> None:
        """Stop as abruptly as a test can: no final persistence flush beyond what already happened."""
        assert self.application is not None
        self.application.persistence = None  # shutdown would otherwise flush; kill -9 would not
        await self.stop()

    async def settle(self, update: dict, timeout: float = 10.0) -> None:
        """Wait until the bot has finished handling `update` (replies sent) and recorded it."""
        update_id = update["update_id"]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            handled = self.poller is not None and (self.poller.handled_up_to or 0) >= update_id
            async with self.sessions() as session:
                if handled and await was_processed(session, update_id):
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"update {update_id} not processed within {timeout} s")
            await asyncio.sleep(0.01)

    async def say(self, user_id: int, text: str) -> list[dict]:
        """Send `text` as the user and return what the bot sent or edited in that chat meanwhile."""
        mark = self.api.mark()
        await self.settle(self.api.push_text(user_id, text))
        return self.replies(user_id, mark)

    async def tap(self, user_id: int, label_prefix: str, message_id: int | None = None) -> list[dict]:
        """Tap the newest button whose label starts with `label_prefix`; return the bot's answers."""
        found_id, data = self.api.find_button(user_id, label_prefix, message_id)
        mark = self.api.mark()
        await self.settle(self.api.push_callback(user_id, found_id, data))
        return self.replies(user_id, mark)

    async def report_one_line(self, user_id: int, line: str) -> list[dict]:
        """Send a one-line /report, answer the card's Youth Union question «Không», tap ✅; return ✅'s answers."""
        await self.say(user_id, line)
        await self.tap(user_id, "Không")
        return await self.tap(user_id, "✅")

    def replies(self, chat_id: int, since: int) -> list[dict]:
        """Return the texts (and markups) the bot sent or edited in this chat since `since`."""
        out = []
        for call in self.api.calls[since:]:
            if call.chat_id == chat_id and call.method.lower() in (
                "sendmessage", "editmessagetext", "sendphoto", "senddocument"
            ):
                out.append(call.params)
        return out

    def last_text(self, chat_id: int) -> str:
        """Return the text of the bot's newest message in the chat, as it stands."""
        message = self.api.last_message(chat_id)
        assert message is not None, "the bot has sent nothing to this chat"
        return message.get("text") or message.get("caption") or ""

    async def register(self, user_id: int, unit_code: str, role: Role, first_name: str = "Test") -> list[dict]:
        """Make an invite like the CLI would and redeem it with /start through the chat."""
        self.api.add_user(user_id, first_name)
        async with self.sessions.begin() as session:
            unit = await unit_by_code(session, unit_code)
            assert unit is not None
            code = await create_invite(session, unit, role, self.clock.now(), 14)
        return await self.say(user_id, f"/start {code}")

    async def counted_admissions(self) -> list[Admission]:
        """Return the admissions that count (not withdrawn)."""
        async with self.sessions() as session:
            return list(await session.scalars(select(Admission).where(Admission.withdrawn_at.is_(None))))

    async def all_admissions(self) -> list[Admission]:
        """Return every stored admission, withdrawn included."""
        async with self.sessions() as session:
            return list(await session.scalars(select(Admission)))


class Sessions:
    """The bot's database as the tests open it (the bot itself uses db.reading() / db.writing())."""

    def __init__(self, application: AdmissionsApplication) -> None:
        self.db = application.services.db

    def __call__(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.db.reading()

    def begin(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.db.writing()


def fail_first_record(monkeypatch) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """Make the next record of processed updates (bot.app's mark_processed) fail once, as an unreachable
    database would; return the list of the update ids that failure refused (filled when it happens)."""
    import bot.app as bot_app

    real, failures = bot_app.mark_processed, []

    async def flaky(db, update_ids, now):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(list(update_ids))
            raise OSError("database unreachable for a moment")
        await real(db, update_ids, now)

    monkeypatch.setattr(bot_app, "mark_processed", flaky)
    return failures


async def run_weekly(application: AdmissionsApplication, kind: str, as_of: date | None = None,
                     **options: Any) -> RunSummary:
    """Run a weekly run now through the application's services and Bot, as `remind-now` does."""
    return await run_weekly_service(application.services, TelegramOutbox(application.bot), kind, as_of, **options)


# A small world modelled on the seed article: a district, two communes, village cells.
WORLD_UNITS = [
    UnitRow(2, "PN", "Huyện ủy Pác Nặm", None, UnitKind.DISTRICT),
    UnitRow(3, "BT", "Đảng ủy xã Bộc Bố", "PN", UnitKind.COMMITTEE),
    UnitRow(4, "NN", "Đảng ủy xã Nhạn Môn", "PN", UnitKind.COMMITTEE),
    UnitRow(5, "NL", "Chi bộ thôn Nà Lạn", "BT", UnitKind.CELL, ("Nà Lạn",)),
    UnitRow(6, "KP", "Chi bộ thôn Khuổi Pết", "BT", UnitKind.CELL, ("Khuổi Pết", "Nà Ngòa")),
    UnitRow(7, "PC", "Chi bộ thôn Pác Cáp", "NN", UnitKind.CELL, ("Pác Cáp",)),
]
WORLD_TARGETS = {("PN", 2026, 2026): 90, ("PN", 2025, 2030): 400, ("BT", 2026, 2026): 10, ("NN", 2026, 2026): 8,
                 ("NL", 2026, 2026): 4, ("KP", 2026, 2026): 3, ("PC", 2026, 2026): 5}


async def seed_world(sessions) -> None:  # type: ignore[no-untyped-def]
    """Load the small test world: units and targets."""
    async with sessions.begin() as session:
        await load_units(session, WORLD_UNITS)
        for (code, start, end), value in WORLD_TARGETS.items():
            unit = await unit_by_code(session, code)
            session.add(Target.of(unit.id, Period.parse(f"{start}-{end}", BotSettings.term_start), value))


async def add_history(sessions, code: str, count: int, on: date, name: str = "Lịch Sử") -> None:  # type: ignore[no-untyped-def]
    """Add `count` imported admissions to a unit on a date."""
    from models.admissions import AdmissionDraft, imported_admission
    from models.entities import Sex

    async with sessions.begin() as session:
        unit = await unit_by_code(session, code)
        for i in range(count):
            draft = AdmissionDraft(unit.id, f"{name} {chr(65 + i % 26)}", 1990, Sex.MALE, on)
            session.add(imported_admission(unit, draft, datetime(2026, 1, 1, tzinfo=TZ)))


__all__ = ["BotHarness", "DEFAULT_NOW", "TZ", "add_history", "make_config", "run_weekly", "seed_world"]


async def send_document(bot: BotHarness, user_id: int, filename: str, content: bytes,
                        mime_type: str | None = None) -> list[dict]:
    """Send a document as the user (the fake serves getFile and the download like Telegram); return
    what the bot sent or edited in that chat meanwhile."""
    mark = bot.api.mark()
    await bot.settle(bot.api.push_document(user_id, filename, content, mime_type=mime_type))
    return bot.replies(user_id, mark)


def documents_sent(bot: BotHarness, chat_id: int, since: int = 0) -> list[tuple[str, bytes]]:
    """Return (filename, bytes) of the documents the bot sent to the chat since `since` (api.mark())."""
    out = []
    for call in bot.api.calls_to("sendDocument", chat_id, since):
        file_id = call.response["result"]["document"]["file_id"]
        filename, _, content = bot.api.files[file_id]
        out.append((filename, content))
    return out
