"""The command line: `python -m bot [--config PATH] <command> ...`.

This module only parses arguments, opens the engine and one transaction, calls the domain and
prints. Texts come from core/locales/<lang>/cli.toml. To add a command, write one
`cmd_<name>(cli, args) -> int` function (sync or async) and add one line to COMMANDS.

Exit codes: 0 done, 1 bad input or nothing to do it with (nothing was changed), 2 configuration
or usage error.

Why one module of ≈ 530 lines: it is the whole command-line surface — the table of nine commands
(COMMANDS) with their thin bodies and the shared steps they use (one transaction, reading a file,
printing problems, both languages); each body calls into services/ or models/. Splitting it would
scatter COMMANDS and those shared steps without shortening any of them.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.config import Config, ConfigError, load_config
from core.i18n import Texts, format_number
from models.importing import ImportCounts, ImportProblems, import_admissions, import_targets, import_units

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

    url = cli.config.database.url
    not_ready = CliError(cli.t("db_not_initialised", url=cli.safe_url, config=cli.config_path))
    if _sqlite_file_missing(url):  # do not leave an empty file behind
        raise not_ready
    engine = create_engine_for(url)
    try:
        async with engine.connect() as conn:
            state = await conn.run_sync(_schema_state, url)
        if state == "missing":
            raise not_ready
        if state == "outdated":
            raise CliError(cli.t("db_outdated", url=cli.safe_url, config=cli.config_path))
        async with session_factory(engine).begin() as session:
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
    try:
        migrate(url)
    except DBAPIError as exc:
        raise _db_error(cli, exc) from None
    head = ", ".join(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    cli.out(cli.t("init_done", url=cli.safe_url, revision=head))
    return 0


def _importer(
    summary: str, work: Callable[[Cli, AsyncSession, bytes], Awaitable[ImportCounts]]
) -> Callable[[Cli, argparse.Namespace], Awaitable[int]]:
    """Build an import command: read the file, run `work` in one transaction, print the summary."""

    async def command(cli: Cli, args: argparse.Namespace) -> int:
        data = read_file(cli, args.file)
        try:
            counts = await in_transaction(cli, lambda session: work(cli, session, data))
        except ImportProblems as exc:
            cli.err(problems_text(cli, args.file, exc.problems))
            return 1
        cli.out(cli.t(summary, **vars(counts)))
        return 0

    return command


async def _admissions(cli: Cli, session: AsyncSession, data: bytes) -> ImportCounts:
    now = cli.clock.now()
    return await import_admissions(session, data, today=now.astimezone(cli.config.bot.tz).date(), now=now)


cmd_import_units = _importer("units_done", lambda cli, session, data: import_units(session, data))
cmd_import_targets = _importer("targets_done", lambda cli, session, data: import_targets(
    session, data, cli.config.bot.term_start))
cmd_import_admissions = _importer("admissions_done", _admissions)


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
        _, render = await export_bytes(session, unit, period, day, fmt)
        return unit, period, render

    unit, period, render = await in_transaction(cli, work)
    try:
        args.out.write_bytes(render())
    except OSError as exc:
        raise CliError(cli.t("file_unwritable", path=args.out, error=exc.strerror or exc)) from None
    cli.out(cli.t("export_done", path=args.out, name=unit.name, code=unit.code, period=period.label()))
    return 0


def _export_options(parser: argparse.ArgumentParser, t: Callable[[str], str]) -> None:
    parser.add_argument("--unit", required=True, metavar="CODE", help=t("arg.unit_code"))
    parser.add_argument("--period", default=None, metavar="PERIOD", help=t("arg.period"))
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help=t("arg.out"))


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
    kind = cli.texts.get(f"weekly.kind_{args.kind}", cli.lang)
    shown = {k: format_number(v, cli.lang) for k, v in vars(summary).items()
             if isinstance(v, int) and not isinstance(v, bool)}
    shown.pop("away", None)
    cli.out(cli.texts.get("weekly.cli_done", cli.lang, kind=kind, week=summary.week_start.strftime("%d/%m/%Y"),
                          **shown))
    if summary.nobody_reason:
        cli.out(cli.texts.get(f"weekly.nobody_{summary.nobody_reason}", cli.lang))
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

    parser.add_argument("--kind", choices=("reminder", "digest"), default="reminder", help=t("arg.kind"))
    parser.add_argument("--as-of", dest="as_of", type=day, default=None, metavar="YYYY-MM-DD", help=t("arg.as_of"))
    parser.add_argument("--resend-uncertain", dest="resend_uncertain", action="store_true",
                        help=t("arg.resend_uncertain"))


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
    "import-units": Command(cmd_import_units, ("file",)),
    "import-targets": Command(cmd_import_targets, ("file",)),
    "import-admissions": Command(cmd_import_admissions, ("file",)),
    "invite": Command(cmd_invite, ("unit_code", "role")),
    "export": Command(cmd_export, setup=_export_options),
    "run": Command(cmd_run, setup=lambda parser, t: _sandbox_options(parser, t)),
    "remind-now": Command(cmd_remind_now, setup=_remind_now_options),
    "sandbox": Command(cmd_sandbox, setup=_sandbox_options),
}

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
    except InvalidToken:  # never printed: the exception's text holds the token
        cli.err(_both(cli, "cli.token_rejected", config=cli.config_path))
        return 1
    except NetworkError as exc:  # Telegram (or the configured Bot API server) cannot be reached at start
        cli.err(_both(cli, "cli.telegram_unreachable", url=cli.config.telegram.base_url.rstrip("/"),
                      error=type(exc.__cause__ or exc).__name__))
        return 1


async def _finish(result: Awaitable[int]) -> int:
    return await result
