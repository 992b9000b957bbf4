"""The command line: `python -m bot [--config PATH] <command> ...`.

This module only parses arguments, opens the engine and one transaction, calls the domain and
prints. Texts come from core/locales/<lang>/cli.toml. To add a command, write one
`cmd_<name>(cli, args) -> int` function (sync or async) and add one line to COMMANDS.

Exit codes: 0 done, 1 bad input or nothing to do it with (nothing was changed), 2 configuration
or usage error.

Why one module of ≈ 770 lines: it is the whole command-line surface — the table of twelve commands
(COMMANDS) with their thin bodies and the shared steps they use (one transaction, reading a file,
printing problems, both languages); each body calls into services/ or models/. Splitting it would
scatter COMMANDS and those shared steps without shortening any of them. (The key, rotate-key,
backup and restore are one block, ≈ 230 lines: the first candidate to move out if it grows.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import sys
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.config import Config, ConfigError, load_config
from core.i18n import Texts, format_number
from models.audit import Action, Change, record
from models.crypto import KeyProblem, Keys
from models.entities import AuditChannel
from models.importing import (
    ImportCounts,
    ImportPlan,
    ImportProblems,
    is_xlsx,
    plan_import,
    recognise,
    record_import,
    xlsx_to_csv,
)
from models.importing.plan import IMPORT_SUBJECT

DEFAULT_CONFIG = Path("config.toml")
T = TypeVar("T")


class CliError(Exception):
    """A failure to report as one message on stderr, with the exit code to use."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Cli:
    """What every command gets: the configuration, the texts in its language and the clock."""

    config: Config
    config_path: Path
    texts: Texts
    lang: str
    clock: Clock

    def t(self, key: str, /, **values: Any) -> str:
        """Return the `cli.<key>` text; whole numbers are formatted the language's way."""
        shown = {k: format_number(v, self.lang) if isinstance(v, int) and not isinstance(v, bool) else v
                 for k, v in values.items()}
        return self.texts.get(f"cli.{key}", self.lang, **shown)

    def out(self, text: str) -> None:
        """Print to stdout."""
        print(text, flush=True)

    def err(self, text: str) -> None:
        """Print to stderr."""
        print(text, file=sys.stderr, flush=True)

    @property
    def safe_url(self) -> str:
        """Return the database URL without its password."""
        return make_url(self.config.database.url).render_as_string(hide_password=True)


# Database helpers -----------------------------------------------------------------------------


def _schema_state(conn: Connection, url: str) -> str:
    """Return "missing", "outdated" or "ok" for the schema the connection sees."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from models.db import alembic_config

    if not sa_inspect(conn).has_table("unit"):
        return "missing"
    current = set(MigrationContext.configure(conn).get_current_heads())
    if not current:  # made without Alembic (create_all): accept it as it is
        return "ok"
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    return "ok" if current == heads else "outdated"


def _db_error(cli: Cli, exc: DBAPIError) -> CliError:
    detail = str(exc.orig or exc).strip().splitlines()
    return CliError(cli.t("db_error", url=cli.safe_url, error=detail[0] if detail else type(exc).__name__))


def _sqlite_file_missing(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).expanduser().exists()


async def in_transaction(cli: Cli, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction on an initialised database (rolled back if it raises)."""
    from models.db import create_engine_for, session_factory
    from models.keys import check_key

    url = cli.config.database.url
    not_ready = CliError(cli.t("db_not_initialised", url=cli.safe_url, config=cli.config_path))
    if _sqlite_file_missing(url):  # do not leave an empty file behind
        raise not_ready
    engine = create_engine_for(url, keys=configured_keys(cli))
    try:
        async with engine.connect() as conn:
            state = await conn.run_sync(_schema_state, url)
        if state == "missing":
            raise not_ready
        if state == "outdated":
            raise CliError(cli.t("db_outdated", url=cli.safe_url, config=cli.config_path))
        async with session_factory(engine).begin() as session:
            await check_key(session)  # another key, or none: stop before any name is read
            return await work(session)
    except (OperationalError, DBAPIError) as exc:
        raise _db_error(cli, exc) from None
    finally:
        await engine.dispose()


def read_file(cli: Cli, path: Path) -> bytes:
    """Return the bytes of an input file, or raise a CliError saying why not."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CliError(cli.t("file_not_found", path=path)) from None
    except OSError as exc:
        raise CliError(cli.t("file_unreadable", path=path, error=exc.strerror or exc)) from None


def problems_text(cli: Cli, path: Path, problems: Sequence[tuple[int, str, str]]) -> str:
    """Return the list of problems of a file, one line each, headed by a count of bad lines."""
    count = len({line for line, _, _ in problems})
    lines = [cli.texts.plural("cli.problems", count, cli.lang, path=path, count=format_number(count, cli.lang))]
    for line, key, detail in problems:
        try:
            problem = cli.texts.get(f"cli.problem.{key}", cli.lang, detail=detail)
        except KeyError:
            problem = f"{key} {detail}".strip()
        lines.append(cli.t("problem_line", line=str(line), problem=problem))
    return "\n".join(lines)


# Commands -------------------------------------------------------------------------------------


def cmd_init(cli: Cli, args: argparse.Namespace) -> int:
    """Create or migrate the database to the newest schema."""
    from alembic.script import ScriptDirectory

    from models.db import alembic_config, migrate

    url = cli.config.database.url
    keys = ensure_key(cli)
    try:
        migrate(url, keys)
    except DBAPIError as exc:
        raise _db_error(cli, exc) from None
    head = ", ".join(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    cli.out(cli.t("init_done", url=cli.safe_url, revision=head))
    return 0


def _importer(kind: str, summary: str) -> Callable[[Cli, argparse.Namespace], Awaitable[int]]:
    """Build an import command: read the file (CSV, or XLSX read as CSV), plan and apply it in one
    transaction with its audit entry (channel CLI), print the summary. With --dry-run: print what
    it would do (the chat's preview counts) and write nothing."""

    async def command(cli: Cli, args: argparse.Namespace) -> int:
        data = read_file(cli, args.file)
        now = cli.clock.now()

        async def work(session: AsyncSession) -> tuple[ImportPlan, ImportCounts | None]:
            plan = await plan_import(session, kind, data, today=now.astimezone(cli.config.bot.tz).date(), now=now,
                                     term_start=cli.config.bot.term_start)
            if args.dry_run:
                if plan.problems:
                    raise ImportProblems(plan.problems)
                return plan, None
            counts = await plan.apply()
            await record_import(session, plan, at=now, channel=AuditChannel.CLI)
            return plan, counts

        try:
            if is_xlsx(data):
                data = xlsx_to_csv(data, recognise)
            plan, counts = await in_transaction(cli, work)
        except ImportProblems as exc:
            cli.err(problems_text(cli, args.file, exc.problems))
            return 1
        if counts is None:
            total, created, changed, unchanged = plan.counts
            cli.out(cli.t("dry_run.summary", total=total, created=created, changed=changed, unchanged=unchanged))
        else:
            cli.out(cli.t(summary, **vars(counts)))
        return 0

    return command


def _import_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("--dry-run", dest="dry_run", action="store_true", help=t("dry_run.arg"))


cmd_import_units = _importer("units", "units_done")
cmd_import_targets = _importer("targets", "targets_done")
cmd_import_admissions = _importer("admissions", "admissions_done")


# The candidate pipeline and membership counts (models.importing.candidates, .members) ---------------


def _pipeline_importer(kind: str, summary: str, load: Callable[..., Awaitable[ImportCounts]],
                       ) -> Callable[[Cli, argparse.Namespace], Awaitable[int]]:
    """Build an import command of the pipeline's files: load them in one transaction with an audit entry."""

    async def command(cli: Cli, args: argparse.Namespace) -> int:
        data = read_file(cli, args.file)
        now = cli.clock.now()

        async def work(session: AsyncSession) -> ImportCounts:
            counts = await load(session, data, today=now.astimezone(cli.config.bot.tz).date(), now=now)
            record(session, at=now, channel=AuditChannel.CLI, action=Action.IMPORT, subject=IMPORT_SUBJECT,
                   changes=[Change(kind, None, json.dumps(vars(counts), sort_keys=True))])
            return counts

        try:
            counts = await in_transaction(cli, work)
        except ImportProblems as exc:
            cli.err(problems_text(cli, args.file, exc.problems))
            return 1
        cli.out(cli.t(summary, **vars(counts)))
        return 0

    return command


async def _load_candidates(session: AsyncSession, data: bytes, *, today: date, now: datetime) -> ImportCounts:
    from models.importing.candidates import import_candidates

    return await import_candidates(session, data, today=today, now=now)


async def _load_members(session: AsyncSession, data: bytes, *, today: date, now: datetime) -> ImportCounts:
    from models.importing.members import import_members

    return await import_members(session, data, today=today)


cmd_import_candidates = _pipeline_importer("candidates", "imported.candidates_done", _load_candidates)
cmd_import_members = _pipeline_importer("members", "imported.members_done", _load_members)


async def cmd_invite(cli: Cli, args: argparse.Namespace) -> int:
    """Create a single-use invite; its code alone is the last line printed."""
    from models.entities import Role
    from models.people import create_invite
    from models.units import unit_by_code

    choices = [role.value for role in Role]
    role_text = args.role.strip().lower()
    if role_text not in choices:
        raise CliError(cli.t("bad_role", role=args.role, choices=", ".join(choices)))
    role = Role(role_text)
    now = cli.clock.now()

    async def work(session: AsyncSession) -> tuple[Any, str]:
        unit = await unit_by_code(session, args.unit_code.strip())
        if unit is None:
            raise CliError(cli.t("unknown_unit", code=args.unit_code))
        return unit, await create_invite(session, unit, role, now, cli.config.bot.invite_days)

    unit, code = await in_transaction(cli, work)
    expires = (now + timedelta(days=cli.config.bot.invite_days)).astimezone(cli.config.bot.tz)
    cli.out(cli.t("invite_unit", name=unit.name, code=unit.code))
    cli.out(cli.t("invite_role", role=cli.t(f"role.{role.value}")))
    cli.out(cli.t("invite_expires", expires=expires.strftime("%d/%m/%Y %H:%M"), timezone=cli.config.bot.timezone))
    username = cli.config.telegram.bot_username
    if username:
        cli.out(cli.t("invite_link", link=f"https://t.me/{username}?start={code}"))
    else:
        cli.out(cli.t("invite_no_link", code=code))
    cli.out(cli.t("invite_code"))
    cli.out(code)
    return 0


async def cmd_invite_batch(cli: Cli, args: argparse.Namespace) -> int:
    """Make one invite per row of `unit_code,role[,note]` and write their sheet (.xlsx or .csv); all or nothing.

    The link column needs [telegram] bot_username (no network call at all): without it the column
    stays empty and a note says how to register with the code instead."""
    from models.invites import invite_batch, read_batch
    from reports.invites import invite_sheet

    fmt = args.out.suffix.lower().lstrip(".")
    if fmt not in ("xlsx", "csv"):
        raise CliError(cli.texts.get("invites.cli.batch_bad_out", cli.lang, path=args.out), 2)
    data = read_file(cli, args.file)
    now, days, tz = cli.clock.now(), cli.config.bot.invite_days, cli.config.bot.tz
    username = cli.config.telegram.bot_username
    partial = args.out.with_name(args.out.name + ".part")

    async def work(session: AsyncSession) -> int:
        issued = await invite_batch(session, await read_batch(session, data), now=now, days=days)
        with_note = any(i.note for i in issued)
        rows = [[i.unit.code, i.unit.name, i.role.value, i.code,
                 f"https://t.me/{username}?start={i.code}" if username else "",
                 i.expires_at.astimezone(tz).replace(tzinfo=None), *([i.note or ""] if with_note else [])]
                for i in issued]
        try:  # written before the commit, shown under its name only after it: never codes that do not exist
            partial.write_bytes(invite_sheet(rows, with_note, fmt))
        except OSError as exc:
            raise CliError(cli.t("file_unwritable", path=args.out, error=exc.strerror or exc)) from None
        return len(issued)

    try:
        count = await in_transaction(cli, work)
    except ImportProblems as exc:
        cli.err(problems_text(cli, args.file, exc.problems))
        return 1
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(args.out)
    expires = (now + timedelta(days=days)).astimezone(tz).strftime("%d/%m/%Y %H:%M")
    cli.out(cli.texts.get("invites.cli.batch_done", cli.lang, count=format_number(count, cli.lang), path=args.out,
                          expires=expires, timezone=cli.config.bot.timezone))
    if not username:
        cli.out(cli.texts.get("invites.cli.batch_no_link", cli.lang))
    return 0


def _invite_batch_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("file", metavar="FILE", type=Path, help=t("arg.invite_file"))
    parser.add_argument("--out", required=True, type=Path, metavar="SHEET", help=t("arg.invite_out"))


async def cmd_export(cli: Cli, args: argparse.Namespace) -> int:
    """Write the progress export of a unit's subtree: XLSX, or CSV when the file name ends in .csv."""
    from models.periods import Period
    from models.progress import stored_period
    from models.units import unit_by_code
    from reports.exports import export_bytes

    day = cli.clock.now().astimezone(cli.config.bot.tz).date()
    try:
        asked = Period.parse(args.period, cli.config.bot.term_start) if args.period else Period.year(day.year)
    except ValueError:
        raise CliError(cli.t("bad_period", period=args.period)) from None
    fmt = "csv" if args.out.suffix.lower() == ".csv" else "xlsx"

    async def work(session: AsyncSession) -> tuple[Any, Period, Callable[[], bytes]]:
        unit = await unit_by_code(session, args.unit.strip())
        if unit is None:
            raise CliError(cli.t("unknown_unit", code=args.unit))
        period = await stored_period(session, unit, asked)  # a term keeps the days its target was set with
        _, render = await export_bytes(session, unit, period, day, fmt, cli.config.bot.tz, at=cli.clock.now(),
                                       channel=AuditChannel.CLI)
        return unit, period, render

    unit, period, render = await in_transaction(cli, work)
    try:
        args.out.write_bytes(render())
    except OSError as exc:
        raise CliError(cli.t("file_unwritable", path=args.out, error=exc.strerror or exc)) from None
    cli.out(cli.t("export_done", path=args.out, name=unit.name, code=unit.code, period=period.label()))
    cli.out(cli.texts.get("security.export_personal_data", cli.lang))
    return 0


def _export_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("--unit", required=True, metavar="CODE", help=t("arg.unit_code"))
    parser.add_argument("--period", default=None, metavar="PERIOD", help=t("arg.period"))
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help=t("arg.out"))


async def cmd_audit(cli: Cli, args: argparse.Namespace) -> int:
    """Print the audit entries of a unit's subtree as CSV (from --since, a day in [bot] timezone)."""
    from models.units import unit_by_code
    from reports.exports import audit_csv, audit_rows, day_start

    tz = cli.config.bot.tz
    since = day_start(args.since, tz) if args.since is not None else None

    async def work(session: AsyncSession) -> list[list[Any]]:
        unit = await unit_by_code(session, args.unit.strip())
        if unit is None:
            raise CliError(cli.t("unknown_unit", code=args.unit))
        rows = await audit_rows(session, unit, since, tz=tz)
        # The trail holds names in clear once printed: printing it is an export, recorded like one.
        record(session, at=cli.clock.now(), channel=AuditChannel.CLI, action=Action.EXPORT, subject="export",
               unit=unit, changes=[Change("period", None, f"audit since {args.since or '-'} csv")])
        return rows

    sys.stdout.write(audit_csv(await in_transaction(cli, work)))
    sys.stdout.flush()
    return 0


def _audit_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    from datetime import date

    parser.add_argument("--unit", required=True, metavar="CODE", help=t("arg.unit_code"))
    parser.add_argument("--since", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD", help=t("arg.since"))


def no_token(config: Config, texts: Texts | None = None) -> int:
    """Explain, in Vietnamese and English, how to get a bot token and where to put it; return 1."""
    texts = texts or Texts.load()
    where = config.path or DEFAULT_CONFIG
    for lang in ("vi", "en"):
        print(texts.get("cli.no_token", lang, config=where), file=sys.stderr)
        print(file=sys.stderr)
    return 1


def cmd_run(cli: Cli, args: argparse.Namespace) -> int:
    """Run the bot (long polling, or webhook with `[telegram] mode`) until interrupted; no token: the sandbox."""
    if not cli.config.has_token:
        no_token(cli.config, cli.texts)
        for lang in ("vi", "en"):
            cli.err(cli.texts.get("sandbox.starting_instead", lang))
        return run_sandbox(cli, cli.config.sandbox.port if args.port is None else args.port, args.real_date)
    from bot.app import build_application
    from bot.lifecycle import AlreadyRunning, running
    from core.logs import configure_logging

    configure_logging()

    async def serve() -> None:
        stop = _stop_on_signals()
        webhook = cli.config.telegram.mode == "webhook"
        async with running(build_application(cli.config), poll=not webhook, webhook=webhook, jobs=True) as receiver:
            assert receiver is not None
            ended = asyncio.ensure_future(receiver.wait())
            await asyncio.wait({ended, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
            if ended.done() and ended.exception() is not None:
                raise ended.exception()  # type: ignore[misc]

    try:
        asyncio.run(serve())
    except AlreadyRunning:
        key = "webhook.sqlite_one_process" if make_url(cli.config.database.url).get_backend_name() == "sqlite" \
            else "cli.already_running"
        raise CliError(_both(cli, key, url=cli.safe_url), 1) from None
    return 0


def _stop_on_signals() -> asyncio.Event:
    """Return an event set on SIGINT or SIGTERM (Ctrl+C, systemd stop)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or not supported
            pass
    return stop


def _both(cli: Cli, key: str, **values: Any) -> str:
    """Return a text in Vietnamese, then English (for messages an operator may read in either)."""
    return "\n".join(cli.texts.get(key, lang, **values) for lang in ("vi", "en"))


def run_sandbox(cli: Cli, port: int, real_date: bool = False) -> int:
    """Run the local sandbox (fake Bot API, the real bot, web chat) until Ctrl+C; print the banner."""
    import errno
    import logging

    from core.logs import configure_logging
    from bot.sandbox import Sandbox, SandboxError, serve

    where = cli.config.path or DEFAULT_CONFIG

    def ready(sandbox: Sandbox) -> None:
        database = make_url(sandbox.database_url).render_as_string(hide_password=True)
        for lang in ("vi", "en"):
            cli.out(cli.texts.get("sandbox.banner", lang, url=sandbox.url, database=database, config=where,
                                  today=sandbox.today().strftime("%d/%m/%Y"),
                                  clock=cli.texts.get(f"sandbox.clock_{sandbox.clock_kind}", lang)))

    configure_logging()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the demo database is migrated at every start
    try:
        asyncio.run(serve(cli.config, port, ready, real_date))
    except KeyboardInterrupt:  # Ctrl+C before the signal handlers were in place
        pass
    except SandboxError as exc:
        raise CliError(cli.texts.get(f"sandbox.{exc.reason}", cli.lang, url=exc.detail), 2) from None
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        raise CliError(_both(cli, "sandbox.port_in_use", port=port, error=exc.strerror or exc,
                             config=where)) from None
    cli.out(cli.texts.get("sandbox.stopped", cli.lang))
    return 0


def cmd_sandbox(cli: Cli, args: argparse.Namespace) -> int:
    """Run the local try-it-out sandbox with a web chat on 127.0.0.1 (no token needed)."""
    return run_sandbox(cli, cli.config.sandbox.port if args.port is None else args.port, args.real_date)


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: 0-65535")
    return int(value)


def _sandbox_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("--port", type=_port, metavar="PORT", help=t("arg.port"))
    parser.add_argument("--real-date", dest="real_date", action="store_true", help=t("arg.real_date"))


async def cmd_remind_now(cli: Cli, args: argparse.Namespace) -> int:
    """Perform one weekly run now (reminder or digest), duplicate-protected by the sent-log."""
    if not cli.config.has_token:
        return no_token(cli.config, cli.texts)
    from bot.app import build_application
    from bot.lifecycle import running
    from services.telegram import TelegramOutbox
    from services.weekly import run_weekly

    async def ready(session: AsyncSession) -> None:
        return None

    await in_transaction(cli, ready)  # a clear message when the database is missing or outdated
    application = build_application(cli.config, clock=cli.clock)
    async with running(application, poll=False, jobs=False):
        summary = await run_weekly(application.services, TelegramOutbox(application.bot), args.kind, args.as_of,
                                   resend_uncertain=args.resend_uncertain)
    catalog = "deadlines" if args.kind == "deadlines" else "weekly"  # deadlines: services.deadlines
    kind = cli.texts.get(f"{catalog}.kind_{args.kind}", cli.lang)
    shown = {k: format_number(v, cli.lang) for k, v in vars(summary).items()
             if isinstance(v, int) and not isinstance(v, bool)}
    shown.pop("away", None)
    cli.out(cli.texts.get("weekly.cli_done", cli.lang, kind=kind, week=summary.week_start.strftime("%d/%m/%Y"),
                          **shown))
    if summary.nobody_reason:
        cli.out(cli.texts.get(f"{catalog}.nobody_{summary.nobody_reason}", cli.lang))
    if summary.uncertain_names:
        cli.out(cli.texts.plural("weekly.cli_uncertain", summary.uncertain, cli.lang,
                                 count=format_number(summary.uncertain, cli.lang)))
        for name in summary.uncertain_names:
            cli.out(f"  - {name}")
    return 0 if summary.failed == 0 else 1


def _remind_now_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    from datetime import date

    def day(value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r}: yyyy-mm-dd") from None

    parser.add_argument("--kind", choices=("reminder", "digest", "deadlines"), default="reminder", help=t("arg.kind"))
    parser.add_argument("--as-of", dest="as_of", type=day, default=None, metavar="YYYY-MM-DD", help=t("arg.as_of"))
    parser.add_argument("--resend-uncertain", dest="resend_uncertain", action="store_true",
                        help=t("arg.resend_uncertain"))


# The key, its rotation, backups and restores (models/crypto.py, models/keys.py) ------------------
#
# The key lives outside the database and outside every backup: `[security] key_file` (made by
# `init` with mode 0600 when neither it nor ADMISSIONS_BOT_KEY exists) or ADMISSIONS_BOT_KEY.
# A backup is the database as stored, still sealed; a restore first checks that the current key
# opens the backup's key check value, then replaces the database whole.


def configured_keys(cli: Cli) -> Keys:
    """Return the configured keys (ADMISSIONS_BOT_KEY, else the key file); KeyProblem when there are none."""
    from models.crypto import load_keys

    return load_keys(cli.config.security.key_file)


def ensure_key(cli: Cli) -> Keys:
    """Return the configured keys, first creating the key file (0600) when there is no key at all,
    and then saying loudly, in both languages, to back it up apart from the database."""
    from models.crypto import keys_from_environment, write_key_file

    path = cli.config.security.key_file
    if keys_from_environment() is None and not path.exists():
        write_key_file(path)
        cli.err(_both(cli, "security.key_created", path=path))
    return configured_keys(cli)


def _sync_engine_ready(cli: Cli, keys: Keys):  # type: ignore[no-untyped-def]
    """Return a synchronous engine on the initialised, up-to-date database (CliError otherwise)."""
    from models.db import create_sync_engine_for

    url = cli.config.database.url
    if _sqlite_file_missing(url):
        raise CliError(cli.t("db_not_initialised", url=cli.safe_url, config=cli.config_path))
    engine = create_sync_engine_for(url, keys)
    with engine.connect() as conn:
        state = _schema_state(conn, url)
    if state != "ok":
        engine.dispose()
        key = "db_not_initialised" if state == "missing" else "db_outdated"
        raise CliError(cli.t(key, url=cli.safe_url, config=cli.config_path))
    return engine


def cmd_rotate_key(cli: Cli, args: argparse.Namespace) -> int:
    """Re-seal every personal value under the key in --new-key-file, in one transaction."""
    from models.crypto import read_key_file, write_key_file
    from models.keys import rotate

    old = configured_keys(cli)
    path: Path = args.new_key_file
    if not path.exists():
        write_key_file(path)
        cli.err(_both(cli, "security.key_created", path=path))
    new = read_key_file(path)
    if new.encryption == old.encryption:
        raise CliError(cli.texts.get("security.rotate_same", cli.lang))
    engine = _sync_engine_ready(cli, old)
    try:
        with engine.begin() as conn:  # all or nothing: a failure leaves the old key in charge
            rows = rotate(conn, old, new)
    except DBAPIError as exc:
        raise _db_error(cli, exc) from None
    finally:
        engine.dispose()
    cli.out(_both(cli, "security.rotate_done", rows=format_number(rows, "vi"), path=path))
    return 0


def _rotate_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("--new-key-file", dest="new_key_file", type=Path, required=True, metavar="PATH",
                        help=t("arg.new_key_file"))


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return Path(parsed.database or "").expanduser()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """Return a libpq URL without its password, and the environment carrying it (never on argv)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _pg_tool(cli: Cli, name: str) -> str:
    import shutil

    found = shutil.which(name)
    if found is None:
        raise CliError(cli.texts.get("security.backup_no_pg_dump", cli.lang))
    return found


def _run_tool(cli: Cli, argv: list[str], env: dict[str, str]) -> str:
    import subprocess

    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        raise CliError(cli.texts.get("security.backup_failed", cli.lang, error=first))
    return done.stdout


def cmd_backup(cli: Cli, args: argparse.Namespace) -> int:
    """Write a consistent copy of the database to FILE while the bot may be running (still sealed)."""
    import sqlite3

    out: Path = args.backup_file
    if out.exists():
        raise CliError(cli.texts.get("security.backup_exists", cli.lang, path=out))
    url = cli.config.database.url
    source = _sqlite_path(url)
    if source is not None:
        if _sqlite_file_missing(url):
            raise CliError(cli.t("db_not_initialised", url=cli.safe_url, config=cli.config_path))
        partial = out.with_name(out.name + ".partial")
        # SQLite's online backup API: a consistent snapshot even while the bot writes (WAL included).
        with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)
        os.replace(partial, out)
    else:
        target, env = _libpq(url)
        _run_tool(cli, [_pg_tool(cli, "pg_dump"), "--format=custom", "--no-owner", f"--file={out}", target], env)
    cli.out(cli.texts.get("security.backup_done", cli.lang, url=cli.safe_url, path=out))
    return 0


def _backup_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("backup_file", type=Path, metavar="FILE", help=t("arg.backup_file"))


def _backup_check(cli: Cli, backup: Path) -> str | None:
    """Return the key check value stored in a backup file (None when none can be read)."""
    import sqlite3

    if _sqlite_path(cli.config.database.url) is not None:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as conn:
                row = conn.execute("SELECT value FROM key_check WHERE id = 1").fetchone()
        except sqlite3.DatabaseError:
            return None
        return row[0] if row else None
    _, env = _libpq(cli.config.database.url)
    try:
        dump = _run_tool(cli, [_pg_tool(cli, "pg_restore"), "--data-only", "--table=key_check", "--file=-",
                               str(backup)], env)
    except CliError:
        return None
    lines = dump.splitlines()
    for i, line in enumerate(lines):  # COPY public.key_check (id, value) FROM stdin;  then "1\te1:…"
        if line.startswith("COPY ") and "key_check" in line and i + 1 < len(lines):
            fields = lines[i + 1].split("\t")
            return fields[1] if len(fields) == 2 and fields[0] == "1" else None
    return None


def _holds_data(cli: Cli) -> bool:
    """Tell whether the configured database holds any unit, person, target or admission."""
    from models.db import create_sync_engine_for

    url = cli.config.database.url
    if _sqlite_file_missing(url):
        return False
    engine = create_sync_engine_for(url)
    try:
        with engine.connect() as conn:
            tables = set(sa_inspect(conn).get_table_names())
            return any(conn.exec_driver_sql(f"SELECT 1 FROM {name} LIMIT 1").first() is not None
                       for name in ("unit", "person", "target", "admission") if name in tables)
    finally:
        engine.dispose()


def cmd_restore(cli: Cli, args: argparse.Namespace) -> int:
    """Replace the database with a backup: only when the current key opens it, and over data only with --force."""
    import sqlite3

    backup: Path = args.backup_file
    if not backup.is_file():
        raise CliError(cli.t("file_not_found", path=backup))
    keys = configured_keys(cli)
    check = _backup_check(cli, backup)
    if check is None:
        raise CliError(cli.texts.get("security.restore_unreadable", cli.lang, path=backup))
    if not keys.opens(check):
        raise CliError(_both(cli, "security.restore_wrong_key", path=backup))
    if not args.force and _holds_data(cli):
        raise CliError(cli.texts.get("security.restore_not_empty", cli.lang, url=cli.safe_url))
    url = cli.config.database.url
    target = _sqlite_path(url)
    if target is not None:
        from models.db import ensure_sqlite_folder

        ensure_sqlite_folder(url)
        # The backup API again, the other way: the database is replaced whole, in one step.
        with contextlib.closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as src, \
                contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
    else:
        where, env = _libpq(url)
        _run_tool(cli, [_pg_tool(cli, "pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
                        f"--dbname={where}", str(backup)], env)
    cli.out(cli.texts.get("security.restore_done", cli.lang, url=cli.safe_url, path=backup))
    return 0


def _restore_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("backup_file", type=Path, metavar="FILE", help=t("arg.backup_file"))
    parser.add_argument("--force", action="store_true", help=t("arg.force"))


# The table of commands ------------------------------------------------------------------------

Runner = Callable[[Cli, argparse.Namespace], "int | Awaitable[int]"]


@dataclass(frozen=True)
class Command:
    """One subcommand: its function, its positional arguments, and optionally more argparse setup.

    Help texts come from the catalog: `cli.help.<name with _>` and `cli.arg.<argument>`. `setup`,
    when given, adds options: it gets the subparser and a lookup of `cli.<key>` help texts.
    """

    run: Runner
    arguments: tuple[str, ...] = ()
    setup: Callable[[argparse.ArgumentParser, Callable[[str], str]], None] | None = None


COMMANDS: dict[str, Command] = {
    "init": Command(cmd_init),
    "import-units": Command(cmd_import_units, ("file",), _import_options),
    "import-targets": Command(cmd_import_targets, ("file",), _import_options),
    "import-admissions": Command(cmd_import_admissions, ("file",), _import_options),
    "import-candidates": Command(cmd_import_candidates, ("file",)),
    "import-members": Command(cmd_import_members, ("file",)),
    "invite": Command(cmd_invite, ("unit_code", "role")),
    "invite-batch": Command(cmd_invite_batch, setup=_invite_batch_options),
    "export": Command(cmd_export, setup=_export_options),
    "audit": Command(cmd_audit, setup=_audit_options),
    "run": Command(cmd_run, setup=lambda parser, t: _sandbox_options(parser, t)),
    "remind-now": Command(cmd_remind_now, setup=_remind_now_options),
    "sandbox": Command(cmd_sandbox, setup=_sandbox_options),
    "rotate-key": Command(cmd_rotate_key, setup=_rotate_options),
    "backup": Command(cmd_backup, setup=_backup_options),
    "restore": Command(cmd_restore, setup=_restore_options),
}

# Locked periods (khóa sổ): `lock --unit CODE --until yyyy-mm-dd`, `unlock --unit CODE --reason TEXT`.
# The operator's acts, audited with channel CLI and no person; the rules are models/locks.py.


def _locks_t(cli: Cli, key: str, **values: Any) -> str:
    return cli.texts.get(f"locks.cli.{key}", cli.lang, **values)


async def _locked_unit(cli: Cli, session: AsyncSession, code: str) -> Any:
    from models.units import unit_by_code

    unit = await unit_by_code(session, code.strip())
    if unit is None:
        raise CliError(cli.t("unknown_unit", code=code))
    return unit


async def cmd_lock(cli: Cli, args: argparse.Namespace) -> int:
    """Close a unit's books up to a day (not after today), audited."""
    from models.entities import AuditChannel
    from models.locks import LockRefused, lock_books
    from models.values import parse_date

    now = cli.clock.now()
    day = now.astimezone(cli.config.bot.tz).date()
    try:
        until = parse_date(args.until)  # yyyy-mm-dd, also the chat's dd/mm/yyyy; a future day: LockRefused
    except ValueError:
        raise CliError(_locks_t(cli, "bad_date", value=args.until, today=day.isoformat())) from None

    async def work(session: AsyncSession) -> Any:
        unit = await _locked_unit(cli, session, args.unit)
        try:
            await lock_books(session, unit, until, person=None, now=now, today=day, channel=AuditChannel.CLI)
        except LockRefused as problem:
            raise CliError(_locks_t(cli, f"refused_{problem.reason}", name=unit.name, code=unit.code,
                                    date=until.isoformat(), today=day.isoformat(),
                                    current=problem.current.isoformat() if problem.current else "")) from None
        return unit

    unit = await in_transaction(cli, work)
    cli.out(_locks_t(cli, "locked", name=unit.name, code=unit.code, date=until.isoformat()))
    return 0


async def cmd_unlock(cli: Cli, args: argparse.Namespace) -> int:
    """Reopen a unit's closed books with a reason, audited."""
    from models.audit import REASON_MAX, REASON_MIN, valid_reason
    from models.entities import AuditChannel
    from models.locks import open_books

    reason = valid_reason(args.reason)
    if reason is None:
        raise CliError(_locks_t(cli, "bad_reason", min=REASON_MIN, max=REASON_MAX))
    now = cli.clock.now()

    async def work(session: AsyncSession) -> tuple[Any, Any]:
        unit = await _locked_unit(cli, session, args.unit)
        return unit, await open_books(session, unit, person=None, now=now, reason=reason, channel=AuditChannel.CLI)

    unit, before = await in_transaction(cli, work)
    if before is None:
        raise CliError(_locks_t(cli, "not_locked", name=unit.name, code=unit.code))
    cli.out(_locks_t(cli, "unlocked", name=unit.name, code=unit.code, date=before.isoformat()))
    return 0


def _lock_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("--unit", required=True, metavar="CODE", help=t("arg.unit_code"))
    parser.add_argument("--until", required=True, metavar="YYYY-MM-DD", help=t("arg.until"))


def _unlock_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("--unit", required=True, metavar="CODE", help=t("arg.unit_code"))
    parser.add_argument("--reason", required=True, metavar="TEXT", help=t("arg.reason"))


COMMANDS["lock"] = Command(cmd_lock, setup=_lock_options)
COMMANDS["unlock"] = Command(cmd_unlock, setup=_unlock_options)

# End of locked periods.


_ARGUMENT_TYPES: dict[str, Callable[[str], Any]] = {"file": Path}


def build_parser(texts: Texts, lang: str) -> argparse.ArgumentParser:
    """Return the argument parser with every command of COMMANDS, its help in `lang`."""

    def t(key: str) -> str:
        return texts.get(f"cli.{key}", lang).replace("%", "%%")

    parser = argparse.ArgumentParser(prog="python -m bot", description=t("description"), epilog=t("epilog"))
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, metavar="PATH", help=t("help.config"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title=t("commands"), required=True)
    for name, command in COMMANDS.items():
        help_text = t(f"help.{name.replace('-', '_')}")
        child = sub.add_parser(name, help=help_text, description=help_text)
        for argument in command.arguments:
            child.add_argument(
                argument, metavar=argument.upper(), type=_ARGUMENT_TYPES.get(argument, str), help=t(f"arg.{argument}")
            )
        if command.setup is not None:
            command.setup(child, t)
        child.set_defaults(command_spec=command)
    return parser


def _config_path(argv: Sequence[str]) -> Path:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    known, _ = pre.parse_known_args(argv)
    return known.config


def main(argv: Sequence[str] | None = None, clock: Clock | None = None) -> int:
    """Parse the command line, run the command and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    texts = Texts.load()
    path = _config_path(argv)
    config: Config | None = None
    error: ConfigError | None = None
    try:
        config = load_config(path)
    except ConfigError as exc:
        error = exc
    lang = config.bot.language if config else "vi"
    args = build_parser(texts, lang).parse_args(argv)  # --help and usage errors exit here
    if config is None:
        print(texts.get("cli.config_error", lang, path=path, message=error), file=sys.stderr)
        return 2
    cli = Cli(config=config, config_path=args.config, texts=texts, lang=lang, clock=clock or Clock())
    from telegram.error import InvalidToken, NetworkError

    os.umask(0o077)  # what this process creates (the database, its folder, keys) is the operator's alone
    warnings.filterwarnings("ignore", message="If 'per_message=False'")  # deliberate: see handlers/report.py
    try:
        result = args.command_spec.run(cli, args)
        if inspect.isawaitable(result):
            result = asyncio.run(_finish(result))
        return int(result)
    except CliError as exc:
        cli.err(exc.message)
        return exc.code
    except KeyProblem as exc:  # no key, or not this database's: both languages, never the key itself
        cli.err(_both(cli, f"security.key_{exc.reason}", detail=exc.detail or cli.config.security.key_file))
        return 1
    except InvalidToken:  # never printed: the exception's text holds the token
        cli.err(_both(cli, "cli.token_rejected", config=cli.config_path))
        return 1
    except NetworkError as exc:  # Telegram (or the configured Bot API server) cannot be reached at start
        cli.err(_both(cli, "cli.telegram_unreachable", url=cli.config.telegram.base_url.rstrip("/"),
                      error=type(exc.__cause__ or exc).__name__))
        return 1


async def _finish(result: Awaitable[int]) -> int:
    return await result
