"""Progress exports: an XLSX workbook (summary + admissions + audit) or a CSV summary, numbers kept as numbers.

The audit rows (models.audit entries of the subtree within the period) are also what the command
line's `audit` prints as CSV (audit_rows, AUDIT_COLUMNS)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from core.collation import vietnamese_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncSession

    from models.entities import AuditChannel, Person, Unit
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
AUDIT_SHEET = "audit"
# The audit's columns: the command line's CSV header, and the sheet's in Vietnamese, in the same order.
AUDIT_COLUMNS = ("at", "person", "channel", "action", "subject", "subject_id", "unit_code", "field", "old", "new",
                 "reason")
AUDIT_HEADERS = ("Thời điểm", "Người thực hiện", "Kênh", "Thao tác", "Đối tượng", "Mã đối tượng", "Mã đơn vị",
                 "Trường", "Giá trị cũ", "Giá trị mới", "Lý do")


def summary_headers(is_term: bool) -> tuple[str, ...]:
    """Return the summary's column headings: an annual plan is a "kế hoạch", a term's is a "chỉ tiêu"."""
    return tuple(TARGET_HEADER[is_term] if i == 4 else header for i, header in enumerate(SUMMARY_HEADERS))
ADMISSIONS_SHEET = "Danh sách kết nạp"


# OWASP's CSV-injection rule: a cell a spreadsheet would read as a formula or a command starts
# with one of these; such text is written with a leading apostrophe so it stays text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: Any) -> Any:
    """Return a text cell a spreadsheet shows as typed and never runs: "'" before = + - @ tab CR
    (OWASP). Numbers and dates pass unchanged. Every text cell of every export goes through here."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _safe(row: Sequence[Any]) -> list[Any]:
    return [as_text(value) for value in row]


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
               headers: Sequence[str] = SUMMARY_HEADERS, audit: list[list[Any]] | None = None,
               candidates: list[list[Any]] | None = None) -> bytes:
    """Return an XLSX workbook: the summary sheet (title row, headers, rows), the admissions sheet and,
    when given, the audit sheet and the candidates sheet (counts by stage, no names)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SUMMARY_SHEET
    sheet.append([as_text(title)])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append(list(headers))
    for row in summary:
        sheet.append(_safe(row))
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
        listing.append(_safe(row))
    date_column = ADMISSION_HEADERS.index("Ngày kết nạp") + 1
    for (cell,) in listing.iter_rows(min_row=2, min_col=date_column, max_col=date_column):
        cell.number_format = "DD/MM/YYYY"
    _style_table(listing, header_row=1, widths=(14, 30, 26, 9, 9, 12, 10, 10, 14, 13), font=Font, align=Alignment,
                 letter=get_column_letter)
    if audit is not None:
        trail = workbook.create_sheet(AUDIT_SHEET)
        trail.append(list(AUDIT_HEADERS))
        for row in audit:
            trail.append(_safe(row))
        _style_table(trail, header_row=1, widths=(19, 22, 8, 10, 11, 10, 12, 13, 22, 22, 40), font=Font,
                     align=Alignment, letter=get_column_letter)
    if candidates is not None:  # counts by stage per cell, no names (models.candidates.stage_counts_by_unit)
        pipeline = workbook.create_sheet(CANDIDATES_SHEET)
        pipeline.append(list(CANDIDATE_HEADERS))
        for row in candidates:
            pipeline.append(_safe(row))
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
        writer.writerow(["" if v is None else v.isoformat() if isinstance(v, date) else as_text(v) for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")

# The file is for the organisation department: its words are Vietnamese whatever the reader's language.
KIND_NAMES = {"province": "Tỉnh", "district": "Huyện", "committee": "Đảng bộ cơ sở", "cell": "Chi bộ"}
SEX_NAMES = {"male": "Nam", "female": "Nữ"}
YES, NO = "Có", "Không"


def export_title(unit_name: str, unit_code: str, period_label: str, is_term: bool, day: date) -> str:
    """Return the first line of the summary sheet (Vietnamese, like the headers; chat captions use the catalog)."""
    kind = "Chỉ tiêu nhiệm kỳ" if is_term else "Kế hoạch năm"
    return f"Tiến độ kết nạp đảng viên — {unit_name} ({unit_code}) — {kind} {period_label} — đến ngày {day:%d/%m/%Y}"


async def audit_rows(session: AsyncSession, unit: Unit, since: datetime | None = None,
                     until: datetime | None = None, tz: tzinfo = UTC) -> list[list[Any]]:
    """Return the audit entries of the subtree (AUDIT_COLUMNS), oldest first, times in `tz` without seconds' fraction."""
    from sqlalchemy import select

    from models.audit import entries_within
    from models.entities import Person
    from models.entities import Unit as UnitRow

    entries = await entries_within(session, unit, since, until)
    people_ids = {e.person_id for e in entries if e.person_id is not None}
    unit_ids = {e.unit_id for e in entries if e.unit_id is not None}
    names = dict((await session.execute(select(Person.id, Person.display_name).where(Person.id.in_(people_ids)))).all()
                 ) if people_ids else {}
    codes = dict((await session.execute(select(UnitRow.id, UnitRow.code).where(UnitRow.id.in_(unit_ids)))).all()
                 ) if unit_ids else {}
    return [[e.at.astimezone(tz).replace(microsecond=0, tzinfo=None).isoformat(sep=" "),
             names.get(e.person_id, "") if e.person_id is not None else "", str(e.channel.value), e.action, e.subject,
             e.subject_id, codes.get(e.unit_id, "") if e.unit_id is not None else "", e.field or "",
             e.old_value or "", e.new_value or "", e.reason or ""] for e in entries]


def audit_csv(rows: list[list[Any]]) -> str:
    """Return the audit rows as CSV text with the AUDIT_COLUMNS header (the command line's `audit`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(AUDIT_COLUMNS)
    writer.writerows([as_text("" if v is None else v) for v in row] for row in rows)
    return buffer.getvalue()


def day_start(day: date, tz: tzinfo) -> datetime:
    """Return the first moment of `day` in `tz`."""
    return datetime.combine(day, time(), tzinfo=tz)


async def export_bytes(session: AsyncSession, unit: Unit, period: Period, day: date, fmt: str, tz: tzinfo = UTC, *,
                       at: datetime, channel: AuditChannel, person: Person | None = None,
                       ) -> tuple[str, Callable[[], bytes]]:
    """Gather the rows inside the caller's (writing) transaction and record the export in the audit
    trail there (who, the unit, the period and format, when, the channel): a file with names in
    clear leaves the bot only with its entry. Return (the file's title, a function rendering it).

    The rendering is CPU work without the database: run it in a thread (asyncio.to_thread). The
    XLSX holds the audit sheet: the subtree's entries made during the period's days (in `tz`).
    """
    from models.audit import Action, Change, record
    from models.periods import Period
    from models.progress import admissions_in, subtree_progress

    record(session, at=at, channel=channel, action=Action.EXPORT, subject="export", person=person, unit=unit,
           changes=[Change("period", None, f"{period.label()} {fmt}")])

    summary = summary_rows(await subtree_progress(session, unit, period, day), KIND_NAMES)
    title = export_title(unit.name, unit.code, period.label(), period.is_term, day)
    headers = summary_headers(period.is_term)
    if fmt == "csv":
        return title, lambda: build_csv(summary, headers)
    listing = admission_rows(await admissions_in(session, unit, period), SEX_NAMES, YES, NO)
    audit = await audit_rows(session, unit, day_start(period.first_day, tz),
                             day_start(period.last_day + timedelta(days=1), tz), tz)
    pipeline = await candidate_rows(session, unit)
    return title, lambda: build_xlsx(title, summary, listing, headers, audit, pipeline)


# The "Quần chúng" sheet: candidates by stage per cell of the subtree (counts only) ---------------

CANDIDATES_SHEET = "candidates"  # the contract, like "audit"
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
