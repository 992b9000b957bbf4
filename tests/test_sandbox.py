"""The local sandbox: the demo seed, and the web chat's JSON API over real HTTP with the real bot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from core.config import Config, DatabaseSettings, SandboxSettings
from localapi.demo import PEOPLE, TERM_SHARES, UNITS, YEAR_SHARES, seed_demo, term_of
from bot.sandbox import SANDBOX_TOKEN, Sandbox, SandboxError, seed_moment
from models.entities import Admission, Role
from models.people import person_by_telegram_id
from models.calendar import TermStart
from models.periods import Period
from models.progress import progress_of, term_progress
from models.units import unit_by_code

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
JULY = TermStart(7, 1)  # the default [bot] term_start
SECRETARY, OTHER_SECRETARY, COMMITTEE, ADMIN = (p.telegram_id for p in PEOPLE)
JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------------- the seed


@pytest.mark.parametrize("today", [date(2026, 1, 1), date(2026, 6, 30), date(2026, 11, 26), date(2030, 6, 30),
                                   date(2031, 6, 15)])
async def test_seed_puts_the_district_at_23_of_90_and_215_of_400(sessions, today: date) -> None:
    now = datetime.combine(today, time(9), tzinfo=TZ)
    async with sessions.begin() as session:
        await seed_demo(session, today, now, term_start=JULY)
    async with sessions() as session:
        district = await unit_by_code(session, "PN")
        year = await progress_of(session, district, Period.year(today.year), today)
        term = await term_progress(session, district, today)  # the seeded term covers today
        assert term is not None and term.period == term_of(today, JULY)
        assert (year.admitted, year.target) == (23, 90)
        assert (term.admitted, term.target) == (215, 400)
        assert term.period.first_day <= today <= term.period.last_day
        latest = await session.scalar(select(func.max(Admission.admitted_on)))
        assert latest <= today  # nothing dated in the future
        combined = await unit_by_code(session, "BB-KP")
        assert combined.is_combined and [v.name for v in combined.villages] == ["Khuổi Pết", "Nà Ngòa"]
        roles = {}
        for demo in PEOPLE:
            person = await person_by_telegram_id(session, demo.telegram_id)
            assert person is not None and person.active
            roles[person.display_name] = [(a.role, a.unit.code) for a in person.assignments]
    assert roles == {"Lò Thị Mẫu": [(Role.SECRETARY, "BB-NC")], "Triệu Văn Mẫu": [(Role.SECRETARY, "BB-KP")],
                     "Hoàng Văn Mẫu": [(Role.COMMITTEE, "PN")], "Nông Thị Mẫu": [(Role.ADMIN, "PN")]}
    communes = [row.code for row in UNITS if row.parent_code == "PN"]
    assert sum(YEAR_SHARES[c] for c in communes) == 90 and sum(TERM_SHARES[c] for c in communes) == 400


def test_the_seeded_term_covers_30_june_and_a_term_that_began_this_year_still_seeds() -> None:
    # The sandbox's clock stands at 30 June: with terms from 1 July that is the last month of a term year.
    assert term_of(date(2026, 6, 30), JULY) == Period.term(2025, 2030, JULY)
    assert term_of(date(2026, 6, 30), JULY).first_day == date(2025, 7, 1)
    assert term_of(date(2030, 6, 30), JULY).label() == "2025-2030"
    assert term_of(date(2030, 7, 1), JULY).label() == "2030-2035"
    assert term_of(date(2025, 6, 30), JULY).label() == "2020-2025"
    assert term_of(date(2025, 1, 1), TermStart(1, 1)).label() == "2025-2030"
    config = Config()  # the sandbox's own clock, with the configured (default) term start
    day = seed_moment(config).date()
    term = term_of(day, config.bot.term_start)
    assert (day.month, day.day) == (6, 30) and term.first_day <= day <= term.last_day
    assert (term.first_day.month, term.first_day.day) == (7, 1) and term.last_day.month == 6


async def test_a_term_that_began_this_year_holds_this_years_admissions(sessions) -> None:  # type: ignore[no-untyped-def]
    today = date(2030, 12, 31)
    async with sessions.begin() as session:
        await seed_demo(session, today, datetime.combine(today, time(9), tzinfo=TZ), term_start=JULY)
    async with sessions() as session:
        district = await unit_by_code(session, "PN")
        term = await term_progress(session, district, today)
        year = await progress_of(session, district, Period.year(today.year), today)
    assert term is not None and term.period.label() == "2030-2035"
    assert (year.admitted, term.admitted, term.target) == (23, 23, 400)


# ---------------------------------------------------------------------------------- the live sandbox


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """Yield a running sandbox (fake API, real bot, web chat) on free ports and its own database."""
    config = Config(database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'bot.db'}"),
                    sandbox=SandboxSettings(port=0, database_url=f"sqlite:///{tmp_path / 'sandbox.db'}"))
    running = await Sandbox(config, port=0).start()
    yield running
    await running.stop()


@pytest.fixture
async def web(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an HTTP client for the sandbox page."""
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30) as client:
        yield client


async def chat_until(web: httpx.AsyncClient, user: int, found: Callable[[list[dict]], Any], timeout: float = 20) -> Any:
    """Poll the person's chat (as the page does) until `found(bot messages)` is truthy; return it."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await web.get("/api/chat", params={"user": user})
        assert answer.status_code == 200
        bot = [e["message"] for e in answer.json()["history"] if e["from"] == "bot"]
        value = found(bot)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not found within {timeout} s; bot said: {[m.get('text') for m in bot][-3:]}")
        await asyncio.sleep(0.05)


def last_text_with(fragment: str) -> Callable[[list[dict]], dict | None]:
    """Return a finder of the newest bot message containing `fragment`."""
    return lambda bot: bot[-1] if bot and fragment in (bot[-1].get("text") or bot[-1].get("caption") or "") else None


async def say(web: httpx.AsyncClient, user: int, text: str, expect: str) -> dict:
    """Write as the person and wait for the bot's newest message to contain `expect`."""
    answer = await web.post("/api/send", json={"user": user, "text": text})
    assert answer.status_code == 200, answer.text
    return await chat_until(web, user, last_text_with(expect))


async def tap(web: httpx.AsyncClient, user: int, message: dict, label: str, expect: str) -> dict:
    """Tap the button `label` under `message` and wait for the bot's newest message to contain `expect`."""
    buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
    [button] = [b for b in buttons if b["text"] == label]
    answer = await web.post("/api/tap", json={"user": user, "message_id": message["message_id"],
                                              "data": button["callback_data"]})
    assert answer.status_code == 200, answer.text
    return await chat_until(web, user, last_text_with(expect))


async def test_page_people_and_menu(web: httpx.AsyncClient) -> None:
    page = await web.get("/")
    assert page.status_code == 200 and "/app.js" in page.text and page.headers["content-type"].startswith("text/html")
    for name in ("/app.js", "/style.css", "/i18n.js"):
        assert (await web.get(name)).status_code == 200
    people = (await web.get("/api/people")).json()
    assert people["lang"] == "vi"
    assert [(p["name"], p["role"], p["unit"]) for p in people["people"]] == [
        ("Lò Thị Mẫu", "secretary", "Chi bộ thôn Nà Coóc"),
        ("Triệu Văn Mẫu", "secretary", "Chi bộ thôn Khuổi Pết – Nà Ngòa"),
        ("Hoàng Văn Mẫu", "committee", "Huyện ủy Pác Nặm"),
        ("Nông Thị Mẫu", "admin", "Huyện ủy Pác Nặm"),
    ]
    default = {c["command"] for c in (await web.get("/api/commands?lang=vi")).json()["commands"]}
    assert default == {"start", "help"}  # what someone unregistered can use

    async def menu(lang: str) -> dict[str, str]:  # the secretary's own menu, published just after start
        for _ in range(200):
            found = (await web.get(f"/api/commands?lang={lang}&user=900001")).json()["commands"]
            if any(c["command"] == "report" for c in found):
                return {c["command"]: c["description"] for c in found}
            await asyncio.sleep(0.05)
        raise AssertionError("the secretary's menu was not published")

    vi, en = await menu("vi"), await menu("en")
    assert {"report", "progress", "help"} <= set(vi) and set(vi) == set(en)
    assert (await web.get("/api/nothing")).status_code == 404
    assert (await web.post("/api/send", content=b"user=900001&text=hi")).status_code == 415  # no form posts
    assert (await web.get("/api/people", headers={"Host": "evil.example"})).status_code == 403
    assert (await web.post("/api/send", json={"user": 12345, "text": "hi"})).status_code == 404


async def test_secretary_reports_by_buttons_and_the_committee_sees_24_of_90(web: httpx.AsyncClient) -> None:
    progress = await say(web, COMMITTEE, "/progress", "23/90")
    assert "215/400" in progress["text"] and progress["parse_mode"] == "HTML"

    await say(web, SECRETARY, "/report", "họ và tên")
    await say(web, SECRETARY, "Lường Thị Hoa", "Năm sinh")
    sex = await say(web, SECRETARY, "1999", "Giới tính")
    ethnicity = await tap(web, SECRETARY, sex, "Nữ", "Dân tộc")
    day = await tap(web, SECRETARY, ethnicity, "Tày", "Ngày quyết định")
    decision = await tap(web, SECRETARY, day, "Hôm nay", "Số quyết định")
    youth = await tap(web, SECRETARY, decision, "Bỏ qua", "đoàn viên")
    card = await tap(web, SECRETARY, youth, "Có", "Phiếu báo cáo")
    saved = await tap(web, SECRETARY, card, "✅ Lưu báo cáo", "Đã lưu")
    assert "Chi bộ thôn Nà Coóc" in saved["text"]

    progress = await say(web, COMMITTEE, "/progress", "24/90")
    assert "216/400" in progress["text"]
    other = (await web.get("/api/chat", params={"user": OTHER_SECRETARY})).json()
    assert other["history"] == []  # what one person does stays in their chat


async def test_english_switch_then_reset_restores_the_demo_world(web: httpx.AsyncClient, sandbox: Sandbox) -> None:
    assert (await web.post("/api/lang", json={"lang": "en"})).json() == {"ok": True, "lang": "en"}
    assert "Annual plan" in (await say(web, COMMITTEE, "/progress", "23/90"))["text"]
    await say(web, SECRETARY, "/report Lo Thi Hoa, 1998, nu, 15/05/2026", "Lo Thi Hoa")

    assert (await web.post("/api/reset", json={})).status_code == 200
    assert (await web.get("/api/chat", params={"user": COMMITTEE})).json()["history"] == []
    text = (await say(web, COMMITTEE, "/progress", "23/90"))["text"]
    assert "Annual plan" in text  # the language choice survives a reset
    assert (await web.post("/api/lang", json={"lang": "xx"})).status_code == 400


async def test_files_the_bot_sent_can_be_downloaded(web: httpx.AsyncClient, sandbox: Sandbox) -> None:
    from tests.test_localapi import png_bytes

    async with httpx.AsyncClient(base_url=sandbox.api.base_url.rsplit("/bot", 1)[0]) as api:
        sent = await api.post(f"/bot{SANDBOX_TOKEN}/sendPhoto", data={"chat_id": str(ADMIN)},
                              files={"photo": ("chart.png", png_bytes(), "image/png")})
        photo_id = sent.json()["result"]["photo"][0]["file_id"]
        sent = await api.post(f"/bot{SANDBOX_TOKEN}/sendDocument", data={"chat_id": str(ADMIN)},
                              files={"document": ("tiến độ.html", b"<script>x</script>", "text/html")})
        document = sent.json()["result"]["document"]
    shown = await web.get(f"/api/file/{photo_id}?inline=1")
    assert shown.content == png_bytes() and shown.headers["content-type"] == "image/png"
    assert shown.headers["content-disposition"].startswith("inline")
    download = await web.get(f"/api/file/{document['file_id']}?inline=1")  # never shown inline: not an image
    assert download.content == b"<script>x</script>"
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''ti%E1%BA%BFn%20%C4%91%E1%BB%99.html"
    assert (await web.get("/api/file/nope")).status_code == 404
    history = (await web.get("/api/chat", params={"user": ADMIN})).json()["history"]
    assert [("photo" in e["message"], "document" in e["message"]) for e in history] == [(True, False), (False, True)]


async def test_run_now_runs_the_weekly_service(
    web: httpx.AsyncClient, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.sandbox as sandbox_module
    from services.weekly import RunSummary

    calls: list[tuple[Any, str]] = []

    async def run_weekly(services: Any, outbox: Any, kind: str, as_of: date | None = None) -> RunSummary:
        calls.append((services, kind))
        await outbox.bot.send_message(COMMITTEE, f"<b>{kind}</b> now")
        return RunSummary(kind=kind, week_start=date(2026, 6, 29), recipients=1, sent=1)

    monkeypatch.setattr(sandbox_module, "run_weekly", run_weekly)
    done = await web.post("/api/run/digest", json={})
    assert done.status_code == 200, done.text
    assert done.json()["result"]["sent"] == 1
    assert sandbox.application is not None and calls == [(sandbox.application.services, "digest")]
    await chat_until(web, COMMITTEE, last_text_with("<b>digest</b> now"))
    assert (await web.post("/api/run/weather", json={})).status_code == 404


async def test_refuses_to_wipe_the_real_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    config = Config(database=DatabaseSettings(url=url), sandbox=SandboxSettings(port=0, database_url=url))
    with pytest.raises(SandboxError) as raised:
        await Sandbox(config, port=0).start()
    assert raised.value.reason == "same_database"
    assert not (tmp_path / "bot.db").exists()


def test_bot_config_points_only_at_the_local_fake(tmp_path: Path) -> None:
    config = replace(Config(), sandbox=SandboxSettings(database_url=f"sqlite:///{tmp_path / 's.db'}"))
    sandbox = Sandbox(config, port=0)
    bot = sandbox.bot_config()
    assert bot.telegram.base_url.startswith("http://127.0.0.1:") and bot.telegram.token == SANDBOX_TOKEN
    assert bot.database.url == config.sandbox.database_url
