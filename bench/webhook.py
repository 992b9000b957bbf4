"""Webhook throughput on PostgreSQL: /progress and a full /report conversation, with 1 and 2 bot processes.

    .venv/bin/python -m bench.webhook --url postgresql://127.0.0.1:5432/bench_webhook [--updates 300] [--reports 40]
        [--rounds 5] [--latency-ms 0]

The database is created if missing and its tables are re-created (it is the benchmark's own).
One harness for everything: the local fake Bot API (localapi, in this process) delivering by
POST over 8 parallel connections (one chat's updates in order, as Telegram), and round-robin
reverse proxies, each in a process of its own (as nginx would be), in front of:

- a bare PTB echo bot in webhook mode (PTB's own tornado webhook, a subprocess), texts echoed;
- the bot (`bench.webhook serve`: `run` in webhook mode without the 30 msg/s rate limiter, a
  subprocess per process), one process behind one proxy, both behind another.

Everything starts once; then each round measures, one after another, by pointing the fake's
webhook (setWebhook) at the right proxy: the echo bot (a burst of texts from 20 people, and 20
people each sending 9 texts, every one after the last reply: the /report pattern), then one
process and two: /progress from 20 committee members of the district, and whole /report
conversations (9 updates each: /report, name, birth year, sex, ethnicity, date, no decision
number, Youth Union, ✅) from 20 secretaries at once, each waiting for the bot's question.

`--latency-ms N` makes every Bot API answer wait N ms after it is processed, as the round trip
to Telegram does (and the fake then delivers over Telegram's default 40 connections, not 8):
a process then waits on the network more than it computes, as a deployed one does.

Figures are updates/s from the first push to the last reply, with the CPU the answering
processes spent per update and how busy the machine's CPUs were (harness, proxies, PostgreSQL
and bots together, from /proc); the medians over the rounds and their ratios are what
docs/BENCHMARKS.md records (one run on a shared machine varies by a factor of two). Also
`serve --config FILE`, `echo …` and `proxy …` (the subprocesses; not for direct use).
"""


from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:" + "W" * 35
SECRET = "bench-webhook-secret"
COMMITTEE = list(range(910_001, 910_021))
SECRETARIES = list(range(920_001, 920_021))
FAMILY = ("Lò", "Hoàng", "Nông", "Triệu", "Lục")
GIVEN = ("Hoa", "Mai", "Lan", "Đào", "Cúc", "Huệ", "Sen", "Thu")


# ----------------------------------------------------------------------------- the subprocesses

def serve(config_path: Path) -> None:
    """Run the bot in webhook mode without the rate limiter until SIGTERM (one benchmark process)."""
    from bot.app import build_application
    from bot.lifecycle import running
    from core.config import load_config

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        application = build_application(load_config(config_path), rate_limit=False)
        async with running(application, poll=False, webhook=True, jobs=True):
            await stop.wait()

    asyncio.run(main())


def echo(base_url: str, port: int, hook_url: str) -> None:
    """Run a bare PTB echo bot on PTB's own webhook server until SIGTERM, handling as many updates at
    once as the bot does (else its burst measures the Bot API's answer time, one reply after another)."""
    from telegram.ext import ApplicationBuilder, MessageHandler, filters

    from bot.app import AdmissionsApplication

    async def reply(update, context) -> None:  # type: ignore[no-untyped-def]
        await update.message.reply_text(update.message.text)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        application = (ApplicationBuilder().token(TOKEN).base_url(base_url)
                       .concurrent_updates(AdmissionsApplication.UPDATES_AT_ONCE).build())
        application.add_handler(MessageHandler(filters.TEXT, reply))
        async with application:
            await application.updater.start_webhook(listen="127.0.0.1", port=port, url_path="hook",
                                                    webhook_url=hook_url, secret_token=SECRET)
            await application.start()
            await stop.wait()
            await application.updater.stop()
            await application.stop()

    asyncio.run(main())


def proxy(port: int, upstreams: list[int]) -> None:
    """Run the round-robin reverse proxy (tests.test_multiprocess) on `port` until SIGTERM."""
    from tests.test_multiprocess import RoundRobinProxy

    stop = asyncio.Event()

    async def main() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        running_proxy = RoundRobinProxy(tuple(upstreams), port=port)
        await stop.wait()
        running_proxy.stop()

    asyncio.run(main())


# ----------------------------------------------------------------------------- the harness

def _prepare(url: str) -> None:
    """Create the database if needed, re-create its schema, load the small world and the people."""
    import psycopg
    from sqlalchemy import insert, select
    from sqlalchemy.engine import make_url

    from models import Base
    from models.db import create_sync_engine_for, migrate
    from models.entities import Assignment, Person, Role, Unit

    parsed = make_url(url)
    admin = parsed.set(database="postgres").render_as_string(hide_password=False).replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)).fetchone():
            conn.execute(f'CREATE DATABASE "{parsed.database}"')
    engine = create_sync_engine_for(url)
    with engine.begin() as conn:
        from sqlalchemy import text

        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate(url)
    engine.dispose()
    asyncio.run(_load_world(url))
    engine = create_sync_engine_for(url)
    with engine.begin() as conn:
        units = dict(conn.execute(select(Unit.code, Unit.id)).all())
        now = datetime(2026, 6, 1, tzinfo=timezone.utc)
        for users, code, role in ((COMMITTEE, "PN", Role.COMMITTEE), (SECRETARIES, "NL", Role.SECRETARY)):
            for user in users:
                person_id = conn.execute(insert(Person).values(
                    telegram_id=user, display_name="Bench", language="vi", active=True,
                    registered_at=now).returning(Person.id)).scalar_one()
                conn.execute(insert(Assignment).values(person_id=person_id, unit_id=units[code], role=role))
    engine.dispose()


async def _load_world(url: str) -> None:
    """Load the tests' small world (a district, two communes, three cells, their targets)."""
    from types import SimpleNamespace

    from models.db import Database
    from tests.harness import seed_world

    db = Database(url)
    await seed_world(SimpleNamespace(begin=db.writing))
    await db.dispose()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _spawn(folder: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.webhook", *args], cwd=folder, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=(folder / "bench.log").open("ab"))


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _bot_config(folder: Path, name: str, server, url: str, port: int, hook_url: str) -> Path:  # type: ignore[no-untyped-def]
    path = folder / f"{name}.toml"
    path.write_text(
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{server.base_url}"\nbase_file_url = "{server.base_file_url}"\n'
        f'mode = "webhook"\n[database]\nurl = "{url}"\n'
        f'[webhook]\nurl = "{hook_url}"\nport = {port}\nsecret_token = "{SECRET}"\n', encoding="utf-8")
    return path


def _listening(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


def _webhook_set_to(server, since: int, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    server.state.wait_for(lambda: any(c.method == "setWebhook" and c.ok for c in server.state.calls[since:]), timeout)


def _texts(server, users: list[int], text: str, count: int) -> float:  # type: ignore[no-untyped-def]
    """Push `count` texts round-robin from `users`; return updates/s until as many replies were sent."""
    state = server.state
    since = len(state.calls)
    started = time.perf_counter()
    for i in range(count):
        state.push_text(users[i % len(users)], text)
    state.wait_for(lambda: len(state.calls_to("sendMessage", since=since)) >= count, timeout=600)
    return count / (time.perf_counter() - started)


def _report_name(number: int) -> str:
    """Return the name reported in conversation `number` (40 different names, then again)."""
    return f"{FAMILY[number % len(FAMILY)]} Thị {GIVEN[number // len(FAMILY) % len(GIVEN)]}"


def _report(server, user: int, number: int) -> int:  # type: ignore[no-untyped-def]
    """Fill in and save one report as a secretary would; return the updates it took."""
    state = server.state
    name = _report_name(number)

    def wait(mark: int, fragment: str) -> None:
        state.wait_for(lambda: any(c.chat_id == user and c.ok and c.method in ("sendMessage", "editMessageText")
                                   and fragment in (c.params.get("text") or "") for c in state.calls[mark:]),
                       timeout=120)

    def say(text: str, fragment: str) -> None:
        mark = state.mark()
        state.push_text(user, text)
        wait(mark, fragment)

    def tap(label: str, fragment: str) -> None:
        message_id, data = state.find_button(user, label)
        mark = state.mark()
        state.push_callback(user, message_id, data)
        wait(mark, fragment)

    say("/report", "họ và tên")
    say(name, "Năm sinh")
    say("1998", "Giới tính")
    tap("Nữ", "Dân tộc")
    tap("Tày", "Ngày quyết định")
    say("15/05/2026", "Số quyết định")
    tap("Bỏ qua", "đoàn viên")
    tap("Có", "Phiếu báo cáo")
    tap("✅", "Đã lưu")
    return 9


def _echo_conversation(server, user: int, number: int) -> int:  # type: ignore[no-untyped-def]
    """Talk to the echo bot as a secretary fills in a report: 9 texts, each after the last reply."""
    state = server.state
    for step in range(9):
        text = f"step {number}.{step}"
        mark = state.mark()
        state.push_text(user, text)
        state.wait_for(lambda: any(c.chat_id == user and c.ok and c.method == "sendMessage"
                                   and c.params.get("text") == text for c in state.calls[mark:]), timeout=120)
    return 9


def _conversations(server, count: int, talk) -> float:  # type: ignore[no-untyped-def]
    """Run `count` conversations (`talk`), 20 secretaries at once, each one's after their last; return updates/s."""
    people = len(SECRETARIES)

    def one_person(first: int) -> int:  # a person never starts a second report before the first is saved
        return sum(talk(server, SECRETARIES[first], number) for number in range(first, count, people))

    started = time.perf_counter()
    with ThreadPoolExecutor(people) as pool:
        updates = sum(pool.map(one_person, range(min(people, count))))
    return updates / (time.perf_counter() - started)


def _point_webhook_at(server, url: str) -> None:  # type: ignore[no-untyped-def]
    """Call the fake's setWebhook as the bot would, to send the next measurement's updates to `url`."""
    import json
    import urllib.request

    body = json.dumps({"url": url, "secret_token": SECRET}).encode()
    request = urllib.request.Request(f"{server.base_url}{TOKEN}/setWebhook", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert json.load(answer)["ok"]


def _cpu_seconds(pids: Iterable[int]) -> float:
    """Return the CPU time (user + system) the processes `pids` have used, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _postgres_pids() -> list[int]:
    """Return the PostgreSQL server's processes on this machine (their CPU counts as the harness's load)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def run(url: str, updates: int, reports: int, rounds: int, latency_ms: float = 0) -> None:
    """Measure the echo bot, the bot with one and with two processes, in turn, `rounds` times; print medians."""
    from localapi.server import BotApiServer
    from models.crypto import KEY_ENV, new_secret_text
    from tests.test_webhook import free_port

    os.environ.setdefault(KEY_ENV, new_secret_text())  # the benchmark database's own key, for every process
    _prepare(url)
    folder = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    server = BotApiServer().start()
    # Without latency 8 parallel POSTs keep every bot busy; with it, Telegram's default max_connections.
    server.state.webhook_connections = 40 if latency_ms else 8
    server.state.answer_latency = latency_ms / 1000
    for user in COMMITTEE + SECRETARIES:
        server.state.add_user(user, "Bench")
    echo_port, one_port, two_port = free_port(), free_port(), free_port()
    fronts = {name: free_port() for name in ("echo", "one", "two")}
    hook = {name: f"http://127.0.0.1:{port}/hook" for name, port in fronts.items()}
    upstreams = {"echo": [echo_port], "one": [one_port], "two": [one_port, two_port]}
    figures: dict[str, list[float]] = {}  # updates/s of each measurement, round after round
    cpu: dict[str, list[float]] = {}  # ms of CPU per update in the processes that answered
    busy: dict[str, list[float]] = {}  # % of the machine's CPUs used by everything in the harness
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # One round-robin proxy per setting, each in a process of its own like nginx; all stay up.
        for name, port in fronts.items():
            processes.append(_spawn(folder, "proxy", "--port", str(port),
                                    "--upstreams", ",".join(map(str, upstreams[name]))))
            _listening(port)
        mark = server.state.mark()
        processes.append(_spawn(folder, "echo", "--base-url", server.base_url, "--port", str(echo_port),
                                "--hook-url", hook["echo"]))
        _listening(echo_port)
        _webhook_set_to(server, mark)
        for number, port in enumerate((one_port, two_port)):
            mark = server.state.mark()
            processes.append(_spawn(folder, "serve", "--config",
                                    str(_bot_config(folder, f"bot{number}", server, url, port, hook["two"]))))
            _listening(port)
            _webhook_set_to(server, mark)
        echo_bot, bots = processes[3], processes[4:]

        def measure(key: str, answering: list[subprocess.Popen[bytes]], run_it: Callable[[], float]) -> None:
            """Run one measurement; keep its updates/s, the answering processes' CPU per update, the machine's load."""
            mine = [process.pid for process in answering]
            everything = [os.getpid(), *(process.pid for process in processes), *_postgres_pids()]
            mine_before, all_before, started = _cpu_seconds(mine), _cpu_seconds(everything), time.perf_counter()
            rate = run_it()
            wall = time.perf_counter() - started
            figures.setdefault(key, []).append(rate)
            cpu.setdefault(key, []).append(1000 * (_cpu_seconds(mine) - mine_before) / (rate * wall))
            busy.setdefault(key, []).append(100 * (_cpu_seconds(everything) - all_before) / (wall * (os.cpu_count() or 1)))

        for round_number in range(1, rounds + 1):
            _point_webhook_at(server, hook["echo"])
            _texts(server, COMMITTEE, "warm up", 40)
            measure("echo", [echo_bot], lambda: _texts(server, COMMITTEE, "xin chào", updates))
            measure("echo_talk", [echo_bot], lambda: _conversations(server, reports, _echo_conversation))
            for count, name in ((1, "one"), (2, "two")):
                _point_webhook_at(server, hook[name])
                _texts(server, COMMITTEE, "/progress", 40)
                measure(f"progress{count}", bots[:count], lambda: _texts(server, COMMITTEE, "/progress", updates))
                measure(f"report{count}", bots[:count], lambda: _conversations(server, reports, _report))
            print(f"  round {round_number}: " + ", ".join(
                f"{key} {values[-1]:.0f} ({cpu[key][-1]:.1f} ms, {busy[key][-1]:.0f} %)" for key, values in figures.items()),
                flush=True)
    finally:
        _stop(*processes)
        server.stop()
    print("  (updates/s (CPU of the answering processes per update, the machine's CPUs busy))")
    print(f"medians of {rounds} round{'s' if rounds > 1 else ''}:", flush=True)
    for key, label in (("echo", "echo, a burst of texts"), ("echo_talk", "echo, as conversations"),
                       ("progress1", "1 process, /progress"), ("report1", "1 process, /report"),
                       ("progress2", "2 processes, /progress"), ("report2", "2 processes, /report")):
        print(f"  {label:24s} {_median(figures[key]):6.0f} updates/s, {_median(cpu[key]):5.1f} ms CPU per update, "
              f"machine {_median(busy[key]):3.0f} % busy")
    median = {key: _median(values) for key, values in figures.items()}
    print("ratios of the medians:")
    for count in (1, 2):
        print(f"  {count} process{'es' if count > 1 else ''}: /progress "
              f"{100 * median[f'progress{count}'] / median['echo']:.0f} % of echo's burst; /report "
              f"{100 * median[f'report{count}'] / median['echo_talk']:.0f} % of echo's conversations")
    ratios = {key: [two / one for one, two in zip(figures[f"{key}1"], figures[f"{key}2"])] for key in ("progress", "report")}
    print(f"  two processes / one (median of the rounds' ratios): /progress {_median(ratios['progress']):.2f}x, "
          f"/report {_median(ratios['report']):.2f}x", flush=True)


def main() -> None:
    """Parse the command line and measure (or run one of the subprocesses)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--url", default="postgresql://127.0.0.1:5432/bench_webhook")
    parser.add_argument("--updates", type=int, default=300, help="texts per /progress or echo measurement")
    parser.add_argument("--reports", type=int, default=40, help="whole /report conversations per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of echo, one process, two processes")
    parser.add_argument("--latency-ms", type=float, default=0,
                        help="every Bot API answer waits this long (the round trip to Telegram; 0: none)")
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--config", type=Path, required=True)
    echo_parser = sub.add_parser("echo")
    echo_parser.add_argument("--base-url", required=True)
    echo_parser.add_argument("--port", type=int, required=True)
    echo_parser.add_argument("--hook-url", required=True)
    proxy_parser = sub.add_parser("proxy")
    proxy_parser.add_argument("--port", type=int, required=True)
    proxy_parser.add_argument("--upstreams", required=True)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.config)
    elif args.command == "proxy":
        proxy(args.port, [int(port) for port in args.upstreams.split(",")])
    elif args.command == "echo":
        echo(args.base_url, args.port, args.hook_url)
    else:
        run(args.url, args.updates, args.reports, args.rounds, args.latency_ms)


if __name__ == "__main__":
    main()
