"""One weekly run: who gets a reminder or a digest this week, their messages, and their delivery.

Transactions stay short (on SQLite each writing one takes the write lock): the run is recorded in
one, the recipients are read in another, each committee member's digest is built in its own (a
unit's section once per run and language), and none spans a send (services.delivery).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from models.entities import Unit
from models.reminders import committee_members, due_secretaries
from models.sentlog import (
    KINDS,
    SendStatus,
    complete_run,
    release_uncertain,
    start_run,
    status_counts,
    uncertain_recipients,
)
from models.calendar import week_start
from models.deadlines import DEADLINES
from services.deadlines import (
    SecretaryDeadlines,
    deadline_outgoing,
    forget_old_candidates,
    mark_delivered,
    reminder_extra,
    secretaries_with_deadlines,
)
from services.delivery import Delivery, Outbox, Outgoing
from services.digests import digest_section, pack, reminder_messages
from services.delivery import Message
from services.pipeline import digest_lines
from services.runtime import Services

logger = logging.getLogger(__name__)

RUN_KINDS = (*KINDS, DEADLINES)  # deadlines: services.deadlines, run right after each weekly reminder


@dataclass
class RunSummary:
    """What one run did, and why nobody got anything when that is the case."""

    kind: str
    week_start: date
    recipients: int = 0
    sent: int = 0
    skipped: int = 0  # already in the sent-log (sent, blocked, uncertain, or in flight elsewhere)
    failed: int = 0
    blocked: int = 0
    uncertain: int = 0  # recipients of this week whose message may or may not have arrived
    away: int = 0
    uncertain_names: list[str] = field(default_factory=list)  # for the operator: who to check on
    elsewhere: bool = False  # another process was running this run: this one did nothing

    @property
    def nobody_reason(self) -> str | None:
        """Return why nothing was sent (a catalog suffix), or None when something was to be sent."""
        if self.elsewhere:
            return "running_elsewhere"
        if self.sent or self.failed or self.blocked:
            return None
        if self.recipients and self.skipped == self.recipients:
            return "already_sent"
        if self.recipients == 0 and self.away:
            return "all_away"
        if self.recipients == 0:
            return {"reminder": "all_reported", DEADLINES: "no_deadlines"}.get(self.kind, "no_committee")
        return None


async def run_weekly(services: Services, outbox: Outbox, kind: str, as_of: date | None = None,
                     *, resend_uncertain: bool = False) -> RunSummary:
    """Run one weekly run of `kind` now, as on `as_of` (default today); quiet hours do not apply.

    Recipients already in the sent-log for this kind and week are skipped, so repeating a run is
    safe; what a dead run left in flight is resolved first (models.sentlog). With
    `resend_uncertain` the operator chooses to send again to those whose message may not have
    arrived. The run is recorded as completed when every recipient was handled.
    """
    if kind not in RUN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(RUN_KINDS)}")
    day = as_of or services.today()
    week = week_start(day)
    summary = RunSummary(kind=kind, week_start=week)
    # One delivery of a run at a time, across processes: holding the lock also proves that what
    # the sent-log shows in flight belongs to a dead run (the kernel or the database released it).
    async with services.db.exclusive(f"run-{kind}-{week.isoformat()}") as alone:
        if not alone:
            logger.info("%s run, week of %s: already running in another process", kind, week.isoformat())
            summary.elsewhere = True
            return summary
        await _run(services, outbox, summary, day, resend_uncertain)
    return summary


async def _run(services: Services, outbox: Outbox, summary: RunSummary, day: date, resend_uncertain: bool) -> None:
    """Resolve what a dead run left, pick the recipients, deliver, and record the run (holding its lock)."""
    kind, week = summary.kind, summary.week_start
    delivery = Delivery(services, outbox, kind, week)
    async with services.db.writing() as session:
        await start_run(session, kind, week, services.clock.now())
    await delivery.resolve_abandoned()
    if resend_uncertain:
        async with services.db.writing() as session:
            released = await release_uncertain(session, kind, week)
        logger.info("%s run, week of %s: %d uncertain recipient(s) released for resending", kind, week, released)
    # Deadlines ride in the weekly reminder; those left over go alone in the deadlines run after it.
    deadlines = await secretaries_with_deadlines(services, day) if kind in ("reminder", DEADLINES) else {}
    if kind == "reminder":
        outgoing, summary.away = await _reminders(services, day, deadlines)
    elif kind == DEADLINES:
        outgoing = deadline_outgoing(services, deadlines, day)
        await forget_old_candidates(services, day)
    else:
        outgoing = await _digests(services, day)
    summary.recipients = len(outgoing)
    counts = await delivery.send_all(outgoing)
    # Only this run's messages carry its deadlines: a person skipped as sent earlier this week got none.
    await mark_delivered(services, kind, day, deadlines, delivery.delivered)
    summary.sent, summary.skipped, summary.failed, summary.blocked = (
        counts.sent, counts.skipped, counts.failed, counts.blocked)
    async with services.db.writing() as session:
        await complete_run(session, kind, week, services.clock.now())
        summary.uncertain = (await status_counts(session, kind, week)).get(SendStatus.UNCERTAIN.value, 0)
        if summary.uncertain:
            found = await uncertain_recipients(session, kind, week)
            summary.uncertain_names = [f"{u.display_name} ({', '.join(u.units)})" for u in found]
    if summary.uncertain:
        logger.warning("%s run, week of %s: %d recipient(s) may not have got their message (no answer came); "
                       "not resent — see remind-now --resend-uncertain", kind, week.isoformat(), summary.uncertain)
    logger.info("%s run, week of %s: %d recipients, %d sent, %d skipped, %d failed, %d blocked",
                kind, week.isoformat(), summary.recipients, summary.sent, summary.skipped, summary.failed,
                summary.blocked)


async def _reminders(services: Services, day: date,
                     deadlines: dict[int, SecretaryDeadlines]) -> tuple[list[Outgoing], int]:
    """Return each due secretary's reminder (with their pending deadlines), and how many secretaries are away."""
    async with services.db.reading() as session:
        due, away = await due_secretaries(session, day, services.config.bot.tz)
    out = [Outgoing(person.person_id, reminder_messages(
               services.translator(person.language), person, day,
               reminder_extra(services, deadlines, person.person_id, person.language, day)))
           for person in due]
    return out, away


async def _digests(services: Services, day: date) -> list[Outgoing]:
    """Build each committee member's digest, each in its own short read.

    A unit's section is built once per run and language, however many members follow the unit.
    """
    async with services.db.reading() as session:
        members = [(p.id, p.telegram_id, p.language, [u.id for u in units])
                   for p, units in await committee_members(session)]
    sections: dict[tuple[int, str], str] = {}
    out = []
    for person_id, chat_id, language, unit_ids in members:
        tr = services.translator(language)
        async with services.db.reading() as session:
            for unit_id in unit_ids:
                if (unit_id, tr.lang) not in sections:
                    unit = await session.get(Unit, unit_id)
                    if unit is not None:
                        pipeline = await digest_lines(session, tr, unit, day, services.config)
                        sections[unit_id, tr.lang] = await digest_section(session, tr, unit, day,
                                                                          services.config.bot.tz, pipeline)
        texts = [sections[u, tr.lang] for u in unit_ids if (u, tr.lang) in sections]
        if texts:
            out.append(Outgoing(person_id, [Message(chat_id, text) for text in pack(tr, texts)]))
    return out
