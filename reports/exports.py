"""Progress exports: an XLSX workbook (summary + admissions) or a CSV summary, numbers kept as numbers."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from core.collation import vietnamese_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncSession

    from models.entities import Unit
    from models.periods import Period

# The target column is "Kế hoạch năm" for a year and "Chỉ tiêu nhiệm kỳ" for a term (summary_headers).
SUMMARY_HEADERS = (
    "Mã đơn vị", "Tên đơn vị", "Cấp", "Kỳ", "Kế hoạch năm", "Đã kết nạp", "Tỷ lệ đạt (%)", "Theo lịch đến nay",
    "Chênh lệch", "Còn lại", "Cần mỗi tháng", "Dự báo cuối kỳ", "Nữ", "Dân tộc thiểu số", "Đoàn viên",
    "Dưới 30 tuổi",
)
ADMISSION_HEADERS = (
    "Mã đơn vị", "Tên đơn vị", "Họ và tên", "Năm sinh", "Giới tính", "Dân tộc", "Dân tộc thiểu số", "Đoàn viên",
    "Số quyết định", "Ngày kết nạp",
)
TARGET_HEADER = {False: "Kế hoạch năm", True: "Chỉ tiêu nhiệm kỳ"}
SUMMARY_SHEET = "Tổng hợp"


def summary_headers(is_term: bool) -> tuple[str, ...]:
    """Return the summary's column headings: an annual plan is a "kế hoạch", a term's is a "chỉ tiêu"."""
    return tuple(TARGET_HEADER[is_term] if i == 4 else header for i, header in enumerate(SUMMARY_HEADERS))
ADMISSIONS_SHEET = "Danh sách kết nạp"


def summary_rows(progress: Sequence[Any], kinds: dict[str, str]) -> list[list[Any]]:
    """Return one row per unit (models.progress.Progress), numbers as int/float, None where not applicable."""
    rows = []
    for p in progress:
        rows.append([
            p.unit.code, p.unit.name, kinds.get(str(p.unit.kind), str(p.unit.kind)), p.period.label(), p.target,
            p.admitted, float(p.percent) if p.percent is not None else None, p.expected, p.gap, p.remaining,
            p.needed_per_month, p.forecast, p.breakdown.women, p.breakdown.minority, p.breakdown.youth_union,
            p.breakdown.under_30,
        ])
    return rows


def admission_rows(admissions: Sequence[Any], sexes: dict[str, str], yes: str, no: str) -> list[list[Any]]:
    """Return one row per admission (models.progress.AdmissionRow), by date, unit, then name the Vietnamese way."""
    def flag(value: bool | None) -> str:
        return "" if value is None else yes if value else no

    ordered = sorted(admissions, key=lambda a: (a.admitted_on, a.unit_code, vietnamese_key(a.full_name)))
    return [[a.unit_code, a.unit_name, a.full_name, a.birth_year, sexes.get(str(a.sex), str(a.sex)),
             a.ethnicity or "", flag(a.minority), flag(a.youth_union), a.decision_no or "", a.admitted_on]
            for a in ordered]


def build_xlsx(title: str, summary: list[list[Any]], admissions: list[list[Any]],
               headers: Sequence[str] = SUMMARY_HEADERS, candidates: list[list[Any]] | None = None) -> bytes:
    """Return an XLSX workbook: the summary sheet (title row, headers, rows) and the admissions sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SUMMARY_SHEET
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append(list(headers))
    for row in summary:
        sheet.append(row)
    percent_column = SUMMARY_HEADERS.index("Tỷ lệ đạt (%)") + 1
    for (cell,) in sheet.iter_rows(min_row=3, min_col=percent_column, max_col=percent_column):
        cell.number_format = "0.0"
    _style_table(sheet, header_row=2, widths=(14, 34, 12, 11) + (11,) * 12, font=Font, align=Alignment,
                 letter=get_column_letter)
    if summary:  # the unit itself, first
        for cell in sheet[3]:
            cell.font = Font(bold=True)

    listing = workbook.create_sheet(ADMISSIONS_SHEET)
    listing.append(list(ADMISSION_HEADERS))
    for row in admissions:
        listing.append(row)
    date_column = ADMISSION_HEADERS.index("Ngày kết nạp") + 1
    for (cell,) in listing.iter_rows(min_row=2, min_col=date_column, max_col=date_column):
        cell.number_format = "DD/MM/YYYY"
    _style_table(listing, header_row=1, widths=(14, 30, 26, 9, 9, 12, 10, 10, 14, 13), font=Font, align=Alignment,
                 letter=get_column_letter)
    if candidates is not None:  # counts by stage per cell, no names (models.candidates.stage_counts_by_unit)
        pipeline = workbook.create_sheet(CANDIDATES_SHEET)
        pipeline.append(list(CANDIDATE_HEADERS))
        for row in candidates:
            pipeline.append(row)
        _style_table(pipeline, header_row=1, widths=(14, 30) + (12,) * (len(CANDIDATE_HEADERS) - 2), font=Font,
                     align=Alignment, letter=get_column_letter)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _style_table(sheet, header_row: int, widths, font, align, letter) -> None:  # type: ignore[no-untyped-def]
    for cell in sheet[header_row]:
        cell.font = font(bold=True)
        cell.alignment = align(wrap_text=True, vertical="center")
    for i, width in enumerate(widths, start=1):
        sheet.column_dimensions[letter(i)].width = width
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=3)


def build_csv(summary: list[list[Any]], headers: Sequence[str] = SUMMARY_HEADERS) -> bytes:
    """Return the summary as CSV (UTF-8 with BOM so spreadsheet programs read the diacritics)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    for row in summary:
        writer.writerow(["" if v is None else v.isoformat() if isinstance(v, date) else v for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")

# The file is for the organisation department: its words are Vietnamese whatever the reader's language.
KIND_NAMES = {"province": "Tỉnh", "district": "Huyện", "committee": "Đảng bộ cơ sở", "cell": "Chi bộ"}
SEX_NAMES = {"male": "Nam", "female": "Nữ"}
YES, NO = "Có", "Không"


def export_title(unit_name: str, unit_code: str, period_label: str, is_term: bool, day: date) -> str:
    """Return the first line of the summary sheet (Vietnamese, like the headers; chat captions use the catalog)."""
    kind = "Chỉ tiêu nhiệm kỳ" if is_term else "Kế hoạch năm"
    return f"Tiến độ kết nạp đảng viên — {unit_name} ({unit_code}) — {kind} {period_label} — đến ngày {day:%d/%m/%Y}"


async def export_bytes(session: AsyncSession, unit: Unit, period: Period, day: date,
                       fmt: str) -> tuple[str, Callable[[], bytes]]:
    """Gather the rows inside the caller's transaction; return (the file's title, a function rendering the file).

    The rendering is CPU work without the database: run it in a thread (asyncio.to_thread).
    """
    from models.periods import Period
    from models.progress import admissions_in, subtree_progress

    summary = summary_rows(await subtree_progress(session, unit, period, day), KIND_NAMES)
    title = export_title(unit.name, unit.code, period.label(), period.is_term, day)
    headers = summary_headers(period.is_term)
    if fmt == "csv":
        return title, lambda: build_csv(summary, headers)
    listing = admission_rows(await admissions_in(session, unit, period), SEX_NAMES, YES, NO)
    pipeline = await candidate_rows(session, unit)
    return title, lambda: build_xlsx(title, summary, listing, headers, pipeline)


# The "Quần chúng" sheet: candidates by stage per cell of the subtree (counts only) ---------------

CANDIDATES_SHEET = "Quần chúng"
CANDIDATE_HEADERS = ("Mã đơn vị", "Tên đơn vị", "Tạo nguồn", "Cảm tình Đảng", "Học lớp bồi dưỡng", "Nộp hồ sơ",
                     "Thẩm tra lý lịch", "Nghị quyết chi bộ", "Nghị quyết đảng ủy", "Cộng")


async def candidate_rows(session: AsyncSession, unit: Unit) -> list[list[Any]]:
    """Return a row per cell of `unit`'s subtree: its candidates at each stage (STAGES order) and in all."""
    from models.candidates import stage_counts_by_unit
    from models.entities import STAGES
    from models.reminders import cells_of_subtree

    counts = await stage_counts_by_unit(session, unit)
    rows = []
    for cell in sorted(await cells_of_subtree(session, unit), key=lambda c: vietnamese_key(c.name)):
        here = counts.get(cell.id, {})
        values = [here.get(stage, 0) for stage in STAGES]
        rows.append([cell.code, cell.name, *values, sum(values)])
    return rows
