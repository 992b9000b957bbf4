"""The imports' CSV files: reading them row by row, their problems and counts, the shared field checks."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from models.units import normal_code
from models.values import describe_character, forbidden_character, is_visible

MAX_CODE_LENGTH = 64
MAX_UNIT_NAME_LENGTH = 200
_CODE_RE = re.compile(r"^\w[\w.\-/]*$")
CHUNK_ROWS = 2_000  # admissions validated, looked up and inserted together (bounded memory)

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


OUTSIDE = "outside_scope"  # the problem of a row outside the importing admin's subtree (or no such unit)


def inside(path: str, within: Sequence[str] | None) -> bool:
    """Tell whether a unit's path lies in one of the subtrees `within` (None: everywhere, the CLI)."""
    return within is None or any(path.startswith(top) for top in within)


@dataclass
class ImportPlan:
    """What an import would do, computed without writing: the one step the preview and the import share.

    `total` is the data rows read; `created`, `changed` and `unchanged` count the good rows (a file
    with problems is not imported at all: `apply` raises ImportProblems). `codes` are the unit codes
    the rows name (where the import's audit entry is filed). `apply` writes it in the caller's
    transaction and returns what was done."""

    kind: str
    total: int
    created: int
    changed: int
    unchanged: int
    problems: list[Problem]
    codes: set[str] = field(default_factory=set)
    write: Callable[[], Awaitable[ImportCounts]] | None = None

    def __post_init__(self) -> None:
        self.problems = sorted(self.problems, key=lambda p: p[0])

    @property
    def counts(self) -> tuple[int, int, int, int]:
        """Return (total, created, changed, unchanged): what a confirmation must still find true."""
        return self.total, self.created, self.changed, self.unchanged

    async def apply(self) -> ImportCounts:
        """Write the plan, or raise ImportProblems (sorted by line) when any row is bad."""
        if self.problems or self.write is None:
            raise ImportProblems(self.problems)
        return await self.write()


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
