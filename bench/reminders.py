"""One weekly reminder run to many secretaries against the fake Bot API enforcing Telegram's limit.

    .venv/bin/python -m bench.reminders --secretaries 10000

Makes a fresh SQLite database (Alembic migrations) with one province, committees of 100 cells and
one secretary per cell (direct inserts), starts the local fake Bot API server answering 429
(retry_after 1) beyond `--limit` sends per second, and performs one reminder run with
services.weekly.run_weekly through the real Application (PTB's AIORateLimiter included).
Prints: messages/s (overall, and the slowest 10-second window), 429s received, duplicates and
missing recipients (both must be 0), peak RSS of the process (the fake server runs in it too).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from bot.app import build_application
from core.clock import FixedClock
from core.config import Config, DatabaseSettings, TelegramSettings
from localapi.server import BotApiServer, BotApiState
from models.db import create_sync_engine_for, migrate
from models.entities import Assignment, Person, Role, Target, Unit, UnitKind

TOKEN = "123456789:" + "R" * 35
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 7, 3, 16, 0, tzinfo=TZ)  # Friday 16:00, the default reminder time
FIRST_USER = 500_000_000


def populate(url: str, secretaries: int) -> None:
    """Create the tree (province → committees of 100 cells) and one secretary per cell.

    Inserted directly for speed, so the cell counts models.units.load_units keeps are set here."""
    migrate(url)
    engine = create_sync_engine_for(url)
    committees = (secretaries + 99) // 100
    units = [{"id": 1, "code": "P", "name": "Tỉnh ủy", "kind": UnitKind.PROVINCE, "parent_id": None, "path": "/1/",
              "cell_count": secretaries}]
    cells, targets, people, assignments = [], [], [], []
    for c in range(committees):
        cid = 2 + c
        units.append({"id": cid, "code": f"C{c}", "name": f"Đảng ủy xã {c}", "kind": UnitKind.COMMITTEE,
                      "parent_id": 1, "path": f"/1/{cid}/", "cell_count": min(100, secretaries - 100 * c)})
    next_id = 2 + committees
    for i in range(secretaries):
        parent = 2 + i // 100
        uid = next_id + i
        cells.append({"id": uid, "code": f"Z{i}", "name": f"Chi bộ thôn {i}", "kind": UnitKind.CELL,
                      "parent_id": parent, "path": f"/1/{parent}/{uid}/", "cell_count": 1})
        targets.append({"unit_id": uid, "start_year": 2026, "end_year": 2026, "starts_on": date(2026, 1, 1),
                        "ends_on": date(2026, 12, 31), "value": 3})
        people.append({"id": i + 1, "telegram_id": FIRST_USER + i, "display_name": f"Bí thư {i}", "language": "vi",
                       "registered_at": NOW, "active": True})
        assignments.append({"person_id": i + 1, "unit_id": uid, "role": Role.SECRETARY})
    with engine.begin() as conn:
        conn.execute(insert(Unit), units + cells)
        conn.execute(insert(Target), targets)
        conn.execute(insert(Person), people)
        conn.execute(insert(Assignment), assignments)
    engine.dispose()


def slowest_window(times: list[float], width: float = 10.0) -> float:
    """Return the lowest messages/s over consecutive `width`-second windows (full windows only)."""
    if not times:
        return 0.0
    start, end = times[0], times[-1]
    rates = []
    t = start
    while t + width <= end:
        rates.append(sum(1 for x in times if t <= x < t + width) / width)
        t += width
    return min(rates) if rates else len(times) / max(end - start, 1e-9)


async def bench(secretaries: int, limit: float, folder: Path) -> dict[str, object]:
    """Run the benchmark and return its figures."""
    from bot.lifecycle import running
    from services.delivery import SEND_RATE
    from services.telegram import TelegramOutbox
    from services.weekly import run_weekly

    url = f"sqlite:///{folder / 'bench-reminders.db'}"
    started = time.perf_counter()
    populate(url, secretaries)
    populated = time.perf_counter() - started
    state = BotApiState(rate_limit_per_second=limit)
    for i in range(secretaries):
        state.add_user(FIRST_USER + i, f"S{i}")
    server = BotApiServer(state).start()
    try:
        config = Config(
            telegram=TelegramSettings(token=TOKEN, base_url=server.base_url, base_file_url=server.base_file_url),
            database=DatabaseSettings(url=url),
        )
        application = build_application(config, clock=FixedClock(NOW))
        async with running(application, poll=False, jobs=False):
            mark = state.mark()
            t0 = time.perf_counter()
            summary = await run_weekly(application.services, TelegramOutbox(application.bot), "reminder")
            elapsed = time.perf_counter() - t0
    finally:
        server.stop()
    calls = [c for c in state.calls[mark:] if c.method == "sendMessage"]
    ok = [c for c in calls if c.ok]
    per_chat = Counter(c.chat_id for c in ok)
    wanted = {FIRST_USER + i for i in range(secretaries)}
    return {
        "secretaries": secretaries,
        "server limit (msg/s)": limit,
        "pacing (msg/s)": SEND_RATE,
        "populate (s)": round(populated, 1),
        "run (s)": round(elapsed, 1),
        "delivered": len(ok),
        "messages/s": round(len(ok) / elapsed, 2),
        "slowest 10 s window (msg/s)": round(slowest_window(sorted(c.at for c in ok)), 2),
        "429s": sum(1 for c in calls if c.response.get("error_code") == 429),
        "other errors": sum(1 for c in calls if not c.ok and c.response.get("error_code") != 429),
        "duplicates": sum(n - 1 for n in per_chat.values() if n > 1),
        "missing": len(wanted - set(per_chat)),
        "summary": f"sent={summary.sent} skipped={summary.skipped} failed={summary.failed} blocked={summary.blocked}",
        "peak RSS (MiB)": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the figures; exit 1 on duplicates or missing recipients."""
    parser = argparse.ArgumentParser(prog="python -m bench.reminders", description=__doc__.splitlines()[0])
    parser.add_argument("--secretaries", type=int, default=10_000)
    parser.add_argument("--limit", type=float, default=30.0, help="messages/s the fake server allows (default 30)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the SQLite file (default: a temp folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(bench(args.secretaries, args.limit, args.dir or Path(tmp)))
    for key, value in figures.items():
        print(f"{key}: {value}")
    return 0 if figures["duplicates"] == 0 and figures["missing"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
