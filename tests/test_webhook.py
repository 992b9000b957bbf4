"""Webhook mode end to end over real HTTP: the fake Bot API POSTs updates to the bot like Telegram does.

The bot answers a POST only after the update was handled: the fake drops an update only on a 2xx
answer, so "delivered" below means "handled". A wrong or missing secret token is 401 and nothing
is processed; a body that is not an Update is 400; /healthz tells the database and the scheduler
role; a `kill -9` mid-update makes the fake deliver it again to the restarted process, which
saves the report once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_application
from bot.lifecycle import AlreadyRunning, running
from bot.webhook import WebhookServer
from core.config import WebhookSettings
from localapi.server import BotApiServer
from models.db import create_engine_for, session_factory
from models.entities import Role
from models.updates import was_processed
from tests.harness import BotHarness, make_config, seed_world
from tests.test_kill9 import UNITS, USER, _cli, _start, _tap

SECRET = "s3cret_token-for-tests"


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post(port: int, path: str, body: bytes, secret: str | None) -> int:
    """POST `body` to the bot's listener as Telegram would; return the HTTP status."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET a JSON resource of the listener; return (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


class WebhookHarness(BotHarness):
    """The harness bot, receiving by webhook instead of polling."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.port = free_port()
        self.config = replace(self.config, webhook=WebhookSettings(
            url=f"http://127.0.0.1:{self.port}/telegram", listen="127.0.0.1", port=self.port, secret_token=SECRET))
        self.listener: WebhookServer | None = None

    async def start(self) -> WebhookHarness:
        """Run the Application in webhook mode with the weekly jobs, as `run` does."""
        self.application = build_application(self.config, clock=self.clock)
        self._stack = contextlib.AsyncExitStack()
        receiver = await self._stack.enter_async_context(running(self.application, poll=False, webhook=True))
        assert isinstance(receiver, WebhookServer)
        self.listener = receiver
        return self

    async def settle(self, update: dict, timeout: float = 10.0) -> None:
        """Wait until the fake got a 2xx for `update` (the bot answers only after handling it)."""
        update_id = update["update_id"]
        await self.api.until(lambda: all(u["update_id"] != update_id for u in self.api._updates), timeout)


@pytest.fixture
async def hook(schema_url: str, api_server, clock):  # type: ignore[no-untyped-def]
    """Yield a bot in webhook mode on the small test world."""
    bot = WebhookHarness(make_config(schema_url, api_server), api_server, clock)
    await bot.start()
    await seed_world(bot.sessions)
    yield bot
    await bot.stop()


async def test_run_sets_the_webhook_with_the_secret_and_the_update_types_the_bot_uses(hook: WebhookHarness) -> None:
    call = next(c for c in hook.api.calls if c.method == "setWebhook")
    assert call.ok and call.params["url"] == hook.config.webhook.url and call.params["secret_token"] == SECRET
    assert sorted(call.params["allowed_updates"]) == ["callback_query", "message"]
    assert not any(c.method == "deleteWebhook" for c in hook.api.calls)  # webhook mode never deletes it
    info = await hook.application.bot.get_webhook_info()  # type: ignore[union-attr]
    assert info.url == hook.config.webhook.url and info.pending_update_count == 0
    assert sorted(info.allowed_updates) == ["callback_query", "message"]


async def test_a_conversation_over_the_webhook_saves_the_report_once(hook: WebhookHarness) -> None:
    await hook.register(7001, "NL", Role.SECRETARY)
    answers = await hook.report_one_line(7001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    assert any("Đã lưu" in (a.get("text") or "") for a in answers)
    assert [a.full_name for a in await hook.counted_admissions()] == ["Lò Thị Hoa"]
    assert hook.api.stats["webhook_delivered"] >= 4 and hook.api.stats["webhook_failed"] == 0


async def test_a_buttons_answer_rides_in_the_webhook_answer(hook: WebhookHarness) -> None:
    await hook.register(7004, "NL", Role.SECRETARY)
    await hook.say(7004, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    message_id, data = hook.api.find_button(7004, "Không")
    mark = hook.api.mark()
    pressed = hook.api.push_callback(7004, message_id, data)
    await hook.settle(pressed)
    answers = [c for c in hook.api.calls[mark:] if c.method == "answerCallbackQuery"]
    # One answer, carried in the bot's HTTP answer to the POST (not a request of its own), and run.
    assert [(c.in_webhook_answer, c.ok, c.params["callback_query_id"]) for c in answers] == \
        [(True, True, pressed["callback_query"]["id"])]
    assert hook.api.callback_answers[pressed["callback_query"]["id"]] is not None
    assert hook.replies(7004, mark) != []  # and the card moved on as before


async def test_a_refusing_answer_with_its_text_rides_in_the_webhook_answer_too(hook: WebhookHarness) -> None:
    await hook.register(7005, "NL", Role.SECRETARY)
    await hook.say(7005, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await hook.tap(7005, "Không")
    old_card = hook.api.last_message(7005)["message_id"]
    await hook.say(7005, "/report Lò Văn Nam, 1995, nam, 16/05/2026")
    await hook.tap(7005, "Không")
    found_id, data = hook.api.find_button(7005, "✅", old_card)
    pressed = hook.api.push_callback(7005, found_id, data)
    await hook.settle(pressed)
    answer = hook.api.calls_to("answerCallbackQuery")[-1]
    assert answer.in_webhook_answer and answer.params["callback_query_id"] == pressed["callback_query"]["id"]
    assert "không còn hiệu lực" in hook.api.callback_answers[pressed["callback_query"]["id"]]["text"]
    assert await hook.all_admissions() == []


async def test_a_wrong_or_missing_secret_is_401_and_nothing_is_processed(hook: WebhookHarness,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    hook.api.add_user(7002, "Hoa")
    body = json.dumps({"update_id": 990001, "message": {
        "message_id": 1, "date": 1, "chat": {"id": 7002, "type": "private"},
        "from": {"id": 7002, "is_bot": False, "first_name": "Hoa"}, "text": "/help Bí mật riêng"}}).encode()
    mark = hook.api.mark()
    caplog.set_level(logging.INFO)
    for secret in (None, "", "wrong", SECRET + "x", SECRET[:-1]):
        assert await asyncio.to_thread(post, hook.port, "/telegram", body, secret) == 401
    await asyncio.sleep(0.2)
    assert hook.replies(7002, mark) == []
    async with hook.sessions() as session:
        assert not await was_processed(session, 990001)
    assert "Bí mật riêng" not in caplog.text and "refused (401)" in caplog.text  # logged, without the body
    # The same body with the right secret is handled: the 401s were about the secret alone.
    assert await asyncio.to_thread(post, hook.port, "/telegram", body, SECRET) == 200
    assert hook.replies(7002, mark) != []


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"update_id": "7"}', b'{"update_id": true}',
                                  b'{"update_id": 5, "message": "hello"}'])
async def test_a_body_that_is_not_an_update_is_400(hook: WebhookHarness, body: bytes) -> None:
    mark = hook.api.mark()
    assert await asyncio.to_thread(post, hook.port, "/telegram", body, SECRET) == 400
    assert len(hook.api.calls) == mark


async def test_a_redelivered_update_is_skipped(hook: WebhookHarness) -> None:
    await hook.register(7003, "NL", Role.SECRETARY)
    await hook.say(7003, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await hook.tap(7003, "Không")
    message_id, data = hook.api.find_button(7003, "✅")
    mark = hook.api.mark()
    update = hook.api.push_callback(7003, message_id, data)
    await hook.settle(update)
    assert len(hook.api.calls) > mark
    again = hook.api.mark()
    # Telegram delivers the same ✅ again (say the 200 was lost on the way): skipped, nothing sent.
    assert await asyncio.to_thread(post, hook.port, "/telegram", json.dumps(update).encode(), SECRET) == 200
    assert hook.api.calls[again:] == []
    assert len(await hook.all_admissions()) == 1


async def test_healthz_says_the_database_and_the_scheduler_role(hook: WebhookHarness) -> None:
    assert await asyncio.to_thread(get, hook.port, "/healthz") == (200, {"db": "ok", "scheduler": "leader"})
    db = hook.application.services.db  # type: ignore[union-attr]
    working = db._sessions
    broken = create_engine_for("postgresql://127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2})
    db._sessions = session_factory(broken)  # a database that does not answer
    try:
        assert await asyncio.to_thread(get, hook.port, "/healthz") == (503, {"db": "error", "scheduler": "leader"})
    finally:
        db._sessions = working
        await broken.dispose()


async def test_a_second_process_on_one_sqlite_file_does_not_start(tmp_path: Path, api_server, clock) -> None:  # type: ignore[no-untyped-def]
    from models import Base
    from models.db import create_sync_engine_for

    url = f"sqlite:///{tmp_path / 'one.db'}"
    engine = create_sync_engine_for(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    first = WebhookHarness(make_config(url, api_server), api_server, clock)
    await first.start()
    try:
        second = WebhookHarness(make_config(url, api_server), api_server, clock)
        with pytest.raises(AlreadyRunning):
            await second.start()
    finally:
        await first.stop()


def _webhook_config(folder: Path, server: BotApiServer, port: int) -> None:
    from tests.test_kill9 import TOKEN

    (folder / "config.toml").write_text(
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{server.base_url}"\nbase_file_url = "{server.base_file_url}"\n'
        f'mode = "webhook"\n[database]\nurl = "sqlite:///{folder / "bot.db"}"\n'
        f'[webhook]\nurl = "http://127.0.0.1:{port}/hook"\nport = {port}\nsecret_token = "{SECRET}"\n',
        encoding="utf-8")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_mid_update_is_delivered_again_and_handled_once(tmp_path: Path) -> None:
    """`python -m bot run` in webhook mode, killed after ✅ saved the report but before answering Telegram."""
    from tests.test_kill9 import _say

    server = BotApiServer().start()
    bot: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        _webhook_config(tmp_path, server, port)
        (tmp_path / "units.csv").write_text(UNITS, encoding="utf-8")
        assert _cli(tmp_path, "init").returncode == 0
        assert _cli(tmp_path, "import-units", "units.csv").returncode == 0
        code = _cli(tmp_path, "invite", "C", "secretary").stdout.strip().splitlines()[-1]
        server.state.add_user(USER, "Hoa")
        bot = _start(tmp_path)
        _say(server, f"/start {code}", "Nà Lạn")
        _say(server, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026", "Phiếu báo cáo")
        _tap(server, "Không", "Phiếu báo cáo")
        # The card shows "saved" after the report is committed; hold that edit's HTTP answer, and
        # kill the bot while it waits: Telegram (the fake) never got a 2xx for the ✅.
        server.state.delay_next("editMessageText", 30, after_processing=True)
        message_id, data = server.state.find_button(USER, "✅")
        mark = server.state.mark()
        pressed = server.state.push_callback(USER, message_id, data)
        server.state.wait_for(lambda: any(c.method == "editMessageText" and "Đã lưu" in c.params.get("text", "")
                                          for c in server.state.calls[mark:]), timeout=30)
        bot.send_signal(signal.SIGKILL)
        bot.wait(timeout=10)
        assert any(u["update_id"] == pressed["update_id"] for u in server.state._updates)  # not confirmed

        failed = server.state.stats["webhook_failed"]
        bot = _start(tmp_path)
        server.state.wait_for(lambda: all(u["update_id"] != pressed["update_id"] for u in server.state._updates),
                              timeout=30)
        assert server.state.stats["webhook_failed"] > failed  # it was delivered again, to the new process
        bot.send_signal(signal.SIGTERM)
        bot.wait(timeout=20)
        bot = None
        import sqlite3

        with sqlite3.connect(tmp_path / "bot.db") as conn:
            rows = conn.execute("SELECT full_name FROM admission").fetchall()
            recorded = conn.execute("SELECT count(*) FROM processed_update WHERE update_id = ?",
                                    (pressed["update_id"],)).fetchone()[0]
        from models.crypto import keys_from_environment

        keys = keys_from_environment()  # the suite's key (tests/conftest.py), which the processes inherit
        assert keys is not None
        assert [keys.decrypt(name) for (name,) in rows] == ["Lò Thị Hoa"] and recorded == 1  # saved once
        log = (tmp_path / "bot.log").read_text(encoding="utf-8", errors="replace")
        assert "Lò Thị Hoa" not in log and SECRET not in log
    finally:
        if bot is not None and bot.poll() is None:
            bot.kill()
            bot.wait(timeout=10)
        server.stop()


def test_a_second_run_on_the_same_sqlite_file_says_why_it_does_not_start(tmp_path: Path) -> None:
    server = BotApiServer().start()
    bot: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        _webhook_config(tmp_path, server, port)
        assert _cli(tmp_path, "init").returncode == 0
        bot = _start(tmp_path)
        deadline = time.monotonic() + 30
        while not any(c.method == "setWebhook" for c in server.state.calls):
            assert time.monotonic() < deadline, "the first process did not start"
            time.sleep(0.1)
        second = _cli(tmp_path, "run")
        assert second.returncode == 1
        assert "SQLite" in second.stderr and "PostgreSQL" in second.stderr and "Traceback" not in second.stderr
    finally:
        if bot is not None and bot.poll() is None:
            bot.send_signal(signal.SIGTERM)
            bot.wait(timeout=20)
        server.stop()


@pytest.mark.parametrize(("raw", "environ", "error"), [
    ({"telegram": {"mode": "webhook"}, "webhook": {"secret_token": "a"}}, {}, "webhook.url: required"),
    ({"telegram": {"mode": "webhook"}, "webhook": {"url": "https://x.vn/t"}}, {}, "webhook.secret_token: required"),
    ({"webhook": {"secret_token": "a" * 257}}, {}, "webhook.secret_token: expected 1–256"),
    ({"webhook": {"secret_token": "with space"}}, {}, "webhook.secret_token: expected"),
    ({"webhook": {"url": "ftp://x.vn"}}, {}, "webhook.url: expected"),
    ({"webhook": {"port": 0}}, {}, "webhook.port"),
    ({"telegram": {"mode": "hook"}}, {}, "telegram.mode: expected one of polling, webhook"),
])
def test_webhook_settings_are_checked_at_start_naming_the_key(raw: dict, environ: dict, error: str) -> None:
    from core.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=error.replace(".", r"\.")):
        parse_config(raw, environ)


def test_a_public_webhook_url_must_be_https_and_plain_http_only_to_this_machine() -> None:
    from core.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"webhook\.url"):
        parse_config({"webhook": {"url": "http://bot.tinhuy.example.vn/telegram"}}, {})
    assert parse_config({"webhook": {"url": "https://bot.tinhuy.example.vn/t"}}, {}).webhook.url.startswith("https")
    assert parse_config({"webhook": {"url": "http://127.0.0.1:8443/hook"}}, {}).webhook.url.startswith("http://127")


def test_webhook_settings_defaults_the_longest_secret_and_the_environment() -> None:
    from core.config import parse_config

    assert parse_config({}, {}).telegram.mode == "polling"
    defaults = parse_config({}, {}).webhook
    assert (defaults.listen, defaults.port, defaults.url, defaults.secret_token) == ("127.0.0.1", 8443, None, None)
    longest = parse_config({"webhook": {"secret_token": "a" * 256}}, {}).webhook.secret_token
    assert longest == "a" * 256
    chosen = parse_config({"telegram": {"mode": "webhook"}, "webhook": {"url": "https://x.vn/t"}},
                          {"TELEGRAM_WEBHOOK_SECRET": "from-env"}).webhook
    assert chosen.secret_token == "from-env"
    assert parse_config({"webhook": {"secret_token": "file"}}, {"TELEGRAM_WEBHOOK_SECRET": "env"}).webhook.secret_token == "env"


def test_the_fake_delivers_chats_in_parallel_but_one_chats_updates_in_order(api_server) -> None:  # type: ignore[no-untyped-def]
    """What the benchmark and the proxy tests rely on: Telegram's parallel connections, a chat's order kept."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, int, int, float]] = []  # ("start"|"end", chat, update_id, time)
    lock = threading.Lock()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            update = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            chat = update["message"]["chat"]["id"]
            with lock:
                seen.append(("start", chat, update["update_id"], time.monotonic()))
            time.sleep(0.15)
            with lock:
                seen.append(("end", chat, update["update_id"], time.monotonic()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        api_server.state.webhook_connections = 4
        pushed = [api_server.state.push_text(chat, f"tin {n}") for n in range(3) for chat in (1, 2, 3)]
        request = urllib.request.Request(
            f"{api_server.base_url}{'1:' + 'A' * 35}/setWebhook",
            data=json.dumps({"url": f"http://127.0.0.1:{receiver.server_address[1]}/hook"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["ok"]
        api_server.state.wait_for(lambda: len([e for e in seen if e[0] == "end"]) == len(pushed), timeout=20)
    finally:
        receiver.shutdown()
        receiver.server_close()
    in_flight, most = {}, 0
    for kind, chat, update_id, _ in seen:
        if kind == "start":
            assert chat not in in_flight, "two updates of one chat were POSTed at once"
            in_flight[chat] = update_id
            most = max(most, len(in_flight))
        else:
            del in_flight[chat]
    assert most >= 2  # chats went in parallel
    for chat in (1, 2, 3):
        order = [update_id for kind, c, update_id, _ in seen if kind == "start" and c == chat]
        assert order == sorted(u["update_id"] for u in pushed if u["message"]["chat"]["id"] == chat)
