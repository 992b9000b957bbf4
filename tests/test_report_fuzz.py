"""Arbitrary text at every step of /report: never a crash or an apology, never anything stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import FixedClock
from localapi.server import BotApiServer
from models import Base
from models.db import create_sync_engine_for
from models.entities import Role
from tests.harness import DEFAULT_NOW, BotHarness, make_config, seed_world

USER = 1001
# Answers that lead to each step; the fuzzed text is sent as the next answer.
PATHS: list[list[tuple[str, str]]] = [
    [("say", "/report")],
    [("say", "/report"), ("say", "Lò Thị Hoa")],
    [("say", "/report"), ("say", "Lò Thị Hoa"), ("say", "1998")],
    [("say", "/report"), ("say", "Lò Thị Hoa"), ("say", "1998"), ("tap", "Nữ")],
    [("say", "/report"), ("say", "Lò Thị Hoa"), ("say", "1998"), ("tap", "Nữ"), ("tap", "Dân tộc khác")],
    [("say", "/report"), ("say", "Lò Thị Hoa"), ("say", "1998"), ("tap", "Nữ"), ("tap", "Tày")],
    [("say", "/report"), ("say", "Lò Thị Hoa"), ("say", "1998"), ("tap", "Nữ"), ("tap", "Tày"), ("tap", "Hôm nay")],
    [("say", "/report"), ("say", "Lò Thị Hoa"), ("say", "1998"), ("tap", "Nữ"), ("tap", "Tày"), ("tap", "Hôm nay"),
     ("tap", "Bỏ qua")],
    [("say", "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")],
    [("say", "/report Lò Thị Hoa, 1998, nữ, 15/05/2026"), ("tap", "✏️")],
]

texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=400),
    st.sampled_from(["x" * 5000, "😀" * 10, "<b>", "</i>&amp;", "1/1/1", "0", "-1", "9999", "nu", "/report a,b,c,d", " "]),
)


def test_arbitrary_text_at_every_step(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    engine = create_sync_engine_for(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    loop = asyncio.new_event_loop()
    server = BotApiServer().start()
    bot = BotHarness(make_config(url, server), server, FixedClock(DEFAULT_NOW))
    try:
        loop.run_until_complete(bot.start())
        loop.run_until_complete(seed_world(bot.sessions))
        loop.run_until_complete(bot.register(USER, "NL", Role.SECRETARY))

        async def drive(path: list[tuple[str, str]], text: str) -> list[dict]:
            await bot.say(USER, "/cancel")
            for action, value in path:
                await (bot.say(USER, value) if action == "say" else bot.tap(USER, value))
            return await bot.say(USER, text)

        @settings(max_examples=45, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(step=st.integers(0, len(PATHS) - 1), text=texts)
        def check(step: int, text: str) -> None:
            replies = loop.run_until_complete(drive(PATHS[step], text))
            assert replies, "the bot must answer every message"
            for reply in replies:
                assert "sự cố" not in reply.get("text", ""), reply
                assert "Traceback" not in reply.get("text", "")
            assert loop.run_until_complete(bot.all_admissions()) == []

        check()
        assert not [c for c in server.state.calls if not c.response.get("ok") and c.method != "getUpdates"]
    finally:
        loop.run_until_complete(bot.stop())
        loop.close()
        server.stop()
