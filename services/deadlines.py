"""Deadline reminders for cell secretaries: in the weekly reminder, or alone when there is none.

The weekly reminder run (services.weekly) adds each due secretary's pending deadlines to their
reminder; right after it, a run of kind `deadlines` (same schedule, so the same quiet hours and
holidays) sends the deadlines still pending to the secretaries who got no reminder (their cells
reported). Both go through the delivery engine and its sent-log (one message per person, kind
and week); a deadline counts as delivered (models.deadlines.mark_notified) once the sent-log
says its message was sent, or may have been (uncertain: at most once), so it is never repeated.
A crash between a send and that record may repeat a deadline once in the next run.
The deadlines run also forgets the candidates who left the pipeline long ago ([pipeline]).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select

from core.i18n import Translator
from core.text import esc, split_message
from models.calendar import week_start
from models.candidates import forget_departed
from models.deadlines import Deadline, Notice, Warnings, mark_notified, pending_notices
from models.entities import Assignment, Person, Role, Unit, UnitKind
from models.sentlog import SendStatus, SentReminder
from models.workdays import WorkCalendar
from services.delivery import Message, Outgoing
from services.runtime import Services

logger = logging.getLogger(__name__)

DELIVERED = (SendStatus.SENT.value, SendStatus.UNCERTAIN.value)


@dataclass
class SecretaryDeadlines:
    """A secretary's pending deadlines, with the names of the cells they concern."""

    person_id: int
    telegram_id: int
    language: str
    notices: list[Notice] = field(default_factory=list)
    cells: dict[int, str] = field(default_factory=dict)


def work_calendar(services: Services) -> WorkCalendar:
    """Return the working-day calendar of the configuration (Vietnam's holidays plus [reminders] holidays)."""
    return WorkCalendar(services.config.reminders.holidays)


async def secretaries_with_deadlines(services: Services, day: date) -> dict[int, SecretaryDeadlines]:
    """Return, by person id, the active and not-away secretaries whose cells have deadlines pending on `day`."""
    pipeline = services.config.pipeline
    warn = Warnings(pipeline.ceremony_warn_working_days, pipeline.probation_warn_days)
    async with services.db.reading() as session:
        notices = await pending_notices(session, day, work_calendar(services), pipeline.rules, warn)
        if not notices:
            return {}
        by_cell: dict[int, list[Notice]] = {}
        for notice in notices:
            by_cell.setdefault(notice.unit_id, []).append(notice)
        rows = (await session.execute(
            select(Person.id, Person.telegram_id, Person.language, Person.away_until, Unit.id, Unit.name)
            .join(Assignment, (Assignment.person_id == Person.id) & Assignment.ended_at.is_(None))
            .join(Unit, Unit.id == Assignment.unit_id)
            .where(Assignment.role == Role.SECRETARY, Person.active.is_(True), Unit.kind == UnitKind.CELL,
                   Unit.id.in_(list(by_cell)))
            .order_by(Person.id, Unit.id))).all()
    out: dict[int, SecretaryDeadlines] = {}
    for person_id, telegram_id, language, away_until, unit_id, unit_name in rows:
        if away_until is not None and day <= away_until:
            continue
        item = out.setdefault(person_id, SecretaryDeadlines(person_id, telegram_id, language))
        item.notices.extend(by_cell[unit_id])
        item.cells[unit_id] = unit_name
    return out


def deadline_lines(tr: Translator, item: SecretaryDeadlines, day: date, calendar: WorkCalendar) -> list[str]:
    """Return the lines naming a secretary's deadlines (the cell named when they have several)."""
    lines = [tr("deadlines.header")]
    for notice in sorted(item.notices, key=lambda n: (n.due, n.full_name)):
        cell = tr("deadlines.in_cell", cell=esc(item.cells[notice.unit_id])) if len(item.cells) > 1 else ""
        left = calendar.working_days_between(day, notice.due) if notice.deadline == Deadline.CEREMONY_SOON \
            else (notice.due - day).days
        lines.append(tr(f"deadlines.{notice.deadline.value}", name=esc(notice.full_name), cell=cell,
                        due=tr.date(notice.due), left=tr.number(max(left, 0))))
    return lines


def deadline_messages(tr: Translator, item: SecretaryDeadlines, day: date, calendar: WorkCalendar) -> list[Message]:
    """Return a secretary's deadline reminder sent alone (no weekly reminder this week)."""
    text = "\n".join([tr("deadlines.alone_header"), *deadline_lines(tr, item, day, calendar)])
    return [Message(item.telegram_id, part) for part in split_message(text)]


def deadline_outgoing(services: Services, items: dict[int, SecretaryDeadlines], day: date) -> list[Outgoing]:
    """Return the messages of a deadlines run."""
    calendar = work_calendar(services)
    return [Outgoing(item.person_id, deadline_messages(services.translator(item.language), item, day, calendar))
            for item in items.values()]


async def mark_delivered(services: Services, kind: str, day: date, items: dict[int, SecretaryDeadlines],
                         person_ids: Iterable[int]) -> None:
    """Record the deadlines of those of `person_ids` whose message of this run the sent-log shows delivered."""
    wanted = [pid for pid in person_ids if pid in items]
    if not wanted:
        return
    async with services.db.writing() as session:
        delivered = set(await session.scalars(
            select(SentReminder.person_id).where(SentReminder.kind == kind, SentReminder.week_start == week_start(day),
                                                 SentReminder.person_id.in_(wanted),
                                                 SentReminder.status.in_(DELIVERED))))
        await mark_notified(session, [n for pid in wanted if pid in delivered for n in items[pid].notices],
                            services.clock.now())


async def forget_old_candidates(services: Services, day: date) -> None:
    """Delete the candidates who left the pipeline more than `[pipeline] forget_after_days` ago."""
    async with services.db.writing() as session:
        gone = await forget_departed(session, day, services.config.pipeline.forget_after_days)
    if gone:
        logger.info("Forgot %d candidate(s) who left the pipeline long ago", gone)


def reminder_extra(services: Services, items: dict[int, SecretaryDeadlines], person_id: int, language: str,
                   day: date) -> Sequence[str]:
    """Return the deadline lines to add to a secretary's weekly reminder (none when nothing is pending)."""
    item = items.get(person_id)
    if item is None:
        return ()
    return ["", *deadline_lines(services.translator(language), item, day, work_calendar(services))]
