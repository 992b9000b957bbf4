"""The data revision, the cache of /progress views and people, and when handled updates are recorded."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import select

from core.cache import FreshCache
from models.db import create_engine_for, session_factory
from models.entities import ProcessedUpdate, Role, Target, UnitKind
from models.revision import current_revision
from models.units import UnitRow, load_units, unit_by_code
from models.updates import was_processed
from tests.harness import add_history

NOW = datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc)


async def test_domain_commits_bump_the_revision_and_bookkeeping_does_not(engine) -> None:
    changes: list[int] = []
    writes: list[int] = []
    sessions = session_factory(engine, on_change=lambda: changes.append(1), on_write=lambda: writes.append(1))
    async with sessions() as session:
        assert await current_revision(session) == 0
    async with sessions.begin() as session:
        session.add(ProcessedUpdate(update_id=1, processed_at=NOW))  # bookkeeping
    async with sessions.begin() as session:
        await session.scalar(select(ProcessedUpdate))  # a read
    assert (changes, len(writes)) == ([], 1)
    async with sessions.begin() as session:
        await load_units(session, [UnitRow(1, "D", "Huyện ủy", None, UnitKind.DISTRICT)])  # pending until commit
    try:
        async with sessions.begin() as session:
            (await unit_by_code(session, "D")).name = "Đổi tên"
            await session.flush()
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    async with sessions.begin() as session:
        await session.execute(Target.__table__.insert().values(unit_id=(await unit_by_code(session, "D")).id,
                                                               start_year=2026, end_year=2026, value=9,
                                                               starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31)))
    async with sessions() as session:
        assert await current_revision(session) == 2
        assert (await unit_by_code(session, "D")).name == "Huyện ủy"
    assert (len(changes), len(writes)) == (2, 3)
    # A write, then a savepoint that fails (the IntegrityError pattern): the write still counts,
    # once, when the transaction around it commits.
    async with sessions.begin() as session:
        (await unit_by_code(session, "D")).name = "Huyện ủy Pác Nặm"
        await session.flush()
        try:
            async with session.begin_nested():
                await load_units(session, [UnitRow(2, "D2", "Trùng", "NOPE", UnitKind.CELL)])
        except Exception:  # noqa: BLE001 - the unknown parent is refused
            pass
        assert (len(changes), len(writes)) == (2, 3)  # nothing reported before the commit
    async with sessions() as session:
        assert await current_revision(session) == 3
    assert (len(changes), len(writes)) == (3, 4)


async def test_cache_forgets_on_change_and_notices_other_processes_on_refresh(schema_url) -> None:
    from models.db import Database

    ticks = [0.0]
    cache = FreshCache(check_every=1.0, max_entries=3, monotonic=lambda: ticks[0])
    mine = Database(schema_url, on_change=cache.forget)
    other = Database(schema_url)  # e.g. the command line importing targets
    await cache.refresh(mine)
    cache.put("a", 1, cache.generation)
    async with mine.writing() as session:
        await load_units(session, [UnitRow(1, "D", "Huyện ủy", None, UnitKind.DISTRICT)])
    assert cache.get("a") is None  # this process's commit: forgotten at once
    stale = cache.generation
    cache.put("b", 2, cache.generation)
    async with other.writing() as session:
        (await unit_by_code(session, "D")).name = "Đổi tên"
    await cache.refresh(mine)
    assert cache.get("b") == 2  # not looked again within check_every
    ticks[0] = 1.5
    await cache.refresh(mine)
    assert cache.get("b") is None  # another process's commit: noticed on the next look
    cache.put("late", 3, stale)  # computed before the change: not stored
    assert cache.get("late") is None
    for key in "wxyz":
        cache.put(key, key, cache.generation)
    assert len(cache) == 3 and cache.get("w") is None and cache.get("z") == "z"
    await mine.dispose()
    await other.dispose()


async def test_progress_shows_changes_from_this_process_at_once_and_from_others_after_a_look(harness) -> None:
    bot = harness
    await bot.register(2002, "PN", Role.COMMITTEE)
    assert "Kế hoạch năm 2026: <b>0/90" in (await bot.say(2002, "/progress"))[0]["text"]
    await add_history(bot.sessions, "NL", 3, date(2026, 3, 1))  # the bot's own sessions
    assert "Kế hoạch năm 2026: <b>3/90" in (await bot.say(2002, "/progress"))[0]["text"]
    engine = create_engine_for(bot.config.database.url)  # another process, as the command line is
    try:
        await add_history(session_factory(engine), "PC", 2, date(2026, 3, 1))
    finally:
        await engine.dispose()
    bot.application.services.cache.check_every = 0  # the next update looks at the revision
    assert "Kế hoạch năm 2026: <b>5/90" in (await bot.say(2002, "/progress"))[0]["text"]


async def test_read_only_updates_are_recorded_with_the_batch_and_writes_at_once(harness) -> None:
    bot = harness
    await bot.register(2002, "PN", Role.COMMITTEE)
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.poller.stop()  # drive the application directly, update by update
    app = bot.application
    update_ids = []
    for _ in range(3):
        update = bot.api.push_text(2002, "/progress")
        update_ids.append(update["update_id"])
    updates = await app.bot.get_updates(offset=update_ids[0], timeout=0)
    for update in updates[:2]:
        await app.process_update(update)
    shared = app.services.db.dialect == "postgresql"  # there each update is recorded under its chat's lock
    async with bot.sessions() as session:
        assert await was_processed(session, update_ids[0]) == shared  # SQLite, read-only: waits for the batch
    assert app.unrecorded == ([] if shared else update_ids[:2])
    update_ids.append(bot.api.push_text(1001, "/checkin")["update_id"])  # writes this week's check-in
    updates = await app.bot.get_updates(offset=update_ids[2], timeout=0)
    for update in updates:
        await app.process_update(update)
    async with bot.sessions() as session:
        assert all([await was_processed(session, update_id) for update_id in update_ids])
    assert app.unrecorded == []


async def test_a_failed_record_never_runs_the_handlers_again(harness, monkeypatch) -> None:
    from models.reminders import WeeklyCheckIn
    from tests.harness import fail_first_record

    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    failures = fail_first_record(monkeypatch)
    mark = bot.api.mark()
    update = bot.api.push_text(1001, "/checkin")
    await bot.settle(update)  # recorded by the poller before it confirms the batch
    assert failures == [[update["update_id"]]]
    assert len(bot.replies(1001, mark)) == 1  # answered once, not again after the failure
    async with bot.sessions() as session:
        assert len(list(await session.scalars(select(WeeklyCheckIn)))) == 1


async def test_after_a_crash_every_update_up_to_the_highest_recorded_one_is_checked(harness) -> None:
    from models.reminders import WeeklyCheckIn
    from models.updates import mark_processed

    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.poller.stop()
    first = bot.api.push_text(1001, "/progress")  # read-only: not recorded yet when the bot died
    second = bot.api.push_text(1001, "/checkin")
    async with bot.sessions.begin() as session:  # recorded with its own effect, as /undo does
        await mark_processed(session, [second["update_id"]], NOW)
    await bot.crash()
    mark = bot.api.mark()
    await bot.start()  # Telegram delivers both again
    await bot.settle(first)
    await bot.settle(bot.api.push_text(1001, "/help"))  # handled after the second, in order
    replies = bot.replies(1001, mark)
    assert len(replies) == 2 and "Tiến độ" in replies[0]["text"]  # /progress and /help, no check-in
    async with bot.sessions() as session:
        assert list(await session.scalars(select(WeeklyCheckIn))) == []


async def test_progress_answers_while_an_import_holds_sqlites_write_lock(harness) -> None:
    import sqlite3

    import pytest
    from sqlalchemy.engine import make_url

    bot = harness
    url = make_url(bot.config.database.url)
    if url.get_backend_name() != "sqlite":
        pytest.skip("SQLite's write lock only; PostgreSQL readers never wait for writers")
    await bot.register(2002, "PN", Role.COMMITTEE)
    importer = sqlite3.connect(url.database, isolation_level=None)  # another process, mid-import
    importer.execute("BEGIN IMMEDIATE")
    try:
        mark = bot.api.mark()
        bot.api.push_text(2002, "/progress")
        reply = await bot.api.until(lambda: bot.replies(2002, mark), timeout=3)  # busy_timeout is 10 s
        assert "Kế hoạch năm 2026" in reply[0]["text"]
    finally:
        importer.execute("ROLLBACK")
        importer.close()
