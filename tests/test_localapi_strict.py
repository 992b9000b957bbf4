"""Tests for the stricter fake Bot API: parameters, slow answers, faults, pollers, commands,
documents from users, Telegram HTML and webhook delivery. Raw HTTP (httpx) and real PTB."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    ReplyParameters,
)
from telegram.error import BadRequest, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from localapi import BotApiServer, BotApiState
from localapi.server import _METHODS, METHOD_PARAMS
from tests.test_localapi import TOKEN, USER, png_bytes, send

CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"


@pytest.fixture
def server() -> Iterator[BotApiServer]:
    """A started fake server with one known user (as in test_localapi)."""
    srv = BotApiServer(BotApiState(first_update_id=1000)).start()
    srv.state.add_user(USER, first_name="Lan")
    yield srv
    srv.stop()


@pytest.fixture
def api(server: BotApiServer) -> Iterator[httpx.Client]:
    """A raw HTTP client whose base URL is the bot's method root."""
    with httpx.Client(base_url=f"{server.base_url}{TOKEN}/", timeout=5) as client:
        yield client


def bot_for(srv: BotApiServer, **request: float) -> Bot:
    """A real PTB Bot pointed at the fake (optional HTTPXRequest timeouts)."""
    kwargs = {"request": HTTPXRequest(**request)} if request else {}
    return Bot(TOKEN, base_url=srv.base_url, base_file_url=srv.base_file_url, **kwargs)


def eventually(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll predicate (which may make HTTP calls, so not under the state's lock) until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"{getattr(predicate, '__name__', predicate)} still false after {timeout}s"
            return value
        time.sleep(0.02)


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["ok"] is False and body["error_code"] == response.status_code
    return response.status_code, body["description"]


# ---------------------------------------------------------------- 1. parameters


def test_table_covers_every_method() -> None:
    assert {name.lower() for name in METHOD_PARAMS} == set(_METHODS)
    assert "reply_to_message_id" not in METHOD_PARAMS["sendMessage"]  # deprecated, PTB sends reply_parameters
    assert {"chat_id", "text", "reply_parameters", "link_preview_options"} <= METHOD_PARAMS["sendMessage"]


def test_unknown_parameter_is_refused(server: BotApiServer, api: httpx.Client) -> None:
    assert error(send(api, "hi", parse_mod="HTML")) == (400, "Bad Request: unknown parameter parse_mod")
    assert error(api.post("getMe", data={"x": "1"})) == (400, "Bad Request: unknown parameter x")
    assert server.state.messages(USER) == []
    # an upload part nobody refers to is a parameter too; one named by attach:// is not
    stray = api.post("sendDocument", data={"chat_id": str(USER), "document": "attach://a"},
                     files={"a": ("a.txt", b"1", "text/plain"), "b": ("b.txt", b"2", "text/plain")})
    assert error(stray) == (400, "Bad Request: unknown parameter b")
    ok = api.post("sendDocument", data={"chat_id": str(USER), "document": "attach://a"},
                  files={"a": ("a.txt", b"1", "text/plain")})
    assert ok.json()["ok"] is True


def test_required_parameters_with_telegram_wording(server: BotApiServer, api: httpx.Client) -> None:
    cases = [
        ("sendMessage", {"chat_id": str(USER)}, "Bad Request: message text is empty"),
        ("sendMessage", {"text": "hi"}, "Bad Request: chat_id is empty"),
        ("sendMessage", {}, "Bad Request: message text is empty"),  # text is checked first
        ("sendPhoto", {"chat_id": str(USER)}, "Bad Request: there is no photo in the request"),
        ("sendDocument", {"chat_id": str(USER)}, "Bad Request: there is no document in the request"),
        ("editMessageText", {"text": "x"}, "Bad Request: message identifier is not specified"),
        ("editMessageText", {"text": "x", "message_id": "1"}, "Bad Request: chat_id is empty"),
        ("deleteMessage", {"message_id": "1"}, "Bad Request: chat identifier is not specified"),
        ("deleteMessage", {"chat_id": str(USER)}, "Bad Request: message identifier is not specified"),
        ("getFile", {}, "Bad Request: file_id not specified"),
        ("sendChatAction", {"chat_id": str(USER)}, "Bad Request: wrong parameter action in request"),
        ("sendChatAction", {"chat_id": str(USER), "action": "dancing"}, "Bad Request: wrong parameter action in request"),
        ("sendMessage", {"chat_id": str(USER), "text": "x", "parse_mode": "BBCode"}, "Bad Request: unsupported parse_mode"),
    ]
    for method, data, description in cases:
        assert error(api.post(method, data=data)) == (400, description), (method, data)
    assert api.post("sendChatAction", data={"chat_id": str(USER), "action": "typing"}).json()["ok"] is True


async def test_everything_ptb_sends_passes(server: BotApiServer) -> None:
    """PTB's convenience arguments become documented parameters; api_kwargs would not."""
    state = server.state
    async with bot_for(server) as bot:
        first = await bot.send_message(USER, "one", disable_web_page_preview=True, disable_notification=True,
                                       protect_content=True, message_thread_id=None)
        await bot.send_message(USER, "two", reply_to_message_id=first.message_id, allow_sending_without_reply=True)
        await bot.send_message(USER, "three", reply_parameters=ReplyParameters(first.message_id))
        await bot.send_chat_action(USER, "typing")
        await bot.edit_message_text("one!", chat_id=USER, message_id=first.message_id, disable_web_page_preview=True)
        await bot.delete_message(USER, first.message_id)
        await bot.get_webhook_info()
        await bot.delete_webhook(drop_pending_updates=False)
        await bot.get_updates(offset=1, limit=5, timeout=0, allowed_updates=["message", "callback_query"])
        sent = [c.params for c in state.calls_to("sendMessage")]
        assert sent[1]["reply_parameters"]["message_id"] == first.message_id
        assert sent[0]["link_preview_options"] == {"is_disabled": True}
        assert all(c.ok for c in state.calls), [(c.method, c.response) for c in state.calls if not c.ok]
        with pytest.raises(BadRequest, match="(?i)unknown parameter colour"):
            await bot.send_message(USER, "x", api_kwargs={"colour": "red"})


# ---------------------------------------------------------------- 2. slow answers


def test_delay_before_processing(server: BotApiServer, api: httpx.Client) -> None:
    server.state.delay_next("sendMessage", 0.4)
    timer = threading.Timer(0.2, lambda: seen.append(len(server.state.messages(USER))))
    seen: list[int] = []
    timer.start()
    started = time.monotonic()
    assert send(api, "slow").json()["ok"] is True
    assert time.monotonic() - started >= 0.38
    assert seen == [0]  # not yet delivered while waiting
    started = time.monotonic()
    send(api, "fast")  # times=1: only the next call
    assert time.monotonic() - started < 0.3


def test_delay_after_processing_delivers_then_times_out(server: BotApiServer) -> None:
    server.state.delay_next("sendMessage", 1.0, after_processing=True)
    with httpx.Client(base_url=f"{server.base_url}{TOKEN}/", timeout=0.3) as short, pytest.raises(httpx.ReadTimeout):
        send(short, "delivered anyway")
    assert [m["text"] for m in server.state.messages(USER)] == ["delivered anyway"]
    assert server.state.calls_to("sendMessage")[0].ok


async def test_delay_after_processing_seen_by_ptb_as_timed_out(server: BotApiServer) -> None:
    server.state.delay_next("sendMessage", 1.5, after_processing=True, times=1)
    async with bot_for(server, read_timeout=0.3) as bot:
        with pytest.raises(TimedOut):
            await bot.send_message(USER, "did it arrive?")
        assert [m["text"] for m in server.state.messages(USER)] == ["did it arrive?"]


def test_delay_wait_ends_when_server_stops(server: BotApiServer, api: httpx.Client) -> None:
    server.state.delay_next("getMe", 30)
    done: list[float] = []

    def call() -> None:
        started = time.monotonic()
        try:
            api.post("getMe")
        except httpx.HTTPError:
            pass
        done.append(time.monotonic() - started)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.2)
    server.stop()
    worker.join(3)
    assert done and done[0] < 3


# ---------------------------------------------------------------- 3. fault injection


def fault_codes(seed: int, n: int = 40) -> list[int]:
    state = BotApiState()
    state.add_user(USER)
    state.inject_faults(["sendMessage"], 0.3, seed=seed, kinds=("429", "502"), retry_after=2)
    with BotApiServer(state) as srv, httpx.Client(base_url=f"{srv.base_url}{TOKEN}/") as client:
        codes = [send(client, f"m{i}").status_code for i in range(n)]
        assert client.post("getMe").status_code == 200  # only the listed methods
        assert state.stats["faults"] == sum(code != 200 for code in codes)
        assert state.stats["fault:429"] == codes.count(429) and state.stats["fault:502"] == codes.count(502)
        assert len(state.messages(USER)) == codes.count(200)
    return codes


def test_faults_are_deterministic_per_seed() -> None:
    first, again, other = fault_codes(7), fault_codes(7), fault_codes(8)
    assert first == again
    assert first != other
    assert {429, 502} <= set(first) and 5 <= first.count(200) < 40


def test_fault_bodies_and_clear(server: BotApiServer, api: httpx.Client) -> None:
    server.state.inject_faults("sendMessage", 1.0, seed=1, kinds=("502",))
    response = send(api)
    assert response.status_code == 502
    assert response.json() == {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    server.state.inject_faults(["sendMessage"], 1.0, seed=1, kinds=("429",), retry_after=5)
    assert send(api).json() == {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5", "parameters": {"retry_after": 5},
    }
    server.state.clear_faults()
    assert send(api).status_code == 200
    with pytest.raises(ValueError):
        server.state.inject_faults("getMe", 0.5, seed=1, kinds=("418",))


async def test_ptb_sees_injected_429_as_retry_after(server: BotApiServer) -> None:
    server.state.inject_faults(["sendMessage"], 1.0, seed=3, kinds=("429",), retry_after=4)
    async with bot_for(server) as bot:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(USER, "x")
        assert "Retry in 4" in str(caught.value)


# ---------------------------------------------------------------- 4. two pollers


def test_second_long_poll_ends_the_first_with_409(server: BotApiServer) -> None:
    results: dict[str, object] = {}
    url = f"{server.base_url}{TOKEN}/getUpdates"

    def first_poll() -> None:
        started = time.monotonic()
        results["first"] = httpx.post(url, data={"timeout": "10"}, timeout=15)
        results["elapsed"] = time.monotonic() - started

    poller = threading.Thread(target=first_poll)
    poller.start()
    time.sleep(0.3)
    # a poll that does not wait (timeout 0) ends nothing, as on Telegram
    assert httpx.post(url, data={"timeout": "0"}).json() == {"ok": True, "result": []}
    assert poller.is_alive()
    threading.Timer(0.3, server.state.push_text, (USER, "for the second")).start()
    second = httpx.post(url, data={"timeout": "5"}, timeout=10).json()
    poller.join(5)
    first = results["first"]
    assert isinstance(first, httpx.Response) and first.status_code == 409
    assert first.json() == {"ok": False, "error_code": 409, "description": CONFLICT}
    assert results["elapsed"] < 2  # ended at once, not after its 10 s
    assert [u["message"]["text"] for u in second["result"]] == ["for the second"]


def test_set_webhook_ends_a_long_poll(server: BotApiServer, api: httpx.Client) -> None:
    box: list[httpx.Response] = []
    poller = threading.Thread(target=lambda: box.append(api.post("getUpdates", data={"timeout": "10"})))
    poller.start()
    time.sleep(0.3)
    assert api.post("setWebhook", data={"url": "https://example.com/hook"}).json()["ok"] is True
    poller.join(3)
    assert error(box[0]) == (409, "Conflict: terminated by setWebhook request")


# ---------------------------------------------------------------- 5. commands


def test_command_scope_and_language_validation(server: BotApiServer, api: httpx.Client) -> None:
    commands = json.dumps([{"command": "start", "description": "Start"}])

    def set_commands(**extra: object) -> httpx.Response:
        data = {"commands": commands, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()}}
        return api.post("setMyCommands", data=data)

    prefix = "Bad Request: can't parse BotCommandScope: "
    assert error(set_commands(scope={"type": "everyone"})) == (400, prefix + "Unsupported type specified")
    assert error(set_commands(scope=[1])) == (400, prefix + "BotCommandScope must be an Object")
    assert error(set_commands(scope={"type": "chat"})) == (400, prefix + 'Can\'t find field "chat_id"')
    assert error(set_commands(scope={"type": "chat", "chat_id": 999})) == (400, "Bad Request: chat not found")
    assert error(set_commands(scope={"type": "chat_member", "chat_id": USER})) == (
        400, prefix + "Invalid user_id specified")
    assert error(set_commands(language_code="vie")) == (400, "Bad Request: invalid language code specified")
    assert error(set_commands(language_code="VI")) == (400, "Bad Request: invalid language code specified")
    too_many = json.dumps([{"command": f"c{i}", "description": "d"} for i in range(101)])
    assert error(api.post("setMyCommands", data={"commands": too_many})) == (400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
    for scope in ({"type": t} for t in ("default", "all_private_chats", "all_group_chats", "all_chat_administrators")):
        assert set_commands(scope=scope).json()["ok"] is True
    assert set_commands(scope={"type": "chat", "chat_id": str(USER)}, language_code="vi").json()["ok"] is True
    assert set_commands(scope={"type": "chat_member", "chat_id": USER, "user_id": USER}).json()["ok"] is True
    # the chat scope is found whether chat_id came as a number or a string
    got = api.post("getMyCommands", data={"scope": json.dumps({"type": "chat", "chat_id": USER}), "language_code": "vi"})
    assert got.json()["result"] == [{"command": "start", "description": "Start"}]


async def test_commands_for_resolves_like_telegram(server: BotApiServer) -> None:
    state = server.state
    other = USER + 1
    state.add_user(other, language_code="en")
    async with bot_for(server) as bot:

        async def put(name: str, **kwargs: object) -> None:
            await bot.set_my_commands([BotCommand(name, name)], **kwargs)

        await put("default")
        assert [c["command"] for c in state.commands_for(USER)] == ["default"]
        await put("default_vi", language_code="vi")
        assert [c["command"] for c in state.commands_for(USER)] == ["default_vi"]  # user's own language
        assert [c["command"] for c in state.commands_for(other)] == ["default"]
        await put("private", scope=BotCommandScopeAllPrivateChats())
        assert [c["command"] for c in state.commands_for(USER)] == ["private"]  # broader language loses to scope
        await put("private_vi", scope=BotCommandScopeAllPrivateChats(), language_code="vi")
        await put("chat", scope=BotCommandScopeChat(USER))
        assert [c["command"] for c in state.commands_for(USER)] == ["chat"]
        assert [c["command"] for c in state.commands_for(other)] == ["private"]
        await put("chat_vi", scope=BotCommandScopeChat(USER), language_code="vi")
        assert [c["command"] for c in state.commands_for(USER)] == ["chat_vi"]
        assert [c["command"] for c in state.commands_for(USER, "en")] == ["chat"]
        await bot.delete_my_commands(scope=BotCommandScopeChat(USER), language_code="vi")
        await bot.delete_my_commands(scope=BotCommandScopeChat(USER))
        assert [c["command"] for c in state.commands_for(USER)] == ["private_vi"]
        await bot.set_my_commands([], scope=BotCommandScopeAllPrivateChats(), language_code="vi")  # [] deletes
        assert [c["command"] for c in state.commands_for(USER)] == ["private"]
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await bot.set_my_commands([BotCommand("x", "x")], scope=BotCommandScopeChat(123))


# ---------------------------------------------------------------- 6. documents from users


async def test_push_document_then_bot_downloads_it(server: BotApiServer) -> None:
    content = "họ tên;điểm\nLan;9\n".encode() * 50
    update = server.state.push_document(USER, "điểm.csv", content, caption="Bảng điểm")
    document = update["message"]["document"]
    assert document["file_name"] == "điểm.csv" and document["mime_type"] == "text/csv"
    assert document["file_size"] == len(content) and document["file_unique_id"]
    assert update["message"]["caption"] == "Bảng điểm"
    assert server.state.history(USER)[-1]["from"] == "user"
    async with bot_for(server) as bot:
        [got] = await bot.get_updates()
        assert got.message.document.file_id == document["file_id"]
        tg_file = await got.message.document.get_file()
        assert tg_file.file_path.endswith(".csv")
        assert bytes(await tg_file.download_as_bytearray()) == content
    assert server.state.push_document(USER, "a.bin", b"x", mime_type="application/x-thing")["message"]["document"][
        "mime_type"] == "application/x-thing"


def test_get_file_refuses_files_over_20_mb(server: BotApiServer, api: httpx.Client) -> None:
    big = server.state.push_document(USER, "big.zip", bytes(20 * 1024 * 1024 + 1))["message"]["document"]
    fits = server.state.push_document(USER, "fits.zip", bytes(20 * 1024 * 1024))["message"]["document"]
    assert error(api.post("getFile", data={"file_id": big["file_id"]})) == (400, "Bad Request: file is too big")
    assert api.post("getFile", data={"file_id": fits["file_id"]}).json()["result"]["file_size"] == 20 * 1024 * 1024
    assert error(api.post("getFile", data={"file_id": "nope"})) == (400, "Bad Request: invalid file_id")


# ---------------------------------------------------------------- 7. Telegram HTML and lengths


def test_html_entities_links_and_nesting(server: BotApiServer, api: httpx.Client) -> None:
    def html(text: str) -> httpx.Response:
        return send(api, text, parse_mode="HTML")

    prefix = "Bad Request: can't parse entities: "
    assert error(html("a &foo; b")) == (400, prefix + 'Unsupported HTML entity "&foo;" at byte offset 2')
    assert error(html("Lưu&nbsp;ý")) == (400, prefix + 'Unsupported HTML entity "&nbsp;" at byte offset 4')
    assert error(html('<a>bare</a>')) == (400, prefix + 'Tag "a" must have an href attribute at byte offset 0')
    assert error(html("<b><i>x</b></i>")) == (
        400, prefix + 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"')
    assert error(html("<span>x</span>")) == (400, prefix + 'Tag "span" must have class "tg-spoiler" at byte offset 0')
    assert error(html("x</b>")) == (400, prefix + "Unexpected end tag at byte offset 1")
    assert error(html("<b")) == (400, prefix + "Unclosed start tag at byte offset 0")
    for fine in ("R&D &amp; co", "&lt;3 &quot;q&quot; &#65;&#x1F600;", '<a href="https://t.me/x?a=1&amp;b=2">l</a>',
                 '<pre><code class="language-python">x</code></pre>', '<span class="tg-spoiler">s</span>',
                 "<B>upper</B>", "<b>any</>", "<blockquote expandable>q</blockquote>"):
        assert html(fine).json()["ok"] is True, fine


def test_lengths_count_code_points_after_parsing(server: BotApiServer, api: httpx.Client) -> None:
    # Telegram counts bots' texts in Unicode code points (utf8_length in TDLib), not UTF-16 units
    assert send(api, "😀" * 4096).json()["ok"] is True  # 8192 UTF-16 units
    assert error(send(api, "😀" * 4097)) == (400, "Bad Request: message is too long")
    assert send(api, "x" * 4096 + "  \n").json()["ok"] is True  # trimmed first
    assert send(api, "<b>" + "&lt;" * 4096 + "</b>", parse_mode="HTML").json()["ok"] is True
    assert error(send(api, "<i>" + "&lt;" * 4097 + "</i>", parse_mode="HTML")) == (400, "Bad Request: message is too long")
    assert error(send(api, "ư" * 16385)) == (400, "Bad Request: text is too long")  # > 32768 bytes before parsing

    def photo(caption: str) -> httpx.Response:
        return api.post("sendPhoto", data={"chat_id": str(USER), "caption": caption, "parse_mode": "HTML"},
                        files={"photo": ("p.png", png(), "image/png")})

    assert photo("<b>" + "ừ" * 1024 + "</b>").json()["ok"] is True
    assert error(photo("<b>" + "ừ" * 1025 + "</b>")) == (400, "Bad Request: message caption is too long")
    unclosed = "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    assert error(photo("<b>x")) == (400, unclosed)


def png() -> bytes:
    return png_bytes(2, 2)


# ---------------------------------------------------------------- 8. webhooks


class Receiver:
    """A loopback HTTP server standing in for the bot's webhook endpoint."""

    def __init__(self, statuses: list[int] | None = None, bodies: list[tuple[str, bytes]] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies = list(bodies or [])  # (Content-Type, body) of the next answers; then empty
        self.posts: list[tuple[dict, str | None]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.posts.append((body, self.headers.get("X-Telegram-Bot-Api-Secret-Token")))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    content_type, answer = receiver.bodies.pop(0) if receiver.bodies else ("", b"")
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook?x=1"

    def texts(self) -> list[str]:
        with self.lock:
            return [post["message"]["text"] for post, _ in self.posts if "message" in post]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def test_set_webhook_validation(server: BotApiServer, api: httpx.Client) -> None:
    def hook(**data: str) -> tuple[int, str]:
        return error(api.post("setWebhook", data=data))

    assert hook(url="http://example.com/hook") == (
        400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
    assert hook(url="https://example.com:8080/hook") == (
        400, "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
    assert hook(url="not a url") == (400, "Bad Request: invalid webhook URL specified")
    assert hook(url="https://example.com/", secret_token="a b") == (
        400, "Bad Request: secret token contains unallowed characters")
    assert hook(url="https://example.com/", secret_token="é") == (
        400, "Bad Request: secret token contains unallowed characters")
    assert hook(url="https://example.com/", secret_token="x" * 257) == (400, "Bad Request: secret token is too long")
    assert hook(url="https://example.com/", allowed_updates='["mesage"]') == (
        400, 'Bad Request: unknown update type "mesage" in allowed_updates')
    assert server.state.webhook_url == ""
    good = {"url": "https://example.com:8443/hook", "secret_token": "A-z_0" * 51, "allowed_updates": '["message"]'}
    assert api.post("setWebhook", data=good).json()["ok"] is True
    info = api.post("getWebhookInfo").json()["result"]
    assert info["url"] == good["url"] and info["allowed_updates"] == ["message"]
    assert "loopback" in info["last_error_message"]  # never contacted: no test reaches the internet
    active = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    assert error(api.post("getUpdates")) == (409, active)
    assert api.post("setWebhook", data={"url": ""}).json()["ok"] is True  # empty url deletes
    assert api.post("getWebhookInfo").json()["result"]["url"] == ""


def test_webhook_delivers_in_order_with_secret(server: BotApiServer, api: httpx.Client, receiver: Receiver) -> None:
    server.state.push_text(USER, "before")
    data = {"url": receiver.url, "secret_token": "s3cr3t-_"}
    assert api.post("setWebhook", data=data).json()["ok"] is True
    for i in range(5):
        server.state.push_text(USER, f"m{i}")
    server.state.wait_for(lambda: len(receiver.texts()) == 6, timeout=5)
    assert receiver.texts() == ["before", "m0", "m1", "m2", "m3", "m4"]
    assert {secret for _, secret in receiver.posts} == {"s3cr3t-_"}
    ids = [post["update_id"] for post, _ in receiver.posts]
    assert ids == sorted(ids)
    eventually(lambda: api.post("getWebhookInfo").json()["result"]["pending_update_count"] == 0, timeout=3)
    assert "last_error_message" not in api.post("getWebhookInfo").json()["result"]


def test_a_webhook_answer_may_carry_one_call_run_as_telegram_runs_it(server: BotApiServer, api: httpx.Client) -> None:
    send = {"method": "sendMessage", "chat_id": USER, "text": "trả lời <b>ngay</b>", "parse_mode": "HTML"}
    rec = Receiver(bodies=[("application/json", json.dumps(send).encode()),
                           ("application/json", json.dumps({**send, "text": "<b>unclosed"}).encode()),
                           ("text/plain", b"ok"), ("application/json", b'{"no": "method"}')])
    try:
        assert api.post("setWebhook", data={"url": rec.url}).json()["ok"] is True
        for text in ("a", "b", "c", "d"):
            server.state.push_text(USER, text)
        server.state.wait_for(lambda: server.state.stats["webhook_delivered"] == 4, timeout=5)
        carried = [c for c in server.state.calls if c.in_webhook_answer]
        # The first ran (the message is in the chat); the second was refused as a request would be
        # (the bot never learns it); the plain text and the body without a method were ignored.
        assert [(c.method, c.ok) for c in carried] == [("sendMessage", True), ("sendMessage", False)]
        assert carried[1].response["error_code"] == 400
        assert "trả lời" in server.state.last_message(USER)["text"]
        assert server.state.stats["webhook_answer_ignored"] == 2 and server.state.stats["webhook_failed"] == 0
    finally:
        rec.close()


def test_webhook_retries_until_2xx_and_reports_errors(server: BotApiServer, api: httpx.Client) -> None:
    rec = Receiver(statuses=[500, 503, 200, 200])
    try:
        assert api.post("setWebhook", data={"url": rec.url}).json()["ok"] is True
        server.state.push_text(USER, "first")
        server.state.push_text(USER, "second")
        server.state.wait_for(lambda: rec.texts() == ["first", "first", "first", "second"], timeout=5)
        info = api.post("getWebhookInfo").json()["result"]
        assert info["last_error_message"] == "Wrong response from the webhook: 503 Service Unavailable"
        assert abs(info["last_error_date"] - time.time()) < 5
        assert server.state.stats["webhook_failed"] == 2 and server.state.stats["webhook_delivered"] == 2
    finally:
        rec.close()


def test_webhook_connection_refused_keeps_update_pending(server: BotApiServer, api: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nobody listens there
    assert api.post("setWebhook", data={"url": f"http://127.0.0.1:{port}/"}).json()["ok"] is True
    server.state.push_text(USER, "waiting")

    def info() -> dict | None:
        result = api.post("getWebhookInfo").json()["result"]
        return result if result.get("last_error_message") else None

    result = eventually(info, timeout=3)
    assert result["last_error_message"] == "Connection refused" and result["pending_update_count"] == 1
    assert api.post("deleteWebhook").json()["ok"] is True
    assert [u["message"]["text"] for u in api.post("getUpdates").json()["result"]] == ["waiting"]


def test_delete_webhook_stops_delivery(server: BotApiServer, api: httpx.Client, receiver: Receiver) -> None:
    api.post("setWebhook", data={"url": receiver.url, "allowed_updates": '["callback_query"]'})
    sent = send(api, "Chọn", reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}).json()
    server.state.push_text(USER, "not wanted")  # a message: left out by allowed_updates, dropped
    server.state.push_callback(USER, sent["result"]["message_id"], "a")
    server.state.wait_for(lambda: receiver.posts, timeout=3)
    time.sleep(0.1)
    assert [("callback_query" in post) for post, _ in receiver.posts] == [True]
    assert api.post("deleteWebhook", data={"drop_pending_updates": "true"}).json()["ok"] is True
    server.state.push_callback(USER, sent["result"]["message_id"], "a")
    time.sleep(0.3)
    assert len(receiver.posts) == 1
    assert len(api.post("getUpdates").json()["result"]) == 1


def test_set_webhook_drop_pending_updates(server: BotApiServer, api: httpx.Client, receiver: Receiver) -> None:
    server.state.push_text(USER, "old")
    api.post("setWebhook", data={"url": receiver.url, "drop_pending_updates": "true"})
    server.state.push_text(USER, "new")
    server.state.wait_for(lambda: receiver.texts(), timeout=3)
    assert receiver.texts() == ["new"]


# ---------------------------------------------------------------- 9. kept Telegram answers


async def test_ptb_sees_double_answer_not_modified_and_429(server: BotApiServer) -> None:
    state = server.state
    async with bot_for(server) as bot:
        sent = await bot.send_message(USER, "x")
        query_id = state.push_callback(USER, sent.message_id, "d")["callback_query"]["id"]
        assert await bot.answer_callback_query(query_id)
        with pytest.raises(BadRequest, match="(?i)query is too old and response timeout expired or query id is invalid"):
            await bot.answer_callback_query(query_id)
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await bot.edit_message_text("x", chat_id=USER, message_id=sent.message_id)
        state.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2)
        with pytest.raises(RetryAfter):
            await bot.send_message(USER, "y")
