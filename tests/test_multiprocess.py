"""Two real `python -m bot run` processes in webhook mode on one PostgreSQL database.

- The leader is killed with -9 half-way through a 500-recipient reminder run; the standby takes
  the scheduler lock over and finishes the run: nobody gets a second reminder, and only a send in
  flight at the kill may be missing — then it is counted as uncertain, never silently lost.
- One secretary's report, its steps spread across both processes by a round-robin proxy (as
  nginx would), and its ✅ delivered to both at once: every step sees the previous one's state,
  and the report is saved once with every answer.

Skipped when PostgreSQL is not reachable, like every PostgreSQL case of the suite.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from localapi.server import BotApiServer
from tests.conftest import POSTGRES_URL, _pg_state, _postgres_database, reset_schema
from tests.test_kill9 import ROOT, TOKEN, UNITS, USER, _say, _tap
from tests.test_webhook import SECRET, free_port, get, post

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture
def pg_url() -> str:
    """Return the URL of an empty PostgreSQL database, or skip."""
    url = _postgres_database()
    if url is None:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({_pg_state.get('error')})")
    reset_schema(url)
    return url


def _config(folder: Path, name: str, server: BotApiServer, url: str, port: int, hook_url: str,
            extra: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{server.base_url}"\nbase_file_url = "{server.base_file_url}"\n'
        f'mode = "webhook"\n[database]\nurl = "{url}"\n{extra}'
        f'[webhook]\nurl = "{hook_url}"\nport = {port}\nsecret_token = "{SECRET}"\n', encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(config), *args], cwd=config.parent,
                          env=_env(), capture_output=True, text=True, timeout=60)


def _run(config: Path) -> subprocess.Popen[bytes]:
    log = (config.parent / f"{config.stem}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "run"], cwd=config.parent,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=log)


def _healthy(port: int, timeout: float = 30) -> str:
    """Wait until the process on `port` answers /healthz; return its scheduler role."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = get(port, "/healthz")
            if status == 200:
                return str(body["scheduler"])
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no healthy bot on port {port}")
        time.sleep(0.1)


def _stop(*processes: subprocess.Popen[bytes] | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        if process is not None:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_the_standby_finishes_the_run_of_a_leader_killed_half_way(tmp_path: Path, pg_url: str) -> None:
    from sqlalchemy import insert, select

    from models.db import create_sync_engine_for
    from models.entities import Assignment, Person, Role, Unit
    from models.sentlog import SendStatus, SentReminder, WeeklyRun

    recipients = 500
    now = datetime.now(timezone.utc)
    due = now - timedelta(minutes=5)  # the reminder was due a moment ago: the leader catches it up at start
    quiet = f"{(now + timedelta(hours=3)):%H}:00-{(now + timedelta(hours=4)):%H}:00"
    schedule = (f'[bot]\ntimezone = "UTC"\n[reminders]\nreminder_day = "{WEEKDAYS[due.weekday()]}"\n'
                f'reminder_time = "{due:%H:%M}"\ndigest_day = "{WEEKDAYS[(due.weekday() + 3) % 7]}"\n'
                f'quiet_hours = "{quiet}"\ncatch_up_hours = 12\n')
    server = BotApiServer().start()
    leader = standby = None
    try:
        ports = free_port(), free_port()
        configs = [_config(tmp_path, f"bot{i}", server, pg_url, port, f"http://127.0.0.1:{ports[0]}/hook", schedule)
                   for i, port in enumerate(ports)]
        cells = "".join(f"C{i},Chi bộ thôn {i},X,cell\n" for i in range(recipients))
        (tmp_path / "units.csv").write_text(UNITS + cells, encoding="utf-8")
        assert _cli(configs[0], "init").returncode == 0
        assert _cli(configs[0], "import-units", "units.csv").returncode == 0
        engine = create_sync_engine_for(pg_url)
        with engine.begin() as conn:
            units = dict(conn.execute(select(Unit.code, Unit.id)).all())
            for i in range(recipients):
                person_id = conn.execute(insert(Person).values(
                    telegram_id=10_000 + i, display_name=f"Bí thư {i}", language="vi", active=True,
                    registered_at=datetime(2026, 1, 1, tzinfo=timezone.utc)).returning(Person.id)).scalar_one()
                conn.execute(insert(Assignment).values(person_id=person_id, unit_id=units[f"C{i}"],
                                                       role=Role.SECRETARY))
                server.state.add_user(10_000 + i)

        def reminders() -> dict[int, int]:
            counts: dict[int, int] = {}
            for call in list(server.state.calls):
                if call.method == "sendMessage" and call.ok and call.chat_id and call.chat_id >= 10_000:
                    counts[call.chat_id] = counts.get(call.chat_id, 0) + 1
            return counts

        leader = _run(configs[0])
        assert _healthy(ports[0]) == "leader"
        standby = _run(configs[1])
        assert _healthy(ports[1]) == "standby"
        server.state.wait_for(lambda: len(reminders()) >= 120, timeout=40)
        leader.send_signal(signal.SIGKILL)  # mid-run: no cleanup at all
        leader.wait(timeout=10)
        at_kill = len(reminders())
        assert at_kill < recipients, "the run ended before the kill: the test proves nothing"
        # The standby takes over within its retry interval (10 s) and finishes the week's run.
        server.state.wait_for(lambda: _healthy(ports[1]) == "leader", timeout=40)
        with engine.connect() as conn:
            def completed() -> bool:
                return bool(conn.execute(select(WeeklyRun.id).where(WeeklyRun.kind == "reminder",
                                                                   WeeklyRun.completed_at.is_not(None))).first())
            server.state.wait_for(completed, timeout=40)
            uncertain = set(conn.execute(select(Person.telegram_id).join(
                SentReminder, SentReminder.person_id == Person.id).where(
                SentReminder.status.in_((SendStatus.PENDING, SendStatus.UNCERTAIN)))).scalars())
        engine.dispose()
        delivered = reminders()
        assert [chat for chat, n in delivered.items() if n > 1] == []  # nobody got two
        missing = {10_000 + i for i in range(recipients)} - set(delivered)
        # Nobody silently lost: whoever got none is one of the sends in flight at the kill, each counted as uncertain.
        assert missing <= uncertain and len(missing) <= 4
        assert len(delivered) > at_kill  # the standby sent the rest
    finally:
        _stop(leader, standby)
        server.stop()


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 511  # nginx's listen backlog (socketserver's 5 drops a burst's connections: 1 s SYN retries)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a peer hanging up mid-request (a process killed -9, a retry given up) is what these tests do


class RoundRobinProxy:
    """A reverse proxy as nginx with two upstreams would be: each POST goes to the next process in turn."""

    def __init__(self, ports: tuple[int, ...], port: int = 0) -> None:
        self.ports = list(ports)  # the upstreams; may be changed between requests
        lock = threading.Lock()
        self.sent_to: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    port = outer.ports[len(outer.sent_to) % len(outer.ports)]
                    outer.sent_to.append(port)
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    connection.request("POST", self.path, body=body, headers=dict(self.headers))
                    status = connection.getresponse().status
                except OSError:
                    status = 502
                finally:
                    connection.close()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_one_persons_report_spread_over_two_processes_stays_consistent(tmp_path: Path, pg_url: str) -> None:
    server = BotApiServer().start()
    ports = free_port(), free_port()
    proxy = RoundRobinProxy(ports)
    first = second = None
    try:
        configs = [_config(tmp_path, f"bot{i}", server, pg_url, port, f"http://127.0.0.1:{proxy.port}/hook")
                   for i, port in enumerate(ports)]
        (tmp_path / "units.csv").write_text(UNITS, encoding="utf-8")
        assert _cli(configs[0], "init").returncode == 0
        assert _cli(configs[0], "import-units", "units.csv").returncode == 0
        code = _cli(configs[0], "invite", "C", "secretary").stdout.strip().splitlines()[-1]
        server.state.add_user(USER, "Hoa")
        first = _run(configs[0])
        _healthy(ports[0])
        second = _run(configs[1])
        _healthy(ports[1])
        _say(server, f"/start {code}", "Nà Lạn")
        _say(server, "/report", "họ và tên")
        _say(server, "Lò Thị Hoa", "Năm sinh")
        _say(server, "1998", "Giới tính")
        _tap(server, "Nữ", "Dân tộc")
        _tap(server, "Tày", "Ngày quyết định")
        _say(server, "15/05/2026", "Số quyết định")
        _tap(server, "Bỏ qua", "đoàn viên")
        card = _tap(server, "Có", "Phiếu báo cáo")
        assert "Lò Thị Hoa" in card and "1998" in card and "Nữ" in card and "Tày" in card
        assert set(proxy.sent_to) == set(ports)  # the steps really went to both processes
        # ✅ pressed, and Telegram's delivery of it reaching both processes at once (a retry racing
        # the first attempt): the chat's lock makes one wait, and it finds the update handled.
        message_id, data = server.state.find_button(USER, "✅")
        pressed = server.state.push_callback(USER, message_id, data)
        body = json.dumps(pressed).encode()
        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(lambda port: post(port, "/hook", body, SECRET), ports))
        assert statuses == [200, 200]
        from sqlalchemy import select

        from models.db import create_sync_engine_for
        from models.entities import Admission

        engine = create_sync_engine_for(pg_url)
        with engine.connect() as conn:
            rows = conn.execute(select(Admission.full_name, Admission.birth_year, Admission.ethnicity)).all()
        engine.dispose()
        assert [tuple(row) for row in rows] == [("Lò Thị Hoa", 1998, "Tày")]
        saved = [c for c in server.state.calls if c.chat_id == USER and c.ok and "Đã lưu" in (c.params.get("text") or "")]
        assert len(saved) == 1  # handled once: the other process skipped the repeat
    finally:
        _stop(first, second)
        proxy.stop()
        server.stop()
