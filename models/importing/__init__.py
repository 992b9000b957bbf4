"""Loading units, targets and earlier admissions from CSV files (the command line's import-*).

All or nothing: every function raises ImportProblems listing every bad row, and then nothing of
the file is left written. Everything is validated whole before anything is written; admissions
are read and checked before the first statement of the transaction (see import_admissions), then
inserted with the driver's executemany, no ORM objects. Functions take an open session
and never commit, so the caller's transaction decides. Line numbers are the file's own (the header
is line 1). Unit codes are case-insensitive: see models.units.normal_code.

Problem keys (the `key` of each problem) are catalog suffixes: `cli.problem.<key>`.

Each importer is a plan and its apply: `plan_units`, `plan_targets` and `plan_admissions` check the
whole file and count what it would create, change and leave as is without writing (the chat's
preview); `ImportPlan.apply` writes it, and `import_*` is the two in one (the command line).
`within` (an admin's subtree paths) makes every row outside it a bad row (`outside_scope`).

The package, in the domain's words: `csvfile` (reading the files, ImportProblems, ImportCounts,
ImportPlan, the field checks every import shares), `units` (import_units), `targets`
(import_targets), `admissions` (import_admissions, the bulk path with SQLite's index rebuild),
`plan` (the three formats as one: recognising a header, plan_import, the audit entry) and
`spreadsheet` (XLSX files read as CSV, the empty templates). The tunables are not
re-exported: CHUNK_ROWS is defined in csvfile and imported by name into targets and admissions
(patch it in the module whose code should see it); INSERT_ROWS, HISTORY_UNITS, REBUILD_MIN_ROWS
and SQLITE_CACHE_KIB live in admissions.
"""

from models.importing.admissions import ADMISSION_COLUMNS, ADMISSION_OPTIONAL, import_admissions, plan_admissions
from models.importing.csvfile import (
    MAX_CODE_LENGTH,
    MAX_UNIT_NAME_LENGTH,
    OUTSIDE,
    CsvRow,
    CsvStream,
    CsvTable,
    ImportCounts,
    ImportPlan,
    ImportProblems,
    Problem,
    decode,
    read_table,
)
from models.importing.plan import EXAMPLES, FORMATS, csv_header, plan_import, recognise, record_import, upload_imported
from models.importing.spreadsheet import is_xlsx, template_workbook, xlsx_to_csv
from models.importing.targets import MAX_TARGET, TARGET_COLUMNS, import_targets, plan_targets
from models.importing.units import UNIT_COLUMNS, UNIT_OPTIONAL, import_units, parse_units, plan_units

__all__ = [
    "ADMISSION_COLUMNS",
    "ADMISSION_OPTIONAL",
    "EXAMPLES",
    "FORMATS",
    "OUTSIDE",
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
    "ImportPlan",
    "ImportProblems",
    "Problem",
    "csv_header",
    "decode",
    "import_admissions",
    "import_targets",
    "import_units",
    "is_xlsx",
    "parse_units",
    "plan_admissions",
    "plan_import",
    "plan_targets",
    "plan_units",
    "read_table",
    "recognise",
    "record_import",
    "template_workbook",
    "upload_imported",
    "xlsx_to_csv",
]
