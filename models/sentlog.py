"""The sent-log, weekly runs and stored schedules: what decides what was sent, never the scheduler.

One `SentReminder` row per recipient, kind and week (unique). The delivery engine
(services/delivery.py) moves a row through these states, each change its own short transaction:

    (no row) --claim, right before the request--> pending --answer--> sent | blocked
    pending --Telegram said "not delivered" (429, 5xx, connection refused)--> retrying --claim--> pending
    pending --gave up after retries--> failed            (a later run claims it again)
    pending --no answer (timeout): it may have arrived--> uncertain

A row still `pending` or `retrying` after a crash is resolved by the next run of that kind and
week (`resolve_abandoned`): `retrying` rows provably never reached Telegram and are sent again;
`pending` rows had their request in flight, so they become `uncertain`. Uncertain rows are never
sent again automatically (the promise is "at most once"); they are counted and named to the
operator, and `remind-now --resend-uncertain` releases them on purpose.

Query and command functions take an open session and never commit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import Date, ForeignKey, Integer, String, UniqueConstraint, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.entities import Assignment, Person, Unit

KINDS = ("reminder", "digest")


class SendStatus(enum.StrEnum):
    """Where one entry of the sent-log stands."""

    PENDING = "pending"  # claimed; its request is in flight
    RETRYING = "retrying"  # Telegram said it was not delivered; waiting to try again
    SENT = "sent"
    FAILED = "failed"  # gave up after retries, provably not delivered (a later run tries again)
    BLOCKED = "blocked"  # Telegram answered 403: the person blocked the bot
    UNCERTAIN = "uncertain"  # a request got no answer: it may or may not have been delivered


class SentReminder(Base):
    """The sent-log: one row per recipient, kind and week."""

    __tablename__ = "sent_reminder"
    __table_args__ = (UniqueConstraint("person_id", "kind", "week_start"), {"info": {"bookkeeping": True}})

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    week_start: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    claimed_at: Mapped[datetime]  # when the row last changed state
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class ReminderSchedule(Base):
    """A schedule an admin set with /schedule; it wins over the configuration file."""

    __tablename__ = "reminder_schedule"
    __table_args__ = {"info": {"bookkeeping": True}}

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    weekday: Mapped[str] = mapped_column(String(3))
    at: Mapped[str] = mapped_column(String(5))  # HH:MM, local time
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))


class WeeklyRun(Base):
    """One run of a kind for a week: started, and completed once every recipient was handled."""

    __tablename__ = "weekly_run"
    __table_args__ = (UniqueConstraint("kind", "week_start"), {"info": {"bookkeeping": True}})

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    week_start: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


def _row(person_id: int, kind: str, week: date):  # type: ignore[no-untyped-def]
    return (SentReminder.person_id == person_id, SentReminder.kind == kind, SentReminder.week_start == week)


async def claim(session: AsyncSession, person_id: int, kind: str, week: date, now: datetime) -> bool:
    """Claim a recipient right before its request: a new `pending` row, or a `failed`/`retrying` one taken back.

    Returns False when the row exists in any other state (sent, blocked, uncertain, or pending:
    in flight in another worker or process). Call in its own short transaction.
    """
    try:
        async with session.begin_nested():
            session.add(SentReminder(person_id=person_id, kind=kind, week_start=week,
                                     status=SendStatus.PENDING.value, claimed_at=now, attempts=0))
        return True
    except IntegrityError:
        pass
    result = await session.execute(
        update(SentReminder)
        .where(*_row(person_id, kind, week),
               SentReminder.status.in_([SendStatus.FAILED.value, SendStatus.RETRYING.value]))
        .values(status=SendStatus.PENDING.value, claimed_at=now, finished_at=None)
    )
    return bool(result.rowcount)


async def record(session: AsyncSession, person_id: int, kind: str, week: date, status: SendStatus,
                 now: datetime, attempts: int) -> None:
    """Record where a claimed recipient stands now (a final outcome, or `retrying`)."""
    finished = None if status == SendStatus.RETRYING else now
    await session.execute(
        update(SentReminder).where(*_row(person_id, kind, week))
        .values(status=status.value, claimed_at=now, finished_at=finished, attempts=attempts)
    )


async def mark_blocked(session: AsyncSession, person_id: int, now: datetime) -> None:
    """Mark a person who blocked the bot inactive (the guard re-activates them when they write)."""
    await session.execute(update(Person).where(Person.id == person_id).values(active=False, blocked_at=now))


@dataclass(frozen=True)
class Uncertain:
    """A recipient whose message may or may not have arrived: for the operator to decide."""

    person_id: int
    display_name: str
    units: tuple[str, ...]


async def resolve_abandoned(session: AsyncSession, kind: str, week: date, older_than: datetime) -> int:
    """Resolve rows a dead run left behind (unchanged since before `older_than`); return how many.

    `retrying` rows never reached Telegram: they are released to be sent again. `pending` rows
    had a request in flight: they become `uncertain`.
    """
    stale = (SentReminder.kind == kind, SentReminder.week_start == week, SentReminder.claimed_at < older_than)
    released = await session.execute(
        delete(SentReminder).where(*stale, SentReminder.status == SendStatus.RETRYING.value))
    doubtful = await session.execute(
        update(SentReminder).where(*stale, SentReminder.status == SendStatus.PENDING.value)
        .values(status=SendStatus.UNCERTAIN.value, claimed_at=older_than))
    return int(released.rowcount or 0) + int(doubtful.rowcount or 0)


async def uncertain_recipients(session: AsyncSession, kind: str, week: date) -> list[Uncertain]:
    """Return the recipients of this kind and week whose message may not have arrived, with their units."""
    rows = (await session.execute(
        select(Person.id, Person.display_name, Unit.name)
        .join(SentReminder, SentReminder.person_id == Person.id)
        .outerjoin(Assignment, (Assignment.person_id == Person.id) & Assignment.ended_at.is_(None))
        .outerjoin(Unit, Unit.id == Assignment.unit_id)
        .where(SentReminder.kind == kind, SentReminder.week_start == week,
               SentReminder.status == SendStatus.UNCERTAIN.value)
        .order_by(Person.id, Unit.name)
    )).all()
    found: dict[int, tuple[str, list[str]]] = {}
    for person_id, name, unit in rows:
        found.setdefault(person_id, (name, []))[1].extend([unit] if unit else [])
    return [Uncertain(pid, name, tuple(units)) for pid, (name, units) in found.items()]


async def release_uncertain(session: AsyncSession, kind: str, week: date) -> int:
    """Let the uncertain recipients of this kind and week be sent again (an operator's choice); return how many."""
    result = await session.execute(delete(SentReminder).where(
        SentReminder.kind == kind, SentReminder.week_start == week, SentReminder.status == SendStatus.UNCERTAIN.value))
    return int(result.rowcount or 0)


async def status_counts(session: AsyncSession, kind: str, week: date) -> dict[str, int]:
    """Return the sent-log of a kind and week counted by status."""
    rows = await session.execute(
        select(SentReminder.status, func.count())
        .where(SentReminder.kind == kind, SentReminder.week_start == week)
        .group_by(SentReminder.status)
    )
    return {status: int(n) for status, n in rows.all()}


# Runs and schedules ---------------------------------------------------------------------------


async def start_run(session: AsyncSession, kind: str, week: date, now: datetime) -> None:
    """Record that a run of `kind` for `week` started (once; later starts keep the first)."""
    existing = await session.scalar(select(WeeklyRun).where(WeeklyRun.kind == kind, WeeklyRun.week_start == week))
    if existing is not None:
        return
    try:
        async with session.begin_nested():
            session.add(WeeklyRun(kind=kind, week_start=week, started_at=now))
    except IntegrityError:
        pass


async def complete_run(session: AsyncSession, kind: str, week: date, now: datetime) -> None:
    """Record that every recipient of the run of `kind` for `week` was handled."""
    await session.execute(
        update(WeeklyRun)
        .where(WeeklyRun.kind == kind, WeeklyRun.week_start == week, WeeklyRun.completed_at.is_(None))
        .values(completed_at=now)
    )


async def run_completed(session: AsyncSession, kind: str, week: date) -> bool:
    """Tell whether the run of `kind` for `week` completed."""
    return (
        await session.scalar(
            select(WeeklyRun.id).where(
                WeeklyRun.kind == kind, WeeklyRun.week_start == week, WeeklyRun.completed_at.is_not(None)
            )
        )
    ) is not None


async def stored_schedules(session: AsyncSession) -> dict[str, tuple[str, time]]:
    """Return the schedules set in chat: kind -> (weekday, time)."""
    rows = await session.scalars(select(ReminderSchedule))
    out: dict[str, tuple[str, time]] = {}
    for row in rows:
        hh, mm = row.at.split(":")
        out[row.kind] = (row.weekday, time(int(hh), int(mm)))
    return out


async def store_schedule(session: AsyncSession, kind: str, weekday: str, at: time, person: Person | None,
                         now: datetime) -> None:
    """Store (insert or replace) the schedule of `kind`."""
    row = await session.get(ReminderSchedule, kind)
    text = at.strftime("%H:%M")
    if row is None:
        session.add(ReminderSchedule(kind=kind, weekday=weekday, at=text, updated_at=now,
                                     updated_by_id=person.id if person else None))
    else:
        row.weekday, row.at, row.updated_at = weekday, text, now
        row.updated_by_id = person.id if person else None
    await session.flush()

