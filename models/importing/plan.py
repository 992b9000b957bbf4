"""The three import formats as one: which format a file is, its plan (preview) and its audit entry.

The command line and the chat import the same way: `plan_import` computes what a file would do
without writing (rows read; created, changed, left as is; every bad row with its line), and the
plan's `apply` is the import itself, in the caller's transaction. `record_import` adds the audit
entry of an import (its counts as JSON in `new_value`), filed at the lowest unit covering every
row, so the subtree's audit shows it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import Action, Change, entries_of_subject, record
from models.calendar import TermStart
from models.entities import AuditChannel, AuditEntry, Person, Unit
from models.importing.admission_dates import plan_admissions_with_dates
from models.importing.admissions import ADMISSION_COLUMNS, ADMISSION_LATER, ADMISSION_OPTIONAL
from models.importing.csvfile import CHUNK_ROWS, ImportPlan
from models.importing.targets import TARGET_COLUMNS, plan_targets
from models.importing.units import UNIT_COLUMNS, UNIT_OPTIONAL, plan_units

# kind -> (required columns, optional columns): the command line's contracts, in this order.
FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "units": (UNIT_COLUMNS, UNIT_OPTIONAL),
    "targets": (TARGET_COLUMNS, ()),
    "admissions": (ADMISSION_COLUMNS, (*ADMISSION_OPTIONAL, *ADMISSION_LATER)),
}
# A value of each column as a department would type it (the templates' guide; data, the same in every language).
EXAMPLES = {"code": "BB-NL", "name": "Chi bộ thôn Nà Lạn", "parent_code": "BB", "kind": "cell",
            "villages": "Khuổi Pết; Nà Ngòa", "unit_code": "BB-NL", "period": "2026 / 2025-2030", "target": "4",
            "full_name": "Lò Thị Hoa", "birth_year": "1998", "gender": "nữ / nam", "admitted_on": "15/05/2026",
            "ethnicity": "Tày", "decision_no": "125-QĐ/ĐU", "members_full": "38", "members_probationary": "2",
            "ceremony_on": "30/05/2026", "recognized_on": ""}
IMPORT_SUBJECT = "import"  # the audit entries' subject; subject_id is the chat upload's number


def recognise(columns: Iterable[str]) -> str | None:
    """Return the format a header names: the one whose required columns it holds, else the one it
    shares most columns with when that is at least half of them (its problems then name what is
    missing), else None."""
    names = {column.strip() for column in columns}
    best, share = None, 0.0
    for kind, (required, optional) in FORMATS.items():
        if names >= set(required):
            return kind
        overlap = len(names & {*required, *optional}) / len(required)
        if overlap > share:
            best, share = kind, overlap
    return best if share >= 0.5 else None


def csv_header(data: bytes) -> list[str]:
    """Return the cells of a CSV file's first non-blank line (as well as they can be read)."""
    text = data[:65_536].decode("utf-8-sig", errors="replace")
    for record in csv.reader(io.StringIO(text, newline="")):
        if any(cell.strip() for cell in record):
            return record
    return []


async def plan_import(session: AsyncSession, kind: str, data: str | bytes, *, today: date, now: datetime,
                      term_start: TermStart, within: Sequence[str] | None = None,
                      keep_rows: bool = False) -> ImportPlan:
    """Return the plan of importing `data` as `kind` ("units", "targets", "admissions").

    `within`: the subtree paths of the admin importing (None: the command line, everywhere).
    `keep_rows`: count the good rows of a file that has bad ones too (a preview)."""
    if kind == "units":
        return await plan_units(session, data, within, today=today)
    if kind == "targets":
        return await plan_targets(session, data, term_start, within)
    if kind == "admissions":
        return await plan_admissions_with_dates(session, data, today, now, within, keep_rows=keep_rows)
    raise ValueError(kind)


def counts_value(plan: ImportPlan) -> str:
    """Return the plan's counts as the audit entry's JSON text."""
    total, created, changed, unchanged = plan.counts
    return json.dumps({"total": total, "created": created, "changed": changed, "unchanged": unchanged},
                      sort_keys=True)


async def record_import(session: AsyncSession, plan: ImportPlan, *, at: datetime, channel: AuditChannel,
                        person: Person | None = None, upload_id: int | None = None) -> None:
    """Add the audit entry of an applied plan (field: its kind; new value: its counts)."""
    record(session, at=at, channel=channel, action=Action.IMPORT, subject=IMPORT_SUBJECT, person=person,
           subject_id=upload_id, unit=await covering_unit(session, plan.codes),
           changes=[Change(field=plan.kind, old=None, new=counts_value(plan))])


async def upload_imported(session: AsyncSession, upload_id: int) -> AuditEntry | None:
    """Return the audit entry of the chat upload `upload_id` if it was imported already, else None."""
    entries = await entries_of_subject(session, IMPORT_SUBJECT, upload_id)
    return entries[0] if entries else None


async def covering_unit(session: AsyncSession, codes: Iterable[str]) -> Unit | None:
    """Return the lowest unit whose subtree holds every unit of these codes (None: no such unit)."""
    ordered = sorted(set(codes))
    paths: list[list[str]] = []
    for start in range(0, len(ordered), CHUNK_ROWS):
        part = ordered[start:start + CHUNK_ROWS]
        paths.extend(path.strip("/").split("/") for path in await session.scalars(
            select(Unit.path).where(Unit.code.in_(part))))
    if not paths:
        return None
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return await session.get(Unit, int(common[-1])) if common else None
