"""`python -m bot remind-now` as a real subprocess against the fake Bot API, on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert, select

from models.db import create_sync_engine_for
from models.entities import Assignment, Person, Role, Unit

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:" + "A" * 35
UNITS = """code,name,parent_code,kind,villages
H1,Huyện ủy Mường Chà,,district,
X1,Đảng ủy xã Sá Tổng,H1,committee,
C1,Chi bộ bản Huổi Lếch,X1,cell,Huổi Lếch
C2,Chi bộ bản Nậm Chua,X1,cell,Nậm Chua
"""


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(folder / "config.toml"), *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=60)


def add_person(url: str, telegram_id: int, unit_code: str, role: Role) -> None:
    engine = create_sync_engine_for(url)
    with engine.begin() as conn:
        unit_id = conn.execute(select(Unit.id).where(Unit.code == unit_code)).scalar_one()
        person_id = conn.execute(insert(Person).values(
            telegram_id=telegram_id, display_name="Test", language="vi", active=True,
            registered_at=datetime(2026, 6, 1, tzinfo=timezone.utc)).returning(Person.id)).scalar_one()
        conn.execute(insert(Assignment).values(person_id=person_id, unit_id=unit_id, role=role))
    engine.dispose()


def test_remind_now_sends_once_and_as_of_picks_the_week(database_url: str, api_server, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{api_server.base_url}"\n'
        f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    (tmp_path / "units.csv").write_text(UNITS, encoding="utf-8")
    assert run(tmp_path, "init").returncode == 0  # migrations, 0002 included
    assert run(tmp_path, "import-units", "units.csv").returncode == 0
    for user_id, code, role in ((1001, "C1", Role.SECRETARY), (1002, "C2", Role.SECRETARY),
                                (2001, "X1", Role.COMMITTEE)):
        api_server.state.add_user(user_id)
        add_person(database_url, user_id, code, role)

    first = run(tmp_path, "remind-now", "--as-of", "2026-07-03")
    assert first.returncode == 0, first.stderr
    assert "Nhắc việc, tuần bắt đầu 29/06/2026: 2 người nhận — đã gửi 2" in first.stdout
    again = run(tmp_path, "remind-now", "--as-of", "2026-07-03")
    assert again.returncode == 0 and "đã gửi 0, bỏ qua (đã có trong sổ gửi) 2" in again.stdout
    sends = api_server.state.calls_to("sendMessage")
    assert sorted(c.chat_id for c in sends) == [1001, 1002]
    assert "Nhắc việc tuần 29/06–05/07/2026" in sends[0].params["text"]

    digest = run(tmp_path, "remind-now", "--kind", "digest", "--as-of", "2026-07-06")
    assert digest.returncode == 0 and "đã gửi 1" in digest.stdout
    [sent] = api_server.state.calls_to("sendMessage", 2001)
    assert "Tổng hợp tuần 29/06–05/07/2026 — Đảng ủy xã Sá Tổng" in sent.params["text"]
    assert "Báo cáo tuần trước: 0/2 chi bộ (0,0\u00a0%)" in sent.params["text"]

    assert run(tmp_path, "remind-now", "--kind", "weekly").returncode == 2
