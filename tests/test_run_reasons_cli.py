"""`remind-now` says why an empty run sent nothing, as a real subprocess against the fake Bot API."""

from __future__ import annotations

from pathlib import Path

from core.i18n import Texts
from tests.test_reminders_cli import TOKEN, UNITS, run


def test_remind_now_names_the_reason_of_an_empty_run(database_url: str, api_server, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{api_server.base_url}"\n'
        f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    (tmp_path / "units.csv").write_text(UNITS, encoding="utf-8")
    assert run(tmp_path, "init").returncode == 0
    assert run(tmp_path, "import-units", "units.csv").returncode == 0
    texts = Texts.load()
    for kind, reason in (("reminder", "all_reported"), ("digest", "no_committee")):
        done = run(tmp_path, "remind-now", "--kind", kind, "--as-of", "2026-07-06")
        assert done.returncode == 0, done.stderr
        assert texts.get(f"weekly.nobody_{reason}", "vi") in done.stdout, done.stdout
