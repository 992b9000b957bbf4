"""Configuration read once from TOML into typed sections, validated with errors naming the key."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.i18n import LANGUAGES
from models.calendar import WEEKDAYS, TermStart
from models.workdays import DeadlineRules

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_DATABASE_URL = "sqlite:///data/bot.db"
TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")


class ConfigError(ValueError):
    """A configuration file or value is not acceptable; the message names the key."""


@dataclass(frozen=True)
class TelegramSettings:
    """The `[telegram]` section."""

    token: str | None = None
    base_url: str = DEFAULT_BASE_URL
    base_file_url: str | None = None
    bot_username: str | None = None
    mode: str = "polling"  # "polling" (one process) or "webhook" (see [webhook])


# --- webhook mode (issue 15): [telegram] mode and the [webhook] section -----------------------
MODES = ("polling", "webhook")
WEBHOOK_SECRET_ENV = "TELEGRAM_WEBHOOK_SECRET"
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts as secret_token


@dataclass(frozen=True)
class WebhookSettings:
    """The `[webhook]` section: where Telegram POSTs updates in webhook mode (bot.webhook serves it)."""

    url: str | None = None  # the public HTTPS URL Telegram calls (the reverse proxy's)
    listen: str = "127.0.0.1"  # the address the bot's own HTTP listener binds (behind the proxy)
    port: int = 8443
    secret_token: str | None = None  # TELEGRAM_WEBHOOK_SECRET overrides; required in webhook mode


def _webhook(raw: dict[str, Any], environ: dict[str, str], mode: str) -> WebhookSettings:
    """Parse `[webhook]`; in webhook mode the URL and the secret token are required."""
    w = _section(raw, "webhook", _names(WebhookSettings))
    d = WebhookSettings()
    url = w.get("url")
    if url is not None:
        url = _str(url, "webhook.url").strip() or None
    # Telegram calls only https; plain http is accepted for this machine alone (the local Bot API, tests).
    if url is not None and not (re.match(r"^https://[^/\s]+", url)
                                or re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)", url)):
        raise ConfigError(f"webhook.url: expected the public https:// URL Telegram calls, got {url!r}")
    secret = environ.get(WEBHOOK_SECRET_ENV) or w.get("secret_token") or None
    if secret is not None:
        secret = _str(secret, "webhook.secret_token")
        if not _SECRET_RE.match(secret):
            raise ConfigError("webhook.secret_token: expected 1–256 characters of A-Z, a-z, 0-9, _ and - "
                              f"(or set {WEBHOOK_SECRET_ENV})")
    if mode == "webhook":
        if url is None:
            raise ConfigError("webhook.url: required when telegram.mode = \"webhook\" (the public https:// URL)")
        if secret is None:
            raise ConfigError(f"webhook.secret_token: required when telegram.mode = \"webhook\" "
                              f"(or set {WEBHOOK_SECRET_ENV})")
    return WebhookSettings(
        url=url,
        listen=_str(w.get("listen", d.listen), "webhook.listen").strip() or d.listen,
        port=_int(w.get("port", d.port), "webhook.port", 1, 65535),
        secret_token=secret,
    )
# --- end of webhook mode ----------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseSettings:
    """The `[database]` section."""

    url: str = DEFAULT_DATABASE_URL


@dataclass(frozen=True)
class BotSettings:
    """The `[bot]` section."""

    timezone: str = "Asia/Ho_Chi_Minh"
    language: str = "vi"
    invite_days: int = 14
    undo_hours: int = 48
    term_start: TermStart = TermStart(7, 1)  # "MM-DD": the congress; a term "2025-2030" is 1/7/2025–30/6/2030

    @property
    def tz(self) -> ZoneInfo:
        """Return the configured timezone."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class ReminderSettings:
    """The `[reminders]` section: default weekly schedule (the stored schedule wins after a change)."""

    reminder_day: str = "fri"
    reminder_time: time = time(16, 0)
    digest_day: str = "mon"
    digest_time: time = time(7, 30)
    quiet_hours: tuple[time, time] = (time(21, 0), time(6, 30))
    holidays: tuple[tuple[date, date], ...] = ()
    catch_up_hours: int = 12


@dataclass(frozen=True)
class PipelineSettings:
    """The `[pipeline]` section: the admission process's time limits and the candidates' retention."""

    decision_working_days: int = 60  # cell resolution → decision
    ceremony_working_days: int = 30  # decision → ceremony
    probation_months: int = 12  # ceremony → end of probation
    recognition_working_days: int = 30  # end of probation → recognition vote
    ceremony_warn_working_days: int = 5  # remind when the ceremony is due within this many working days
    probation_warn_days: int = 30  # remind when probation ends within this many days
    forget_after_days: int = 730  # a candidate who left is deleted this many days after leaving

    @property
    def rules(self) -> DeadlineRules:
        """Return the time limits as the domain reads them."""
        return DeadlineRules(self.decision_working_days, self.ceremony_working_days, self.probation_months,
                             self.recognition_working_days)


def _pipeline(raw: dict[str, Any]) -> PipelineSettings:
    p = _section(raw, "pipeline", _names(PipelineSettings))
    bounds = {"probation_months": (1, 36), "forget_after_days": (1, 36500)}
    return PipelineSettings(**{
        f.name: _int(p.get(f.name, f.default), f"pipeline.{f.name}", *bounds.get(f.name, (0, 1000)))
        for f in fields(PipelineSettings)})


@dataclass(frozen=True)
class SandboxSettings:
    """The `[sandbox]` section: the local try-it-out mode."""

    port: int = 8080
    database_url: str = "sqlite:///data/sandbox.db"


@dataclass(frozen=True)
class SecuritySettings:
    """The `[security]` section: where the key that seals personal data lives (models.crypto).

    The environment variable ADMISSIONS_BOT_KEY, when set, wins over the file (as for the token)."""

    key_file: Path = Path("data/secret.key")


def _security(raw: dict[str, Any]) -> SecuritySettings:
    section = _section(raw, "security", _names(SecuritySettings))
    key_file = _str(section.get("key_file", str(SecuritySettings.key_file)), "security.key_file").strip()
    if not key_file:
        raise ConfigError("security.key_file: expected the path of the key file, e.g. \"data/secret.key\"")
    return SecuritySettings(key_file=Path(key_file).expanduser())


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    bot: BotSettings = field(default_factory=BotSettings)
    reminders: ReminderSettings = field(default_factory=ReminderSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    path: Path | None = None

    @property
    def has_token(self) -> bool:
        """Tell whether a bot token is configured."""
        return bool(self.telegram.token)


def parse_hhmm(value: Any, key: str) -> time:
    """Parse `HH:MM` or raise a ConfigError naming the key."""
    if isinstance(value, time):
        return value
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ConfigError(f"{key}: expected a time as HH:MM, got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def parse_quiet_hours(value: Any, key: str) -> tuple[time, time]:
    """Parse `HH:MM-HH:MM` (may wrap past midnight)."""
    if isinstance(value, tuple):
        return value
    parts = str(value).split("-")
    if len(parts) != 2:
        raise ConfigError(f"{key}: expected a range like \"21:00-06:30\", got {value!r}")
    return parse_hhmm(parts[0], key), parse_hhmm(parts[1], key)


def parse_holidays(value: Any, key: str) -> tuple[tuple[date, date], ...]:
    """Parse a list of `yyyy-mm-dd` dates or `yyyy-mm-dd..yyyy-mm-dd` ranges."""
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of dates or date ranges")
    ranges: list[tuple[date, date]] = []
    for item in value:
        if isinstance(item, tuple):
            ranges.append(item)
            continue
        text = item.isoformat() if isinstance(item, date) else str(item).strip()
        first, _, last = text.partition("..")
        try:
            start = date.fromisoformat(first)
            end = date.fromisoformat(last) if last else start
        except ValueError:
            raise ConfigError(f"{key}: {item!r} is not yyyy-mm-dd or yyyy-mm-dd..yyyy-mm-dd") from None
        if end < start:
            raise ConfigError(f"{key}: range {item!r} ends before it starts")
        ranges.append((start, end))
    return tuple(ranges)


def _weekday(value: Any, key: str) -> str:
    text = str(value).strip().lower()
    if text not in WEEKDAYS:
        raise ConfigError(f"{key}: expected one of {', '.join(WEEKDAYS)}, got {value!r}")
    return text


def _term_start(value: Any, key: str) -> TermStart:
    if isinstance(value, TermStart):
        return value
    try:
        return TermStart.parse(_str(value, key))
    except ValueError:
        raise ConfigError(f"{key}: expected the day terms begin as \"MM-DD\" (not 02-29), e.g. \"07-01\", "
                          f"got {value!r}") from None


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key}: expected a whole number from {low} to {high}, got {value!r}")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a text value in quotes, got {value!r}")
    return value


def _section(raw: dict[str, Any], name: str, known: tuple[str, ...]) -> dict[str, Any]:
    section = raw.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"[{name}]: expected a table")
    for key in section:
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown key (known: {', '.join(known)})")
    return section


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def parse_config(raw: dict[str, Any], environ: dict[str, str] | None = None, path: Path | None = None) -> Config:
    """Build a validated Config from parsed TOML; `environ` may override secrets."""
    environ = dict(os.environ) if environ is None else environ
    sections = ("telegram", "database", "bot", "reminders", "sandbox", "security", "pipeline", "webhook")
    for name in raw:
        if name not in sections:
            raise ConfigError(f"[{name}]: unknown section (known: {', '.join(sections)})")

    tg = _section(raw, "telegram", _names(TelegramSettings))
    token = environ.get(TOKEN_ENV) or tg.get("token") or None
    if token is not None:
        token = _str(token, "telegram.token").strip() or None
    if token and not _TOKEN_RE.match(token):
        raise ConfigError("telegram.token: does not look like a bot token from @BotFather (123456:ABC…)")
    base_url = _str(tg.get("base_url", TelegramSettings.base_url), "telegram.base_url")
    if not re.match(r"^https?://", base_url):
        raise ConfigError(f"telegram.base_url: expected an http(s) URL, got {base_url!r}")
    base_file_url = tg.get("base_file_url")
    if base_file_url is not None:
        base_file_url = _str(base_file_url, "telegram.base_file_url")
    username = tg.get("bot_username")
    if username is not None:
        username = _str(username, "telegram.bot_username").lstrip("@") or None
    mode = _str(tg.get("mode", TelegramSettings.mode), "telegram.mode")
    if mode not in MODES:
        raise ConfigError(f"telegram.mode: expected one of {', '.join(MODES)}, got {mode!r}")
    telegram = TelegramSettings(token=token, base_url=base_url, base_file_url=base_file_url, bot_username=username,
                                mode=mode)

    dbs = _section(raw, "database", _names(DatabaseSettings))
    url = _str(dbs.get("url", DatabaseSettings.url), "database.url")
    if "://" not in url:
        raise ConfigError(f"database.url: expected an SQLAlchemy URL such as {DatabaseSettings.url!r}")
    database = DatabaseSettings(url=url)

    # Every default is the dataclass field's: a missing key keeps it.
    b = _section(raw, "bot", _names(BotSettings))
    tz_name = _str(b.get("timezone", BotSettings.timezone), "bot.timezone")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"bot.timezone: unknown timezone {tz_name!r}") from None
    language = _str(b.get("language", BotSettings.language), "bot.language")
    if language not in LANGUAGES:
        raise ConfigError(f"bot.language: expected one of {', '.join(LANGUAGES)}, got {language!r}")
    bot = BotSettings(
        timezone=tz_name,
        language=language,
        invite_days=_int(b.get("invite_days", BotSettings.invite_days), "bot.invite_days", 1, 365),
        undo_hours=_int(b.get("undo_hours", BotSettings.undo_hours), "bot.undo_hours", 1, 24 * 30),
        term_start=_term_start(b.get("term_start", BotSettings.term_start), "bot.term_start"),
    )

    r = _section(raw, "reminders", _names(ReminderSettings))
    d = ReminderSettings()
    reminders = ReminderSettings(
        reminder_day=_weekday(r.get("reminder_day", d.reminder_day), "reminders.reminder_day"),
        reminder_time=parse_hhmm(r.get("reminder_time", d.reminder_time), "reminders.reminder_time"),
        digest_day=_weekday(r.get("digest_day", d.digest_day), "reminders.digest_day"),
        digest_time=parse_hhmm(r.get("digest_time", d.digest_time), "reminders.digest_time"),
        quiet_hours=parse_quiet_hours(r.get("quiet_hours", d.quiet_hours), "reminders.quiet_hours"),
        holidays=parse_holidays(r.get("holidays", list(d.holidays)), "reminders.holidays"),
        catch_up_hours=_int(r.get("catch_up_hours", d.catch_up_hours), "reminders.catch_up_hours", 0, 24 * 7),
    )

    s = _section(raw, "sandbox", _names(SandboxSettings))
    sandbox = SandboxSettings(
        port=_int(s.get("port", SandboxSettings.port), "sandbox.port", 1, 65535),
        database_url=_str(s.get("database_url", SandboxSettings.database_url), "sandbox.database_url"),
    )
    return Config(telegram=telegram, database=database, bot=bot, reminders=reminders, sandbox=sandbox,
                  security=_security(raw), pipeline=_pipeline(raw), webhook=_webhook(raw, environ, mode),
                  path=path)


def load_config(path: Path, environ: dict[str, str] | None = None) -> Config:
    """Read and validate the TOML file at `path`; a missing file means all defaults."""
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(raw, environ, path=path)
