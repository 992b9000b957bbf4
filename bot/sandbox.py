"""The local sandbox: the fake Bot API, the real bot pointed at it, and a web chat, in one process.

    sandbox = Sandbox(config, port=8080)
    await sandbox.start()      # fresh demo database, bot polling the fake, page at sandbox.url
    ...
    await sandbox.stop()

The bot is the real Application from bot.app, with `base_url` pointed at a
:class:`~localapi.server.BotApiServer` on a free loopback port. The web page (localapi/web/) talks
JSON to a small standard-library HTTP server on `port`; its handlers run in threads and hand any
database or bot work to the bot's event loop. Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
import contextlib
import dataclasses
import json
import logging
import mimetypes
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

from sqlalchemy import MetaData, update
from sqlalchemy.engine import make_url
from bot.app import AdmissionsApplication, build_application, refresh_menus
from bot.lifecycle import running
from core.clock import Clock, ShiftedClock
from core.config import Config, DatabaseSettings, TelegramSettings
from localapi.demo import PEOPLE, UNITS, seed_demo
from localapi.server import BotApiServer, BotApiState
from models.crypto import Keys, load_keys, write_key_file
from models.db import create_engine_for, create_sync_engine_for, migrate, session_factory
from models.entities import Person
from services.telegram import TelegramOutbox
from services.weekly import run_weekly

__all__ = ["Sandbox", "SandboxError", "SANDBOX_TOKEN", "recreate_database"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A token of the right shape that only the local fake accepts; it never leaves this machine.
SANDBOX_TOKEN = "1000000001:SANDBOX_local_fake_token_not_for_telegram"
SANDBOX_KEY_NAME = "sandbox-demo.key"  # the demo database's key, in the folder of [security] key_file
BOT_USERNAME = "sandbox_ketnap_bot"
WEB_DIR = Path(__file__).resolve().parent.parent / "localapi" / "web"  # the page, beside the fake Bot API
RUN_KINDS = ("reminder", "digest")
LANGUAGES = ("vi", "en")
_STATIC = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css",
           "/i18n.js": "i18n.js"}
_FILE_ROUTE = re.compile(r"^/api/file/(?P<file_id>[A-Za-z0-9_-]{1,128})$")
_RUN_ROUTE = re.compile(r"^/api/run/(?P<kind>[a-z]+)$")


class SandboxError(Exception):
    """The sandbox cannot do what was asked; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, status: int = 400, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.status = status
        self.detail = detail


def recreate_database(url: str, keys: Keys | None = None) -> None:
    """Drop everything in the database at `url` (a SQLite file is deleted) and migrate it afresh (sealed with `keys`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        base = Path(parsed.database).expanduser()
        for suffix in ("", "-wal", "-shm", "-journal"):
            base.with_name(base.name + suffix).unlink(missing_ok=True)
    else:
        engine = create_sync_engine_for(url, keys)
        try:
            with engine.begin() as conn:
                existing = MetaData()
                existing.reflect(conn)
                existing.drop_all(conn)
        finally:
            engine.dispose()
    migrate(url, keys)


def seed_moment(config: Config) -> datetime:
    """Return now's time of day on 30 June of the current year, in the bot's timezone."""
    now = datetime.now(config.bot.tz)
    return now.replace(month=6, day=30)


def same_database(first: str, second: str) -> bool:
    """Tell whether two URLs name the same database (SQLite files compared by resolved path)."""
    a, b = make_url(first), make_url(second)
    if a.get_backend_name() == b.get_backend_name() == "sqlite" and a.database and b.database:
        return Path(a.database).expanduser().resolve() == Path(b.database).expanduser().resolve()
    return a.set(drivername=a.get_backend_name()) == b.set(drivername=b.get_backend_name())


class Sandbox:
    """The fake Bot API, the real bot and the web chat, started and stopped together."""

    def __init__(self, config: Config, port: int, host: str = "127.0.0.1", clock: Clock | None = None,
                 real_date: bool = False) -> None:
        """Prepare (nothing runs until :meth:`start`); `port` 0 picks a free one.

        The sandbox's clock stands at 30 June of the current year (the seed article's mid-year
        moment: 23/90 is then half a year's work) and runs on from there, unless `real_date`."""
        self.config = config
        self.host = host
        self.clock_kind = "real" if real_date or clock is not None else "seed"
        self.clock = clock or (Clock() if real_date else ShiftedClock(seed_moment(config)))
        self.state = BotApiState(bot_username=BOT_USERNAME)
        self.api = BotApiServer(self.state, host=host)
        self.application: AdmissionsApplication | None = None
        self._running: contextlib.AsyncExitStack | None = None  # bot.lifecycle.running while the bot runs
        self.language = "vi"
        self._port = port
        self._web: _WebServer | None = None
        self._web_thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._taps: dict[str, int] = {}  # callback query id -> user id, to show the bot's answers
        self._taps_lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle

    @property
    def port(self) -> int:
        """The web page's port (the requested one before start)."""
        return self._web.server_address[1] if self._web else self._port

    @property
    def url(self) -> str:
        """The web page's address."""
        return f"http://{self.host}:{self.port}/"

    def today(self) -> date:
        """Return the sandbox's today in the bot's timezone."""
        return self.clock.today(self.config.bot.tz)

    @property
    def database_url(self) -> str:
        """The sandbox's own database."""
        return self.config.sandbox.database_url

    @property
    def key_file(self) -> Path:
        """The demo database's own key (beside the real one, never the real one), made when missing.

        The sandbox's database is made afresh at every start, so its key guards nothing that lasts;
        it is a file only so that the demo runs exactly the bot's code path, sealed like production."""
        path = self.config.security.key_file.with_name(SANDBOX_KEY_NAME)
        if not path.exists():
            write_key_file(path)
        return path

    def bot_config(self) -> Config:
        """Return the configuration the real bot runs with: the fake server, the sandbox database and its key."""
        telegram = TelegramSettings(token=SANDBOX_TOKEN, base_url=self.api.base_url,
                                    base_file_url=self.api.base_file_url, bot_username=BOT_USERNAME)
        return replace(self.config, telegram=telegram, database=DatabaseSettings(url=self.database_url),
                       security=replace(self.config.security, key_file=self.key_file))

    async def start(self) -> Sandbox:
        """Bind the web port (OSError if taken), start the fake API, seed the database, start the bot."""
        if same_database(self.database_url, self.config.database.url):
            raise SandboxError("same_database", detail=self.database_url)
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._web = _WebServer((self.host, self._port), self)
        try:
            self.api.start()
            await self._fresh_world()
            await self._start_bot()
        except BaseException:
            self._web.server_close()
            self._web = None
            self.api.stop()
            raise
        self._web_thread = threading.Thread(target=self._web.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"sandbox-web:{self.port}", daemon=True)
        self._web_thread.start()
        logger.info("Sandbox web chat at %s; fake Bot API at %s", self.url, self.api.base_url)
        return self

    async def stop(self) -> None:
        """Stop the web page, the bot and the fake API."""
        web, self._web = self._web, None
        if web is not None:
            self._port = web.server_address[1]
            await asyncio.to_thread(web.shutdown)
            web.server_close()
        await self._stop_bot()
        self.api.stop()

    async def reset(self) -> None:
        """Stop the bot, recreate and re-seed the sandbox database, clear the chats, start again."""
        assert self._lock is not None
        async with self._lock:
            await self._stop_bot()
            await self._fresh_world()
            await self._start_bot()

    async def _fresh_world(self) -> None:
        """Recreate the database with the demo world and the demo people's chats (emptied)."""
        keys = load_keys(self.bot_config().security.key_file)  # the sandbox bot's key, as Services.build reads it
        await asyncio.to_thread(recreate_database, self.database_url, keys)
        engine = create_engine_for(self.database_url, keys=keys)
        try:
            async with session_factory(engine).begin() as session:
                await seed_demo(session, self.clock.today(self.config.bot.tz), self.clock.now(),
                                term_start=self.config.bot.term_start, invite_days=self.config.bot.invite_days)
                if self.language != "vi":
                    await session.execute(update(Person).values(language=self.language))
        finally:
            await engine.dispose()
        self.state.reset()
        with self._taps_lock:
            self._taps.clear()
        for person in PEOPLE:
            self.state.add_user(person.telegram_id, person.name, "vi")

    async def _start_bot(self) -> None:
        """Build and run the real Application, polling the fake server (bot.lifecycle, as `run` does)."""
        application = build_application(self.bot_config(), clock=self.clock)
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(running(application, poll=True, jobs=True, poll_timeout=10))
        self._running, self.application = stack, application

    async def _stop_bot(self) -> None:
        """Stop polling and shut the Application down."""
        stack, self._running = self._running, None
        self.application = None
        if stack is not None:
            await stack.aclose()

    # ------------------------------------------------------------------ what the page can do

    def people(self) -> list[dict[str, Any]]:
        """Return the demo people: fake Telegram id, name, role and unit."""
        names = {row.code: row.name for row in UNITS}
        return [{"id": p.telegram_id, "name": p.name, "role": p.role.value, "unit": names[p.unit_code]}
                for p in PEOPLE]

    def _person(self, user_id: Any) -> int:
        """Return user_id as a demo person's id, or raise SandboxError."""
        if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id not in {p.telegram_id for p in PEOPLE}:
            raise SandboxError("unknown_person", 404)
        return user_id

    def chat(self, user_id: Any) -> dict[str, Any]:
        """Return both sides of a person's chat and the bot's answers to their button taps."""
        user_id = self._person(user_id)
        with self._taps_lock:
            mine = [query_id for query_id, owner in self._taps.items() if owner == user_id]
        answers = [{"id": query_id, **self.state.callback_answers[query_id]}
                   for query_id in mine if query_id in self.state.callback_answers]
        return {"history": self.state.history(user_id), "answers": [a for a in answers if a.get("text")]}

    def send(self, user_id: Any, text: Any) -> dict[str, Any]:
        """Write `text` to the bot as the person."""
        user_id = self._person(user_id)
        if not isinstance(text, str) or not text.strip() or len(text) > 4096:
            raise SandboxError("bad_text")
        update = self.state.push_text(user_id, text.strip())
        return {"update_id": update["update_id"]}

    def tap(self, user_id: Any, message_id: Any, data: Any) -> dict[str, Any]:
        """Tap the inline button with callback `data` under the bot's message `message_id`."""
        user_id = self._person(user_id)
        if not isinstance(message_id, int) or not isinstance(data, str):
            raise SandboxError("bad_button")
        message = next((m for m in self.state.messages(user_id) if m["message_id"] == message_id), None)
        buttons = [b for row in ((message or {}).get("reply_markup") or {}).get("inline_keyboard") or [] for b in row]
        if not any(b.get("callback_data") == data for b in buttons):
            raise SandboxError("bad_button", 404)
        update = self.state.push_callback(user_id, message_id, data)
        with self._taps_lock:
            self._taps[update["callback_query"]["id"]] = user_id
        return {"update_id": update["update_id"]}

    def commands(self, lang: str, user: int | None = None) -> list[dict]:
        """Return the menu a demo person sees in `lang` (their own chat's menu first, as Telegram resolves
        it), or the default menu for private chats without a person."""
        code = "" if lang == "vi" else lang
        if user is not None:
            return self.state.commands_for(self._person(user), code)
        for scope, language in (({"type": "all_private_chats"}, code), ({"type": "all_private_chats"}, ""),
                                (None, code), (None, "")):
            commands = self.state.get_commands(language, scope)
            if commands:
                return commands
        return []

    def file(self, file_id: str) -> tuple[str, str, bytes]:
        """Return (filename, mime type, bytes) of a file the bot sent."""
        found = self.state.files.get(file_id)
        if found is None:
            raise SandboxError("unknown_file", 404)
        return found

    async def set_language(self, lang: Any) -> None:
        """Make the demo people use `lang` with the bot from now on (the page follows it too)."""
        if lang not in LANGUAGES:
            raise SandboxError("bad_language")
        assert self._lock is not None
        async with self._lock:
            self.language = lang
            if self.application is not None:
                async with self.application.services.db.writing() as session:
                    await session.execute(update(Person).values(language=lang))
                await refresh_menus(self.application)  # each person's menu follows their language

    async def run_now(self, kind: str) -> dict[str, Any]:
        """Run the weekly reminder or digest now, with the same code as `remind-now`."""
        if kind not in RUN_KINDS:
            raise SandboxError("bad_kind", 404)
        assert self._lock is not None
        async with self._lock:
            if self.application is None:
                raise SandboxError("not_running", 503)
            services = self.application.services
            summary = await run_weekly(services, TelegramOutbox(self.application.bot), kind)
        reason = summary.nobody_reason
        nobody = services.texts.get(f"weekly.nobody_{reason}", self.language) if reason else None
        return json.loads(json.dumps({**dataclasses.asdict(summary), "nobody_reason": reason, "nobody_text": nobody},
                                     default=str))

    def call(self, work: Callable[[], Awaitable[T]], timeout: float = 120.0) -> T:
        """Run a coroutine on the bot's event loop from a web thread and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work(), self._loop).result(timeout)  # type: ignore[arg-type]


class _WebServer(ThreadingHTTPServer):
    """The web page's HTTP server; knows its sandbox."""

    daemon_threads = True
    allow_reuse_address = True  # TIME_WAIT after a restart is fine; a port someone listens on still fails

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        """Bind to address (raises OSError if taken)."""
        self.sandbox = sandbox
        super().__init__(address, _WebHandler)


class _WebHandler(BaseHTTPRequestHandler):
    """Static files of localapi/web/ and the JSON API the page uses."""

    server: _WebServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from base
        """Stay quiet (requests carry chat text)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        """Serve the page, its files and the read-only API."""
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        """Serve the API calls that change something."""
        self._handle("POST")

    def _handle(self, method: str) -> None:
        """Check the Host header, route, and answer errors as JSON."""
        if not self._local_host():
            self._json(403, {"error": "forbidden_host"})
            return
        try:
            self._route(method, urlsplit(self.path))
        except SandboxError as error:
            self._json(error.status, {"error": error.reason, "detail": error.detail})
        except Exception:  # noqa: BLE001 - the page gets a short answer, the log the details
            logger.exception("Sandbox web request failed: %s %s", method, urlsplit(self.path).path)
            self._json(500, {"error": "internal"})

    def _local_host(self) -> bool:
        """Accept only requests addressed to this machine (no DNS rebinding)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost", "::1", "")

    def _route(self, method: str, url: Any) -> None:
        """Dispatch one request."""
        sandbox = self.server.sandbox
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if method == "GET":
            if path in _STATIC:
                self._static(_STATIC[path])
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon", {})
            elif path == "/api/people":
                self._json(200, {"people": sandbox.people(), "lang": sandbox.language, "bot": BOT_USERNAME,
                                 "timezone": sandbox.config.bot.timezone, "today": sandbox.today().isoformat(),
                                 "clock": sandbox.clock_kind})
            elif path == "/api/chat":
                self._json(200, sandbox.chat(_int(query.get("user"))))
            elif path == "/api/commands":
                lang = query.get("lang") if query.get("lang") in LANGUAGES else sandbox.language
                self._json(200, {"lang": lang, "commands": sandbox.commands(lang, _int(query.get("user")))})
            elif match := _FILE_ROUTE.match(path):
                self._file(*sandbox.file(match["file_id"]), inline=query.get("inline") == "1")
            else:
                self._json(404, {"error": "not_found"})
            return
        body = self._body()
        if path == "/api/send":
            self._json(200, sandbox.send(body.get("user"), body.get("text")))
        elif path == "/api/tap":
            self._json(200, sandbox.tap(body.get("user"), body.get("message_id"), body.get("data")))
        elif path == "/api/reset":
            sandbox.call(sandbox.reset)
            self._json(200, {"ok": True})
        elif path == "/api/lang":
            sandbox.call(lambda: sandbox.set_language(body.get("lang")))
            self._json(200, {"ok": True, "lang": sandbox.language})
        elif match := _RUN_ROUTE.match(path):
            kind = match["kind"]
            self._json(200, {"ok": True, "kind": kind, "result": sandbox.call(lambda: sandbox.run_now(kind))})
        else:
            self._json(404, {"error": "not_found"})

    def _body(self) -> dict[str, Any]:
        """Read a JSON object body; only application/json is accepted (no cross-site form posts)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            raise SandboxError("json_required", 415)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise SandboxError("bad_json") from None
        if not isinstance(body, dict):
            raise SandboxError("bad_json")
        return body

    def _static(self, name: str) -> None:
        """Send one file of localapi/web/."""
        content = (WEB_DIR / name).read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._send(200, content, f"{kind}; charset=utf-8", {"Cache-Control": "no-store"})

    def _file(self, filename: str, mime_type: str, content: bytes, inline: bool) -> None:
        """Send a file the bot sent: images may be shown inline, anything else is a download."""
        shown_inline = inline and mime_type.startswith("image/") and "svg" not in mime_type
        disposition = "inline" if shown_inline else "attachment"
        headers = {"Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename)}"}
        self._send(200, content, mime_type if shown_inline else (mime_type or "application/octet-stream"), headers)

    def _json(self, status: int, payload: Any) -> None:
        """Send a JSON answer."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store"})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        """Write a complete response."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


def _int(value: str | None) -> int | None:
    """Return a decimal string as int, else None."""
    return int(value) if value and re.fullmatch(r"\d{1,15}", value) else None


async def serve(config: Config, port: int, on_ready: Callable[[Sandbox], None], real_date: bool = False) -> None:
    """Run the sandbox until Ctrl+C (SIGINT) or SIGTERM; call on_ready once it is up."""
    import signal

    sandbox = await Sandbox(config, port, real_date=real_date).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform / not the main thread
            pass
    try:
        on_ready(sandbox)
        await stop.wait()
    finally:
        await sandbox.stop()
