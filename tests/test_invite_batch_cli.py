"""`python -m bot invite-batch FILE.csv --out SHEET.xlsx|.csv`: one row per invite, all or nothing."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.test_cli import UNITS, Run, failed, ok

HEADERS = ["unit_code", "unit_name", "role", "code", "link", "expires"]


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    """Return a CLI runner (bot username configured) on an empty database of each kind."""
    return Run(tmp_path, database_url, '[telegram]\nbot_username = "@ketnap_bot"\n')


def _ready(run: Run) -> None:
    ok(run("init"))
    ok(run("import-units", run.file("units.csv", UNITS)))


def test_batch_writes_one_row_per_invite_and_stores_only_hashes(run: Run) -> None:
    _ready(run)
    batch = run.file("batch.csv", "unit_code,role,note\nc1,secretary,Lò Văn Tú\nX1,committee,\nH1,ADMIN,Ban Tổ chức\n")
    out = ok(run("invite-batch", batch, "--out", "ma-moi.xlsx"))
    assert "Đã tạo 3 mã mời" in out and "ma-moi.xlsx" in out
    sheet = load_workbook(run.folder / "ma-moi.xlsx").active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == [*HEADERS, "note"]
    assert [r[:3] for r in rows[1:]] == [["C1", "Chi bộ bản Huổi Lếch", "secretary"],
                                         ["X1", "Đảng ủy xã Sá Tổng", "committee"], ["H1", "Huyện ủy Mường Chà", "admin"]]
    codes = [r[3] for r in rows[1:]]
    assert all(r[4] == f"https://t.me/ketnap_bot?start={r[3]}" for r in rows[1:])
    assert rows[1][6] == "Lò Văn Tú" and not rows[2][6]
    assert {r[5].strftime("%d/%m/%Y") for r in rows[1:]} == {rows[1][5].strftime("%d/%m/%Y")}  # dates, not text
    stored = {h for (h,) in run.query("SELECT code_hash FROM invite")}
    assert stored == {hashlib.sha256(c.encode()).hexdigest() for c in codes}
    assert run.query("SELECT count(*) FROM audit_entry WHERE action = 'invite' AND channel = 'cli'") == [(3,)]
    assert not list(run.folder.glob("*.part"))


def test_a_bad_row_names_its_line_and_nothing_is_made(run: Run) -> None:
    _ready(run)
    bad = run.file("bad.csv", "unit_code,role\nC1,secretary\n\nNOPE,secretary\nC2,boss\nC3,\n")
    err = failed(run("invite-batch", bad, "--out", "out.xlsx"))
    assert "dòng 4: không có đơn vị mã 'NOPE'" in err
    assert "dòng 5: vai trò 'boss' không hợp lệ" in err
    assert "dòng 6: thiếu giá trị cột 'role'" in err and "dòng 2" not in err
    assert run.query("SELECT count(*) FROM invite") == [(0,)]
    assert not (run.folder / "out.xlsx").exists() and not list(run.folder.glob("*.part"))
    assert "thiếu cột 'role'" in failed(run("invite-batch", run.file("h.csv", "unit_code\nC1\n"), "--out", "o.csv"))
    assert "chỉ có dòng tiêu đề" in failed(run("invite-batch", run.file("e.csv", "unit_code,role\n"), "--out", "o.csv"))
    assert ".xlsx" in failed(run("invite-batch", bad, "--out", "out.pdf"), code=2)
    assert run.query("SELECT count(*) FROM invite") == [(0,)]


def test_csv_output_and_no_username_leaves_the_link_empty_with_a_note(sqlite_run: Callable[..., Run]) -> None:
    run = sqlite_run('[bot]\nlanguage = "en"\n')
    _ready(run)
    out = ok(run("invite-batch", run.file("b.csv", "unit_code,role\nC2,secretary\n"), "--out", "codes.csv"))
    assert "Invites made: 1, written to codes.csv" in out
    assert "bot_username is not set" in out
    content = (run.folder / "codes.csv").read_bytes()
    assert content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[0] == HEADERS and rows[1][:3] == ["C2", "Chi bộ ghép Nậm Chua", "secretary"] and rows[1][4] == ""
    assert len(rows[1][3]) == 22 and rows[1][5].count("/") == 2


@pytest.fixture
def sqlite_run(tmp_path: Path) -> Callable[..., Run]:
    """Return a maker of CLI runners on a SQLite file."""
    return lambda extra="": Run(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}", extra)


def test_the_xlsx_sheet_shows_formula_like_names_and_notes_as_text() -> None:
    """A unit named like a formula, or such a note, is text in the printed sheet (OWASP's rule, as in exports)."""
    import io
    from datetime import datetime

    from openpyxl import load_workbook

    from reports.invites import invite_sheet

    row = ("X1", "=HYPERLINK(\"http://x\",\"y\")", "secretary", "code", "", datetime(2026, 7, 15, 9, 0), "@SUM(A1)")
    sheet = load_workbook(io.BytesIO(invite_sheet([row], True, "xlsx"))).active
    cells = list(sheet.iter_rows(min_row=2))[0]
    assert (cells[1].data_type, cells[1].value) == ("s", "'=HYPERLINK(\"http://x\",\"y\")")
    assert (cells[6].data_type, cells[6].value) == ("s", "'@SUM(A1)")
