"""Measure /progress at national scale: query time per scope, chart, district export, throughput.

Generate the databases first (bench/national.py), then:

    .venv/bin/python -m bench.progress --url sqlite:////tmp/national.db
    .venv/bin/python -m bench.progress --url postgresql://127.0.0.1:5432/bench_national

Figures are medians of repeated runs after a warm-up. "Query time" is everything /progress does
with the database for one unit (handlers.progress.build_view: the unit and its children with
breakdowns in one grouped query, the term line, targets, the text), without Telegram.
Throughput: the real Application (no rate limiter) against the local fake Bot API server, next to a
bare PTB echo bot on the same server in the same run; both process updates one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from core.clock import FixedClock
from core.config import Config, DatabaseSettings, TelegramSettings
from core.i18n import Texts
from models.db import create_engine_for, session_factory
from models.entities import Assignment, AuditChannel, Person, Role, Unit
from models.periods import Period

TOKEN = "123456789:" + "B" * 35
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 7, 1, 9, 0, tzinfo=TZ)
DAY = NOW.date()
SCOPES = (("cell", "cell"), ("committee", "committee"), ("district", "district"), ("province", "province"),
          ("national", None))


async def timed(work: Callable[[], Awaitable[object]], runs: int, warmup: int = 2) -> float:
    """Return the median wall time of `work` in milliseconds."""
    for _ in range(warmup):
        await work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def database_time(engine, work: Callable[[], Awaitable[object]], runs: int) -> float:  # type: ignore[no-untyped-def]
    """Return the median time (ms) `work` spends inside the database driver's execute calls."""
    from sqlalchemy import event

    spent: list[float] = []
    started: list[float] = []

    def before(*_args: object) -> None:
        started.append(time.perf_counter())

    def after(*_args: object) -> None:
        spent.append(time.perf_counter() - started.pop())

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    samples = []
    try:
        for _ in range(runs):
            spent.clear()
            await work()
            samples.append(sum(spent) * 1000)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)
    return statistics.median(samples)


async def pick_units(sessions) -> dict[str, Unit]:  # type: ignore[no-untyped-def]
    """Return one unit per scope: the median-id unit of each kind, and the root."""
    picked: dict[str, Unit] = {}
    async with sessions() as session:
        for name, kind in SCOPES:
            if kind is None:
                unit = await session.scalar(select(Unit).where(Unit.parent_id.is_(None)).order_by(Unit.id))
            else:
                total = await session.scalar(select(text("count(*)")).select_from(Unit).where(Unit.kind == kind))
                unit = await session.scalar(select(Unit).where(Unit.kind == kind, Unit.parent_id.is_not(None))
                                            .order_by(Unit.id).offset(int(total) // 2).limit(1))
            picked[name] = unit
    return picked


async def query_times(url: str, runs: int) -> dict[str, tuple[float, int]]:
    """Return {scope: (median ms of build_view, admitted this year)}, then the same without the reporting rate."""
    from handlers.progress import _reporting_rate_line, build_view
    from models.periods import Period
    from models.progress import progress_report

    engine = create_engine_for(url)
    sessions = session_factory(engine)
    units = await pick_units(sessions)
    tr = Texts.load().for_language("vi")
    admin = Person(telegram_id=1, display_name="bench", language="vi", registered_at=NOW,
                   assignments=[Assignment(role=Role.ADMIN, unit=units["national"])])
    out = {}
    for scope, unit in units.items():
        async def view() -> None:
            async with sessions() as session:
                await build_view(session, tr, admin, unit, Period.year(2026), False, DAY, TZ)
        async def rate() -> None:
            async with sessions() as session:
                await _reporting_rate_line(session, tr, unit, DAY, TZ)
        ms = await timed(view, runs)
        db_ms = await database_time(engine, view, runs)
        rate_ms = await timed(rate, max(3, runs // 3), 1)
        import handlers.progress as progress_handlers

        async def no_rate(*_args: object, **_kwargs: object) -> None:
            return None

        with_rate, progress_handlers._reporting_rate_line = progress_handlers._reporting_rate_line, no_rate
        try:
            bare = await timed(view, runs)
        finally:
            progress_handlers._reporting_rate_line = with_rate
        async with sessions() as session:
            admitted = (await progress_report(session, unit, Period.year(2026), DAY)).main.admitted
        out[scope] = (ms, admitted)
        print(f"  /progress {scope:<9} {ms:8.2f} ms (database {db_ms:6.2f} ms); without the reporting-rate line {bare:8.2f} ms "
              f"(reporting_rate alone {rate_ms:8.2f} ms)  ({admitted:,} admitted in 2026)", flush=True)
    await engine.dispose()
    return out


async def chart_and_export(url: str) -> dict[str, float]:
    """Return chart data/render and district XLSX timings in ms."""
    from handlers.chart import chart_data
    from reports.charts import render_progress_chart
    from reports.exports import export_bytes

    engine = create_engine_for(url)
    sessions = session_factory(engine)
    district = (await pick_units(sessions))["district"]
    tr = Texts.load().for_language("vi")
    figures: dict[str, float] = {}
    async with sessions() as session:
        payload = await chart_data(session, tr, district, Period.year(2026), DAY, True)
    render_progress_chart(*payload)  # warm-up: fonts and imports
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        render_progress_chart(*payload)
        samples.append((time.perf_counter() - started) * 1000)
    figures["chart_render"] = statistics.median(samples)

    async def data() -> None:
        async with sessions() as session:
            await chart_data(session, tr, district, Period.year(2026), DAY, True)
    figures["chart_data"] = await timed(data, 5, 1)

    sizes = {}

    async def export() -> None:
        async with sessions.begin() as session:  # an export writes its audit entry
            _, render = await export_bytes(session, district, Period.year(2026), DAY, "xlsx",
                                           at=datetime.now(timezone.utc), channel=AuditChannel.CLI)
        content = render()
        sizes["bytes"] = len(content)
    figures["xlsx_district"] = await timed(export, 3, 1)
    async with sessions() as session:
        figures["district_units"] = float(await session.scalar(
            select(text("count(*)")).select_from(Unit).where(Unit.path.startswith(district.path))) or 0)
    print(f"  chart render {figures['chart_render']:.0f} ms (+ data {figures['chart_data']:.1f} ms); "
          f"district XLSX {figures['xlsx_district']:.0f} ms for {int(figures['district_units']):,} units, "
          f"{sizes['bytes']:,} bytes", flush=True)
    await engine.dispose()
    return figures


async def _drive(server, user_ids: list[int], text_: str, count: int) -> float:  # type: ignore[no-untyped-def]
    """Push `count` texts round-robin from the users; return updates/s until every reply was sent."""
    state = server.state
    since = len(state.calls)  # only the new calls are scanned while waiting
    started = time.perf_counter()
    for i in range(count):
        state.push_text(user_ids[i % len(user_ids)], text_)
    await state.until(lambda: len(state.calls_to("sendMessage", since=since)) >= count, timeout=600)
    return count / (time.perf_counter() - started)


async def _confirm_all(bot) -> None:  # type: ignore[no-untyped-def]
    """Confirm every pending update, so the next bot on the same server starts afresh."""
    last = await bot.get_updates(offset=-1, timeout=0)
    if last:
        await bot.get_updates(offset=last[-1].update_id + 1, timeout=0)


async def throughput(url: str, count: int, rounds: int = 3) -> tuple[float, float]:
    """Return median (echo bot updates/s, /progress updates/s at district scope) through the fake server.

    The two bots take turns on the same server, `rounds` times, so that a slow moment of a shared
    machine falls on both; the ratio is that of the medians."""
    from telegram.ext import ApplicationBuilder, MessageHandler, filters

    from bot.app import build_application
    from bot.lifecycle import running
    from localapi.server import BotApiServer

    server = BotApiServer().start()
    users = list(range(900_001, 900_021))
    for user in users:
        server.state.add_user(user, "Bench")
    engine = create_engine_for(url)
    async with session_factory(engine).begin() as session:
        district = (await pick_units(session_factory(engine)))["district"]
        await session.execute(Person.__table__.delete().where(Person.telegram_id.in_(users)))
        for user in users:
            session.add(Person(telegram_id=user, display_name="Bench", language="vi", registered_at=NOW,
                               assignments=[Assignment(unit_id=district.id, role=Role.COMMITTEE)]))
    await engine.dispose()

    async def echo(update, context) -> None:  # type: ignore[no-untyped-def]
        await update.message.reply_text(update.message.text)

    echo_bot = ApplicationBuilder().token(TOKEN).base_url(server.base_url).base_file_url(server.base_file_url).build()
    echo_bot.add_handler(MessageHandler(filters.TEXT, echo))
    config = Config(telegram=TelegramSettings(token=TOKEN, base_url=server.base_url,
                                              base_file_url=server.base_file_url),
                    database=DatabaseSettings(url=url))
    bot = build_application(config, clock=FixedClock(NOW), rate_limit=False)
    echo_rates, progress_rates = [], []
    try:
        await echo_bot.initialize()
        await echo_bot.start()
        lifecycle = running(bot, poll=True, jobs=False, poll_timeout=1)  # as `run` uses it
        poller = await lifecycle.__aenter__()
        assert poller is not None
        await poller.stop()  # the bots take turns: polling starts and stops per round
        for _ in range(rounds):
            await echo_bot.updater.start_polling(poll_interval=0.0, timeout=1)
            await _drive(server, users, "warm up", 20)
            echo_rates.append(await _drive(server, users, "xin chào", count))
            await echo_bot.updater.stop()
            await _confirm_all(echo_bot.bot)
            await poller.start()
            await _drive(server, users, "/progress", 20)
            progress_rates.append(await _drive(server, users, "/progress", count))
            await poller.stop()
            await _confirm_all(bot.bot)
        bot.services.cache.max_entries = 0  # for comparison: every view and person read again
        bot.services.cache.forget()
        await poller.start()
        uncached = await _drive(server, users, "/progress", count // 3)
        await poller.stop()
        await _confirm_all(bot.bot)
    finally:
        await echo_bot.stop()
        await echo_bot.shutdown()
        await lifecycle.__aexit__(None, None, None)
        server.stop()
    echo_rate, progress_rate = statistics.median(echo_rates), statistics.median(progress_rates)
    print(f"  throughput (median of {rounds} turns): echo {echo_rate:.0f} updates/s, /progress (district) "
          f"{progress_rate:.0f} updates/s = {100 * progress_rate / echo_rate:.0f} %  "
          f"[echo {', '.join(f'{r:.0f}' for r in echo_rates)}; /progress {', '.join(f'{r:.0f}' for r in progress_rates)}]; "
          f"without the cache {uncached:.0f} updates/s", flush=True)
    return echo_rate, progress_rate


async def run(url: str, runs: int, count: int) -> None:
    """Run every measurement on one database."""
    print(url, flush=True)
    await query_times(url, runs)
    await chart_and_export(url)
    await throughput(url, count)


def main() -> None:
    """Parse the command line and measure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per scope (median reported)")
    parser.add_argument("--updates", type=int, default=300, help="updates per throughput measurement")
    parser.add_argument("--only", choices=("queries", "chart", "throughput"), default=None)
    args = parser.parse_args()
    if args.only == "queries":
        asyncio.run(query_times(args.url, args.runs))
    elif args.only == "chart":
        asyncio.run(chart_and_export(args.url))
    elif args.only == "throughput":
        asyncio.run(throughput(args.url, args.updates))
    else:
        asyncio.run(run(args.url, args.runs, args.updates))


if __name__ == "__main__":
    main()
