"""Logging set-up: quiet HTTP client logs and a filter that hides bot tokens."""

from __future__ import annotations

import logging
import re
import warnings

# The colon may come percent-encoded: the file download URL quotes it (/file/bot123%3AAbc…/documents/…).
_TOKEN = re.compile(r"\d{5,}(?::|%3[Aa])[A-Za-z0-9_-]{30,}")


class RedactTokens(logging.Filter):
    """Replace anything shaped like a bot token in a log record with a placeholder."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _TOKEN.search(message):
            record.msg, record.args = _TOKEN.sub("<token>", message), None
        if record.exc_info:  # a traceback may quote a URL with the token in it
            record.exc_text = _TOKEN.sub("<token>", logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


# Libraries whose DEBUG records carry payloads: the Bot API parameters and answers (message texts,
# names, invite codes), request URLs (the token), SQL (parameters are hidden, but not everywhere).
PAYLOAD_LOGGERS = ("telegram", "httpx", "httpcore", "aiohttp", "sqlalchemy", "aiosqlite", "asyncpg", "apscheduler")


class QuietPayloads(logging.Filter):
    """Drop DEBUG records of PAYLOAD_LOGGERS, whatever level their loggers are set to: DEBUG is for
    this project's own code, whose records never hold message text, names or tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        return not any(record.name == name or record.name.startswith(name + ".") for name in PAYLOAD_LOGGERS)


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with timestamps; httpx and aiohttp (which may log URLs containing the token) only warn."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(QuietPayloads())
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Buttons inside /report are tracked per chat on purpose (see handlers/report.py).
    warnings.filterwarnings("ignore", message="If 'per_message=False'")
