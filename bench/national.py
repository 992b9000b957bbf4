"""Generate a national-size unit tree with admissions, on SQLite or PostgreSQL, fast (bulk inserts).

    .venv/bin/python -m bench.national --url sqlite:////tmp/national.db
    .venv/bin/python -m bench.national --url postgresql://127.0.0.1:5432/bench_national --create

Shape (scale 1.0): one national root, 63 provinces, 700 districts, 55,000 grassroots committees,
270,000 cells; 1,000,000 admissions from 1/7/2021 to 30/6/2026 (1 % withdrawn, 5 % recorded at the
committee itself); an annual plan for 2026 on every unit (cells 0–3, parents the sum of their
children) and a 2025-2030 term target on the root, provinces and districts. Deterministic (seeded).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy.engine import make_url

from core.config import BotSettings
from models import Base
from models.calendar import TermStart
from models.admissions import person_key
from models.crypto import KEY_ENV, Keys, keys_from_environment
from models.db import create_sync_engine_for
from models.periods import Period

LEVELS = (("province", 63, "Tỉnh ủy", "T"), ("district", 700, "Huyện ủy", "H"),
          ("committee", 55_000, "Đảng ủy xã", "X"), ("cell", 270_000, "Chi bộ thôn", "C"))
ADMISSIONS = 1_000_000
FIRST_DAY, LAST_DAY = date(2021, 7, 1), date(2026, 6, 30)
SURNAMES = ("Nguyễn", "Trần", "Lò", "Hà", "Nông", "Triệu", "Lê", "Phạm", "Vàng", "Sùng")
ETHNICITIES = (("Kinh", False),) * 17 + (("Tày", True), ("Thái", True), ("Mông", True))


def build_units(scale: float) -> tuple[list[tuple], dict[str, list[int]]]:
    """Return unit rows (id, code, name, kind, parent_id, path, cell_count) and the ids of each level."""
    rows: list[tuple] = [(1, "VN", "Toàn quốc", "province", None, "/1/")]
    paths = {1: "/1/"}
    levels: dict[str, list[int]] = {"root": [1]}
    parents = [1]
    next_id = 2
    for kind, count, label, prefix in LEVELS:
        count = max(len(parents), int(count * scale)) if kind != "province" else count
        ids = []
        for i in range(count):
            parent = parents[i * len(parents) // count]
            unit_id = next_id
            next_id += 1
            paths[unit_id] = f"{paths[parent]}{unit_id}/"
            rows.append((unit_id, f"{prefix}{unit_id}", f"{label} {unit_id}", kind, parent, paths[unit_id]))
            ids.append(unit_id)
        levels[kind] = ids
        parents = ids
    cells = dict.fromkeys((row[0] for row in rows), 0)  # cells per subtree, as models.units keeps them
    parent_of = {row[0]: row[4] for row in rows}
    for cell in levels["cell"]:
        up: int | None = cell
        while up is not None:
            cells[up] += 1
            up = parent_of[up]
    return [(*row, cells[row[0]]) for row in rows], levels


def build_targets(units: list[tuple], levels: dict[str, list[int]], rng: random.Random,
                  term_start: TermStart) -> list[tuple]:
    """Return target rows (unit_id, start, end, starts_on, ends_on, value): 2026 plans summed upwards,
    2025-2030 terms (from `term_start`) high up."""
    parent_of = {row[0]: row[4] for row in units}
    plan = {cell: rng.randint(0, 3) for cell in levels["cell"]}
    for kind in ("committee", "district", "province", "root"):
        for unit_id in levels[kind]:
            plan.setdefault(unit_id, 0)
    for unit_id in sorted(plan, reverse=True):  # children have larger ids than their parents
        parent = parent_of.get(unit_id)
        if parent is not None:
            plan[parent] += plan[unit_id]
    year, term = Period.year(2026), Period.term(2025, 2030, term_start)
    rows = [_target_row(unit_id, year, value) for unit_id, value in plan.items()]
    for kind in ("root", "province", "district"):
        rows += [_target_row(unit_id, term, int(plan[unit_id] * 5.5)) for unit_id in levels[kind]]
    return rows


def admissions(count: int, units: list[tuple], levels: dict[str, list[int]], rng: random.Random,
               keys: Keys) -> Iterator[tuple]:
    """Yield admission rows in the column order of ADMISSION_COLUMNS, names and ethnicities sealed
    and name keys hashed as the bot stores them (models.crypto)."""
    path_of = {row[0]: row[5] for row in units}
    cells, committees = levels["cell"], levels["committee"]
    span = (LAST_DAY - FIRST_DAY).days + 1
    withdrawn = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
    for i in range(1, count + 1):
        unit = rng.choice(committees) if rng.random() < 0.05 else rng.choice(cells)
        on = FIRST_DAY + timedelta(days=rng.randrange(span))
        ethnicity, minority = rng.choice(ETHNICITIES)
        name = f"{rng.choice(SURNAMES)} Văn {i}"
        youth = rng.random() < 0.4
        born = on.year - rng.randint(18, 45)
        yield (i, unit, path_of[unit], keys.encrypt(name), keys.name_key(person_key(name, born)), born,
               "female" if rng.random() < 0.45 else "male", keys.encrypt(ethnicity), minority, youth, f"{i}-QĐ/HU", on,
               "import", datetime(on.year, on.month, on.day, 9, tzinfo=timezone.utc),
               withdrawn if rng.random() < 0.01 else None)


TARGET_COLUMNS = ("unit_id", "start_year", "end_year", "starts_on", "ends_on", "value")


def _target_row(unit_id: int, period: Period, value: int) -> tuple:
    return unit_id, period.start_year, period.end_year, period.first_day, period.last_day, value


ADMISSION_COLUMNS = ("id", "unit_id", "unit_path", "full_name", "name_key", "birth_year", "sex", "ethnicity",
                     "minority", "youth_union", "decision_no", "admitted_on", "source", "reported_at", "withdrawn_at")


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def load_sqlite(path: str, units: list[tuple], targets: list[tuple], rows: Iterator[tuple]) -> None:
    """Bulk-load with sqlite3 executemany in one transaction."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO unit (id, code, name, kind, parent_id, path, cell_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     units)
    conn.executemany(f"INSERT INTO target ({', '.join(TARGET_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
                     ([_sqlite_value(v) for v in row] for row in targets))
    sql = f"INSERT INTO admission ({', '.join(ADMISSION_COLUMNS)}) VALUES ({', '.join('?' * len(ADMISSION_COLUMNS))})"
    conn.executemany(sql, ([_sqlite_value(v) for v in row] for row in rows))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def load_postgresql(url: str, units: list[tuple], targets: list[tuple], rows: Iterator[tuple]) -> None:
    """Bulk-load with COPY, then VACUUM ANALYZE (index-only scans need the visibility map)."""
    import psycopg

    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY unit (id, code, name, kind, parent_id, path, cell_count) FROM STDIN") as copy:
                for row in units:
                    copy.write_row(row)
            with cur.copy(f"COPY target ({', '.join(TARGET_COLUMNS)}) FROM STDIN") as copy:
                for row in targets:
                    copy.write_row(row)
            with cur.copy(f"COPY admission ({', '.join(ADMISSION_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            for table in ("unit", "target", "admission"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def create_database(url: str) -> None:
    """Create the PostgreSQL database named in `url` (dropping an old one) via the server's `postgres` db."""
    import psycopg

    parsed = make_url(url)
    admin = parsed.set(database="postgres").render_as_string(hide_password=False).replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{parsed.database}"')


def generate(url: str, scale: float = 1.0, count: int | None = None, seed: int = 2026,
             term_start: TermStart = BotSettings.term_start) -> dict[str, list[int]]:
    """Create the schema at `url` and fill it, terms beginning on `term_start`; return the unit ids of each level."""
    rng = random.Random(seed)
    started = time.perf_counter()
    units, levels = build_units(scale)
    targets = build_targets(units, levels, rng, term_start)
    keys = keys_from_environment()
    if keys is None:
        raise SystemExit(f"{KEY_ENV}: set it to the key the benchmark's database is sealed with "
                         "(python -c 'from models.crypto import new_secret_text; print(new_secret_text())')")
    engine = create_sync_engine_for(url, keys)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    engine.dispose()
    rows = admissions(count if count is not None else int(ADMISSIONS * scale), units, levels, rng, keys)
    if make_url(url).get_backend_name() == "sqlite":
        load_sqlite(make_url(url).database or "", units, targets, rows)
    else:
        load_postgresql(url.replace("postgresql+psycopg://", "postgresql://"), units, targets, rows)
    print(f"{url}: {len(units):,} units, {len(targets):,} targets, admissions loaded in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    return levels


def main() -> None:
    """Parse the command line and generate."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="sqlite:////tmp/national.db or postgresql://…/bench_national")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the national size (default 1.0)")
    parser.add_argument("--create", action="store_true", help="(PostgreSQL) drop and create the database first")
    parser.add_argument("--term-start", type=TermStart.parse, default=BotSettings.term_start, metavar="MM-DD",
                        help="the day terms begin, as [bot] term_start (default: the configuration's default)")
    args = parser.parse_args()
    if args.create:
        create_database(args.url)
    generate(args.url, args.scale, term_start=args.term_start)


if __name__ == "__main__":
    main()
