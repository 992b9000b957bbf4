"""Loading units, targets and earlier admissions from CSV files (the command line's import-*).

All or nothing: every function raises ImportProblems listing every bad row, and then nothing of
the file is left written. Everything is validated whole before anything is written; admissions
are read and checked before the first statement of the transaction (see import_admissions), then
inserted with the driver's executemany, no ORM objects. Functions take an open session
and never commit, so the caller's transaction decides. Line numbers are the file's own (the header
is line 1). Unit codes are case-insensitive: see models.units.normal_code.

Problem keys (the `key` of each problem) are catalog suffixes: `cli.problem.<key>`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, select, text, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models.calendar import TermStart
from models.entities import Admission, AdmissionSource, Target, Unit, UnitKind
from models.progress import Period
from models.revision import note_domain_write
from models.units import (
    TreeError,
    UnitRow,
    load_units,
    normal_code,
    stored_tree,
    tree_problems,
)
from models.values import (
    MAX_AGE,
    MIN_AGE,
    clean_name,
    describe_character,
    fold,
    forbidden_character,
    is_minority,
    is_visible,
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
        reader, problems = self._reader, self.problems
        line = self._line
        try:  # _records() inlined: this loop is most of the time a large import takes to read
            for record in reader:
                start, line = line, reader.line_num + 1
                if not ((record and record[0].strip()) or any(cell.strip() for cell in record)):
                    continue  # a blank line (a first cell with something in it is the common case)
                if len(record) == width:
                    yield start, record
                elif len(record) > width:
                    problems.append((start, "too_many_values", f"{len(record)}/{width}"))
                else:
                    yield start, record + [""] * (width - len(record))
        except UnicodeDecodeError:
            decode(self._data)  # raises ImportProblems naming the line
            raise
        except csv.Error as exc:
            raise ImportProblems([*problems, (reader.line_num, "bad_csv", str(exc))]) from None
        finally:
            self._line = line

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

# A row ready to insert, less its unit: (key, full_name, sex, ethnicity, minority, decision_no,
# admitted_on), values already in the database driver's form; key = (code, name_key, birth_year,
# ISO date), the skip-duplicates key (same unit, name without diacritics, birth year and date).
_Key = tuple[str, str, int, str]
_Row = tuple[_Key, str, Any, str | None, Any, str | None, Any]
# The columns given, in this order; unit_id and unit_path come first, source and reported_at last.
# youth_union, reported_by_id, report_ref, withdrawn_at, withdrawn_by_id: NULL (no column default).
_INSERT_COLUMNS = ("unit_id", "unit_path", "full_name", "name_key", "birth_year", "sex", "ethnicity",
                   "minority", "decision_no", "admitted_on", "source", "reported_at")
INSERT_ROWS = 20_000  # rows per executemany (bounded size of each batch of parameters)
HISTORY_UNITS = 200  # units whose stored admissions one query reads for the skip rule


@dataclass
class _ParsedAdmissions:
    """A whole admissions file read and checked without the database: what is left is which units
    exist (and which rows are already stored)."""

    rows: list[_Row]  # the valid rows in file order (collected only while no row is bad)
    problems: list[Problem]  # the file's own problems, by line, in the order of the columns
    duplicates: list[tuple[int, str, int]]  # (line, code, first line): the same person again
    codes: dict[str, str]  # unit code as typed -> normal_code
    first_line: dict[_Key, int]


class _DriverValues:
    """Python values to what the database driver is given, per column (the columns' own bind
    processors, each distinct value converted once)."""

    def __init__(self, dialect: Any):
        self._dialect = dialect
        self._processors: dict[str, Any] = {}

    def __call__(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column not in self._processors:
            kind = Admission.__table__.c[column].type
            self._processors[column] = kind.dialect_impl(self._dialect).bind_processor(self._dialect)
        process = self._processors[column]
        return value if process is None else process(value)


def _problem(parse: Any, text: str, *context: Any) -> tuple[Any, tuple[str, str] | None]:
    """Return (parse(text, *context), None), or (None, (the reason, text)) when it raises ValueError."""
    try:
        return parse(text, *context), None
    except ValueError as exc:
        return None, (str(exc), text)


def _name_key(name: str, words: dict[str, str]) -> str:
    """Return models.values.name_key(name) of a clean name (clean_name), a word at a time through
    `words`: folding is per character and a word never loses all its letters, so this is the same."""
    keys = []
    for word in name.split(" "):
        key = words.get(word)
        if key is None:
            key = words[word] = fold(word)
        keys.append(key)
    return " ".join(keys)


def _parse_admissions(stream: CsvStream, today: date, db: _DriverValues) -> _ParsedAdmissions:
    """Read and check every row of the file (no database needed).

    Each distinct cell text (dates, years, spellings of sex, ethnicities, decision numbers, names)
    is checked once: history repeats them, so most cells are a dictionary look-up."""
    problems = stream.problems  # rows with too many values land here as they are read
    add = problems.append
    parsed = _ParsedAdmissions([], problems, [], {}, {})
    rows, duplicates, codes, first_line = parsed.rows, parsed.duplicates, parsed.codes, parsed.first_line
    columns = stream.columns
    at = [columns.index(name) if name in columns else None for name in (*ADMISSION_COLUMNS, *ADMISSION_OPTIONAL)]
    i_code, i_name, i_birth, i_sex, i_date, i_ethnicity, i_decision = at
    units: dict[str, str | None] = {}  # cell -> normal code (None: empty)
    names: dict[str, tuple[str | None, str | None, tuple[str, str] | None]] = {}
    days: dict[str, tuple[date | None, str | None, Any, tuple[str, str] | None]] = {}
    years: dict[tuple[str, int | None], tuple[int | None, tuple[str, str] | None]] = {}
    sexes: dict[str, tuple[Any, tuple[str, str] | None]] = {}
    ethnicities: dict[str, tuple[str | None, Any, tuple[str, str] | None]] = {"": (None, db("minority", False), None)}
    decisions: dict[str, tuple[str | None, tuple[str, str] | None]] = {"": (None, None)}
    words: dict[str, str] = {}  # name_key of each word of the names (the names share a few words)
    missing = {column: ("missing_value", column) for column in ADMISSION_COLUMNS}
    collect = True  # rows are kept only while no row is bad: after that nothing will be written

    for line, cells in stream.records():
        before = len(problems)
        raw = cells[i_code]
        if (unit := units.get(raw, False)) is False:
            typed = _normal(raw)
            unit = units[raw] = None if not typed else codes.setdefault(typed, normal_code(typed))
        if unit is None:
            add((line, "missing_value", "unit_code"))

        raw = cells[i_name]
        if (name_entry := names.get(raw)) is None:
            text = _normal(raw)
            name, problem = _problem(clean_name, text)
            if name == raw:
                name = raw  # one string for the look-up and the row, not two
            problem = (f"name_{problem[0]}", text) if problem else None
            name_entry = names[raw] = (name, None if name is None else _name_key(name, words), problem)
        full_name, key_name, problem = name_entry
        if problem:
            add((line, *problem))

        raw = cells[i_date]
        if (day_entry := days.get(raw)) is None:
            text = _normal(raw)
            if not text:
                day, problem = None, missing["admitted_on"]
            else:
                day, problem = _problem(parse_date, text, today)
            day_entry = days[raw] = (day, None if day is None else day.isoformat(), db("admitted_on", day), problem)
        day, iso, admitted, problem = day_entry
        if problem:
            add((line, *problem))

        raw = cells[i_birth]
        # The common case without a look-up: four digits, 18 to 90 years old in the year of the
        # decision (old history validates as of its own date, not today: only the year counts).
        if day is not None and len(raw) == 4 and raw.isdigit() and raw.isascii() \
                and day.year - MAX_AGE <= (birth := int(raw)) <= day.year - MIN_AGE:
            pass
        else:
            year_key = (raw, None if day is None else day.year)
            if (year_entry := years.get(year_key)) is None:
                text = _normal(raw)
                if not text:
                    year_entry = (None, missing["birth_year"])
                elif day is None:  # only the form can be checked without the date
                    year_entry = (None, None if _YEAR_RE.match(text) else ("not_year", text))
                else:
                    year_entry = _problem(parse_birth_year, text, date(day.year, 1, 1))
                years[year_key] = year_entry
            birth, problem = year_entry  # type: ignore[assignment]
            if problem:
                add((line, *problem))

        raw = cells[i_sex]
        if (sex_entry := sexes.get(raw)) is None:
            text = _normal(raw)
            sex, problem = (None, missing["gender"]) if not text else _problem(parse_sex, text)
            sex_entry = sexes[raw] = (db("sex", sex), problem)
        sex, problem = sex_entry
        if problem:
            add((line, *problem))

        raw = cells[i_ethnicity] if i_ethnicity is not None else ""
        if (ethnicity_entry := ethnicities.get(raw)) is None:
            text = _normal(raw)
            ethnicity, problem = _problem(parse_ethnicity, text) if text else (None, None)
            ethnicity_entry = ethnicities[raw] = (ethnicity, db("minority", is_minority(ethnicity)), problem)
        ethnicity, minority, problem = ethnicity_entry
        if problem:
            add((line, *problem))

        raw = cells[i_decision] if i_decision is not None else ""
        if (decision_entry := decisions.get(raw)) is None:
            text = _normal(raw)
            decision_entry = decisions[raw] = _problem(parse_decision_no, text) if text else (None, None)
        decision, problem = decision_entry
        if problem:
            add((line, *problem))

        if len(problems) > before:
            collect = False
            continue
        if unit is None:
            continue
        key = (unit, key_name, birth, iso)
        if (first := first_line.setdefault(key, line)) != line:  # type: ignore[arg-type]
            duplicates.append((line, unit, first))
            collect = False
        elif collect:
            rows.append((key, full_name, sex, ethnicity, minority, decision, admitted))  # type: ignore[arg-type]
    if problems:
        rows.clear()
    return parsed


async def _unit_places(session: AsyncSession, codes: Iterable[str]) -> dict[str, tuple[int, str, bool]]:
    """Return normalised code -> (id, path, has counted admissions) of the units of these codes
    (a code no unit has is left out). Called before any row is inserted, so "has counted
    admissions" says whether the skip-duplicates rule needs to look at all."""
    places: dict[str, tuple[int, str, bool]] = {}
    ordered = sorted(set(codes))
    connection = await session.connection()
    counted = (
        select(Admission.id)
        .where(Admission.unit_id == Unit.id, Admission.withdrawn_at.is_(None))
        .exists()
    )
    for start in range(0, len(ordered), CHUNK_ROWS):
        query = select(Unit.code, Unit.id, Unit.path, counted).where(Unit.code.in_(ordered[start:start + CHUNK_ROWS]))
        for code, unit_id, path, history in await connection.execute(query):
            places[code] = (unit_id, path, bool(history))
    return places


async def _stored_keys(session: AsyncSession, places: dict[str, tuple[int, str, bool]],
                       first_line: dict[_Key, int]) -> set[_Key]:
    """Return the keys of the file's rows that match a counted admission already stored.

    Reads the counted admissions of the units that have any (one query per HISTORY_UNITS units,
    so that no result is very large): work in proportion to those units' history, not one look-up
    per row of the file. Dates are read as the ISO text both databases give for them (str of a
    date is its ISO form)."""
    code_of = {unit_id: code for code, (unit_id, _, history) in places.items() if history}
    ids = sorted(code_of)
    connection = await session.connection()
    found: set[_Key] = set()
    for start in range(0, len(ids), HISTORY_UNITS):
        query = (
            select(Admission.unit_id, Admission.name_key, Admission.birth_year,
                   type_coerce(Admission.admitted_on, String))
            .where(Admission.unit_id.in_(ids[start:start + HISTORY_UNITS]), Admission.withdrawn_at.is_(None))
        )
        for unit_id, key, year, day in await connection.execute(query):
            stored = (code_of[unit_id], key, year, str(day))
            if stored in first_line:
                found.add(stored)
    return found


def _unknown_units(data: str | bytes, codes: dict[str, str], places: dict[str, Any]) -> list[Problem]:
    """Return the problems of the rows whose unit code no unit has, read again from the file: the
    lines of every code are not kept while reading it the first time, for the sake of memory."""
    if all(code in places for code in codes.values()):
        return []
    stream = CsvStream(data, ADMISSION_COLUMNS, ADMISSION_OPTIONAL)
    at = stream.columns.index("unit_code")
    problems = []
    for line, cells in stream.records():
        typed = _normal(cells[at])
        if typed and codes[typed] not in places:
            problems.append((line, "unknown_unit", typed))
    return problems


REBUILD_MIN_ROWS = 10_000  # SQLite: from this many new rows (and no fewer than stored), indexes are rebuilt


async def _drop_indexes(connection: Any, new: int) -> list[str]:
    """SQLite: drop the admission table's own indexes when `new` rows are about to go in and the
    table holds no more than that; return the statements that make them again (as stored).

    Sorting every row once per index (CREATE INDEX) is several times cheaper than placing each new
    row in seven B-trees one by one, as long as the rows already there are not many more than
    the new ones. All of it happens in the import's transaction (SQLite's DDL is transactional):
    readers keep seeing the table with its indexes, and a failure leaves them as they were.
    The unique constraint's own index (report_ref) cannot be dropped and stays."""
    if new < REBUILD_MIN_ROWS:
        return []
    stored = (await connection.exec_driver_sql(f"SELECT count(*) FROM {Admission.__tablename__}")).scalar_one()
    if stored > new:
        return []
    found = await connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name",
        (Admission.__tablename__,))
    indexes = list(found)
    quote = connection.dialect.identifier_preparer.quote
    for name, _ in indexes:
        await connection.exec_driver_sql(f"DROP INDEX {quote(name)}")
    return [statement for _, statement in indexes]


async def import_admissions(session: AsyncSession, data: str | bytes, today: date, now: datetime) -> ImportCounts:
    """Record earlier admissions from `unit_code,full_name,birth_year,gender,admitted_on[,ethnicity,decision_no]`.

    `today` (in the configured timezone) bounds the dates; `now` stamps the rows. A row matching a
    counted admission already stored (same unit, name without diacritics, birth year and date) is
    skipped, so importing a file twice does not count anyone twice; the same person twice in the
    file is a problem.

    The whole file is read and checked first, without touching the database (on SQLite the
    command line's transaction takes the write lock only at its first statement, so a long file
    keeps nobody waiting while it is parsed). Then, in the transaction: the unit codes are looked
    up, every problem (the file's own, unknown units, duplicates) is raised at once before
    anything is written, the history of the units that have any is read for the skip rule, and
    the new rows go in with the driver's executemany in batches of INSERT_ROWS, inside a savepoint
    (a database error half-way leaves nothing of the file). No ORM object is made. On SQLite a
    large import into a table no larger than it drops the table's indexes and makes them again
    after the inserts (_drop_indexes). A file with bad rows holds the write lock only for the
    unit look-up (one query per CHUNK_ROWS codes) before its problems are raised.
    """
    stream = CsvStream(data, ADMISSION_COLUMNS, ADMISSION_OPTIONAL)
    dialect = session.get_bind(Admission).dialect
    db = _DriverValues(dialect)
    parsed = _parse_admissions(stream, today, db)

    connection = await session.connection()  # from here on the transaction (SQLite: the write lock)
    places = await _unit_places(session, parsed.codes.values())
    unknown = _unknown_units(data, parsed.codes, places)
    duplicates = [(line, "duplicate_row", str(first)) for line, code, first in parsed.duplicates if code in places]
    if unknown or parsed.problems or duplicates:
        # A row's unit problem comes first among its problems, its duplicate last (a stable sort).
        raise ImportProblems([*unknown, *parsed.problems, *duplicates])

    stored = await _stored_keys(session, places, parsed.first_line) if any(p[2] for p in places.values()) else set()
    parsed.first_line.clear()  # memory back before inserting
    source, reported_at = db("source", AdmissionSource.IMPORT), db("reported_at", now)
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO {Admission.__tablename__} ({', '.join(_INSERT_COLUMNS)}) "
           f"VALUES ({', '.join([marker] * len(_INSERT_COLUMNS))})")
    cache_size = None
    if dialect.name == "sqlite":
        # The admission table has seven indexes; with SQLite's default 2 MiB page cache most
        # inserted rows read index pages back from the OS. 64 MiB for this import, then as before.
        cache_size = (await connection.execute(text("PRAGMA cache_size"))).scalar()
        await connection.execute(text(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}"))
    created = 0
    try:
        async with session.begin_nested():
            connection = await session.connection()  # emits the SAVEPOINT (lazily made otherwise)
            new = len(parsed.rows) - len(stored)
            rebuilt = await _drop_indexes(connection, new) if dialect.name == "sqlite" else []
            rows = parsed.rows
            for start in range(0, len(rows), INSERT_ROWS):
                batch = [
                    (place[0], place[1], full_name, key[1], key[2], sex, ethnicity, minority, decision, admitted,
                     source, reported_at)
                    for key, full_name, sex, ethnicity, minority, decision, admitted in rows[start:start + INSERT_ROWS]
                    if not ((place := places[key[0]])[2] and key in stored)
                ]
                if batch:
                    await connection.exec_driver_sql(sql, batch)
                    created += len(batch)
            for statement in rebuilt:
                await connection.exec_driver_sql(statement)
            if created:
                note_domain_write(session.sync_session)  # the driver's executemany is no ORM execute
    finally:
        if cache_size is not None:
            with contextlib.suppress(DBAPIError):  # never hide what went wrong in the import
                await connection.execute(text(f"PRAGMA cache_size = {int(cache_size)}"))
    return ImportCounts(total=len(parsed.rows), created=created, skipped=len(parsed.rows) - created)
