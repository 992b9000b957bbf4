"""Attack run: two webhook processes on PostgreSQL, one of them killed -9 (and restarted) every few seconds.

    .venv/bin/python -m bench.kill_webhook --url postgresql://127.0.0.1:5432/bench_webhook [--reports 200] [--seed 1]

20 secretaries fill in whole /report conversations (bench.webhook's), each waiting for the bot's
question before answering, through a round-robin proxy in front of both processes, while a
killer thread sends SIGKILL to a random process every 0,5–3 s and starts it again 0,2–1,5 s
later; the fake Bot API delivers again whatever was not answered 2xx, as Telegram does. Then it
counts, from the database and the fake: reports saved against reports finished, duplicates,
missing, steps left without an answer for 120 s and unhandled errors (tracebacks) in the bots'
log. Zero is the only good number for all but the first two; the exit status is 1 otherwise.
`--no-kill` runs the same without the killer (a baseline).
The database is the benchmark's own: its tables are re-created.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run(url: str, reports: int, seed: int, kill: bool) -> int:
    """Run the attack; print what was lost or doubled; return the exit status."""
    from sqlalchemy import select

    import bench.webhook as harness
    from localapi.server import BotApiServer
    from models.crypto import KEY_ENV, new_secret_text
    from models.db import create_sync_engine_for
    from models.entities import Admission, AdmissionSource
    from tests.test_multiprocess import RoundRobinProxy
    from tests.test_webhook import free_port

    os.environ.setdefault(KEY_ENV, new_secret_text())
    harness._prepare(url)
    folder = Path(tempfile.mkdtemp(prefix="bench-kill-"))
    server = BotApiServer().start()
    server.state.webhook_connections = 8
    for user in harness.SECRETARIES:
        server.state.add_user(user, "Bench")
    ports = [free_port(), free_port()]
    proxy = RoundRobinProxy(tuple(ports))
    configs = [harness._bot_config(folder, f"bot{i}", server, url, port, f"http://127.0.0.1:{proxy.port}/hook")
               for i, port in enumerate(ports)]
    bots: list = [None, None]

    def start(number: int) -> None:
        mark = server.state.mark()
        bots[number] = harness._spawn(folder, "serve", "--config", str(configs[number]))
        harness._listening(ports[number])
        harness._webhook_set_to(server, mark)

    stop, kills = threading.Event(), Counter()

    def killer() -> None:
        rng = random.Random(seed)
        while not stop.wait(rng.uniform(0.5, 3.0)):
            number = rng.randrange(2)
            bots[number].send_signal(signal.SIGKILL)
            bots[number].wait()
            kills[number] += 1
            time.sleep(rng.uniform(0.2, 1.5))
            start(number)

    unanswered: list[int] = []

    def one_person(first: int) -> int:
        done = 0
        for number in range(first, reports, len(harness.SECRETARIES)):
            try:
                done += harness._report(server, harness.SECRETARIES[first], number) // 9
            except TimeoutError:
                unanswered.append(number)
        return done

    try:
        start(0)
        start(1)
        if kill:
            threading.Thread(target=killer, daemon=True).start()
        started = time.perf_counter()
        with ThreadPoolExecutor(len(harness.SECRETARIES)) as pool:
            finished = sum(pool.map(one_person, range(min(reports, len(harness.SECRETARIES)))))
        stop.set()
        elapsed = time.perf_counter() - started
        time.sleep(2)  # whatever is still being delivered again lands
    finally:
        stop.set()
        harness._stop(*(bot for bot in bots if bot is not None))
        proxy.stop()
        server.stop()
    engine = create_sync_engine_for(url)
    with engine.connect() as connection:
        saved = Counter(connection.execute(select(Admission.full_name).where(
            Admission.source != AdmissionSource.IMPORT)).scalars())
    engine.dispose()
    expected = Counter(harness._report_name(number) for number in range(reports))
    doubled = sum(max(0, saved[name] - count) for name, count in expected.items())
    missing = sum(max(0, count - saved[name]) for name, count in expected.items())
    tracebacks = (folder / "bench.log").read_text(errors="replace").count("Traceback")
    print(f"{reports} reports by {len(harness.SECRETARIES)} secretaries in {elapsed:.0f} s; "
          f"{sum(kills.values())} kills -9 ({dict(kills)})")
    print(f"  finished as the secretary saw it {finished}, saved {sum(saved.values())}, "
          f"duplicates {doubled}, missing {missing}, steps unanswered for 120 s {len(unanswered)}, "
          f"tracebacks in the bots' log {tracebacks}")
    return 1 if doubled or missing or unanswered or tracebacks else 0


def main() -> None:
    """Parse the command line and attack."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql://127.0.0.1:5432/bench_webhook")
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-kill", action="store_true", help="the same run without the killer (a baseline)")
    args = parser.parse_args()
    sys.exit(run(args.url, args.reports, args.seed, not args.no_kill))


if __name__ == "__main__":
    main()
