"""Working-day arithmetic and the legal deadlines: weekends, Tết, configured holidays, year ends."""

from __future__ import annotations

from datetime import date

import pytest

from core.config import ConfigError, parse_config
from models.workdays import (
    DeadlineRules,
    WorkCalendar,
    add_months,
    ceremony_due,
    decision_due,
    probation_ends,
    recognition_due,
)

CAL = WorkCalendar()
RULES = DeadlineRules()


def test_weekends_are_skipped_and_the_start_day_is_not_counted() -> None:
    friday = date(2026, 6, 5)
    assert CAL.add_working_days(friday, 0) == friday
    assert CAL.add_working_days(friday, 1) == date(2026, 6, 8)  # Monday
    assert CAL.add_working_days(date(2026, 6, 6), 1) == date(2026, 6, 8)  # from a Saturday
    assert CAL.add_working_days(friday, 5) == date(2026, 6, 12)
    assert CAL.working_days_between(friday, date(2026, 6, 12)) == 5
    assert CAL.working_days_between(friday, friday) == 0
    with pytest.raises(ValueError):
        CAL.add_working_days(friday, -1)


def test_lunar_tet_is_not_a_working_day() -> None:
    # Tết Bính Ngọ: 16–20/2/2026 (Monday to Friday) off, from the package, not a hand-written list.
    for day in range(16, 21):
        assert not CAL.is_working_day(date(2026, 2, day))
    assert CAL.is_working_day(date(2026, 2, 13)) and CAL.is_working_day(date(2026, 2, 23))
    assert CAL.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 23)
    # Tết Đinh Mùi 2027 (4–10/2) too: the package knows lunar years.
    assert not CAL.is_working_day(date(2027, 2, 8))
    assert CAL.add_working_days(date(2027, 2, 3), 1) == date(2027, 2, 11)


def test_configured_holidays_are_skipped_to_their_last_day() -> None:
    cal = WorkCalendar(((date(2026, 6, 9), date(2026, 6, 10)),))
    assert not cal.is_working_day(date(2026, 6, 9)) and not cal.is_working_day(date(2026, 6, 10))
    assert cal.is_working_day(date(2026, 6, 11))
    assert cal.add_working_days(date(2026, 6, 8), 1) == date(2026, 6, 11)
    assert CAL.add_working_days(date(2026, 6, 8), 1) == date(2026, 6, 9)


def test_year_end_and_new_year() -> None:
    # 31/12/2026 is a Thursday; 1/1/2027 (Friday) is New Year's Day; so the next working day is Monday 4/1.
    assert CAL.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)
    assert CAL.add_working_days(date(2026, 12, 30), 1) == date(2026, 12, 31)


def test_deadlines_of_the_process() -> None:
    # Decision 9/1/2026 (Friday): the 30th working day would be 20/2 without Tết (16–20/2); it is 27/2.
    assert ceremony_due(CAL, RULES, date(2026, 1, 9)) == date(2026, 2, 27)
    assert ceremony_due(CAL, RULES, date(2026, 1, 8)) == date(2026, 2, 26)
    assert ceremony_due(CAL, RULES, date(2026, 1, 2)) == date(2026, 2, 13)  # all before Tết
    assert ceremony_due(WorkCalendar(), DeadlineRules(ceremony_working_days=1), date(2026, 2, 13)) == date(2026, 2, 23)
    assert decision_due(CAL, RULES, date(2026, 3, 2)) == CAL.add_working_days(date(2026, 3, 2), 60)
    assert probation_ends(RULES, date(2026, 7, 1)) == date(2027, 7, 1)
    assert probation_ends(RULES, date(2024, 2, 29)) == date(2025, 2, 28)
    assert recognition_due(CAL, RULES, date(2026, 7, 1)) == CAL.add_working_days(date(2027, 7, 1), 30)


def test_months_clamp_to_the_end_of_shorter_months() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 30), 1) == date(2026, 12, 30)
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)


def test_pipeline_configuration_defaults_and_errors() -> None:
    config = parse_config({}, {})
    assert config.pipeline.rules == RULES and config.pipeline.forget_after_days == 730
    assert parse_config({"pipeline": {"decision_working_days": 90}}, {}).pipeline.rules.decision_working_days == 90
    with pytest.raises(ConfigError, match="pipeline.forget_after_days"):
        parse_config({"pipeline": {"forget_after_days": 0}}, {})
    with pytest.raises(ConfigError, match="pipeline.nonsense"):
        parse_config({"pipeline": {"nonsense": 1}}, {})
