"""The faults an attack run found (issue 11), each driven through the fake Bot API or a real process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import services.delivery as delivery
from models.entities import Role
from models.sentlog import SendStatus, SentReminder
from tests.harness import TOKEN, run_weekly

ROOT = Path(__file__).resolve().parent.parent


async def test_a_checkmark_redelivered_after_a_crash_is_saved_and_said_in_a_message(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.tap(1001, "Không")  # the Youth Union question, asked on the card
    message_id, data = bot.api.find_button(1001, "✅")
    await bot.poller.stop()  # deliver the ✅ by hand: its query was answered before the "crash"
    update = bot.api.push_callback(1001, message_id, data)
    bot.api.callback_answers[update["callback_query"]["id"]] = {"text": None, "show_alert": False}
    mark = bot.api.mark()
    [delivered] = await bot.application.bot.get_updates(offset=update["update_id"], timeout=0)
    await bot.application.process_update(delivered)
    assert [a.full_name for a in await bot.counted_admissions()] == ["Lò Thị Hoa"]
    answers = bot.api.calls_to("answerCallbackQuery", since=mark)
    assert answers and not answers[-1].ok  # "query is too old": refused, and it changed nothing
    assert "Đã lưu" in bot.last_text(1001)
    assert not [c for c in bot.api.calls_to("sendMessage", 1001, mark) if "sự cố" in c.params.get("text", "")]


async def test_an_old_checkmark_answers_with_the_saved_report(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.tap(1001, "Không")  # the Youth Union question, asked on the card
    message_id, data = bot.api.find_button(1001, "✅")
    await bot.tap(1001, "✅")
    mark = bot.api.mark()
    await bot.settle(bot.api.push_callback(1001, message_id, data))  # the same ✅ again, after the save
    texts = [c.params["text"] for c in bot.api.calls_to("sendMessage", 1001, mark)]
    assert any("Đã lưu" in text and "Lò Thị Hoa" in text for text in texts)
    assert len(await bot.counted_admissions()) == 1


async def test_chat_replies_are_retried_after_5xx(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    bot.api.fail_next("sendMessage", 502, "Bad Gateway", times=2)
    mark = bot.api.mark()
    await bot.say(1001, "/help")
    codes = [c.response.get("error_code", 200) for c in bot.api.calls_to("sendMessage", 1001, mark)]
    assert codes == [502, 502, 200]
    assert "/report" in bot.last_text(1001)


async def test_forged_out_of_range_ids_are_refused_without_an_apology(harness) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.register(1001, "KP", Role.SECRETARY)  # two cells: /report asks which
    await bot.say(1001, "/report")
    message_id, _ = bot.api.find_button(1001, "Chi bộ")
    mark = bot.api.mark()
    for data in ("report:cell:99999999999999999999999", "prog:u:99999999999999999999999:2026",
                 "remind:checkin:99999999999999999999999:20260629"):
        await bot.settle(bot.api.push_callback(1001, message_id, data))
    sent = [c.params.get("text", "") for c in bot.api.calls_to("sendMessage", 1001, mark)]
    assert not [text for text in sent if "sự cố" in text]  # no apology: nothing failed
    assert len(await bot.all_admissions()) == 0


async def test_messages_that_grow_with_data_are_split_between_lines(harness) -> None:
    from models.entities import UnitKind
    from models.units import UnitRow, load_units

    bot = harness
    long_name = "Chi bộ thôn " + "Khuổi Pết Nà Ngòa Bản Mới " * 7  # ≈ 200 characters
    cells = [UnitRow(100 + i, f"L{i:02d}", f"{long_name} {i:02d}", "BT", UnitKind.CELL) for i in range(25)]
    async with bot.sessions.begin() as session:
        await load_units(session, cells)
    for i in range(25):
        await bot.register(1001, f"L{i:02d}", Role.SECRETARY)
    mark = bot.api.mark()
    await bot.say(1001, "/checkin")
    sent = bot.api.calls_to("sendMessage", 1001, mark)
    assert len(sent) >= 2 and all(c.ok for c in sent)
    assert all(len(c.params["text"]) <= 4096 for c in sent)
    assert sum(c.params["text"].count(long_name.strip()) for c in sent) == 25
    summary = await run_weekly(bot.application, "reminder", None)
    assert summary.failed == 0  # the weekly reminder of 25 cells arrives too


async def test_a_kill_while_waiting_to_retry_resends_and_one_in_flight_is_reported(harness, monkeypatch) -> None:
    bot = harness
    ids = [1001, 1002, 1003]
    for user_id, code in zip(ids, ["NL", "KP", "PC"]):
        await bot.register(user_id, code, Role.SECRETARY)
    monkeypatch.setattr(delivery, "WORKERS", 1)
    calls = []

    async def killed(_seconds: float) -> None:
        calls.append(_seconds)
        raise RuntimeError("kill -9 while waiting to retry")

    from dataclasses import replace

    monkeypatch.setattr(bot.application, "services", replace(bot.application.services, sleep=killed))
    bot.api.fail_next("sendMessage", 502, "Bad Gateway")  # the first recipient's first try fails
    mark = bot.api.mark()
    with pytest.raises(RuntimeError):
        await run_weekly(bot.application, "reminder")
    async with bot.sessions() as session:
        statuses = [row.status for row in await session.scalars(select(SentReminder))]
    assert statuses == [SendStatus.RETRYING.value]  # provably not delivered, and said so before waiting
    await bot.crash()
    bot.clock.advance(timedelta(minutes=5))
    await bot.start()
    summary = await run_weekly(bot.application, "reminder")
    assert (summary.sent, summary.uncertain) == (3, 0)
    delivered = [c.chat_id for c in bot.api.calls_to("sendMessage", since=mark) if c.ok]
    assert sorted(delivered) == ids  # each exactly once, nobody lost


async def test_a_send_that_got_no_answer_is_uncertain_not_repeated(harness, monkeypatch) -> None:
    bot = harness
    await bot.register(1001, "NL", Role.SECRETARY, "Hoa")
    from services.delivery import Attempt, Outcome
    from services.telegram import TelegramOutbox

    real_send = TelegramOutbox.send

    async def delivered_but_no_answer(self, message):  # type: ignore[no-untyped-def]
        await real_send(self, message)  # it arrives…
        return Attempt(Outcome.UNKNOWN)  # …but the answer never came back

    monkeypatch.setattr(TelegramOutbox, "send", delivered_but_no_answer)
    mark = bot.api.mark()
    summary = await run_weekly(bot.application, "reminder")
    assert (summary.sent, summary.uncertain, summary.failed) == (0, 1, 0)
    assert summary.uncertain_names and summary.uncertain_names[0].startswith("Hoa")
    monkeypatch.setattr(TelegramOutbox, "send", real_send)
    again = await run_weekly(bot.application, "reminder")
    assert (again.sent, again.skipped, again.uncertain) == (0, 1, 1)  # never repeated on its own
    assert len([c for c in bot.api.calls_to("sendMessage", 1001, mark) if c.ok]) == 1
    chosen = await run_weekly(bot.application, "reminder", resend_uncertain=True)  # the operator's choice
    assert (chosen.sent, chosen.uncertain) == (1, 0)


async def test_a_second_polling_process_refuses_to_start(harness) -> None:
    from bot.app import build_application
    from bot.lifecycle import AlreadyRunning, running

    second = build_application(harness.config, clock=harness.clock)
    with pytest.raises(AlreadyRunning):
        async with running(second, poll=True, jobs=False):
            pass


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(folder / "config.toml"), *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=60)


def test_a_rejected_token_is_said_in_both_languages_and_never_printed(api_server, tmp_path: Path) -> None:
    api_server.state.token = "999:" + "B" * 35  # the fake now knows another token: ours is refused (401)
    (tmp_path / "config.toml").write_text(
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{api_server.base_url}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "data" / "bot.db"}"\n', encoding="utf-8")
    assert _cli(tmp_path, "init").returncode == 0
    for command in (("remind-now",), ("run",)):
        result = _cli(tmp_path, *command)
        assert result.returncode == 1, result.stderr
        output = result.stdout + result.stderr
        assert TOKEN not in output and TOKEN.split(":")[1] not in output
        assert "Traceback" not in output
        assert "Telegram từ chối mã (token)" in output and "Telegram refused the bot token" in output


def test_init_keeps_the_database_and_its_folder_private(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(f'[database]\nurl = "sqlite:///{tmp_path / "data" / "bot.db"}"\n',
                                          encoding="utf-8")
    assert _cli(tmp_path, "init").returncode == 0
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "bot.db").stat().st_mode) == 0o600


def _hold_write_lock(url: str):  # type: ignore[no-untyped-def]
    """Take SQLite's write lock from another connection, as a long import does; return it (commit to release)."""
    import sqlite3

    from sqlalchemy.engine import make_url

    connection = sqlite3.connect(make_url(url).database, isolation_level=None, check_same_thread=False)
    connection.execute("BEGIN IMMEDIATE")
    return connection


async def test_a_scheduled_run_that_meets_a_long_import_waits_and_runs(harness, caplog) -> None:
    from dataclasses import replace

    from models.db import Database
    from services.scheduling import run_due

    bot = harness
    if not bot.config.database.url.startswith("sqlite"):
        pytest.skip("SQLite's write lock only: on PostgreSQL an import does not block a run's writes")
    for user_id, code in ((1001, "NL"), (1002, "KP")):
        await bot.register(user_id, code, Role.SECRETARY)
    lock = _hold_write_lock(bot.config.database.url)
    waits: list[float] = []

    async def import_finishes(seconds: float) -> None:  # the first wait outlasts the import
        waits.append(seconds)
        lock.commit()

    class NoJobs:
        def replace(self, *args: object) -> None:
            pass

    from services.telegram import TelegramOutbox

    services = replace(bot.application.services, db=Database(bot.config.database.url, busy_timeout_ms=200),
                       sleep=import_finishes)
    mark = bot.api.mark()
    await run_due(services, NoJobs(), TelegramOutbox(bot.application.bot),
                  {"kind": "reminder", "as_of": "2026-07-03", "due": "2026-07-03T16:00:00+07:00"})
    await services.db.dispose()
    lock.close()
    assert len(waits) == 1
    assert "busy database" in caplog.text
    assert sorted(c.chat_id for c in bot.api.calls_to("sendMessage", since=mark) if c.ok) == [1001, 1002]


async def test_a_chat_write_that_meets_a_long_import_keeps_the_draft_and_says_try_again(harness, monkeypatch) -> None:
    from dataclasses import replace

    from models.db import Database

    bot = harness
    if not bot.config.database.url.startswith("sqlite"):
        pytest.skip("SQLite's write lock only")
    await bot.register(1001, "NL", Role.SECRETARY)
    await bot.say(1001, "/report Lò Thị Hoa, 1998, nữ, 15/05/2026")
    await bot.tap(1001, "Không")  # the Youth Union question, asked on the card
    short = Database(bot.config.database.url, busy_timeout_ms=200)
    monkeypatch.setattr(bot.application, "services", replace(bot.application.services, db=short))
    lock = _hold_write_lock(bot.config.database.url)
    message_id, data = bot.api.find_button(1001, "✅")
    mark = bot.api.mark()
    update = bot.api.push_callback(1001, message_id, data)
    busy = await bot.api.until(lambda: [c for c in bot.api.calls_to("sendMessage", 1001, mark)
                                        if "đang bận" in c.params.get("text", "")])
    lock.commit()  # the import ends
    lock.close()
    await bot.settle(update)
    assert busy and not [c for c in bot.api.calls_to("sendMessage", 1001, mark) if "sự cố" in c.params["text"]]
    assert await bot.counted_admissions() == []
    await bot.tap(1001, "✅")  # tapped again a moment later: saved
    assert [a.full_name for a in await bot.counted_admissions()] == ["Lò Thị Hoa"]
    await short.dispose()
