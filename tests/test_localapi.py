"""Tests for the local fake Telegram Bot API (localapi), over real HTTP.

Part (a) speaks raw HTTP with httpx; part (b) drives the real python-telegram-bot Bot and
Application against the fake and checks what the fake recorded.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from localapi import BotApiServer, BotApiState

TOKEN = "123456:" + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi"
USER = 424242
KEYBOARD = {"inline_keyboard": [[{"text": "Có", "callback_data": "yes"}, {"text": "Không", "callback_data": "no"}]]}


def png_bytes(width: int = 3, height: int = 2) -> bytes:
    """Return a valid RGB PNG of that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture
def server() -> Iterator[BotApiServer]:
    """A started fake server with one known user."""
    srv = BotApiServer(BotApiState(first_update_id=1000)).start()
    srv.state.add_user(USER, first_name="Lan")
    yield srv
    srv.stop()


@pytest.fixture
def api(server: BotApiServer) -> Iterator[httpx.Client]:
    """A raw HTTP client whose base URL is the bot's method root."""
    with httpx.Client(base_url=f"{server.base_url}{TOKEN}/", timeout=5) as client:
        yield client


def send(api: httpx.Client, text: str = "xin chào", **extra: object) -> httpx.Response:
    """POST sendMessage the way PTB does (form-encoded, non-strings JSON-encoded)."""
    data = {"chat_id": str(USER), "text": text}
    data.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return api.post("sendMessage", data=data)


# ---------------------------------------------------------------- (a) raw HTTP


def test_get_updates_offset_confirms_and_limit(server: BotApiServer, api: httpx.Client) -> None:
    ids = [server.state.push_text(USER, f"m{i}")["update_id"] for i in range(3)]
    assert ids == [1000, 1001, 1002]
    body = api.post("getUpdates").json()
    assert [u["update_id"] for u in body["result"]] == ids
    assert body["result"][0]["message"]["text"] == "m0"
    assert [u["update_id"] for u in api.post("getUpdates", data={"offset": "1001"}).json()["result"]] == ids[1:]
    # confirmed updates are gone even without an offset
    assert [u["update_id"] for u in api.post("getUpdates", data={"limit": "1"}).json()["result"]] == [1001]
    assert api.post("getUpdates", data={"offset": "1003"}).json() == {"ok": True, "result": []}
    assert api.get("getUpdates").json()["result"] == []


def test_push_text_command_entity_counts_utf16(server: BotApiServer) -> None:
    update = server.state.push_text(USER, "/báo_cáo 3")
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 8}]
    assert update["message"]["from"]["first_name"] == "Lan"
    assert server.state.push_text(USER, "/😀x")["message"]["entities"][0]["length"] == 4
    assert "entities" not in server.state.push_text(USER, "hello")["message"]
    assert [h["from"] for h in server.state.history(USER)] == ["user", "user", "user"]


def test_long_poll_returns_early_on_push(server: BotApiServer, api: httpx.Client) -> None:
    threading.Timer(0.2, server.state.push_text, (USER, "wake")).start()
    started = time.monotonic()
    body = api.post("getUpdates", data={"timeout": "5"}).json()
    elapsed = time.monotonic() - started
    assert [u["message"]["text"] for u in body["result"]] == ["wake"]
    assert 0.15 < elapsed < 2


def test_long_poll_returns_empty_after_timeout(api: httpx.Client) -> None:
    started = time.monotonic()
    body = api.post("getUpdates", data={"timeout": "0.4"}).json()
    assert body == {"ok": True, "result": []}
    assert 0.35 < time.monotonic() - started < 2


def test_stop_wakes_long_poll_quickly(server: BotApiServer, api: httpx.Client) -> None:
    result: dict[str, object] = {}

    def poll() -> None:
        started = time.monotonic()
        result["body"] = api.post("getUpdates", data={"timeout": "30"}).json()
        result["elapsed"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)  # let the request reach the long poll
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1
    poller.join(2)
    assert result["body"] == {"ok": True, "result": []}
    assert result["elapsed"] < 2


def test_unknown_method_404_and_case_insensitive_methods(server: BotApiServer, api: httpx.Client) -> None:
    response = api.post("sendPigeon", data={"chat_id": str(USER)})
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    assert api.post("SENDMESSAGE", data={"chat_id": str(USER), "text": "hi"}).json()["ok"] is True
    assert [c.method for c in server.state.calls_to("sendMessage")] == ["SENDMESSAGE"]
    assert server.state.stats["404"] == 1


def test_rate_limit_answers_429_with_retry_after(api: httpx.Client) -> None:
    server_state = BotApiState(rate_limit_per_second=3)
    with BotApiServer(server_state) as srv, httpx.Client(base_url=f"{srv.base_url}{TOKEN}/") as client:
        server_state.add_user(USER)
        codes = [send(client, f"n{i}").status_code for i in range(4)]
        assert codes == [200, 200, 200, 429]
        body = send(client).json()
        assert body["error_code"] == 429 and body["parameters"] == {"retry_after": 1}
        assert client.post("getMe").status_code == 200  # only send*/edit* are limited
        assert server_state.stats["429"] == 2
        assert len(server_state.messages(USER)) == 3


def test_block_answers_403_until_unblocked(server: BotApiServer, api: httpx.Client) -> None:
    server.state.block(USER)
    response = send(api)
    assert response.status_code == 403
    assert response.json()["description"] == "Forbidden: bot was blocked by the user"
    assert server.state.messages(USER) == []
    server.state.unblock(USER)
    assert send(api).json()["result"]["text"] == "xin chào"
    assert server.state.stats["403"] == 1


def test_fail_next_with_server_errors(server: BotApiServer, api: httpx.Client) -> None:
    server.state.fail_next("sendMessage", 502, "Bad Gateway", times=2)
    server.state.fail_next("getMe", 429, "Too Many Requests: retry after 7", retry_after=7)
    assert [send(api).status_code for _ in range(3)] == [502, 502, 200]
    assert api.post("getMe").json()["parameters"] == {"retry_after": 7}
    assert api.post("getMe").json()["ok"] is True
    failed = server.state.calls_to("sendMessage")[0]
    assert failed.response == {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    assert failed.params == {"chat_id": USER, "text": "xin chào"}


def test_token_checked_when_set(server: BotApiServer, api: httpx.Client) -> None:
    server.state.token = "999:other"
    response = api.post("getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    server.state.token = TOKEN
    assert api.post("getMe").status_code == 200


def test_foreign_host_or_browser_origin_forbidden(server: BotApiServer, api: httpx.Client) -> None:
    """No DNS rebinding, no cross-site form posts (CSRF) from a web page in the user's browser."""
    forbidden = {"ok": False, "error_code": 403}
    form = {"chat_id": str(USER), "text": "csrf"}
    for headers in (
        {"Host": "evil.example"},
        {"Host": f"evil.example:{server.port}"},
        {"Host": f"127.0.0.1.evil.example:{server.port}"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://127.0.0.1:{server.port}"},
    ):
        response = api.post("sendMessage", data=form, headers=headers)
        assert response.status_code == 403, headers
        body = response.json()
        assert {k: body[k] for k in forbidden} == forbidden and body["description"].startswith("Forbidden: ")
        download = httpx.get(f"{server.base_file_url}{TOKEN}/files/any.bin", headers=headers)
        assert download.status_code == 403, headers
    assert server.state.calls_to("sendMessage") == []
    for host in ("127.0.0.1", f"localhost:{server.port}", f"[::1]:{server.port}"):
        assert api.post("getMe", headers={"Host": host}).status_code == 200, host


def test_upload_multipart_then_download(server: BotApiServer, api: httpx.Client) -> None:
    content = bytes(range(256)) * 20 + b"\r\n--boundary-like\r\n"
    response = api.post(
        "sendDocument",
        data={"chat_id": str(USER), "caption": "Báo cáo", "document": "attach://file1"},
        files={"file1": ("báo cáo.xlsx", content, "application/octet-stream")},
    )
    document = response.json()["result"]["document"]
    assert document["file_name"] == "báo cáo.xlsx"
    assert document["mime_type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert document["file_size"] == len(content)
    assert server.state.files[document["file_id"]][2] == content
    file_path = api.post("getFile", data={"file_id": document["file_id"]}).json()["result"]["file_path"]
    downloaded = httpx.get(f"{server.base_file_url}{TOKEN}/{file_path}")
    assert downloaded.status_code == 200 and downloaded.content == content
    assert httpx.get(f"{server.base_file_url}{TOKEN}/files/nope.bin").status_code == 404
    # the same file again by file_id, without uploading
    again = api.post("sendDocument", data={"chat_id": str(USER), "document": document["file_id"]}).json()
    assert again["result"]["document"]["file_id"] == document["file_id"]
    assert server.state.calls_to("sendDocument")[0].params["file1"]["size"] == len(content)


def test_send_photo_checks_image_and_reads_size(server: BotApiServer, api: httpx.Client) -> None:
    ok = api.post("sendPhoto", data={"chat_id": str(USER)}, files={"photo": ("c.png", png_bytes(7, 5), "image/png")})
    [size] = ok.json()["result"]["photo"]
    assert (size["width"], size["height"]) == (7, 5)
    bad = api.post("sendPhoto", data={"chat_id": str(USER)}, files={"photo": ("c.png", b"not an image", "image/png")})
    assert bad.json()["description"] == "Bad Request: IMAGE_PROCESS_FAILED"


def test_validation_errors_like_telegram(server: BotApiServer, api: httpx.Client) -> None:
    def description(response: httpx.Response) -> str:
        assert response.status_code == 400
        return response.json()["description"]

    assert description(send(api, "")) == "Bad Request: message text is empty"
    # Telegram trims after parsing; a text that is then empty has its own wording
    assert description(send(api, "  ")) == "Bad Request: text must be non-empty"
    assert description(send(api, "<b> </b>", parse_mode="HTML")) == "Bad Request: text must be non-empty"
    assert description(send(api, "x" * 4097)) == "Bad Request: message is too long"
    assert send(api, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML").status_code == 200
    long_data = {"inline_keyboard": [[{"text": "a", "callback_data": "x" * 65}]]}
    assert description(send(api, reply_markup=long_data)) == "Bad Request: BUTTON_DATA_INVALID"
    assert "Unsupported start tag \"br\"" in description(send(api, "a<br>b", parse_mode="HTML"))
    assert "Can't find end tag" in description(send(api, "<b>a", parse_mode="HTML"))
    assert "can't parse entities" in description(send(api, "1 < 2", parse_mode="HTML"))
    assert send(api, "1 &lt; 2 <i>ok</i>", parse_mode="HTML").status_code == 200
    response = api.post("sendMessage", data={"chat_id": "777", "text": "hi"})
    assert description(response) == "Bad Request: chat not found"
    edit = {"chat_id": str(USER), "message_id": "999", "text": "x"}
    assert description(api.post("editMessageText", data=edit)) == "Bad Request: message to edit not found"


def test_edit_and_not_modified(server: BotApiServer, api: httpx.Client) -> None:
    sent = send(api, "Bước 1", reply_markup=KEYBOARD).json()["result"]
    edit = {"chat_id": str(USER), "message_id": str(sent["message_id"]), "text": "Bước 2"}
    edit["reply_markup"] = json.dumps(KEYBOARD)
    edited = api.post("editMessageText", data=edit).json()["result"]
    assert edited["text"] == "Bước 2" and edited["reply_markup"] == KEYBOARD and "edit_date" in edited
    same = api.post("editMessageText", data=edit)
    assert same.status_code == 400
    assert same.json()["description"].startswith("Bad Request: message is not modified: ")
    markup = {"chat_id": str(USER), "message_id": str(sent["message_id"])}
    assert "reply_markup" not in api.post("editMessageReplyMarkup", data=markup).json()["result"]
    assert api.post("editMessageReplyMarkup", data=markup).status_code == 400
    assert server.state.messages(USER) == [server.state.last_message(USER)]
    assert server.state.last_message(USER)["text"] == "Bước 2"


def test_json_body_and_query_string(server: BotApiServer, api: httpx.Client) -> None:
    body = {"chat_id": USER, "text": "123", "reply_markup": KEYBOARD}
    assert api.post("sendMessage", json=body).json()["result"]["text"] == "123"
    assert api.get("sendMessage", params={"chat_id": str(USER), "text": "true"}).json()["result"]["text"] == "true"
    calls = server.state.calls_to("sendMessage", chat_id=USER)
    assert [c.params["text"] for c in calls] == ["123", "true"]
    assert calls[0].params["reply_markup"] == KEYBOARD


def test_callbacks_buttons_history_and_delete(server: BotApiServer, api: httpx.Client) -> None:
    state = server.state
    state.push_text(USER, "/start")
    first = send(api, "Chọn", reply_markup=KEYBOARD).json()["result"]
    send(api, "Khác", reply_markup={"inline_keyboard": [[{"text": "Có nữa", "callback_data": "again"}]]})
    assert state.find_button(USER, "Có") == (first["message_id"] + 1, "again")
    assert state.find_button(USER, "Có", message_id=first["message_id"]) == (first["message_id"], "yes")
    with pytest.raises(LookupError, match="Không"):
        state.find_button(USER, "Hủy")
    update = state.push_callback(USER, first["message_id"], "no")
    query = update["callback_query"]
    assert query["data"] == "no" and query["message"]["text"] == "Chọn" and query["from"]["id"] == USER
    assert api.post("answerCallbackQuery", data={"callback_query_id": query["id"], "text": "Đã ghi"}).json()["ok"]
    assert state.callback_answers[query["id"]] == {"text": "Đã ghi", "show_alert": False, "url": None, "cache_time": None}
    assert api.post("answerCallbackQuery", data={"callback_query_id": query["id"]}).status_code == 400
    with pytest.raises(LookupError):
        state.push_callback(USER, 12345, "x")
    assert [(h["from"], h["message"]["text"]) for h in state.history(USER)] == [
        ("user", "/start"), ("bot", "Chọn"), ("bot", "Khác"),
    ]
    assert api.post("deleteMessage", data={"chat_id": str(USER), "message_id": str(first["message_id"])}).json()["ok"]
    assert [m["text"] for m in state.messages(USER)] == ["Khác"]
    mark = state.mark()
    state.reset()
    assert state.messages(USER) == [] and state.calls == [] and mark > 0
    assert api.post("getUpdates").json()["result"] == []


def test_wait_for_wakes_on_change_and_explains_timeout(server: BotApiServer, api: httpx.Client) -> None:
    threading.Timer(0.1, send, (api, "later")).start()
    message = server.state.wait_for(lambda: server.state.last_message(USER), timeout=3)
    assert message["text"] == "later"

    def no_such_call() -> bool:
        return bool(server.state.calls_to("deleteMessage"))

    with pytest.raises(TimeoutError, match=r"(?s)no_such_call.*sendMessage"):
        server.state.wait_for(no_such_call, timeout=0.1)


# ---------------------------------------------------------------- (b) real python-telegram-bot


@pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")
async def test_ptb_bot_methods(server: BotApiServer) -> None:
    state = server.state
    async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
        me = await bot.get_me()
        assert (me.id, me.username, me.is_bot) == (state.bot_id, "test_admissions_bot", True)

        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Báo cáo", callback_data="report:1")]])
        sent = await bot.send_message(USER, "<b>Chào</b> đồng chí", parse_mode="HTML", reply_markup=markup)
        assert sent.chat.id == USER and sent.from_user.id == state.bot_id
        assert sent.reply_markup.inline_keyboard[0][0].callback_data == "report:1"
        call = state.calls_to("sendMessage")[-1]
        assert call.chat_id == USER
        assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "Báo cáo", "callback_data": "report:1"}]]}
        assert state.find_button(USER, "Báo") == (sent.message_id, "report:1")

        edited = await bot.edit_message_text("Đã xong", chat_id=USER, message_id=sent.message_id)
        assert edited.text == "Đã xong" and edited.edit_date is not None
        assert state.last_message(USER)["text"] == "Đã xong" and "reply_markup" not in state.last_message(USER)
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("Đã xong", chat_id=USER, message_id=sent.message_id)

        doc = await bot.send_document(USER, b"a;b\n1;2\n", filename="bao_cao.csv", caption="CSV")
        assert doc.document.file_name == "bao_cao.csv" and doc.document.file_size == 8
        assert state.files[doc.document.file_id] == ("bao_cao.csv", "text/csv", b"a;b\n1;2\n")
        tg_file = await bot.get_file(doc.document.file_id)
        assert bytes(await tg_file.download_as_bytearray()) == b"a;b\n1;2\n"

        photo = await bot.send_photo(USER, png_bytes(4, 3), caption="Biểu đồ")
        assert (photo.photo[-1].width, photo.photo[-1].height) == (4, 3)
        assert state.last_message(USER)["caption"] == "Biểu đồ"

        await bot.set_my_commands([BotCommand("start", "Bắt đầu"), BotCommand("report", "Báo cáo")], language_code="vi")
        await bot.set_my_commands([BotCommand("start", "Start")])
        assert [c.command for c in await bot.get_my_commands(language_code="vi")] == ["start", "report"]
        assert [c.description for c in await bot.get_my_commands()] == ["Start"]
        assert state.get_commands("vi")[1] == {"command": "report", "description": "Báo cáo"}

        query_id = state.push_callback(USER, sent.message_id, "report:1")["callback_query"]["id"]
        assert await bot.answer_callback_query(query_id, text="Đã nhận", show_alert=True)
        assert state.callback_answers[query_id]["text"] == "Đã nhận"
        assert state.callback_answers[query_id]["show_alert"] is True

        state.block(USER)
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_message(USER, "x")
        state.unblock(USER)
        state.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
        with pytest.raises(RetryAfter, match="Retry in 3"):
            await bot.send_message(USER, "x")
        assert state.calls_to("sendMessage")[-1].response["parameters"] == {"retry_after": 3}


async def test_ptb_application_echo_over_polling(server: BotApiServer) -> None:
    state = server.state

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Xác nhận", callback_data="confirm")]])
        await update.effective_message.reply_text(f"echo: {update.effective_message.text}", reply_markup=markup)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer("OK")
        await update.callback_query.edit_message_text(f"pressed {update.callback_query.data}")

    app = ApplicationBuilder().token(TOKEN).base_url(server.base_url).base_file_url(server.base_file_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.add_handler(CallbackQueryHandler(pressed))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        since = state.mark()
        state.push_text(USER, "Chào bot")
        reply = await state.next_call("sendMessage", chat_id=USER, since=since, timeout=5)
        assert reply.ok and reply.params["text"] == "echo: Chào bot"
        message_id, data = state.find_button(USER, "Xác")
        assert (message_id, data) == (reply.result["message_id"], "confirm")

        since = state.mark()
        query_id = state.push_callback(USER, message_id, data)["callback_query"]["id"]
        edit = await state.next_call("editMessageText", chat_id=USER, since=since, timeout=5)
        assert edit.ok and edit.params["message_id"] == message_id
        assert state.callback_answers[query_id]["text"] == "OK"
        assert [(h["from"], h["message"]["text"]) for h in state.history(USER)] == [
            ("user", "Chào bot"), ("bot", "pressed confirm"),
        ]
        assert state.calls_to("deleteWebhook") and state.calls_to("getMe")
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    # both updates were confirmed by the final getUpdates on stop
    await asyncio.sleep(0)
    assert state.calls_to("getUpdates")[-1].params.get("offset", 0) > 0
