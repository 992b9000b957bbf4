"""Per-update cost of the bot's own machinery, on the small test world (not a timed test).

    .venv/bin/python -m bench.overhead [--updates 200]

Drives /help (the cheapest registered command: the guard and the person, from memory after the
first time; one reply; the persistence flush; the update recorded as processed, in groups) and
/progress through the local Bot API server, without the rate limiter (with it, Telegram's ~30
messages/s caps everything), and prints updates/s.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bot import app as bot_app
from core.clock import FixedClock
from localapi.server import BotApiServer
from models import Base
from models.db import create_sync_engine_for
from models.entities import Role
from tests import harness


async def _drive(bot: harness.BotHarness, users: list[int], text: str, count: int) -> float:
    started = time.perf_counter()
    last = None
    for i in range(count):
        last = bot.api.push_text(users[i % len(users)], text)
    assert last is not None
    await bot.settle(last, timeout=300)
    return count / (time.perf_counter() - started)


async def run(count: int) -> None:
    """Measure /help and /progress updates/s for 20 committee members of the test district."""
    folder = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    url = f"sqlite:///{folder / 'bench.db'}"
    engine = create_sync_engine_for(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    server = BotApiServer().start()
    build = bot_app.build_application
    harness.build_application = lambda config, clock=None: build(config, clock=clock, rate_limit=False)  # type: ignore[assignment]  # noqa: E501
    bot = harness.BotHarness(harness.make_config(url, server), server, FixedClock(harness.DEFAULT_NOW))
    try:
        await bot.start()
        await harness.seed_world(bot.sessions)
        users = list(range(5000, 5020))
        for user in users:
            await bot.register(user, "PN", Role.COMMITTEE)
        for text in ("/help", "/progress"):
            await _drive(bot, users, text, 20)
            print(f"  {text:<10} {await _drive(bot, users, text, count):6.0f} updates/s", flush=True)
    finally:
        await bot.stop()
        server.stop()
        harness.build_application = build  # type: ignore[assignment]


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=200)
    asyncio.run(run(parser.parse_args().updates))


if __name__ == "__main__":
    main()
