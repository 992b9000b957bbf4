"""Loading units, targets and earlier admissions from CSV files (the command line's import-*).

All or nothing: every function raises ImportProblems listing every bad row, and then nothing of
the file is left written. Units and targets are validated whole before anything is written;
admissions are read, validated and inserted in chunks (a 200,000-row file never sits in memory as
objects) inside a savepoint that is rolled back when any row is bad. Functions take an open session
and never commit, so the caller's transaction decides. Line numbers are the file's own (the header
is line 1). Unit codes are case-insensitive: see models.units.normal_code.

Problem keys (the `key` of each problem) are catalog suffixes: `cli.problem.<key>`.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, insert, select, text, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models.calendar import TermStart
from models.entities import Admission, AdmissionSource, Target, Unit, UnitKind
from models.progress import Period
from models.units import (
    TreeError,
    UnitRow,
    load_units,
    normal_code,
    stored_tree,
    tree_problems,
)
from models.values import (
    clean_name,
    describe_character,
    forbidden_character,
    is_minority,
    is_visible,
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
CHUNK_ROWS = 2_000  # admissions validated, looked up and inserted together (bounded memory)
SQLITE_CACHE_KIB = 65_536

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
    return (text if text.isascii() else unicodedata.normalize("NFC", text)).strip()


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


class CsvStream:
    """A comma-separated file read row by row: the header is checked when the stream is made.

    Iterating yields the non-blank data rows (trimmed, NFC) with their file line numbers; rows with
    more values than the header go to `problems` instead. A file that is not UTF-8 or not CSV raises
    ImportProblems when the reading reaches the bad place.
    """

    def __init__(self, data: str | bytes, required: Sequence[str], optional: Sequence[str] = ()):
        self._data = data
        if isinstance(data, str):
            text: io.TextIOBase = io.StringIO(data.removeprefix("\ufeff"), newline="")
        else:  # decoded as it is read: the file's text never sits in memory whole
            text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
        self._reader = csv.reader(text)
        self._line = 1
        self.problems: list[Problem] = []
        for start, record in self._records():
            self.columns = tuple(_normal(cell) for cell in record)
            _check_header(list(self.columns), start, required, optional)
            return
        raise ImportProblems([(1, "no_header", ", ".join(required))])

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        reader = self._reader
        try:
            for record in reader:
                start, self._line = self._line, reader.line_num + 1
                if any(cell.strip() for cell in record):
                    yield start, record
        except UnicodeDecodeError:
            decode(self._data)  # raises ImportProblems naming the line
            raise
        except csv.Error as exc:
            raise ImportProblems([*self.problems, (reader.line_num, "bad_csv", str(exc))]) from None

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """Yield (line, values as read) of the data rows, shorter rows padded with "" (not yet trimmed)."""
        width = len(self.columns)
        for start, record in self._records():
            if len(record) > width:
                self.problems.append((start, "too_many_values", f"{len(record)}/{width}"))
            elif len(record) < width:
                yield start, record + [""] * (width - len(record))
            else:
                yield start, record

    def __iter__(self) -> Iterator[CsvRow]:
        header = self.columns
        for start, record in self.records():
            yield CsvRow(start, {name: _normal(cell) for name, cell in zip(header, record, strict=True)})


def read_table(data: str | bytes, required: Sequence[str], optional: Sequence[str] = ()) -> CsvTable:
    """Parse a comma-separated file with a header naming `required` and maybe some of `optional` columns.

    Blank lines are skipped and values trimmed. Header problems raise ImportProblems at once;
    rows with more values than the header are returned as problems.
    """
    stream = CsvStream(data, required, optional)
    rows = list(stream)
    return CsvTable(stream.columns, rows, stream.problems)


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


def _code_text(line: int, column: str, value: str, problems: list[Problem]) -> str | None:
    """Return the normalised code (models.units.normal_code), or None after adding the problem."""
    bad = forbidden_character(value)
    if bad is not None:
        problems.append((line, "invisible_character", f"{column}: {describe_character(bad)}"))
        return None
    code = normal_code(value)
    if len(code) > MAX_CODE_LENGTH or not _CODE_RE.match(code):
        problems.append((line, "bad_code", value))
        return None
    return code


def _code(row: CsvRow, column: str, problems: list[Problem]) -> str | None:
    value = _required(row, column, problems)
    return None if value is None else _code_text(row.line, column, value, problems)


def _text(line: int, column: str, value: str, problems: list[Problem]) -> str | None:
    """Return a name or village with spaces tidied, or None after adding the problem: empty, only
    invisible characters, a control or format character inside, or too long."""
    if not value:
        problems.append((line, "missing_value", column))
        return None
    if not is_visible(value):
        problems.append((line, "no_visible_text", column))
        return None
    bad = forbidden_character(value)
    if bad is not None:
        problems.append((line, "invisible_character", f"{column}: {describe_character(bad)}"))
        return None
    text = " ".join(value.split())
    if len(text) > MAX_UNIT_NAME_LENGTH:
        problems.append((line, "too_long", text[:40]))
        return None
    return text


# Units ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """Where a row puts a unit in the tree (known even when other values of the row are bad)."""

    line: int
    code: str
    parent_code: str | None
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
        name = _text(row.line, "name", row.get("name"), problems)
        parent = None
        if row.get("parent_code"):
            parent = _code_text(row.line, "parent_code", row.get("parent_code"), problems)
        kind = kinds.get(row.get("kind").lower())
        if kind is None:
            problems.append((row.line, "bad_kind", row.get("kind")))
        parts = [part.strip() for part in row.get("villages").split(";")]
        villages = tuple(dict.fromkeys(
            v for v in (_text(row.line, "villages", part, problems) for part in parts if part) if v
        ))
        if code is not None and (parent is not None or not row.get("parent_code")):
            places.append(_Place(row.line, code, parent, kind))
        if len(problems) == before and code is not None and kind is not None and name is not None:
            rows.append(UnitRow(row.line, code, name, parent, kind, villages))
    return rows, places, problems


async def import_units(session: AsyncSession, data: str | bytes) -> ImportCounts:
    """Create or update units by code from `code,name,parent_code,kind[,villages]`.

    Villages are separated by ";" (a combined cell has several); without a `villages` column the
    villages already stored are kept. A changed parent moves the unit with its admissions. The
    tree's rules (models.units.tree_problems) are checked with the other problems of each row.
    """
    table = read_table(data, UNIT_COLUMNS, UNIT_OPTIONAL)
    rows, places, problems = parse_units(table)
    existing = {u.code: u for u in await session.scalars(select(Unit).options(selectinload(Unit.villages)))}
    problems += tree_problems(places, stored_tree(existing.values()))
    if problems:
        raise ImportProblems(problems)
    if "villages" not in table.columns:
        rows = [_keep_villages(row, existing.get(row.code)) for row in rows]
    try:
        created, updated = await load_units(session, rows)
    except TreeError as exc:  # not expected: the same rules were checked above
        raise ImportProblems(exc.problems) from None
    return ImportCounts(total=len(rows), created=created, updated=updated)


def _keep_villages(row: UnitRow, unit: Unit | None) -> UnitRow:
    if unit is None:
        return row
    names = tuple(v.name for v in unit.villages)
    return UnitRow(row.line, row.code, row.name, row.parent_code, row.kind, names)


# Targets -------------------------------------------------------------------------------------


async def import_targets(session: AsyncSession, data: str | bytes, term_start: TermStart) -> ImportCounts:
    """Set targets from `unit_code,period,target`; the same unit and period again updates the value.

    A period is a year (`2026`), a term by its years (`2025-2030`, from `term_start`: five years) or
    a term by its exact days (`2025-07-01..2030-06-30`); a term is known by its years, so giving
    other days for the same years updates them.
    """
    table = read_table(data, TARGET_COLUMNS)
    problems = list(table.problems)
    units = await _units_by_code(session, {row.get("unit_code") for row in table.rows})
    parsed: dict[tuple[int, int, int], tuple[int, Period, int]] = {}
    for row in table.rows:
        code = _required(row, "unit_code", problems)
        unit = units.get(normal_code(code)) if code else None
        if code and unit is None:
            problems.append((row.line, "unknown_unit", code))
        period: Period | None = None
        text = _required(row, "period", problems)
        if text is not None:
            try:
                period = Period.parse(text, term_start)
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
        key = (unit.id, period.start_year, period.end_year)
        if key in parsed:
            problems.append((row.line, "duplicate_row", str(parsed[key][0])))
            continue
        parsed[key] = (row.line, period, number)
    if problems:
        raise ImportProblems(problems)

    stored = {
        (t.unit_id, t.start_year, t.end_year): t
        for t in await session.scalars(select(Target).where(Target.unit_id.in_(sorted({key[0] for key in parsed}))))
    }
    created = updated = 0
    for key, (_, period, number) in parsed.items():
        target = stored.get(key)
        if target is None:
            session.add(Target.of(key[0], period, number))
            created += 1
        else:
            target.value, target.starts_on, target.ends_on = number, period.first_day, period.last_day
            updated += 1
    await session.flush()
    return ImportCounts(total=len(parsed), created=created, updated=updated)


async def _units_by_code(session: AsyncSession, typed: Iterable[str]) -> dict[str, Unit]:
    """Return the units of these codes (as typed) by their normalised code."""
    codes = sorted({normal_code(code) for code in typed if code})
    found: dict[str, Unit] = {}
    for start in range(0, len(codes), CHUNK_ROWS):
        part = codes[start:start + CHUNK_ROWS]
        found.update((u.code, u) for u in await session.scalars(select(Unit).where(Unit.code.in_(part))))
    return found


# Admissions ----------------------------------------------------------------------------------


def _value_problem(parse: Any, text: str, *context: Any) -> tuple[Any, str | None]:
    """Return (parse(text, *context), None), or (None, the reason) when it raises ValueError."""
    try:
        return parse(text, *context), None
    except ValueError as exc:
        return None, str(exc)


def _cached(parse: Any, size: int) -> Any:
    """Return `parse` answering each distinct input once per process (outcome and reason alike).

    History repeats dates, years and spellings of sex: most rows are parsed by a dictionary look-up."""
    return functools.lru_cache(maxsize=size)(functools.partial(_value_problem, parse))


_parse_date = _cached(parse_date, 65_536)
_parse_birth_year = _cached(parse_birth_year, 65_536)
_parse_sex = _cached(parse_sex, 1_024)
_parse_ethnicity = _cached(parse_ethnicity, 4_096)
_parse_decision = _cached(parse_decision_no, 65_536)


def _admission_row(line: int, unit: tuple[int, str, bool] | None, cells: Sequence[str], today: date,
                   now: datetime, problems: list[Problem]) -> dict[str, Any] | None:
    """Return the admission table's row of one file row (unit_code, full_name, birth_year, gender,
    admitted_on, ethnicity, decision_no — trimmed, NFC), or None after adding its problems."""
    _, raw_name, birth_text, sex_text, date_text, ethnicity_text, decision_text = cells
    before = len(problems)
    name = None
    try:
        name = clean_name(raw_name)
    except ValueError as exc:
        problems.append((line, f"name_{exc}", raw_name))
    admitted = None
    if not date_text:
        problems.append((line, "missing_value", "admitted_on"))
    else:
        admitted, reason = _parse_date(date_text, today)
        if reason:
            problems.append((line, reason, date_text))
    birth = None
    if not birth_text:
        problems.append((line, "missing_value", "birth_year"))
    elif admitted is None:
        if not _YEAR_RE.match(birth_text):
            problems.append((line, "not_year", birth_text))
    else:
        # Old history must validate as of its own date, not today (only the year counts).
        birth, reason = _parse_birth_year(birth_text, date(admitted.year, 1, 1))
        if reason:
            problems.append((line, reason, birth_text))
    sex = None
    if not sex_text:
        problems.append((line, "missing_value", "gender"))
    else:
        sex, reason = _parse_sex(sex_text)
        if reason:
            problems.append((line, reason, sex_text))
    ethnicity = decision = None
    if ethnicity_text:
        ethnicity, reason = _parse_ethnicity(ethnicity_text)
        if reason:
            problems.append((line, reason, ethnicity_text))
    if decision_text:
        decision, reason = _parse_decision(decision_text)
        if reason:
            problems.append((line, reason, decision_text))
    if len(problems) > before or unit is None:
        return None
    return {
        "unit_id": unit[0],
        "unit_path": unit[1],
        "full_name": name,
        "name_key": name_key(name),  # type: ignore[arg-type]
        "birth_year": birth,
        "sex": sex,
        "ethnicity": ethnicity,
        "minority": is_minority(ethnicity),
        "decision_no": decision,
        "admitted_on": admitted,
        "source": AdmissionSource.IMPORT,
        "reported_at": now,
    }  # youth_union, reported_by_id, report_ref, withdrawn_at, withdrawn_by_id: NULL (no column default)


def _same_person_key(unit_id: int, key: str, birth_year: int, admitted_on: date) -> str:
    """Return the skip-duplicates key (same unit, name without diacritics, birth year and date) as one
    compact string: one per row of the file is kept while reading it."""
    return f"{unit_id}\x1f{key}\x1f{birth_year}\x1f{admitted_on.isoformat()}"


async def _stored_keys(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Return the skip-duplicates keys of counted admissions already stored that match these rows:
    one query per chunk through ix_admission_name_key. The unit is compared as `unit_id + 0` so that
    SQLite (without statistics) does not read every admission of the chunk's units through
    ix_admission_unit_id instead — 50 times slower on a re-import.
    Dates are read as the ISO text both databases give for them, without making date objects."""
    names = sorted({row["name_key"] for row in rows})
    units = sorted({row["unit_id"] for row in rows})
    query = (
        select(Admission.unit_id, Admission.name_key, Admission.birth_year,
               type_coerce(Admission.admitted_on, String))
        .where(Admission.name_key.in_(names), (Admission.unit_id + 0).in_(units), Admission.withdrawn_at.is_(None))
    )
    found = await (await session.connection()).execute(query)
    return {f"{unit_id}\x1f{key}\x1f{year}\x1f{day}" for unit_id, key, year, day in found}


async def _unit_places(session: AsyncSession, codes: set[str]) -> dict[str, tuple[int, str, bool] | None]:
    """Return normalised code -> (id, path, has counted admissions) of these codes; None for a code
    no unit has. Called before any row of these units is inserted, so "has counted admissions"
    says whether the skip-duplicates rule needs to look at all."""
    places: dict[str, tuple[int, str, bool] | None] = dict.fromkeys(codes)
    ordered = sorted(codes)
    for start in range(0, len(ordered), CHUNK_ROWS):
        part = ordered[start:start + CHUNK_ROWS]
        counted = (
            select(Admission.id)
            .where(Admission.unit_id == Unit.id, Admission.withdrawn_at.is_(None))
            .exists()
        )
        query = select(Unit.code, Unit.id, Unit.path, counted).where(Unit.code.in_(part))
        for code, unit_id, path, history in await (await session.connection()).execute(query):
            places[code] = (unit_id, path, bool(history))
    return places


async def import_admissions(session: AsyncSession, data: str | bytes, today: date, now: datetime) -> ImportCounts:
    """Record earlier admissions from `unit_code,full_name,birth_year,gender,admitted_on[,ethnicity,decision_no]`.

    `today` (in the configured timezone) bounds the dates; `now` stamps the rows. A row matching a
    counted admission already stored (same unit, name without diacritics, birth year and date) is
    skipped, so importing a file twice does not count anyone twice; the same person twice in the
    file is a problem.

    The file is read in chunks of CHUNK_ROWS: each chunk's unit codes and already-stored
    admissions are looked up in one query each, and its new rows inserted with one executemany
    (Core insert) — inside a savepoint, so a bad row anywhere rolls all of them back. After the
    first bad row nothing more is inserted, but every row is still checked and reported.
    """
    stream = CsvStream(data, ADMISSION_COLUMNS, ADMISSION_OPTIONAL)
    connection = await session.connection()
    cache_size = None
    if connection.dialect.name == "sqlite":
        # The admission table has seven indexes; with SQLite's default 2 MiB page cache most
        # inserted rows read index pages back from the OS. 64 MiB for this import, then as before.
        cache_size = (await connection.execute(text("PRAGMA cache_size"))).scalar()
        await connection.execute(text(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}"))
    try:
        return await _import_admissions(session, stream, today, now)
    finally:
        if cache_size is not None:
            with contextlib.suppress(DBAPIError):  # never hide what went wrong in the import
                await connection.execute(text(f"PRAGMA cache_size = {int(cache_size)}"))


async def _import_admissions(session: AsyncSession, stream: CsvStream, today: date, now: datetime) -> ImportCounts:
    problems = stream.problems  # rows with too many values land here as they are read
    places: dict[str, tuple[int, str, bool] | None] = {}
    first_line: dict[str, int] = {}
    total = created = skipped = 0
    statement = insert(Admission.__table__)  # Core: no ORM object per row
    order = [stream.columns.index(name) if name in stream.columns else None
             for name in (*ADMISSION_COLUMNS, *ADMISSION_OPTIONAL)]
    normalize = unicodedata.normalize
    codes: dict[str, str] = {}  # as typed -> normal_code
    async with session.begin_nested():
        records = stream.records()
        while chunk := list(itertools.islice(records, CHUNK_ROWS)):
            for _, cells in chunk:  # the columns in ADMISSION_COLUMNS order, trimmed and NFC, in place
                cells[:] = [(cells[i] if cells[i].isascii() else normalize("NFC", cells[i])).strip()
                            if i is not None else "" for i in order]
                if cells[0] and cells[0] not in codes:
                    codes[cells[0]] = normal_code(cells[0])
            wanted = {codes[cells[0]] for _, cells in chunk if cells[0]}
            if unknown := wanted - places.keys():
                places.update(await _unit_places(session, unknown))
            ready: list[tuple[str, dict[str, Any], bool]] = []
            for line, cells in chunk:
                typed = cells[0]
                place = places[codes[typed]] if typed else None
                if not typed:
                    problems.append((line, "missing_value", "unit_code"))
                elif place is None:
                    problems.append((line, "unknown_unit", typed))
                values = _admission_row(line, place, cells, today, now, problems)
                if values is None or place is None:
                    continue
                key = _same_person_key(place[0], values["name_key"], values["birth_year"], values["admitted_on"])
                if key in first_line:
                    problems.append((line, "duplicate_row", str(first_line[key])))
                    continue
                first_line[key] = line
                total += 1
                if not problems:
                    ready.append((key, values, place[2]))
            if problems or not ready:
                continue  # nothing more is written; the rest is only checked
            known = [values for _, values, history in ready if history]
            stored = await _stored_keys(session, known) if known else set()
            new = [values for key, values, _ in ready if key not in stored]
            skipped += len(ready) - len(new)
            if new:
                await session.execute(statement, new)
                created += len(new)
        if problems:
            raise ImportProblems(problems)  # leaves the savepoint: its inserts are rolled back
    return ImportCounts(total=total, created=created, skipped=skipped)
