"""import-admissions of large files: the file checked before the transaction writes, driver executemany
inserts in batches, bounded memory, all or nothing, the indexes SQLite rebuilds, the revision."""

from __future__ import annotations

import tracemalloc
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import models.importing.admissions as admissions_import
from models.admissions import person_key
from models.crypto import keys_from_environment
from models.db import session_factory
from models.entities import Admission, Unit
from models.importing import (
    ImportCounts,
    ImportProblems,
    import_admissions,
    import_units,
)
from models.revision import current_revision
from models.values import BLANK_LOOKING, MAX_NAME_LENGTH, clean_name, is_visible, name_key

NOW = datetime(2026, 6, 15, 3, 0, tzinfo=timezone.utc)
TODAY = date(2026, 6, 15)
HEADER = "unit_code,full_name,birth_year,gender,admitted_on,ethnicity,decision_no\n"
GIVEN = ("Hoa", "Páo", "Bình", "Mai", "Hùng", "Lan", "Dua", "Tám", "Chiến", "Thắng")

Sessions = async_sessionmaker[AsyncSession]


def _rows(count: int, cells: int = 20, start: int = 0) -> str:
    """Return `count` distinct valid rows (no header)."""
    lines = []
    for i in range(start, start + count):
        day = date(2000, 1, 1) + timedelta(days=i % 8000)
        name = f"Lò Thị {GIVEN[i % 10]} {GIVEN[(i // 10) % 10]} {GIVEN[(i // 100) % 10]} {GIVEN[(i // 1000) % 10]}"
        lines.append(f"C{i % cells},{name},{day.year - 25 - i // 8000},nữ,{day:%d/%m/%Y},Thái,{i}-QĐ/ĐU\n")
    return "".join(lines)


async def _tree(sessions: Sessions, cells: int = 20) -> None:
    tree = "code,name,parent_code,kind\nX,Đảng ủy xã,,committee\n" + "".join(
        f"C{i},Chi bộ {i},X,cell\n" for i in range(cells))
    async with sessions.begin() as s:
        await import_units(s, tree)


async def _count(sessions: Sessions) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(Admission)) or 0)


def _statements(engine: AsyncEngine) -> list[tuple[str, int]]:
    """Record (statement, number of parameter sets) of every INSERT INTO admission."""
    seen: list[tuple[str, int]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO ADMISSION"):
            seen.append((statement, len(parameters) if executemany else 1))

    return seen


async def test_rows_go_in_by_batches_of_executemany_without_orm_objects(
        sessions: Sessions, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admissions_import, "CHUNK_ROWS", 100)
    monkeypatch.setattr(admissions_import, "INSERT_ROWS", 100)
    await _tree(sessions)
    inserts = _statements(engine)
    async with sessions.begin() as s:
        assert await import_admissions(s, HEADER + _rows(450), TODAY, NOW) == ImportCounts(450, 450)
        # No Admission was made an ORM object (and so none is held by the session).
        assert not [obj for obj in s.identity_map.values() if isinstance(obj, Admission)]
    assert await _count(sessions) == 450
    # One statement per batch (PostgreSQL's driver may split one executemany into pages itself).
    assert sum(rows for _, rows in inserts) <= 450 + 5 and len(inserts) <= 5 * 2
    assert len(inserts) < 450 / 10


async def test_memory_stays_small_for_a_large_file(sessions: Sessions) -> None:
    await _tree(sessions)
    data = (HEADER + _rows(10_000)).encode("utf-8")
    tracemalloc.start()
    try:
        async with sessions.begin() as s:
            assert (await import_admissions(s, data, TODAY, NOW)).created == 10_000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # ORM objects for every row took about 60 MB here; the checked rows (tuples) and a key per row, a few.
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


async def test_a_bad_row_in_a_later_chunk_leaves_nothing_even_if_the_caller_commits(
        sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admissions_import, "CHUNK_ROWS", 7)
    await _tree(sessions)
    data = HEADER + _rows(30) + "C1,Lò Văn 2,1990,nam,01/01/2020,,\n" + _rows(10, start=30) + "NOPE,Lò Văn An,1990,nam,01/01/2020,,\n"
    async with sessions.begin() as s:
        with pytest.raises(ImportProblems) as info:
            await import_admissions(s, data, TODAY, NOW)
        # A caller that carries on and commits still finds nothing written (a savepoint).
    assert info.value.problems == [(32, "name_digits", "Lò Văn 2"), (43, "unknown_unit", "NOPE")]
    assert await _count(sessions) == 0


async def test_duplicates_are_found_across_chunks_in_the_file_and_in_the_database(
        sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admissions_import, "CHUNK_ROWS", 4)
    monkeypatch.setattr(admissions_import, "HISTORY_UNITS", 3)  # the stored rows of 20 cells in 7 queries
    await _tree(sessions)
    async with sessions.begin() as s:
        assert await import_admissions(s, HEADER + _rows(10), TODAY, NOW) == ImportCounts(10, 10)
    first = _rows(10).splitlines(keepends=True)
    # The same file again with ten new rows between: the old ten skipped, the new ten created.
    again = HEADER + "".join(first[:5]) + _rows(10, start=10) + "".join(first[5:])
    async with sessions.begin() as s:
        assert await import_admissions(s, again, TODAY, NOW) == ImportCounts(20, 10, skipped=10)
    # A stored row typed without diacritics and with a lower-case code (skipped), then again as
    # stored on the next line, in the next chunk: a duplicate within the file.
    repeated = first[0].replace("Lò Thị", "Lo Thi").replace("C0,", "c0,")
    with pytest.raises(ImportProblems) as info:
        async with sessions.begin() as s:
            await import_admissions(s, HEADER + _rows(11, start=100) + repeated + first[0], TODAY, NOW)
    assert info.value.problems == [(14, "duplicate_row", "13")]
    assert await _count(sessions) == 20


async def test_a_withdrawn_admission_does_not_make_the_row_a_duplicate(sessions: Sessions) -> None:
    await _tree(sessions)
    async with sessions.begin() as s:
        await import_admissions(s, HEADER + _rows(2), TODAY, NOW)
    async with sessions.begin() as s:
        first = await s.scalar(select(Admission).order_by(Admission.id).limit(1))
        first.withdrawn_at = NOW
    async with sessions.begin() as s:
        assert await import_admissions(s, HEADER + _rows(2), TODAY, NOW) == ImportCounts(2, 1, skipped=1)


async def test_the_import_bumps_the_data_revision_once_and_a_refused_file_does_not(engine: AsyncEngine) -> None:
    changes: list[int] = []
    sessions = session_factory(engine, on_change=lambda: changes.append(1))
    await _tree(sessions)
    async with sessions() as s:
        before = await current_revision(s)
    async with sessions.begin() as s:
        await import_admissions(s, HEADER + _rows(5), TODAY, NOW)
    async with sessions() as s:
        assert await current_revision(s) == before + 1
    assert len(changes) == 2  # the tree, then the admissions
    with pytest.raises(ImportProblems):
        async with sessions.begin() as s:
            await import_admissions(s, HEADER + "NOPE,Lò Văn An,1990,nam,01/01/2020,,\n", TODAY, NOW)
    async with sessions() as s:
        assert await current_revision(s) == before + 1
        assert await s.scalar(select(func.count()).select_from(Unit)) == 21


async def test_imported_rows_carry_every_column_an_admission_has(sessions: Sessions) -> None:
    await _tree(sessions)
    async with sessions.begin() as s:
        await import_admissions(s, HEADER + "c3,Lò Thị Hoa,1995,nữ,15/05/2023,Thai,125-QĐ/ĐU\n"
                                "C4,Giàng A Páo,1990,nam,2024-01-10,,\n", TODAY, NOW)
    async with sessions() as s:
        rows = {a.full_name: a for a in await s.scalars(select(Admission))}
        c3 = await s.scalar(select(Unit).where(Unit.code == "C3"))
    hoa, pao = rows["Lò Thị Hoa"], rows["Giàng A Páo"]
    assert (hoa.unit_id, hoa.unit_path, hoa.name_key, hoa.ethnicity, hoa.minority) == (
        c3.id, c3.path, keys_from_environment().name_key(person_key("Lo Thi Hoa", 1995)), "Thái", True)
    assert (hoa.decision_no, hoa.reported_at, hoa.source.value, hoa.withdrawn_at) == ("125-QĐ/ĐU", NOW, "import", None)
    assert (pao.ethnicity, pao.minority, pao.youth_union, pao.report_ref, pao.reported_by_id) == (
        None, False, None, None, None)


def _indexes(sync_conn) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted(sync_conn.execute(text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'admission'")).all())


async def test_a_bad_row_at_the_end_of_a_large_file_leaves_nothing(
        sessions: Sessions, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admissions_import, "REBUILD_MIN_ROWS", 100)  # the path a 200,000-row file takes on SQLite
    await _tree(sessions)
    async with sessions() as s:
        before = await current_revision(s)
    inserts = _statements(engine)
    good = _rows(20_000)
    for bad, expected in (
        ("C1,Lò Văn An,1990,nam,31/02/2020,,\n", (20_002, "impossible_date", "31/02/2020")),
        ("NOPE,Lò Văn An,1990,nam,01/01/2020,,\n", (20_002, "unknown_unit", "NOPE")),
        (good.splitlines(keepends=True)[0].replace("C0,", "c0,"), (20_002, "duplicate_row", "2")),
    ):
        with pytest.raises(ImportProblems) as info:
            async with sessions.begin() as s:
                await import_admissions(s, (HEADER + good + bad).encode("utf-8"), TODAY, NOW)
        assert info.value.problems == [expected]
        assert await _count(sessions) == 0
    assert inserts == []  # nothing was even tried: every row is checked before the first insert
    async with sessions() as s:
        assert await current_revision(s) == before


async def test_the_file_is_checked_before_the_transaction_runs_its_first_statement(
        sessions: Sessions, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the first statement takes the write lock (BEGIN IMMEDIATE): none while parsing."""
    await _tree(sessions)
    order: list[str] = []
    event.listen(engine.sync_engine, "begin", lambda conn: order.append("begin"))
    parse = admissions_import._parse_admissions

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        order.append("parse")
        result = parse(*args, **kwargs)
        order.append("parsed")
        return result

    monkeypatch.setattr(admissions_import, "_parse_admissions", watched)
    async with sessions.begin() as s:
        await import_admissions(s, HEADER + _rows(50), TODAY, NOW)
    assert order == ["parse", "parsed", "begin"]


async def test_sqlite_rebuilds_the_indexes_as_they_were_only_when_the_table_is_small(
        sessions: Sessions, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    monkeypatch.setattr(admissions_import, "REBUILD_MIN_ROWS", 40)
    await _tree(sessions)
    async with engine.connect() as conn:
        indexes = await conn.run_sync(_indexes)
    assert len(indexes) == 7  # six of the model's, and the unique constraint's own
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: statements.append(statement.split(" (")[0]))
    async with sessions.begin() as s:
        assert (await import_admissions(s, HEADER + _rows(50), TODAY, NOW)).created == 50
    assert sum(statement.startswith("DROP INDEX") for statement in statements) == 6
    assert sum(statement.startswith("CREATE INDEX") for statement in statements) == 6
    async with engine.connect() as conn:
        assert await conn.run_sync(_indexes) == indexes
        assert (await conn.execute(text("PRAGMA integrity_check"))).scalar() == "ok"
        plan = (await conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT id FROM admission WHERE name_key = 'x' AND birth_year = 1990"))).all()
        assert "ix_admission_name_key" in str(plan)
    # 45 more rows into a table of 50: inserted into the indexes as they are.
    statements.clear()
    async with sessions.begin() as s:
        assert (await import_admissions(s, HEADER + _rows(45, start=50), TODAY, NOW)).created == 45
    assert not [statement for statement in statements if "INDEX" in statement]
    assert await _count(sessions) == 95


async def test_a_database_error_half_way_leaves_no_rows_and_every_index(
        sessions: Sessions, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admissions_import, "REBUILD_MIN_ROWS", 10)
    monkeypatch.setattr(admissions_import, "INSERT_ROWS", 10)
    await _tree(sessions)
    async with engine.connect() as conn:
        indexes = await conn.run_sync(_indexes) if engine.dialect.name == "sqlite" else None
    inserts = _statements(engine)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def fail(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if len(inserts) == 3 and statement.startswith("INSERT INTO admission"):
            raise RuntimeError("disk full")  # the third batch: two are in

    async with sessions.begin() as s:
        with pytest.raises(RuntimeError):
            await import_admissions(s, HEADER + _rows(50), TODAY, NOW)
        # A caller that carries on and commits still finds nothing written (a savepoint).
    event.remove(engine.sync_engine, "before_cursor_execute", fail)
    assert len(inserts) == 3 and await _count(sessions) == 0
    if indexes is not None:
        async with engine.connect() as conn:
            assert await conn.run_sync(_indexes) == indexes


def _reference_clean_name(text: str) -> str:
    """models.values.clean_name before its fast path (the rules it must still follow)."""
    import re
    import unicodedata

    name = " ".join(unicodedata.normalize("NFC", text or "").split())
    if not name or not is_visible(name):
        raise ValueError("empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError("too_long")
    if not name.replace(" ", "").isalpha() and any(ch.isdigit() for ch in name):
        raise ValueError("digits")
    if not re.match(r"^[^\W\d_]+(?:[ '\-.][^\W\d_]+)*$", name) or len(name.replace(" ", "")) < 2:
        raise ValueError("letters_only")
    return name


def _outcome(parse, text: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return "= " + parse(text)
    except ValueError as exc:
        return "! " + str(exc)


NAMES = ["Lò Thị Hoa", "Lo Thi Hoa", " Giàng  A\tPáo ", "O'Neil Đức", "Anne-Marie", "ΟΔΥΣΣΕΥΣ Σ", "Ǆ ǅ",
         "\u3164\u3164", "A", "Ab" * 61, "Lò Văn 2", "Lò Văn ½", "x²", "\u200bHoa", "Hoa\u0301", "ﬁ ﬂ", "İ Ⅻ",
         "Hoa\u115fLan", "", "  "]


@given(st.lists(st.sampled_from([*NAMES, " ", "a", "Đ", "\u0301", "'", "-", "2", *sorted(BLANK_LOOKING)]),
                max_size=8).map("".join) | st.text(max_size=30))
def test_clean_name_and_the_word_by_word_name_key_agree_with_the_rules(text: str) -> None:
    assert _outcome(clean_name, text) == _outcome(_reference_clean_name, text)
    try:
        name = clean_name(text)
    except ValueError:
        return
    assert admissions_import._name_key(name, {}) == name_key(name)


def test_the_sample_names_agree_too() -> None:
    for text in NAMES:
        test_clean_name_and_the_word_by_word_name_key_agree_with_the_rules.hypothesis.inner_test(text)  # type: ignore[attr-defined]
