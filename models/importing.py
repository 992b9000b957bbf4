"""Loading units, targets and earlier admissions from CSV files (the command line's import-*).

Every function validates the whole file first and raises ImportProblems, listing every bad row,
before anything is written; functions take an open session and never commit, so the caller's
transaction decides. Line numbers are the file's own (the header is line 1).

Problem keys (the `key` of each problem) are catalog suffixes: `cli.problem.<key>`.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models.admissions import AdmissionDraft, imported_admission
from models.entities import Admission, Target, Unit, UnitKind
from models.progress import Period
from models.units import TreeError, UnitRow, load_units
from models.values import (
    clean_name,
    name_key,
    parse_birth_year,
    parse_date,
    parse_decision_no,
    parse_ethnicity,
    parse_sex,
)

UNIT_COLUMNS = ("code", "name", "parent_code", "kind")
UNIT_OPTIONAL = ("villages",)
TARGET_COLUMNS = ("unit_code", "period", "target")
ADMISSION_COLUMNS = ("unit_code", "full_name", "birth_year", "gender", "admitted_on")
ADMISSION_OPTIONAL = ("ethnicity", "decision_no")

MAX_CODE_LENGTH = 64
MAX_UNIT_NAME_LENGTH = 200
MAX_TARGET = 1_000_000
_CODE_RE = re.compile(r"^\w[\w.\-/]*$")
_YEAR_RE = re.compile(r"^\d{4}$")

Problem = tuple[int, str, str]


class ImportProblems(ValueError):
    """The file cannot be imported; `problems` lists (line, key, detail), sorted by line."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = sorted(problems, key=lambda p: p[0])
        super().__init__("; ".join(f"line {line}: {key} {detail}".strip() for line, key, detail in self.problems))

    @property
    def lines(self) -> list[int]:
        """Return the distinct line numbers that have problems."""
        return sorted({line for line, _, _ in self.problems})


@dataclass(frozen=True)
class ImportCounts:
    """What an import did: rows read, rows created, rows updated, rows skipped as already present."""

    total: int
    created: int
    updated: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class CsvRow:
    """One non-blank data row: its line number and its values by column (trimmed, NFC)."""

    line: int
    values: dict[str, str]

    def get(self, column: str) -> str:
        """Return the value of `column` ("" when the column is absent or the cell empty)."""
        return self.values.get(column, "")


@dataclass(frozen=True)
class CsvTable:
    """A parsed file: the columns its header names, its rows, and row-shape problems."""

    columns: tuple[str, ...]
    rows: list[CsvRow]
    problems: list[Problem]


def _normal(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def _collapse(text: str) -> str:
    return " ".join(_normal(text).split())


def decode(data: str | bytes) -> str:
    """Return the text of a UTF-8 file (with or without BOM); raise ImportProblems if it is not UTF-8."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportProblems([(line, "not_utf8", "")]) from None


def read_table(data: str | bytes, required: Sequence[str], optional: Sequence[str] = ()) -> CsvTable:
    """Parse a comma-separated file with a header naming `required` and maybe some of `optional` columns.

    Blank lines are skipped and values trimmed. Header problems raise ImportProblems at once;
    rows with more values than the header are returned as problems.
    """
    reader = csv.reader(io.StringIO(decode(data), newline=""))
    header: list[str] | None = None
    header_line = 1
    rows: list[CsvRow] = []
    problems: list[Problem] = []
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header, header_line = [_normal(cell) for cell in record], start
                _check_header(header, header_line, required, optional)
                continue
            if len(record) > len(header):
                problems.append((start, "too_many_values", f"{len(record)}/{len(header)}"))
                continue
            values = {name: _normal(cell) for name, cell in zip(header, record, strict=False)}
            rows.append(CsvRow(start, values))
    except csv.Error as exc:
        raise ImportProblems([*problems, (reader.line_num, "bad_csv", str(exc))]) from None
    if header is None:
        raise ImportProblems([(1, "no_header", ", ".join(required))])
    return CsvTable(tuple(header), rows, problems)


def _check_header(header: list[str], line: int, required: Sequence[str], optional: Sequence[str]) -> None:
    problems: list[Problem] = []
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.append((line, "duplicate_column", name))
        elif name not in required and name not in optional:
            problems.append((line, "unknown_column", name))
        seen.add(name)
    problems.extend((line, "missing_column", name) for name in required if name not in seen)
    if problems:
        raise ImportProblems(problems)


def _required(row: CsvRow, column: str, problems: list[Problem]) -> str | None:
    value = row.get(column)
    if not value:
        problems.append((row.line, "missing_value", column))
        return None
    return value


def _code(row: CsvRow, column: str, problems: list[Problem]) -> str | None:
    value = _required(row, column, problems)
    if value is None:
        return None
    if len(value) > MAX_CODE_LENGTH or not _CODE_RE.match(value):
        problems.append((row.line, "bad_code", value))
        return None
    return value


# Units ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """Where a row puts a unit in the tree (known even when other values of the row are bad)."""

    line: int
    code: str
    parent: str | None
    kind: UnitKind | None


def parse_units(table: CsvTable) -> tuple[list[UnitRow], list[_Place], list[Problem]]:
    """Return the rows that parse as units, where every row with a code sits, and the problems."""
    problems = list(table.problems)
    rows: list[UnitRow] = []
    places: list[_Place] = []
    kinds = {kind.value: kind for kind in UnitKind}
    for row in table.rows:
        before = len(problems)
        code = _code(row, "code", problems)
        name = _collapse(row.get("name"))
        if not name:
            problems.append((row.line, "missing_value", "name"))
        elif len(name) > MAX_UNIT_NAME_LENGTH:
            problems.append((row.line, "too_long", name[:40]))
        parent = row.get("parent_code") or None
        if parent is not None and (len(parent) > MAX_CODE_LENGTH or not _CODE_RE.match(parent)):
            problems.append((row.line, "bad_code", parent))
        kind = kinds.get(row.get("kind").lower())
        if kind is None:
            problems.append((row.line, "bad_kind", row.get("kind")))
        villages = tuple(dict.fromkeys(v for v in (_collapse(part) for part in row.get("villages").split(";")) if v))
        for village in villages:
            if len(village) > MAX_UNIT_NAME_LENGTH:
                problems.append((row.line, "too_long", village[:40]))
        if code is not None:
            places.append(_Place(row.line, code, parent, kind))
        if len(problems) == before and code is not None and kind is not None:
            rows.append(UnitRow(row.line, code, name, parent, kind, villages))
    return rows, places, problems


def tree_problems(places: Sequence[_Place], existing: dict[str, Unit]) -> list[Problem]:
    """Return what would break the tree: repeated codes, unknown parents, cycles, units under a cell."""
    by_id = {unit.id: unit for unit in existing.values()}
    parent = {code: by_id[u.parent_id].code if u.parent_id in by_id else None for code, u in existing.items()}
    kind: dict[str, UnitKind | None] = {code: unit.kind for code, unit in existing.items()}
    line_of: dict[str, int] = {}
    problems: list[Problem] = []
    for place in places:
        if place.code in line_of:
            problems.append((place.line, "duplicate_code", place.code))
            continue
        line_of[place.code] = place.line
        parent[place.code] = place.parent
        kind[place.code] = place.kind or kind.get(place.code)
    for code, line in line_of.items():
        up = parent[code]
        if up is not None and up not in parent:
            problems.append((line, "unknown_parent", up))
            continue
        seen = {code}
        while up is not None and up not in seen:
            seen.add(up)
            up = parent.get(up)
        if up == code:
            problems.append((line, "cycle", code))
    for code, up in parent.items():
        if up is not None and up != code and kind.get(up) == UnitKind.CELL:
            line = line_of.get(code) or line_of.get(up)
            if line is not None:
                problems.append((line, "parent_is_cell", up))
    return problems


async def import_units(session: AsyncSession, data: str | bytes) -> ImportCounts:
    """Create or update units by code from `code,name,parent_code,kind[,villages]`.

    Villages are separated by ";" (a combined cell has several); without a `villages` column the
    villages already stored are kept. A changed parent moves the unit with its admissions.
    """
    table = read_table(data, UNIT_COLUMNS, UNIT_OPTIONAL)
    rows, places, problems = parse_units(table)
    existing = {u.code: u for u in await session.scalars(select(Unit).options(selectinload(Unit.villages)))}
    problems += tree_problems(places, existing)
    if problems:
        raise ImportProblems(problems)
    if "villages" not in table.columns:
        rows = [_keep_villages(row, existing.get(row.code)) for row in rows]
    try:
        created, updated = await load_units(session, rows)
    except TreeError as exc:
        raise ImportProblems(exc.problems) from None
    return ImportCounts(total=len(rows), created=created, updated=updated)


def _keep_villages(row: UnitRow, unit: Unit | None) -> UnitRow:
    if unit is None:
        return row
    names = tuple(v.name for v in unit.villages)
    return UnitRow(row.line, row.code, row.name, row.parent_code, row.kind, names)


# Targets -------------------------------------------------------------------------------------


async def import_targets(session: AsyncSession, data: str | bytes) -> ImportCounts:
    """Set targets from `unit_code,period,target`; the same unit and period again updates the value."""
    table = read_table(data, TARGET_COLUMNS)
    problems = list(table.problems)
    units = await _units_by_code(session, {row.get("unit_code") for row in table.rows})
    parsed: dict[tuple[int, Period], tuple[int, int]] = {}
    for row in table.rows:
        code = _required(row, "unit_code", problems)
        unit = units.get(code) if code else None
        if code and unit is None:
            problems.append((row.line, "unknown_unit", code))
        period: Period | None = None
        text = _required(row, "period", problems)
        if text is not None:
            try:
                period = Period.parse(text)
            except ValueError as exc:
                problems.append((row.line, str(exc), text))
        value = _required(row, "target", problems)
        number: int | None = None
        if value is not None:
            if re.fullmatch(r"\d+", value) and int(value) <= MAX_TARGET:
                number = int(value)
            else:
                problems.append((row.line, "bad_target", value))
        if unit is None or period is None or number is None:
            continue
        if (unit.id, period) in parsed:
            problems.append((row.line, "duplicate_row", str(parsed[unit.id, period][0])))
            continue
        parsed[unit.id, period] = (row.line, number)
    if problems:
        raise ImportProblems(problems)

    stored = {
        (t.unit_id, Period(t.start_year, t.end_year)): t
        for t in await session.scalars(select(Target).where(Target.unit_id.in_(sorted({key[0] for key in parsed}))))
    }
    created = updated = 0
    for (unit_id, period), (_, number) in parsed.items():
        target = stored.get((unit_id, period))
        if target is None:
            session.add(Target(unit_id=unit_id, start_year=period.start_year, end_year=period.end_year, value=number))
            created += 1
        else:
            target.value = number
            updated += 1
    await session.flush()
    return ImportCounts(total=len(parsed), created=created, updated=updated)


async def _units_by_code(session: AsyncSession, codes: set[str]) -> dict[str, Unit]:
    codes.discard("")
    if not codes:
        return {}
    return {u.code: u for u in await session.scalars(select(Unit).where(Unit.code.in_(sorted(codes))))}


# Admissions ----------------------------------------------------------------------------------


def _admission_draft(row: CsvRow, unit: Unit | None, today: date, problems: list[Problem]) -> AdmissionDraft | None:
    before = len(problems)
    name = row.get("full_name")
    try:
        name = clean_name(name)
    except ValueError as exc:
        problems.append((row.line, f"name_{exc}", name))
    admitted: date | None = None
    text = _required(row, "admitted_on", problems)
    if text is not None:
        try:
            admitted = parse_date(text, today)
        except ValueError as exc:
            problems.append((row.line, str(exc), text))
    birth: int | None = None
    text = _required(row, "birth_year", problems)
    if text is not None:
        if admitted is None:
            if not _YEAR_RE.match(text):
                problems.append((row.line, "not_year", text))
        else:
            try:
                # Old history must validate as of its own date, not today.
                birth = parse_birth_year(text, admitted)
            except ValueError as exc:
                problems.append((row.line, str(exc), text))
    sex = None
    text = _required(row, "gender", problems)
    if text is not None:
        try:
            sex = parse_sex(text)
        except ValueError as exc:
            problems.append((row.line, str(exc), text))
    ethnicity = decision = None
    if row.get("ethnicity"):
        try:
            ethnicity = parse_ethnicity(row.get("ethnicity"))
        except ValueError as exc:
            problems.append((row.line, str(exc), row.get("ethnicity")))
    if row.get("decision_no"):
        try:
            decision = parse_decision_no(row.get("decision_no"))
        except ValueError as exc:
            problems.append((row.line, str(exc), row.get("decision_no")))
    if len(problems) > before or unit is None or admitted is None or birth is None or sex is None:
        return None
    return AdmissionDraft(
        unit_id=unit.id,
        full_name=name,
        birth_year=birth,
        sex=sex,
        admitted_on=admitted,
        ethnicity=ethnicity,
        decision_no=decision,
    )


def _same_person_key(unit_id: int, full_name: str, birth_year: int, admitted_on: date) -> tuple[int, str, int, date]:
    return unit_id, name_key(full_name), birth_year, admitted_on


async def import_admissions(session: AsyncSession, data: str | bytes, today: date, now: datetime) -> ImportCounts:
    """Record earlier admissions from `unit_code,full_name,birth_year,gender,admitted_on[,ethnicity,decision_no]`.

    `today` (in the configured timezone) bounds the dates; `now` stamps the rows. A row matching a
    counted admission already stored (same unit, name without diacritics, birth year and date) is
    skipped, so importing a file twice does not count anyone twice.
    """
    table = read_table(data, ADMISSION_COLUMNS, ADMISSION_OPTIONAL)
    problems = list(table.problems)
    units = await _units_by_code(session, {row.get("unit_code") for row in table.rows})
    drafts: list[tuple[Unit, AdmissionDraft]] = []
    first_line: dict[tuple[int, str, int, date], int] = {}
    for row in table.rows:
        code = _required(row, "unit_code", problems)
        unit = units.get(code) if code else None
        if code and unit is None:
            problems.append((row.line, "unknown_unit", code))
        draft = _admission_draft(row, unit, today, problems)
        if unit is None or draft is None:
            continue
        key = _same_person_key(unit.id, draft.full_name, draft.birth_year, draft.admitted_on)
        if key in first_line:
            problems.append((row.line, "duplicate_row", str(first_line[key])))
            continue
        first_line[key] = row.line
        drafts.append((unit, draft))
    if problems:
        raise ImportProblems(problems)

    stored = {
        _same_person_key(a.unit_id, a.full_name, a.birth_year, a.admitted_on)
        for a in await session.scalars(
            select(Admission).where(
                Admission.unit_id.in_(sorted({unit.id for unit, _ in drafts})), Admission.withdrawn_at.is_(None)
            )
        )
    }
    created = skipped = 0
    for unit, draft in drafts:
        if _same_person_key(unit.id, draft.full_name, draft.birth_year, draft.admitted_on) in stored:
            skipped += 1
            continue
        session.add(imported_admission(unit, draft, now))
        created += 1
    await session.flush()
    return ImportCounts(total=len(drafts), created=created, skipped=skipped)
