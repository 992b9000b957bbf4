"""`python -m bot ...` run as a real subprocess, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from core.config import load_config, parse_holidays
from core.i18n import Texts
from alembic.script import ScriptDirectory

from models.crypto import keys_from_environment
from models.db import alembic_config, create_sync_engine_for

ROOT = Path(__file__).resolve().parent.parent

UNITS = """\ufeffcode,name,parent_code,kind,villages
H1,Huyện ủy Mường Chà,,district,
X1,Đảng ủy xã Sá Tổng,H1,committee,
X2,Đảng ủy xã Ma Thì Hồ,H1,committee,

C1,Chi bộ bản Huổi Lếch,X1,cell,Huổi Lếch
C2,Chi bộ ghép Nậm Chua,X1,cell, Nậm Chua 1 ; Nậm Chua 2
C3,Chi bộ bản Ma Thì Hồ,X2,cell,Ma Thì Hồ
"""


class Run:
    """Runs the CLI in a temporary folder with a config file pointing at one database."""

    def __init__(self, folder: Path, url: str, extra: str = ""):
        self.folder = folder
        self.url = url
        self.config = folder / "config.toml"
        self.config.write_text(f'[database]\nurl = "{url}"\n{extra}', encoding="utf-8")
        self.env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

    def __call__(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(config or self.config), *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def file(self, name: str, content: str) -> str:
        (self.folder / name).write_text(content, encoding="utf-8")
        return name

    def query(self, sql: str) -> list[tuple]:  # type: ignore[type-arg]
        engine = create_sync_engine_for(self.url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    """Return a CLI runner on an empty database of each kind."""
    return Run(tmp_path, database_url)


@pytest.fixture
def sqlite_run(tmp_path: Path) -> Callable[..., Run]:
    """Return a maker of CLI runners on a SQLite file (for checks that do not depend on the database)."""
    return lambda extra="": Run(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}", extra)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


def test_units_targets_admissions_end_to_end(run: Run) -> None:
    failed(run("import-units", run.file("units.csv", UNITS)))  # before init
    assert "init" in run("import-units", "units.csv").stderr
    ok(run("init"))
    head = ScriptDirectory.from_config(alembic_config(run.url)).get_current_head()
    assert head and head in ok(run("init"))  # idempotent, and says which schema it is at
    assert run.query("SELECT version_num FROM alembic_version") == [(head,)]

    assert ok(run("import-units", "units.csv")).strip() == "Đơn vị: 6 (6 mới, 0 cập nhật)"
    units = {code: (name, path) for code, name, path in run.query("SELECT code, name, path FROM unit")}
    assert units["C2"][1].startswith(units["X1"][1])
    villages = run.query(
        "SELECT v.name FROM village v JOIN unit u ON u.id = v.unit_id WHERE u.code = 'C2' ORDER BY v.position"
    )
    assert villages == [("Nậm Chua 1",), ("Nậm Chua 2",)]

    # Unknown parent and a cycle: every bad line named, nothing saved.
    bad = (
        "code,name,parent_code,kind\n"
        "N1,Chi bộ mới,NOPE,cell\n"
        "X1,Đảng ủy xã Sá Tổng,N2,committee\n"
        "N2,Đảng ủy Y,X1,committee\n"
    )
    err = failed(run("import-units", run.file("bad_units.csv", bad)))
    assert "dòng 2: không có đơn vị cấp trên mã 'NOPE'" in err
    assert "dòng 3:" in err and "dòng 4:" in err and "vòng lặp" in err
    assert run.query("SELECT count(*) FROM unit") == [(6,)]

    # Targets: a year and a term, then an update; a bad period saves nothing.
    targets = run.file("targets.csv", "unit_code,period,target\nH1,2026,90\nH1,2025-2030,400\nX1,2026,30\n")
    assert ok(run("import-targets", targets)).strip() == "Kế hoạch năm và chỉ tiêu nhiệm kỳ: 3 (3 mới, 0 cập nhật)"
    ok(run("import-targets", run.file("t2.csv", "unit_code,period,target\nH1,2026,95\n")))
    bad_targets = run.file("t3.csv", "unit_code,period,target\nX2,2026,10\nX2,2026/27,10\n")
    assert "dòng 3: kỳ '2026/27' không hợp lệ" in failed(run("import-targets", bad_targets))
    assert sorted(run.query("SELECT start_year, end_year, value FROM target")) == [
        (2025, 2030, 400),
        (2026, 2026, 30),
        (2026, 2026, 95),
    ]
    # The term runs five years from the congress ([bot] term_start, 1 July by default), not 1/1/2025–31/12/2030.
    days = run.query("SELECT starts_on, ends_on FROM target WHERE end_year = 2030")
    assert [tuple(str(d) for d in row) for row in days] == [("2025-07-01", "2030-06-30")]

    # Admissions: one bad row among good ones saves nothing; then the good ones.
    tomorrow = (date.today() + timedelta(days=2)).strftime("%d/%m/%Y")
    good = (
        "unit_code,full_name,birth_year,gender,admitted_on,ethnicity,decision_no\n"
        "C1,Lò Thị Hoa,1995,nữ,15/05/2023,Thái,125-QĐ/ĐU\n"
        "C2,Giàng A Páo,1990,nam,2024-01-10,Mông,\n"
        "C2,Lo Thi Mai,1992,nu,2024-02-01,,\n"
        "C3,Nguyễn Văn An,1960,male,1/2/1990,Kinh,\n"
        "C3,Trần Thị Bình,1985,female,2020-09-02,,\n"
    )
    bad_rows = f"C1,Lò Văn Tám,1990,nam,{tomorrow}\nC1,Lò Văn Chín,1990,x,01/01/2020\n"
    err = failed(run("import-admissions", run.file("bad_adm.csv", good + bad_rows)))
    assert f"dòng 7: ngày '{tomorrow}' ở tương lai" in err and "dòng 8: giới tính 'x'" in err
    assert run.query("SELECT count(*) FROM admission") == [(0,)]
    summary = ok(run("import-admissions", run.file("adm.csv", good))).strip()
    assert summary == "Đảng viên kết nạp: 5 (5 mới, 0 đã có nên bỏ qua)"
    keys = keys_from_environment()  # names are sealed in the database (models.crypto)
    stored = run.query("SELECT full_name, sex, admitted_on FROM admission")
    sexes = {keys.decrypt(name): sex for name, sex, _ in stored}
    assert sexes == {"Lò Thị Hoa": "female", "Giàng A Páo": "male", "Lo Thi Mai": "female",
                     "Nguyễn Văn An": "male", "Trần Thị Bình": "female"}
    admitted = next(day for name, _, day in stored if keys.decrypt(name) == "Giàng A Páo")
    assert admitted in (date(2024, 1, 10), "2024-01-10")

    # Re-import: rename a commune, move the combined cell to the other commune; admissions follow.
    moved = "code,name,parent_code,kind\nX1,Đảng ủy xã Sá Tổng (mới),H1,committee\nC2,Chi bộ ghép Nậm Chua,X2,cell\n"
    assert ok(run("import-units", run.file("move.csv", moved))).strip() == "Đơn vị: 2 (0 mới, 2 cập nhật)"
    units = {code: (name, path) for code, name, path in run.query("SELECT code, name, path FROM unit")}
    assert units["X1"][0] == "Đảng ủy xã Sá Tổng (mới)"
    assert units["C2"][1].startswith(units["X2"][1])
    paths = run.query(
        "SELECT DISTINCT a.unit_path, u.path FROM admission a JOIN unit u ON u.id = a.unit_id WHERE u.code = 'C2'"
    )
    assert paths == [(units["C2"][1], units["C2"][1])]
    assert run.query("SELECT count(*) FROM village v JOIN unit u ON u.id = v.unit_id WHERE u.code = 'C2'") == [(2,)]


def test_invite_prints_a_code_last_and_stores_only_its_hash(run: Run) -> None:
    ok(run("init"))
    ok(run("import-units", run.file("units.csv", UNITS)))
    lines = ok(run("invite", "C1", "secretary")).strip().splitlines()
    code = lines[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{6,64}", code)
    assert any("Chi bộ bản Huổi Lếch" in line for line in lines[:-1])
    stored = run.query("SELECT code_hash, role FROM invite")
    assert stored == [(hashlib.sha256(code.encode()).hexdigest(), "secretary")]
    assert code not in str(run.query("SELECT * FROM invite"))

    assert "C99" in failed(run("invite", "C99", "secretary"))
    assert run.query("SELECT count(*) FROM invite") == [(1,)]


def test_invite_link_role_check_and_english(sqlite_run: Callable[..., Run]) -> None:
    run = sqlite_run('[telegram]\nbot_username = "@ketnap_bot"\n[bot]\nlanguage = "en"\n')
    ok(run("init"))
    ok(run("import-units", run.file("units.csv", UNITS)))
    lines = ok(run("invite", "X1", "committee")).strip().splitlines()
    assert f"https://t.me/ketnap_bot?start={lines[-1]}" in lines[-3]
    assert "Role: committee member" in lines
    assert "Role 'boss' is not valid" in failed(run("invite", "X1", "boss"))
    err = failed(run("import-units", run.file("bad.csv", "code,name,parent_code,kind\nN1,x,NOPE,cell\n")))
    assert "line 2: unknown parent 'NOPE'" in err
    assert "File not found" in failed(run("import-targets", "missing.csv"))


def test_run_without_token_explains_botfather_and_starts_the_sandbox(sqlite_run: Callable[..., Run]) -> None:
    import socket

    with socket.socket() as taken:  # the sandbox's port is busy, so it stops right after saying why
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = sqlite_run(f"[sandbox]\nport = {port}\n")
        err = failed(run("run"))
    assert "@BotFather" in err and "TELEGRAM_BOT_TOKEN" in err and "[telegram] token" in err
    assert "Chưa có mã (token)" in err and "No Telegram bot token" in err
    assert "HỘP CÁT DÙNG THỬ" in err and "LOCAL SANDBOX" in err
    assert f"Không mở được cổng {port}" in err and "--port" in err


def test_config_errors_name_the_key_and_exit_2(sqlite_run: Callable[..., Run]) -> None:
    run = sqlite_run("[bot]\ncolour = 1\n")
    assert "bot.colour" in failed(run("init"), code=2)
    help_text = ok(run("--help", config=run.folder / "absent.toml"))
    for command in ("init", "import-units", "import-targets", "import-admissions", "invite", "run", "sandbox"):
        assert command in help_text


def test_the_configured_term_start_reaches_import_and_export(sqlite_run: Callable[..., Run]) -> None:
    assert "bot.term_start" in failed(sqlite_run('[bot]\nterm_start = "02-29"\n')("init"), code=2)
    run = sqlite_run('[bot]\nterm_start = "01-15"\n')
    ok(run("init"))
    ok(run("import-units", run.file("units.csv", UNITS)))
    ok(run("import-targets", run.file("t.csv", "unit_code,period,target\nH1,2025-2030,400\nX1,2020-09-01..2025-08-31,9\n")))
    days = sorted(tuple(str(d) for d in row) for row in run.query("SELECT starts_on, ends_on FROM target"))
    assert days == [("2020-09-01", "2025-08-31"), ("2025-01-15", "2030-01-14")]
    ok(run("export", "--unit", "X1", "--period", "2020-2025", "--out", "x1.csv"))  # the stored days, not 15/1
    assert "2020-2025" in (run.folder / "x1.csv").read_text(encoding="utf-8-sig")


def test_example_config_loads_and_catalogs_match() -> None:
    config = load_config(ROOT / "config.example.toml", environ={})
    assert config.database.url == "sqlite:///data/bot.db" and config.bot.invite_days == 14
    assert str(config.bot.term_start) == "07-01"
    assert config.reminders.catch_up_hours == 12 and config.sandbox.port == 8080
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert "postgresql://user@127.0.0.1:5432/dbname" in example
    holidays = re.search(r"# holidays = (\[.*\])", example)
    assert holidays is not None
    assert parse_holidays(eval(holidays.group(1)), "reminders.holidays")[0] == (date(2027, 2, 5), date(2027, 2, 11))
    texts = Texts.load()
    vi = {k for k in texts.catalogs["vi"] if k.startswith("cli.")}
    en = {k for k in texts.catalogs["en"] if k.startswith("cli.") and not k.endswith("_one")}  # English plurals
    assert vi == en and "cli.no_token" in vi


@pytest.mark.parametrize("language", ["vi", "en"])
def test_a_bad_row_at_the_end_of_a_large_admissions_file_saves_nothing(
        sqlite_run: Callable[..., Run], language: str) -> None:
    """20,000 good rows then bad ones: every bad line named in the configured language, nothing saved;
    the good rows alone then go in (the index-rebuild path of a large import into an empty table)."""
    run = sqlite_run(f'[bot]\nlanguage = "{language}"\n')
    ok(run("init"))
    ok(run("import-units", run.file("units.csv", UNITS)))
    header = "unit_code,full_name,birth_year,gender,admitted_on\n"
    given = ("Hoa", "Páo", "Bình", "Mai", "Hùng", "Lan", "Dua", "Tám", "Chiến", "Thắng")
    good = "".join(
        f"C{1 + i % 3},Lò Thị {given[i % 10]} {given[i // 10 % 10]} {given[i // 100 % 10]} {given[i // 1000 % 10]},"
        f"{1970 + i // 10_000},nữ,{date(2000, 1, 1) + timedelta(days=i % 5000):%d/%m/%Y}\n" for i in range(20_000))
    bad = "NOPE,Lò Văn An,1990,nam,01/01/2020\nC1,Lò Văn Bình,1990,nam,31/02/2020\n"
    err = failed(run("import-admissions", run.file("big.csv", header + good + bad)))
    if language == "vi":
        assert "có lỗi ở 2 dòng, chưa lưu gì" in err
        assert "dòng 20002: không có đơn vị mã 'NOPE'" in err and "dòng 20003: ngày '31/02/2020' không có thật" in err
    else:
        assert "2 lines with problems, nothing was saved" in err
        assert "line 20002: no unit with code 'NOPE'" in err and "line 20003: date '31/02/2020' does not exist" in err
    assert run.query("SELECT count(*) FROM admission") == [(0,)]
    ok(run("import-admissions", run.file("good.csv", header + good)))
    assert run.query("SELECT count(*) FROM admission") == [(20_000,)]
    assert len(run.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'admission'")) == 7
