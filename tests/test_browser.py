"""The sandbox in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

Starts `python -m bot sandbox --port 0` as a real process, then acts as a secretary who reports an
admission by tapping buttons, and as the committee member whose /progress then shows 24/90 (desktop),
and does the same on a phone-sized screen, where the input must stay on screen, the newest answer in
view, and a button's answer must show once and never again after a reload.
Screenshots go to test-output/browser/ (kept out of git) for people and CI artifacts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OUTPUT = ROOT / "test-output" / "browser"
STEP_MS = 20_000  # how long one step may take before the test fails (not a speed assertion)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="browser test skipped: /usr/bin/chromium is missing (apt-get install chromium; .ci/run does it)",
)


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    """Start the sandbox command on a free port; yield the page address; stop it (SIGTERM)."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "bot.db"}"\n'
        f'[sandbox]\ndatabase_url = "sqlite:///{tmp_path / "sandbox.db"}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    log = (tmp_path / "sandbox.log").open("w", encoding="utf-8")  # a file, so a full pipe never blocks it
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "sandbox", "--port", "0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    url = None
    try:
        while url is None:
            line = lines.get(timeout=60)
            if line is None:
                log.flush()
                raise AssertionError(f"the sandbox exited ({process.wait()}): {(tmp_path / 'sandbox.log').read_text()}")
            if match := re.search(r"http://127\.0\.0\.1:\d+/", line):
                url = match.group(0)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)  # SIGINT may be ignored when the runner was started in the background
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_secretary_reports_by_tapping_and_committee_sees_24_of_90(sandbox_url: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser test skipped: playwright not installed")
    expect = sync_api.expect
    OUTPUT.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="vi-VN")
            page.set_default_timeout(STEP_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(sandbox_url)
            # A desktop keeps the side list of people; the phone's drop-down and ⋮ menu are not shown.
            expect(page.locator(".people")).to_be_visible()
            expect(page.locator("#person-select")).to_be_hidden()
            expect(page.locator("#more")).to_be_hidden()
            expect(page.locator("#run-reminder")).to_be_visible()

            # The secretary of Chi bộ thôn Nà Coóc opens the menu and reports, mostly by tapping.
            page.click("[data-person-id='900001']")
            expect(page.locator("#chat-name")).to_have_text("Lò Thị Mẫu")
            page.click("#menu-button")
            page.click(".menu-item[data-command='report']")
            last = page.locator(".msg.bot").last

            def answer(text: str, then: str) -> None:
                page.fill("#text", text)
                page.press("#text", "Enter")
                expect(last).to_contain_text(then)

            def tap(label: str, then: str) -> None:
                last.get_by_role("button", name=label, exact=True).click()
                expect(last).to_contain_text(then)

            expect(last).to_contain_text("họ và tên")
            answer("Lường Thị Hoa", "Năm sinh")
            answer("1999", "Giới tính")
            tap("Nữ", "Dân tộc")
            tap("Tày", "Ngày quyết định")
            tap("Hôm nay", "Số quyết định")
            tap("Bỏ qua", "đoàn viên")
            tap("Có", "Phiếu báo cáo")
            expect(last.locator("b").first).to_have_text("Phiếu báo cáo kết nạp đảng viên")  # HTML rendered
            tap("✅ Lưu báo cáo", "Đã lưu")
            page.screenshot(path=str(OUTPUT / "sandbox-secretary.png"))

            # The committee member of the district asks for progress: the report counts.
            page.click("[data-person-id='900003']")
            expect(page.locator("#chat-name")).to_have_text("Hoàng Văn Mẫu")
            answer("/progress", "24/90")
            expect(last).to_contain_text("216/400")
            page.screenshot(path=str(OUTPUT / "sandbox-committee.png"))
            assert errors == []
        finally:
            browser.close()


# ---------------------------------------------------------------------------------------------- phone

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
BOT_ZONE = "Asia/Ho_Chi_Minh"

# Is the newest bot message's end inside the visible part of the chat, and the input on screen?
IN_VIEW_JS = """() => {
  const list = document.getElementById("messages").getBoundingClientRect();
  const input = document.getElementById("text").getBoundingClientRect();
  const bots = document.querySelectorAll("#messages .msg.bot");
  if (!bots.length) return {ok: false, why: "no bot message"};
  const last = bots[bots.length - 1].getBoundingClientRect();
  const inputOk = input.top >= 0 && input.left >= 0 && input.bottom <= window.innerHeight + 0.5
    && input.right <= window.innerWidth + 0.5 && input.height > 0;
  const endOk = last.bottom <= list.bottom + 1 && last.bottom > list.top;
  const topOk = last.top >= list.top - 1 || last.height > list.height;  // a message taller than the chat: its end
  return {ok: inputOk && endOk && topOk, input: [input.top, input.bottom], last: [last.top, last.bottom],
          list: [list.top, list.bottom], viewport: window.innerHeight};
}"""


def _wait_in_view(page, what: str) -> None:
    """Fail unless the input is fully on screen and the newest bot message is in the chat's visible part."""
    try:
        page.wait_for_function(f"({IN_VIEW_JS})().ok", timeout=5_000)
    except Exception:  # noqa: BLE001 - report the geometry instead of a bare timeout
        raise AssertionError(f"{what}: not in view: {page.evaluate(IN_VIEW_JS)}") from None


def _with_sandbox_fields(route) -> None:
    """Add the /api/people fields a newer server sends (timezone, today, clock) when this one lacks them.

    The stand-ins say what such a server would: the bot's zone and the real clock's date there.
    """
    response = route.fetch()
    data = response.json()
    data.setdefault("timezone", BOT_ZONE)
    data.setdefault("today", dt.datetime.now(ZoneInfo(data["timezone"])).date().isoformat())
    data.setdefault("clock", "real")
    route.fulfill(response=response, json=data)


def test_phone_keeps_input_and_newest_answer_in_view_and_shows_a_toast_once(sandbox_url: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser test skipped: playwright not installed")
    expect = sync_api.expect
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with urlopen(f"{sandbox_url}api/people", timeout=10) as answer:
        served = json.load(answer)
    zone = ZoneInfo(served.get("timezone") or BOT_ZONE)
    today = served.get("today") or dt.datetime.now(zone).date().isoformat()
    shown_day = "/".join(reversed(today.split("-")))

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # The browser is far from the bot (New York): times must still be the bot's.
            context = browser.new_context(**PHONE, locale="vi-VN", timezone_id="America/New_York")
            page = context.new_page()
            page.set_default_timeout(STEP_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.route("**/api/people", _with_sandbox_fields)
            page.goto(sandbox_url)

            # A slim header: people in a drop-down, actions behind ⋮; the date of the sandbox in a line.
            expect(page.locator(".people")).to_be_hidden()
            expect(page.locator("#person-select")).to_be_visible()
            expect(page.locator("#run-reminder")).to_be_hidden()
            expect(page.locator("#banner")).to_have_text(f"Hộp cát: hôm nay là {shown_day}")
            header = page.locator("#topbar").bounding_box()
            assert header is not None and header["height"] <= 72, header

            page.select_option("#person-select", "900001")
            expect(page.locator("#chat-name")).to_have_text("Lò Thị Mẫu")
            page.click("#menu-button")
            page.click(".menu-item[data-command='report']")
            last = page.locator(".msg.bot").last

            def answer(text: str, then: str) -> None:
                page.fill("#text", text)
                page.press("#text", "Enter")
                expect(last).to_contain_text(then)

            def tap(label: str, then: str) -> None:
                last.get_by_role("button", name=label, exact=True).tap()
                expect(last).to_contain_text(then)

            expect(last).to_contain_text("họ và tên")
            answer("Lường Thị Hoa", "Năm sinh")
            _wait_in_view(page, "after sending the name")
            answer("1999", "Giới tính")
            tap("Nữ", "Dân tộc")
            _wait_in_view(page, "after tapping Nữ")
            # Every inline button is big enough for a thumb, and a long label stays inside its button;
            # a keyboard gets the width of a wide message, so "Nùng" is never cut into "Nùn-g".
            for box in last.locator(".kb").evaluate_all(
                    "els => els.map(e => ({h: e.offsetHeight, w: e.offsetWidth, t: e.textContent,"
                    " fits: e.scrollWidth <= e.clientWidth + 1}))"):
                assert box["h"] >= 44 and box["w"] >= 64 and box["fits"], box
            tap("Tày", "Ngày quyết định")
            tap("Hôm nay", "Số quyết định")
            tap("Bỏ qua", "đoàn viên")
            tap("Có", "Phiếu báo cáo")
            _wait_in_view(page, "the summary with its buttons")
            tap("✅ Lưu báo cáo", "Đã lưu")
            _wait_in_view(page, "after saving")
            for selector in ("#text", "#send", "#menu-button", "#more", "#person-select"):
                box = page.locator(selector).bounding_box()
                assert box is not None and box["height"] >= 44, (selector, box)

            # Message times are the bot's clock, whatever the browser's zone.
            with urlopen(f"{sandbox_url}api/chat?user=900001", timeout=10) as reply:
                newest = [e["message"] for e in json.load(reply)["history"] if e["from"] == "bot"][-1]
            sent = dt.datetime.fromtimestamp(newest.get("edit_date") or newest["date"], zone).strftime("%H:%M")
            expect(last.locator(".meta")).to_contain_text(sent)
            page.screenshot(path=str(OUTPUT / "phone-secretary.png"))

            # The committee member: /progress, then the chart button, whose answer shows in the bar once.
            page.select_option("#person-select", "900003")
            expect(page.locator("#chat-name")).to_have_text("Hoàng Văn Mẫu")
            answer("/progress", "24/90")
            _wait_in_view(page, "the progress answer")
            last.get_by_role("button", name="📊 Biểu đồ").tap()
            notice = page.locator("#notice")
            expect(notice).to_be_visible()
            expect(notice).not_to_be_empty()
            # The bar sits above the chat: it covers neither the buttons nor the input.
            bar, chat = notice.bounding_box(), page.locator("#messages").bounding_box()
            assert bar is not None and chat is not None and bar["y"] + bar["height"] <= chat["y"] + 1, (bar, chat)
            page.screenshot(path=str(OUTPUT / "phone-answer-bar.png"))
            photo = page.locator(".msg.bot .photo").last
            expect(photo).to_be_visible()
            page.wait_for_function("() => [...document.querySelectorAll('.photo')].every(i => i.complete)")
            box = photo.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
            _wait_in_view(page, "the chart")
            page.screenshot(path=str(OUTPUT / "phone-chart.png"))

            # A reload shows no old answer again (they were all shown, or there before the page opened).
            page.reload()
            expect(page.locator("#chat-name")).to_have_text("Hoàng Văn Mẫu")
            page.wait_for_timeout(2_500)  # a few polls
            expect(notice).to_be_hidden()
            _wait_in_view(page, "after a reload")

            # The actions live in the ⋮ menu; in English the page's own words are English.
            page.locator("#more").tap()
            expect(page.locator("#run-reminder")).to_be_visible()
            page.screenshot(path=str(OUTPUT / "phone-menu.png"))
            page.locator(".lang button[data-lang='en']").tap()
            expect(page.locator("#banner")).to_have_text(f"Sandbox: today is {shown_day}")
            expect(page.locator("#run-reminder")).to_be_hidden()
            expect(page.locator("#text")).to_have_attribute("placeholder", "Message…")
            page.reload()
            expect(page.locator("#banner")).to_have_text(f"Sandbox: today is {shown_day}")
            page.wait_for_timeout(2_000)
            expect(notice).to_be_hidden()
            page.screenshot(path=str(OUTPUT / "phone-english.png"))
            assert errors == []
        finally:
            browser.close()
