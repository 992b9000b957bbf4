"""Import files as Excel workbooks: an XLSX read as the CSV the importers take, and the empty templates.

A workbook's data sheet is its first sheet whose first non-empty row is a known header (the
templates' note sheet is skipped that way); each sheet row becomes one CSV line, so a bad row's
line number is its row number in Excel. Cells are written the way the CSV contracts read them:
dates as yyyy-mm-dd, whole numbers without ".0", line breaks inside a cell as spaces.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

from models.importing.csvfile import ImportProblems

XLSX_MAGIC = b"PK\x03\x04"
MAX_UNPACKED = 64 * 1024 * 1024  # bytes a workbook may unpack to (a zip bomb is refused before parsing)
MAX_ROWS = 200_000
TEXT_COLUMNS = ("code", "parent_code", "unit_code", "decision_no", "period")  # kept as typed ("01" stays "01")


def is_xlsx(data: bytes) -> bool:
    """Tell whether the bytes look like an XLSX (a zip) rather than a CSV."""
    return data.startswith(XLSX_MAGIC)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).splitlines())


def xlsx_to_csv(data: bytes, recognise: Callable[[Iterable[str]], str | None]) -> bytes:
    """Return the data sheet of a workbook as UTF-8 CSV (see the module's note); raise ImportProblems
    (`bad_xlsx`, `too_many_rows`) when it cannot be read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(member.file_size for member in archive.infolist()) > MAX_UNPACKED:
                raise ImportProblems([(1, "bad_xlsx", "")])
        return _data_sheet_csv(data, recognise)
    except ImportProblems:
        raise
    except Exception:  # noqa: BLE001 - any unreadable workbook (zip, XML, styles) gets the same answer
        raise ImportProblems([(1, "bad_xlsx", "")]) from None


def _data_sheet_csv(data: bytes, recognise: Callable[[Iterable[str]], str | None]) -> bytes:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets = list(book.worksheets)
        chosen = sheets[0] if sheets else None
        for sheet in sheets:
            header = next((row for row in sheet.iter_rows(min_row=1, max_row=50, values_only=True)
                           if any(cell not in (None, "") for cell in row)), None)
            if header is not None and recognise(_cell_text(cell) for cell in header):
                chosen = sheet
                break
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        if chosen is not None:
            for number, row in enumerate(chosen.iter_rows(min_row=1, values_only=True), start=1):
                if number > MAX_ROWS:
                    raise ImportProblems([(number, "too_many_rows", str(MAX_ROWS))])
                cells = [_cell_text(cell) for cell in row]
                while cells and not cells[-1]:
                    cells.pop()
                writer.writerow(cells)
    finally:
        book.close()
    return out.getvalue().encode("utf-8")


def template_workbook(sheet: str, columns: Sequence[str], notes: Sequence[tuple[str, str, str]],
                      notes_sheet: str, notes_header: tuple[str, str, str]) -> bytes:
    """Return an empty import template: a data sheet whose first row is exactly `columns` (each
    header cell carries its explanation as a cell note), and a note sheet of (column, meaning,
    example) rows. Nothing but the header is in the data sheet, so a filled-in template imports as is."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    explained = {column: (meaning, example) for column, meaning, example in notes}
    book = Workbook()
    data = book.active
    data.title = sheet
    data.append(list(columns))
    for i, column in enumerate(columns, start=1):
        cell = data.cell(row=1, column=i)
        cell.font = Font(bold=True)
        meaning, example = explained.get(column, ("", ""))
        if meaning:
            cell.comment = Comment(f"{meaning}\n{example}".strip(), "Ban Tổ chức", width=300, height=150)
        letter = get_column_letter(i)
        data.column_dimensions[letter].width = max(14, len(column) + 4)
        if column in TEXT_COLUMNS:
            data.column_dimensions[letter].number_format = "@"
    data.freeze_panes = "A2"
    guide = book.create_sheet(notes_sheet)
    guide.append(list(notes_header))
    for cell in guide[1]:
        cell.font = Font(bold=True)
    for row in notes:
        guide.append(list(row))
    for letter, width in (("A", 16), ("B", 80), ("C", 30)):
        guide.column_dimensions[letter].width = width
    for row in guide.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
