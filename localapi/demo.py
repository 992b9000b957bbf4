"""The sandbox's demo world, modelled on the Pác Nặm article in ../shared/seeds/.

A district with three communes and their village cells (one combined cell covering two villages),
an annual plan of 90 and a term target of 400, history dated so that the district stands at 23/90
for the current year to date and 215/400 for the term, and four ready-registered demo people.
Every name here is invented (the people are obviously "Mẫu" = sample); no real personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from models.admissions import AdmissionDraft, imported_admission
from models.calendar import TermStart
from models.candidates import CandidateDraft, add_candidate, leave
from models.entities import ExitReason, Role, Sex, Stage, Target, UnitKind
from models.membership import set_membership
from models.workdays import add_months
from models.people import create_invite, redeem_invite
from models.periods import Period
from models.units import UnitRow, load_units, unit_by_code

DISTRICT = "PN"
YEAR_PLAN = 90
TERM_TARGET = 400
YEAR_ADMITTED = 23  # "kết nạp được 23/90 đảng viên theo kế hoạch"
TERM_ADMITTED = 215  # "215/400 đảng viên mới, bằng 53,7 %"
FIRST_TERM_START = 2025  # terms run 2025-2030, 2030-2035, …

UNITS: tuple[UnitRow, ...] = (
    UnitRow(1, "PN", "Huyện ủy Pác Nặm", None, UnitKind.DISTRICT),
    UnitRow(2, "BB", "Đảng ủy xã Bộc Bố", "PN", UnitKind.COMMITTEE),
    UnitRow(3, "NM", "Đảng ủy xã Nhạn Môn", "PN", UnitKind.COMMITTEE),
    UnitRow(4, "CT", "Đảng ủy xã Cao Tân", "PN", UnitKind.COMMITTEE),
    UnitRow(5, "BB-NC", "Chi bộ thôn Nà Coóc", "BB", UnitKind.CELL, ("Nà Coóc",)),
    UnitRow(6, "BB-KP", "Chi bộ thôn Khuổi Pết – Nà Ngòa", "BB", UnitKind.CELL, ("Khuổi Pết", "Nà Ngòa")),
    UnitRow(7, "BB-CL", "Chi bộ thôn Cốc Lót", "BB", UnitKind.CELL, ("Cốc Lót",)),
    UnitRow(8, "NM-PC", "Chi bộ thôn Pác Cáp", "NM", UnitKind.CELL, ("Pác Cáp",)),
    UnitRow(9, "NM-KS", "Chi bộ thôn Khâu Slôm", "NM", UnitKind.CELL, ("Khâu Slôm",)),
    UnitRow(10, "CT-KU", "Chi bộ thôn Khuổi Ún", "CT", UnitKind.CELL, ("Khuổi Ún",)),
    UnitRow(11, "CT-LM", "Chi bộ thôn Lủng Muổng", "CT", UnitKind.CELL, ("Lủng Muổng",)),
)

# Annual plan shares (current year) and term shares; the district's own rows are the headline.
YEAR_SHARES: dict[str, int] = {
    "PN": YEAR_PLAN, "BB": 35, "NM": 30, "CT": 25,
    "BB-NC": 12, "BB-KP": 10, "BB-CL": 13, "NM-PC": 16, "NM-KS": 14, "CT-KU": 13, "CT-LM": 12,
}
TERM_SHARES: dict[str, int] = {"PN": TERM_TARGET, "BB": 150, "NM": 135, "CT": 115}

# Where this year's 23 and the earlier term years' 192 were admitted (cells only; sums checked).
YEAR_HISTORY: dict[str, int] = {"BB-NC": 4, "BB-KP": 2, "BB-CL": 3, "NM-PC": 5, "NM-KS": 3, "CT-KU": 4, "CT-LM": 2}
EARLIER_HISTORY: dict[str, int] = {
    "BB-NC": 30, "BB-KP": 24, "BB-CL": 28, "NM-PC": 34, "NM-KS": 26, "CT-KU": 27, "CT-LM": 23,
}
assert sum(YEAR_HISTORY.values()) == YEAR_ADMITTED
assert sum(EARLIER_HISTORY.values()) == TERM_ADMITTED - YEAR_ADMITTED

_FAMILY = ("Hoàng", "Lường", "Triệu", "Bàn", "Nông", "Đặng", "Lý", "Ma", "Hà", "Dương")
_MIDDLE = {Sex.MALE: "Văn", Sex.FEMALE: "Thị"}
_GIVEN = ("An", "Bình", "Chiến", "Dung", "Giang", "Hạnh", "Khánh", "Lan", "Minh", "Nga", "Phúc", "Quế", "Sơn",
          "Thảo", "Tuyết", "Vân", "Xuân", "Yến")
_ETHNICITY = ("Tày", "Tày", "Dao", "Mông", "Nùng", "Kinh")


@dataclass(frozen=True)
class DemoPerson:
    """A ready-registered demo user: a fake Telegram id, an obviously invented name, a role at a unit."""

    telegram_id: int
    name: str
    role: Role
    unit_code: str


PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson(900001, "Lò Thị Mẫu", Role.SECRETARY, "BB-NC"),
    DemoPerson(900002, "Triệu Văn Mẫu", Role.SECRETARY, "BB-KP"),
    DemoPerson(900003, "Hoàng Văn Mẫu", Role.COMMITTEE, "PN"),
    DemoPerson(900004, "Nông Thị Mẫu", Role.ADMIN, "PN"),
)


def term_of(day: date, term_start: TermStart) -> Period:
    """Return the 5-year term covering `day`: terms begin on `term_start` of 2025, 2030, … (so with
    1 July, 30/6/2026 is in 2025-2030, 30/6/2025 still in 2020-2025, 1/7/2030 in 2030-2035)."""
    years = day.year - FIRST_TERM_START - (day < term_start.in_year(day.year))
    start = FIRST_TERM_START + 5 * (years // 5)
    return Period.term(start, start + 5, term_start)


def _spread(first: date, last: date, count: int) -> list[date]:
    """Return `count` dates spread evenly from `first` to `last` (both included)."""
    span = (last - first).days
    return [first + timedelta(days=(span * i) // max(count - 1, 1)) for i in range(count)]


def _draft(unit_id: int, number: int, on: date) -> AdmissionDraft:
    """Return an invented admission (name, birth year, sex, ethnicity) numbered `number`."""
    sex = Sex.FEMALE if number % 2 else Sex.MALE
    name = f"{_FAMILY[number % len(_FAMILY)]} {_MIDDLE[sex]} {_GIVEN[(number * 7) % len(_GIVEN)]}"
    return AdmissionDraft(
        unit_id=unit_id,
        full_name=name,
        birth_year=on.year - 20 - number % 15,
        sex=sex,
        admitted_on=on,
        ethnicity=_ETHNICITY[number % len(_ETHNICITY)],
        decision_no=f"{100 + number}-QĐ/HU",
        youth_union=number % 3 != 0,
    )


async def seed_demo(session: AsyncSession, today: date, now: datetime, *, term_start: TermStart,
                    invite_days: int = 14) -> None:
    """Load the demo world into an empty database as of `today` (in the bot's timezone), its term
    beginning on `term_start` (the configured one)."""
    await load_units(session, UNITS)
    units = {row.code: await unit_by_code(session, row.code) for row in UNITS}
    term = term_of(today, term_start)
    year = Period.year(today.year)
    for code, value in YEAR_SHARES.items():
        session.add(Target.of(units[code].id, year, value))
    for code, value in TERM_SHARES.items():
        session.add(Target.of(units[code].id, term, value))

    # This year: from 1 January up to today; the rest of the term before this year spread over it.
    # A term that began this year has only this year's admissions (from its first day; the rest
    # fall in the year before it).
    first = max(year.first_day, term.first_day)
    this_year = _spread(first, today, YEAR_ADMITTED)
    before = date(today.year - 1, 1, 1) if first == term.first_day else term.first_day
    earlier = _spread(before, date(today.year - 1, 12, 31), TERM_ADMITTED - YEAR_ADMITTED)
    number = 0
    admitted = []
    for history, dates in ((YEAR_HISTORY, this_year), (EARLIER_HISTORY, earlier)):
        codes = [code for code, count in history.items() for _ in range(count)]
        for code, on in zip(codes, dates, strict=True):
            unit = units[code]
            admitted.append(imported_admission(unit, _draft(unit.id, number, on), now))
            session.add(admitted[-1])
            number += 1
    await session.flush()
    await seed_pipeline(session, units, admitted, today, now)

    for person in PEOPLE:
        code = await create_invite(session, units[person.unit_code], person.role, now, invite_days)
        await redeem_invite(session, code, person.telegram_id, person.name, "vi", now)


# The pipeline and the membership (issue 14): candidates at every stage in the demo secretary's
# cell, a few elsewhere, one cell with none ("hết nguồn"); 2.817 members in all; ceremonies and
# recognitions of the history, the newest two still awaiting their ceremony.
MEMBERS_FULL = 2_602
MEMBERS_PROBATIONARY = 215  # 2.817 in all, the article's figure
MEMBER_SHARES = {"BB-NC": 18, "BB-KP": 15, "BB-CL": 14, "NM-PC": 16, "NM-KS": 13, "CT-KU": 13, "CT-LM": 11}
CANDIDATES: tuple[tuple[str, str, Stage, int], ...] = (  # cell, name, stage, days ago
    ("BB-NC", "Lường Văn Pản", Stage.NGUON, 20), ("BB-NC", "Hoàng Thị Nhị", Stage.CAM_TINH, 60),
    ("BB-NC", "Triệu Văn Sình", Stage.LOP, 90), ("BB-NC", "Bàn Thị Mai", Stage.HO_SO, 110),
    ("BB-NC", "Nông Văn Khoa", Stage.THAM_TRA, 130), ("BB-NC", "Ma Thị Duyên", Stage.CHI_BO, 40),
    ("BB-NC", "Đặng Văn Tú", Stage.DANG_UY, 10), ("BB-KP", "Lý Thị Hằng", Stage.CAM_TINH, 45),
    ("BB-KP", "Hà Văn Lợi", Stage.CHI_BO, 25), ("NM-PC", "Dương Thị Sen", Stage.LOP, 70),
    ("NM-KS", "Hoàng Văn Quyết", Stage.NGUON, 15), ("CT-KU", "Lường Thị Thu", Stage.DANG_UY, 12),
)
WORKING_AWAY = ("BB-NC", "Triệu Văn Lìn", Stage.CAM_TINH, 200)


async def seed_pipeline(session: AsyncSession, units: dict, admitted: list, today: date, now: datetime) -> None:  # type: ignore[type-arg]
    """Add the demo candidates, the membership counts (as of today) and the dates after the decisions."""
    total = sum(MEMBER_SHARES.values())
    full_left, probationary_left = MEMBERS_FULL, MEMBERS_PROBATIONARY
    for i, (code, share) in enumerate(MEMBER_SHARES.items()):
        last = i == len(MEMBER_SHARES) - 1
        full = full_left if last else MEMBERS_FULL * share // total
        probationary = probationary_left if last else MEMBERS_PROBATIONARY * share // total
        full_left, probationary_left = full_left - full, probationary_left - probationary
        await set_membership(session, units[code], full, probationary, today)
    for number, (code, name, stage, days) in enumerate((*CANDIDATES, WORKING_AWAY)):
        sex = Sex.FEMALE if " Thị " in name else Sex.MALE
        draft = CandidateDraft(name, today.year - 19 - number % 9, sex, stage, today - timedelta(days=days),
                               _ETHNICITY[number % len(_ETHNICITY)], number % 2 == 0,
                               "Hoàng Văn Mẫu" if stage != Stage.NGUON else None)
        candidate = await add_candidate(session, units[code], draft, None, now, today)
        if (code, name, stage, days) == WORKING_AWAY:
            await leave(session, candidate, ExitReason.WORKING_AWAY, today - timedelta(days=30), None, now, today)
    newest = sorted(admitted, key=lambda a: a.admitted_on)[-2:]
    for admission in admitted:
        if admission in newest:
            continue  # the ceremony still to come: the deadline reminders have something to say
        admission.ceremony_on = min(admission.admitted_on + timedelta(days=20), today)
        if add_months(admission.ceremony_on, 13) <= today:
            admission.recognized_on = add_months(admission.ceremony_on, 12) + timedelta(days=10)
    await session.flush()
