"""The pipeline and membership lines /progress and the committee digest share (texts in candidates.toml).

- `Tổng số đảng viên: 2.817 (dự bị 215)` when the subtree's membership is known (models.membership);
- the candidates at each stage from the class onwards, and beside the pace forecast what the
  period would reach if those with a cell or committee resolution are admitted in time;
- for the digest: candidates by stage, cells with no candidate at all ("hết nguồn"), and cells
  with overdue ceremonies or recognition votes (counts with the cell's name, no member's name).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from core.collation import sort_vietnamese
from core.i18n import Translator
from core.text import esc
from core.config import Config
from models.candidates import cells_without_candidates, stage_counts
from models.deadlines import Deadline, Warnings, due_deadlines
from models.entities import STAGES, Stage, Unit
from models.membership import membership
from models.progress import Progress, if_resolutions_admitted
from models.workdays import WorkCalendar

FROM_CLASS = STAGES[STAGES.index(Stage.LOP):]  # what /progress shows of the pipeline
RESOLVED = (Stage.CHI_BO, Stage.DANG_UY)
LIST_LIMIT = 15


def _stages_line(tr: Translator, counts: dict[Stage, int], stages: tuple[Stage, ...]) -> str:
    parts = [tr("candidates.pipeline_part", stage=tr(f"candidates.stage.{s.value}"), count=tr.number(counts[s]))
             for s in stages]
    return tr("candidates.pipeline_line", stages=" · ".join(parts))


async def progress_lines(session: AsyncSession, tr: Translator, unit: Unit, progress: Progress) -> list[str]:
    """Return /progress's membership line and pipeline lines for `unit`'s subtree (none when nothing is known)."""
    lines = []
    members = await membership(session, unit)
    if members.known:
        lines.append(tr("candidates.members_line", total=tr.number(members.total),
                        probationary=tr.number(members.probationary)))
    counts = await stage_counts(session, unit)
    if any(counts.values()):
        lines.append(_stages_line(tr, counts, FROM_CLASS))
        reach = if_resolutions_admitted(progress, sum(counts[s] for s in RESOLVED))
        if reach is not None and progress.target is not None:
            lines.append(tr("candidates.pipeline_forecast", count=tr.number(reach), target=tr.number(progress.target)))
    return lines


async def digest_lines(session: AsyncSession, tr: Translator, unit: Unit, day: date, config: Config) -> list[str]:
    """Return the digest's pipeline section of `unit`'s subtree."""
    lines = [""]
    members = await membership(session, unit)
    if members.known:
        lines.append(tr("candidates.members_line", total=tr.number(members.total),
                        probationary=tr.number(members.probationary)))
    lines.append(_stages_line(tr, await stage_counts(session, unit), STAGES))
    empty = sort_vietnamese(await cells_without_candidates(session, unit), key=lambda c: c.name)
    if empty:
        names = ", ".join(esc(c.name) for c in empty[:LIST_LIMIT]) + (", …" if len(empty) > LIST_LIMIT else "")
        lines.append(tr("candidates.digest_no_source", count=tr.number(len(empty)), cells=names))
    pipeline = config.pipeline
    warn = Warnings(pipeline.ceremony_warn_working_days, pipeline.probation_warn_days)
    overdue: dict[tuple[int, Deadline], int] = {}
    for notice in await due_deadlines(session, day, WorkCalendar(config.reminders.holidays), pipeline.rules, warn,
                                      unit.path):
        if notice.deadline in (Deadline.CEREMONY_OVERDUE, Deadline.RECOGNITION_OVERDUE):
            overdue[notice.unit_id, notice.deadline] = overdue.get((notice.unit_id, notice.deadline), 0) + 1
    if overdue:
        cells = {u: (await session.get(Unit, u)) for u, _ in overdue}
        lines.append(tr("candidates.digest_overdue_header"))
        for (unit_id, deadline), count in sorted(overdue.items(), key=lambda item: (cells[item[0][0]].name,
                                                                                     item[0][1].value)):
            lines.append(tr(f"candidates.digest_{deadline.value}", cell=esc(cells[unit_id].name),
                            count=tr.number(count)))
    return lines
