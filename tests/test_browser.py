"""The sandbox in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

Starts `python -m bot sandbox --port 0` as a real process, then acts as a secretary who reports an
admission by tapping buttons, and as the committee member whose /progress then shows 24/90.
Screenshots go to test-output/browser/ (kept out of git) for people and CI artifacts.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
            page.set_default_timeout(STEP_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(sandbox_url)

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
