"""Importing earlier admissions in bulk: the file checked whole, then executemany inserts (SQLite: index rebuild)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, select, text, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from models.admissions import folded_person_key
from models.entities import Admission, AdmissionSource, Unit
from models.importing.csvfile import (
    CHUNK_ROWS,
    OUTSIDE,
    CsvStream,
    ImportCounts,
    ImportPlan,
    Problem,
    _normal,
    inside,
)
from models.revision import note_domain_write
from models.units import normal_code
from models.values import (
    MAX_AGE,
    MIN_AGE,
    clean_name,
    fold,
    is_minority,
    parse_birth_year,
    parse_date,
    parse_decision_no,
    parse_ethnicity,
    parse_sex,
)

ADMISSION_COLUMNS = ("unit_code", "full_name", "birth_year", "gender", "admitted_on")
ADMISSION_OPTIONAL = ("ethnicity", "decision_no")
ADMISSION_LATER = ("ceremony_on", "recognized_on")  # read by models.importing.admission_dates
_YEAR_RE = re.compile(r"^\d{4}$")
SQLITE_CACHE_KIB = 65_536

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
    total: int = 0  # data rows read (the bad ones too)


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


def _parse_admissions(stream: CsvStream, today: date, db: _DriverValues, keep_rows: bool = False) -> _ParsedAdmissions:
    """Read and check every row of the file (no database needed); with `keep_rows` the good rows are
    kept even when some are bad (a preview counts them; an import drops them for memory's sake).

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

    read = 0
    for line, cells in stream.records():
        read += 1
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
            collect = keep_rows
            continue
        if unit is None:
            continue
        key = (unit, key_name, birth, iso)
        if (first := first_line.setdefault(key, line)) != line:  # type: ignore[arg-type]
            duplicates.append((line, unit, first))
            collect = keep_rows
        elif collect:
            rows.append((key, full_name, sex, ethnicity, minority, decision, admitted))  # type: ignore[arg-type]
    parsed.total = read + sum(1 for problem in problems if problem[1] == "too_many_values")
    if problems and not keep_rows:
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
                       first_line: dict[_Key, int], db: _DriverValues) -> set[_Key]:
    """Return the keys of the file's rows that match a counted admission already stored.

    Reads the counted admissions of the units that have any (one query per HISTORY_UNITS units,
    so that no result is very large): work in proportion to those units' history, not one look-up
    per row of the file. Dates are read as the ISO text both databases give for them (str of a
    date is its ISO form)."""
    code_of = {unit_id: code for code, (unit_id, _, history) in places.items() if history}
    # The database holds HMACs of the person keys (models.base.NameKey): compare the file's the same way.
    hashed = {(code, db("name_key", folded_person_key(name, year)), year, day): (code, name, year, day)
              for code, name, year, day in first_line if places.get(code, (0, "", False))[2]}
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
            match = hashed.get((code_of[unit_id], key, year, str(day)))
            if match is not None:
                found.add(match)
    return found


def _unknown_units(data: str | bytes, codes: dict[str, str], places: dict[str, Any],
                   key: str = "unknown_unit") -> list[Problem]:
    """Return the problems of the rows whose unit code no unit has, read again from the file: the
    lines of every code are not kept while reading it the first time, for the sake of memory."""
    if all(code in places for code in codes.values()):
        return []
    stream = CsvStream(data, ADMISSION_COLUMNS, (*ADMISSION_OPTIONAL, *ADMISSION_LATER))
    at = stream.columns.index("unit_code")
    problems = []
    for line, cells in stream.records():
        typed = _normal(cells[at])
        if typed and codes[typed] not in places:
            problems.append((line, key, typed))
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


async def plan_admissions(session: AsyncSession, data: str | bytes, today: date, now: datetime,
                          within: Sequence[str] | None = None, *, keep_rows: bool = False) -> ImportPlan:
    """Check earlier admissions `unit_code,full_name,birth_year,gender,admitted_on[,ethnicity,decision_no]`
    and count what recording them would do.

    `today` (in the configured timezone) bounds the dates; `now` stamps the rows. A row matching a
    counted admission already stored (same unit, name without diacritics, birth year and date) is
    left as is (skipped), so importing a file twice does not count anyone twice; the same person
    twice in the file is a problem. With `within` (an admin's subtree paths) a unit outside them is
    a bad row, told the same way as a code no unit has. `keep_rows` counts the good rows of a file
    that has bad ones too (a preview; the command line's import stops at the first bad row's
    problems without keeping rows in memory).

    The whole file is read and checked first, without touching the database (on SQLite the
    command line's transaction takes the write lock only at its first statement, so a long file
    keeps nobody waiting while it is parsed). Then, in the transaction: the unit codes are looked
    up, every problem (the file's own, unknown units, duplicates) is found before anything is
    written, the history of the units that have any is read for the skip rule; `apply` inserts the
    new rows with the driver's executemany in batches of INSERT_ROWS, inside a savepoint (a
    database error half-way leaves nothing of the file). No ORM object is made. On SQLite a large
    import into a table no larger than it drops the table's indexes and makes them again after
    the inserts (_drop_indexes). A file with bad rows holds the write lock only for the unit
    look-up (one query per CHUNK_ROWS codes) before its problems are raised.
    """
    stream = CsvStream(data, ADMISSION_COLUMNS, (*ADMISSION_OPTIONAL, *ADMISSION_LATER))
    dialect = session.get_bind(Admission).dialect
    db = _DriverValues(dialect)
    parsed = _parse_admissions(stream, today, db, keep_rows)

    await session.connection()  # from here on the transaction (SQLite: the write lock)
    places = await _unit_places(session, parsed.codes.values())
    if within is not None:
        places = {code: place for code, place in places.items() if inside(place[1], within)}
    unknown = _unknown_units(data, parsed.codes, places, "unknown_unit" if within is None else OUTSIDE)
    duplicates = [(line, "duplicate_row", str(first)) for line, code, first in parsed.duplicates if code in places]
    # A row's unit problem comes first among its problems, its duplicate last (a stable sort).
    problems = [*unknown, *parsed.problems, *duplicates]
    rows = [row for row in parsed.rows if row[0][0] in places]
    stored: set[_Key] = set()
    if rows and any(p[2] for p in places.values()):
        stored = await _stored_keys(session, places, parsed.first_line, db)
    unchanged = sum(1 for row in rows if row[0] in stored)

    async def write() -> ImportCounts:
        parsed.first_line.clear()  # memory back before inserting
        created = await _insert(session, dialect, db, rows, places, stored, now)
        return ImportCounts(total=len(rows), created=created, skipped=len(rows) - created)

    return ImportPlan("admissions", parsed.total, len(rows) - unchanged, 0, unchanged, problems,
                      set(parsed.codes.values()), write)


async def import_admissions(session: AsyncSession, data: str | bytes, today: date, now: datetime) -> ImportCounts:
    """Record earlier admissions from `unit_code,full_name,birth_year,gender,admitted_on[,ethnicity,decision_no]`
    in one go (see plan_admissions); a file with any bad row raises ImportProblems and writes nothing."""
    return await (await plan_admissions(session, data, today, now)).apply()


def _markers(paramstyle: str, count: int) -> list[str]:
    """Return the driver's positional parameter markers (sqlite3 "?", psycopg "%s", asyncpg "$1")."""
    if paramstyle == "qmark":
        return ["?"] * count
    if paramstyle.startswith("numeric"):
        return [f"${i}" if paramstyle == "numeric_dollar" else f":{i}" for i in range(1, count + 1)]
    return ["%s"] * count


async def _insert(session: AsyncSession, dialect: Any, db: _DriverValues, rows: list[_Row],
                  places: dict[str, tuple[int, str, bool]], stored: set[_Key], now: datetime) -> int:
    """Insert the rows not already stored; return how many went in."""
    connection = await session.connection()
    source, reported_at = db("source", AdmissionSource.IMPORT), db("reported_at", now)
    sql = (f"INSERT INTO {Admission.__tablename__} ({', '.join(_INSERT_COLUMNS)}) "
           f"VALUES ({', '.join(_markers(dialect.paramstyle, len(_INSERT_COLUMNS)))})")
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
            new = len(rows) - len(stored)
            rebuilt = await _drop_indexes(connection, new) if dialect.name == "sqlite" else []
            for start in range(0, len(rows), INSERT_ROWS):
                # Names and ethnicities sealed row by row (a fresh nonce each), name keys as HMACs.
                batch = [
                    (place[0], place[1], db("full_name", full_name), db("name_key", folded_person_key(key[1], key[2])),
                     key[2], sex, db("ethnicity", ethnicity), minority, decision, admitted, source, reported_at)
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
    return created
