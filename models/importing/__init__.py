"""Loading units, targets and earlier admissions from CSV files (the command line's import-*).

All or nothing: every function raises ImportProblems listing every bad row, and then nothing of
the file is left written. Everything is validated whole before anything is written; admissions
are read and checked before the first statement of the transaction (see import_admissions), then
inserted with the driver's executemany, no ORM objects. Functions take an open session
and never commit, so the caller's transaction decides. Line numbers are the file's own (the header
is line 1). Unit codes are case-insensitive: see models.units.normal_code.

Problem keys (the `key` of each problem) are catalog suffixes: `cli.problem.<key>`.

The package, in the domain's words: `csvfile` (reading the files, ImportProblems, ImportCounts,
the field checks every import shares), `units` (import_units), `targets` (import_targets) and
`admissions` (import_admissions, the bulk path with SQLite's index rebuild). The tunables are not
re-exported: CHUNK_ROWS is defined in csvfile and imported by name into targets and admissions
(patch it in the module whose code should see it); INSERT_ROWS, HISTORY_UNITS, REBUILD_MIN_ROWS
and SQLITE_CACHE_KIB live in admissions.
"""

from models.importing.admissions import ADMISSION_COLUMNS, ADMISSION_OPTIONAL, import_admissions
from models.importing.csvfile import (
    MAX_CODE_LENGTH,
    MAX_UNIT_NAME_LENGTH,
    CsvRow,
    CsvStream,
    CsvTable,
    ImportCounts,
    ImportProblems,
    Problem,
    decode,
    read_table,
)
from models.importing.targets import MAX_TARGET, TARGET_COLUMNS, import_targets
from models.importing.units import UNIT_COLUMNS, UNIT_OPTIONAL, import_units, parse_units

__all__ = [
    "ADMISSION_COLUMNS",
    "ADMISSION_OPTIONAL",
    "MAX_CODE_LENGTH",
    "MAX_TARGET",
    "MAX_UNIT_NAME_LENGTH",
    "TARGET_COLUMNS",
    "UNIT_COLUMNS",
    "UNIT_OPTIONAL",
    "CsvRow",
    "CsvStream",
    "CsvTable",
    "ImportCounts",
    "ImportProblems",
    "Problem",
    "decode",
    "import_admissions",
    "import_targets",
    "import_units",
    "parse_units",
    "read_table",
]
