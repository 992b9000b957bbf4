"""The sheet of a batch of invites (invite-batch): one row per invite, for the department to print.

Columns: unit_code, unit_name, role, code, link, expires (dd/mm/yyyy hh:mm, local time), and note
when the input file had notes. XLSX, or CSV (UTF-8 with BOM, as reports.exports writes it).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from reports.exports import as_text, build_csv

INVITE_HEADERS = ("unit_code", "unit_name", "role", "code", "link", "expires")
WIDTHS = (12, 36, 12, 26, 60, 18, 30)


def invite_sheet(rows: Sequence[Sequence[Any]], with_note: bool, fmt: str) -> bytes:
    """Return the rows (expires as a naive local datetime) as `xlsx` or `csv` bytes."""
    headers = INVITE_HEADERS + (("note",) if with_note else ())
    if fmt == "csv":
        return build_csv([[*row[:5], row[5].strftime("%d/%m/%Y %H:%M"), *row[6:]] for row in rows], headers)
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = "invites"
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([as_text(value) for value in row])  # a unit name or note never runs as a formula
        sheet.cell(row=sheet.max_row, column=6).number_format = "dd/mm/yyyy hh:mm"
    for i, width in enumerate(WIDTHS[: len(headers)], start=1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
