"""Speed and memory of `python -m bot import-admissions` on a large file, through the real command line.

    .venv/bin/python -m bench.imports --rows 200000
    .venv/bin/python -m bench.imports --rows 200000 --database-url postgresql://127.0.0.1:5432/test

Makes a fresh database (SQLite in a temporary folder; with a PostgreSQL URL, a throw-away database
`bench_imports_<random>` on that server, dropped at the end), writes a config.toml for it, runs
`python -m bot init` and `import-units` (1 province, 10 districts, 100 communes, `--cells` cells),
generates an admissions CSV of `--rows` valid rows spread over the cells, then runs
`python -m bot import-admissions FILE` twice in child processes: the first run creates every row,
the second skips every row (the re-import rule). For each run it prints the wall time, rows/s and
the peak RSS of that child process (os.wait4, i.e. resource.getrusage of the child), and checks the
exit code and the admission count. The child's CPU time (user + system) is printed as well: on a
shared machine the wall time depends on what else runs, so the load average is shown too. Nothing here is a test: run it by hand and copy the figures to
docs/benchmarks/imports.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from models.db import create_sync_engine_for
from models.entities import Admission

ROOT = Path(__file__).resolve().parent.parent
SURNAMES = ("Lò", "Giàng", "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vàng", "Sùng", "Lường", "Quàng", "Điêu")
MIDDLE = ("Thị", "Văn", "A", "Đức", "Minh", "Thanh", "Ngọc")
GIVEN = ("Hoa", "Páo", "Bình", "Mai", "Hùng", "Lan", "Dua", "Tám", "Chiến", "Thắng", "Hương", "Sáng", "Nga",
         "Khánh", "Quý", "Tuấn", "Phương", "Yến", "Dũng", "Sơn", "Hà", "Thu", "Ngân", "Hải", "Long", "Quang",
         "Trang", "Linh", "Huy", "Nam", "Việt", "Tâm", "Đạt", "Kiên", "Thảo", "Vân", "Anh", "Cường", "Duy", "Lợi")
ETHNICITIES = ("Thái", "Mông", "Kinh", "Khơ Mú", "Dao", "", "Tay", "Lao")


def write_units(path: Path, cells: int) -> list[str]:
    """Write the tree file; return the cell codes."""
    lines = ["code,name,parent_code,kind,villages", "T,Tỉnh ủy Điện Biên,,province,"]
    codes: list[str] = []
    communes = 100
    for d in range(10):
        lines.append(f"H{d},Huyện ủy {d},T,district,")
    for c in range(communes):
        lines.append(f"X{c},Đảng ủy xã {c},H{c % 10},committee,")
    for i in range(cells):
        code = f"C{i}"
        codes.append(code)
        lines.append(f"{code},Chi bộ bản {i},X{i % communes},cell,Bản {i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return codes


def write_admissions(path: Path, rows: int, cells: list[str], seed: int = 1) -> None:
    """Write `rows` valid, pairwise distinct admissions (unit, name, birth year, date differ)."""
    rng = random.Random(seed)
    start = date(2000, 1, 1)
    seen: set[tuple[str, str, int, date]] = set()
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("unit_code,full_name,birth_year,gender,admitted_on,ethnicity,decision_no\n")
        while len(seen) < rows:
            cell = rng.choice(cells)
            # 12 × 7 × 40 × 41 ≈ 138,000 names: as in life, many people share a name.
            second = rng.choice(GIVEN + ("",))
            name = f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)} {second}".strip()
            admitted = start + timedelta(days=rng.randrange(9000))
            born = admitted.year - rng.randint(18, 45)
            key = (cell, name, born, admitted)
            if key in seen:
                continue
            seen.add(key)
            day = admitted.strftime("%d/%m/%Y") if rng.random() < 0.7 else admitted.isoformat()
            sex = rng.choice(("nam", "nữ", "Nu", "male"))
            decision = f"{rng.randint(1, 999)}-QĐ/ĐU" if rng.random() < 0.5 else ""
            out.write(f"{cell},{name},{born},{sex},{day},{rng.choice(ETHNICITIES)},{decision}\n")


def run_cli(config: Path, *args: str) -> tuple[int, float, float, float, str]:
    """Run `python -m bot --config CONFIG ARGS` in a child.

    Returns (exit code, wall seconds, CPU seconds of the child, its peak RSS in MiB, its output)."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), *args], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    output = child.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    rss_mib = usage.ru_maxrss / 1024  # kilobytes on Linux
    return child.returncode, seconds, usage.ru_utime + usage.ru_stime, rss_mib, output.strip()


def _postgres_database(url: str) -> tuple[str, str]:
    """Create a throw-away database next to `url`; return (its URL, its name)."""
    import psycopg

    name = f"bench_imports_{uuid.uuid4().hex[:8]}"
    base = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False), name


def _drop_postgres(url: str, name: str) -> None:
    import psycopg

    base = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="admissions in the file (default 200000)")
    parser.add_argument("--cells", type=int, default=2_000, help="cells in the tree (default 2000)")
    parser.add_argument("--database-url", help="a PostgreSQL server to use (a throw-away database is made on it)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-imports-") as folder:
        tmp = Path(folder)
        dropped: tuple[str, str] | None = None
        if args.database_url and make_url(args.database_url).get_backend_name() == "postgresql":
            url, name = _postgres_database(args.database_url)
            dropped = (args.database_url, name)
        elif args.database_url:
            url = args.database_url
        else:
            url = f"sqlite:///{tmp / 'bench.db'}"
        try:
            return _run(tmp, url, args.rows, args.cells)
        finally:
            if dropped:
                _drop_postgres(*dropped)


def _run(tmp: Path, url: str, rows: int, cells: int) -> int:
    config = tmp / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n\n[bot]\nlanguage = "en"\n', encoding="utf-8")
    units_file, admissions_file = tmp / "units.csv", tmp / "admissions.csv"
    codes = write_units(units_file, cells)
    write_admissions(admissions_file, rows, codes)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"database {make_url(url).get_backend_name()}; {rows:,} rows ({admissions_file.stat().st_size / 2**20:.1f} MiB), "
          f"{cells:,} cells", flush=True)
    for step in (("init",), ("import-units", str(units_file))):
        code, seconds, _, _, output = run_cli(config, *step)
        if code != 0:
            print(f"{step[0]} failed ({code}):\n{output}")
            return 1
    failed = False
    for label, expected in (("first import (all created)", rows), ("second import (all skipped)", rows)):
        load = os.getloadavg()[0]
        code, seconds, cpu, rss, output = run_cli(config, "import-admissions", str(admissions_file))
        print(f"{label}: exit {code}, {seconds:.2f} s, {rows / seconds:,.0f} rows/s, CPU {cpu:.2f} s, "
              f"peak RSS {rss:.0f} MiB, load average before {load:.2f}"
              f" — {output.splitlines()[-1] if output else ''}", flush=True)
        engine = create_sync_engine_for(url)
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(Admission)).scalar_one()
        engine.dispose()
        if code != 0 or stored != expected:
            print(f"  expected exit 0 and {expected:,} admissions stored, found {stored:,}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
