"""Delivering broadcast messages (reminders, digests) through an outbox, with the sent-log protocol.

The promise, per message kind:
- Broadcasts (weekly reminders, digests) are sent AT MOST ONCE per recipient, kind and week, and
  none is lost silently. A recipient is claimed in the sent-log (models.sentlog) right before its
  request, so a crash leaves at most the requests in flight (≤ WORKERS) in doubt. A send is
  retried only when Telegram provably did not deliver it: 429 (after `retry_after`), a 5xx
  answer, or a connection that never opened. A request that got no answer (a read timeout: the
  message may have arrived) is not retried; it is recorded `uncertain`, counted, and named to the
  operator, who may resend on purpose (`remind-now --resend-uncertain`).
- Replies to a person's own action are AT LEAST ONCE (services.telegram.ReplyRetry): retried on
  429, 5xx and timeouts, because a repeated "Đã lưu" harms nobody and silence leaves them unsure.

Sends are paced below Telegram's 30 messages/s so that no one-second window can hold more,
whatever the network jitter (`Pacer`). The outbox is an interface: services.telegram implements it
over PTB's Bot; nothing here imports telegram.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from models.sentlog import SendStatus, claim, mark_blocked, record, resolve_abandoned
from services.runtime import Services

logger = logging.getLogger(__name__)

SEND_RATE = 29  # messages per second and bot (Telegram allows about 30; one is left for replies)
WORKERS = 4  # recipients in flight at once
MAX_ATTEMPTS = 5  # per recipient, for sends Telegram provably did not deliver
BACKOFF_START = 0.5  # seconds; doubles per retry
BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class Button:
    """An inline button: its label and its callback data (≤ 64 bytes)."""

    text: str
    data: str


@dataclass(frozen=True)
class Message:
    """One text message (Telegram HTML) with optional rows of buttons."""

    chat_id: int
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()


class Outcome(enum.StrEnum):
    """What one attempt to send a message came to."""

    SENT = "sent"
    BLOCKED = "blocked"  # 403: the person blocked the bot
    REFUSED = "refused"  # 400: Telegram will never take it (retrying cannot help)
    NOT_DELIVERED = "not_delivered"  # 429, 5xx, no connection: provably not delivered, may retry
    UNKNOWN = "unknown"  # no answer: it may have been delivered


@dataclass(frozen=True)
class Attempt:
    """The outcome of one request, and how long Telegram asked to wait before the next (429)."""

    outcome: Outcome
    retry_after: float | None = None


class Outbox(Protocol):
    """Sends one message with one request (no retries: the caller decides)."""

    async def send(self, message: Message) -> Attempt:
        """Send `message` once and say what came of it."""
        ...


@dataclass
class Outgoing:
    """One recipient's message(s) of a run, ready to send."""

    person_id: int
    messages: list[Message]


@dataclass
class DeliveryCounts:
    """What delivering one run's messages did."""

    sent: int = 0
    skipped: int = 0  # already in the sent-log (sent, blocked, uncertain, or in flight elsewhere)
    failed: int = 0
    blocked: int = 0
    uncertain: int = 0  # no answer came: may have been delivered, not resent
    abandoned: int = 0  # rows of a dead run resolved before this one
    uncertain_people: list[int] = field(default_factory=list)


class Pacer:
    """Keeps sends within Telegram's per-bot limit whatever the network jitter (real time, all workers).

    Sends start at least 1/`per_second` apart, and a send starts only one second after the send
    `per_second` places before it has *finished*: Telegram counts a request somewhere between its
    start and its end, so no one-second window can then hold more than `per_second` of them.
    """

    def __init__(self, per_second: int):
        self.per_second = per_second
        self._slots: deque[asyncio.Future[float]] = deque(maxlen=per_second)
        self._lock = asyncio.Lock()
        self._next = 0.0

    async def acquire(self) -> asyncio.Future[float]:
        """Wait for this send's turn; finish the returned slot with `release` when the send is over."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            if len(self._slots) == self.per_second:
                ended = await asyncio.shield(self._slots[0])
                await _wait_until(loop, ended + 1.0)
            await _wait_until(loop, self._next)
            self._next = loop.time() + 1.0 / self.per_second
            slot: asyncio.Future[float] = loop.create_future()
            self._slots.append(slot)
            return slot

    @staticmethod
    def release(slot: asyncio.Future[float]) -> None:
        """Record that the send of `slot` is over."""
        if not slot.done():
            slot.set_result(asyncio.get_running_loop().time())


async def _wait_until(loop: asyncio.AbstractEventLoop, at: float) -> None:
    delay = at - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class Delivery:
    """Sends a run's messages: claim right before sending, record the outcome, pace, retry what provably failed."""

    def __init__(self, services: Services, outbox: Outbox, kind: str, week: date,
                 *, workers: int | None = None, rate: int | None = None):
        self.services = services
        self.outbox = outbox
        self.kind = kind
        self.week = week
        self.workers = workers or WORKERS
        self.pacer = Pacer(rate or SEND_RATE)
        self.counts = DeliveryCounts()
        self.delivered: set[int] = set()  # people whose message went out (or may have) in this run

    async def resolve_abandoned(self) -> int:
        """Resolve what a dead run of this kind and week left in flight (see models.sentlog).

        Call while holding the run's lock (services.weekly): then no live run has anything in flight."""
        now = self.services.clock.now()
        async with self.services.db.writing() as session:
            self.counts.abandoned = await resolve_abandoned(session, self.kind, self.week, now + timedelta(seconds=1))
        return self.counts.abandoned

    async def send_all(self, outgoing: Sequence[Outgoing]) -> DeliveryCounts:
        """Deliver every recipient's messages; return the counts."""
        items = iter(outgoing)

        async def worker() -> None:
            for item in items:
                await self._deliver(item)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.workers, max(len(outgoing), 1))):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:  # report the first cause, as a plain loop would
            raise errors.exceptions[0] from None
        return self.counts

    async def _deliver(self, item: Outgoing) -> None:
        status, attempts = SendStatus.SENT, 0
        claimed = False
        for message in item.messages:
            status, used, claimed = await self._send_one(item.person_id, message, claimed, attempts)
            attempts += used
            if not claimed:
                self.counts.skipped += 1
                return
            if status != SendStatus.SENT:
                break
        now = self.services.clock.now()
        async with self.services.db.writing() as session:
            await record(session, item.person_id, self.kind, self.week, status, now, attempts)
            if status == SendStatus.BLOCKED:
                await mark_blocked(session, item.person_id, now)
        if status in (SendStatus.SENT, SendStatus.UNCERTAIN):
            self.delivered.add(item.person_id)
        if status == SendStatus.SENT:
            self.counts.sent += 1
        elif status == SendStatus.BLOCKED:
            self.counts.blocked += 1
        elif status == SendStatus.UNCERTAIN:
            self.counts.uncertain += 1
            self.counts.uncertain_people.append(item.person_id)
        else:
            self.counts.failed += 1

    async def _send_one(self, person_id: int, message: Message, claimed: bool,
                        attempts_before: int) -> tuple[SendStatus, int, bool]:
        """Send one message with retries; return (status, attempts, claimed)."""
        backoff = BACKOFF_START
        for attempt in range(1, MAX_ATTEMPTS + 1):
            slot = await self.pacer.acquire()
            try:
                if not claimed:  # claimed at the moment of sending, after the pacer's wait
                    async with self.services.db.writing() as session:
                        claimed = await claim(session, person_id, self.kind, self.week, self.services.clock.now())
                    if not claimed:
                        return SendStatus.SENT, 0, False
                result = await self.outbox.send(message)
            finally:
                self.pacer.release(slot)
            if result.outcome == Outcome.SENT:
                return SendStatus.SENT, attempt, True
            if result.outcome == Outcome.BLOCKED:
                return SendStatus.BLOCKED, attempt, True
            if result.outcome == Outcome.REFUSED:
                return SendStatus.FAILED, attempt, True
            if result.outcome == Outcome.UNKNOWN:
                logger.warning("%s: a send got no answer; recorded as uncertain, not resent", self.kind)
                return SendStatus.UNCERTAIN, attempt, True
            if attempt == MAX_ATTEMPTS:
                break
            # Provably not delivered: say so in the sent-log before waiting, so a crash now
            # lets the next run send it again.
            async with self.services.db.writing() as session:
                await record(session, person_id, self.kind, self.week, SendStatus.RETRYING,
                             self.services.clock.now(), attempts_before + attempt)
            if result.retry_after is not None:
                logger.warning("Flood control: waiting %.1f s", result.retry_after)
                await self.services.sleep(result.retry_after)
            else:
                await self.services.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            claimed = False  # claimed again at the next attempt's moment of sending
        return SendStatus.FAILED, MAX_ATTEMPTS, True
