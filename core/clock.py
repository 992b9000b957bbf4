"""The time source; tests and the sandbox swap in a controllable clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo


class Clock:
    """Real wall-clock time."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware (UTC)."""
        return datetime.now(timezone.utc)

    def today(self, tz: tzinfo) -> date:
        """Return today's date in `tz`."""
        return self.now().astimezone(tz).date()


class FixedClock(Clock):
    """A clock that stands still until moved (tests, benchmarks, `--as-of`)."""

    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at.astimezone(timezone.utc)

    def set(self, at: datetime) -> None:
        """Move the clock to `at`."""
        self._at = at

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by `delta`."""
        self._at += delta


class ShiftedClock(Clock):
    """Real time moved to start at another moment (the sandbox lives on the seed article's day)."""

    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("ShiftedClock needs an aware datetime")
        self._offset = at - datetime.now(timezone.utc)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self._offset
