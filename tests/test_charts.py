"""The progress chart drawn for a phone: portrait size, user names with "$", Vietnamese percent labels
with a no-break space, few month ticks, at most eight children, and the variant without a plan."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from PIL import Image

from core.i18n import format_percent
from models.periods import Period
from models.progress import percent as percent_of
from reports.charts import ChartData, ChartTexts, month_ticks, render_progress_chart, short_names

MONTHS = "T1,T2,T3,T4,T5,T6,T7,T8,T9,T10,T11,T12".split(",")
TEXTS = ChartTexts(
    title="Đảng bộ xã Nà Phặc — kế hoạch năm 2026", actual="Đã kết nạp (cộng dồn)", expected="Theo kế hoạch",
    target="Kế hoạch năm", months_axis="Tháng", count_axis="Số đảng viên kết nạp",
    children_title="Chi bộ trực thuộc: % kế hoạch năm", percent_axis="% kế hoạch năm đã đạt", no_target="chưa giao",
)
NO_PLAN_TEXTS = ChartTexts(**{**TEXTS.__dict__, "no_plan": "Chưa giao kế hoạch năm cho kỳ này.",
                              "children_admitted_title": "Chi bộ trực thuộc: số đã kết nạp"})
CELLS = ["Chi bộ thôn Khâu Slôm", "Chi bộ thôn Khuổi Ún", "Chi bộ thôn Cốc Lót", "Chi bộ thôn Đông Chợ",
         "Chi bộ thôn Nà Coóc", "Chi bộ thôn Pác Nặm", "Chi bộ thôn Bó Mạ", "Chi bộ thôn Nà Hoi",
         "Chi bộ thôn Lũng Vài", "Chi bộ thôn Phiêng Luông và bản Nà Pồng (sinh hoạt ghép)"]


def expected(target: int, months: int = 12) -> list[float]:
    return [target * (month + 1) / months for month in range(months)]


def year(children: list[tuple[str, float | None, bool]] | None = None) -> ChartData:
    return ChartData(months=MONTHS, actual=[2, 3, 5, 9, 12, 23], expected=expected(90), target=90,
                     children=children or [])


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png)).size


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """Collect every figure the chart saves, to look at what it drew."""
    figures: list[Figure] = []
    save = Figure.savefig

    def keep(self: Figure, *args: object, **kwargs: object) -> None:
        figures.append(self)
        save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    yield figures


def texts_of(figure: Figure) -> list[str]:
    return [artist.get_text() for artist in figure.findobj(Text) if artist.get_text() and artist.get_visible()]


def dashed_lines(figure: Figure) -> list[Line2D]:
    return [line for axes in figure.axes for line in axes.get_lines() if line.get_linestyle() == "--"]


def test_portrait_phone_sizes() -> None:
    """800 px wide (shown ≈ 360 px on a phone), taller than wide: 800 × 1,200 with children, 800 × 1,000 without."""
    assert png_size(render_progress_chart(year(), TEXTS)) == (800, 1000)
    children = [(name, 10.0 * i, i % 2 == 0) for i, name in enumerate(CELLS)]
    assert png_size(render_progress_chart(year(children), TEXTS)) == (800, 1200)
    term = ChartData(months=[f"{m % 12 + 1}/{20 + m // 12}" for m in range(60)], actual=list(range(0, 200, 5)),
                     expected=expected(400, 60), target=400, children=children[:3])
    assert png_size(render_progress_chart(term, TEXTS)) == (800, 1200)


def test_a_dollar_in_unit_names_renders(drawn: list[Figure]) -> None:
    """Unit names are user data: "$" must not switch on mathtext (which raises on "$x^^y$" or "$a{$")."""
    texts = ChartTexts(**{**TEXTS.__dict__, "title": "Chi bộ $x^^y$ — kế hoạch năm 2026"})
    data = year([("Chi bộ thôn A$B", 50.0, False), ("Chi bộ $a{$ y", None, False)])
    assert png_size(render_progress_chart(data, texts))[0] == 800
    shown = " ".join(texts_of(drawn[0]))
    assert "$x^^y$" in shown and "A$B" in shown and "$a{$ y" in shown


@pytest.mark.parametrize(("value", "label"), [
    (26.7, "26,7\u00a0%"), (0, "0,0\u00a0%"), (100, "100,0\u00a0%"), (53.75, "53,8\u00a0%"),  # half up, as /progress
    (1234.56, "1.234,6\u00a0%"), (12.04, "12,0\u00a0%"),
])
def test_percent_labels_are_vietnamese_with_a_no_break_space(value: float, label: str) -> None:
    assert format_percent(value) == label


def test_percent_of_rounds_as_progress_does() -> None:
    assert str(percent_of(215, 400)) == "53.8"
    assert str(percent_of(23, 90)) == "25.6"


def test_every_percent_on_the_chart_has_a_no_break_space(drawn: list[Figure]) -> None:
    data = year([("Chi bộ thôn Khâu Slôm", 26.7, True), ("Chi bộ thôn Nà Coóc", 133.3, False)])
    render_progress_chart(data, TEXTS)
    labels = [text for text in texts_of(drawn[0]) if "%" in text and text not in (TEXTS.children_title,)]
    assert "26,7\u00a0%" in labels and "133,3\u00a0%" in labels
    assert any("(25,6\u00a0%)" in text for text in labels)  # the last point: 23 of 90
    assert all(" %" not in text for text in labels), labels


def test_last_value_and_plan_are_written_on_the_chart(drawn: list[Figure]) -> None:
    data = ChartData(months=MONTHS, actual=[300 * m for m in range(1, 11)], expected=expected(2817), target=2817,
                     children=[])
    render_progress_chart(data, TEXTS)
    shown = texts_of(drawn[0])
    assert "3.000 (106,5\u00a0%)" in shown
    assert "Kế hoạch năm: 2.817" in shown
    assert len(dashed_lines(drawn[0])) == 1  # the expected line


@pytest.mark.parametrize("months", [1, 5, 12, 24, 30, 60, 61])
def test_at_most_six_month_ticks(months: int) -> None:
    ticks = month_ticks(months)
    assert 1 <= len(ticks) <= 6 and ticks[0] == 0 and all(0 <= t < months for t in ticks)


def test_term_ticks_fall_on_the_same_month_of_each_year() -> None:
    assert month_ticks(60) == [0, 12, 24, 36, 48]
    assert month_ticks(12) == [0, 2, 4, 6, 8, 10]


def test_drawn_ticks_are_few(drawn: list[Figure]) -> None:
    term = ChartData(months=[f"{m % 12 + 1}/{20 + m // 12}" for m in range(60)], actual=list(range(40)),
                     expected=expected(400, 60), target=400, children=[])
    render_progress_chart(term, TEXTS)
    labels = [label.get_text() for label in drawn[0].axes[0].get_xticklabels()]
    assert labels == ["1/20", "1/21", "1/22", "1/23", "1/24"]


def test_names_lose_their_common_words_and_are_cut() -> None:
    names = short_names(CELLS, 1.44)
    assert names[:3] == ["Khâu Slôm", "Khuổi Ún", "Cốc Lót"]
    assert names[-1].startswith("Phiêng Luông") and names[-1].endswith("…")
    assert short_names(["Chi bộ thôn Khâu Slôm"], 3.0) == ["Chi bộ thôn Khâu Slôm"]  # one child: nothing in common
    assert short_names(["Chi bộ thôn A", "Chi bộ thôn"], 3.0) == ["thôn A", "thôn"]  # the same words off all, never all of one


def test_at_most_eight_children_and_the_rest_counted(drawn: list[Figure]) -> None:
    children = [(name, 10.0 * i, False) for i, name in enumerate(CELLS)]
    render_progress_chart(year(children), TEXTS)
    shown = texts_of(drawn[0])
    assert [name for name in ("Khâu Slôm", "Nà Hoi", "Lũng Vài") if name in shown] == ["Khâu Slôm", "Nà Hoi"]
    assert sorted(text for text in shown if text.endswith("\u00a0%")) == [f"{10 * i},0\u00a0%" for i in range(8)]
    assert "… +2" in shown


def test_type_is_large_enough_for_a_phone(drawn: list[Figure]) -> None:
    """The figure is 3.6 in wide, shown 360 px wide: 9 pt is about 12.5 screen pixels. Nothing smaller."""
    render_progress_chart(year([(name, 50.0, False) for name in CELLS[:4]]), TEXTS)
    sizes = [text.get_fontsize() for text in drawn[0].findobj(Text) if text.get_text()]
    assert sizes and min(sizes) >= 9


def test_without_a_plan_the_counts_only_and_a_note(drawn: list[Figure]) -> None:
    children = [(name, None, False) for name in CELLS[:4]]
    data = ChartData(months=MONTHS, actual=[0, 1, 1, 2, 4], expected=None, target=None, children=children,
                     children_admitted=[0, 1, 2817, 1])
    png = render_progress_chart(data, NO_PLAN_TEXTS)
    assert png_size(png) == (800, 1200)
    figure = drawn[0]
    assert dashed_lines(figure) == []  # no expected line
    shown = texts_of(figure)
    assert NO_PLAN_TEXTS.no_plan in " ".join(shown).replace("\n", " ")
    assert NO_PLAN_TEXTS.children_admitted_title in shown
    assert "2.817" in shown and TEXTS.no_target not in shown
    assert not any("%" in text for text in shown)
    assert not any(text.startswith(TEXTS.target) for text in shown)  # no plan line either


def test_without_a_plan_or_counts_no_bars_that_all_say_no_target(drawn: list[Figure]) -> None:
    children = [(name, None, False) for name in CELLS[:4]]
    data = ChartData(months=MONTHS, actual=[0, 1, 1, 2, 4], expected=None, target=None, children=children)
    assert png_size(render_progress_chart(data, NO_PLAN_TEXTS)) == (800, 1000)
    assert len(drawn[0].axes) == 1
    assert TEXTS.no_target not in texts_of(drawn[0])


def test_old_callers_still_work_without_the_new_fields() -> None:
    """handlers/chart.py builds ChartTexts and ChartData with the original fields only."""
    data = ChartData(months=MONTHS, actual=[1], expected=None, target=None, children=[("Chi bộ thôn A", None, False)])
    assert png_size(render_progress_chart(data, TEXTS)) == (800, 1000)


# ---------------------------------------------------------------------------------- the words on it


async def test_year_chart_calls_the_annual_plan_ke_hoach_and_says_when_there_is_none(sessions, drawn) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from core.i18n import Texts
    from handlers.chart import chart_data
    from models.calendar import TermStart
    from models.periods import Period
    from models.units import unit_by_code
    from tests.harness import add_history, seed_world

    await seed_world(sessions)
    await add_history(sessions, "NL", 3, date(2025, 3, 1))
    await add_history(sessions, "KP", 1, date(2025, 9, 1))
    vi, en = Texts.load().for_language("vi"), Texts.load().for_language("en")
    async with sessions() as session:
        district = await unit_by_code(session, "PN")
        data, texts = await chart_data(session, vi, district, Period.year(2026), date(2026, 7, 1), True)
        assert data.target == 90 and texts.title.endswith("— kế hoạch năm 2026")
        assert texts.target == "Kế hoạch năm" and "chỉ tiêu" not in " ".join(
            (texts.target, texts.children_title, texts.percent_axis, texts.expected)).lower()
        # No plan for 2025: not "kế hoạch năm 2025" over bars that all say "chưa giao", but the counts.
        data, texts = await chart_data(session, vi, district, Period.year(2025), date(2026, 7, 1), True)
        assert data.target is None and texts.title.endswith("— kết nạp năm 2025")
        assert "kế hoạch năm 2025" not in texts.title and texts.no_plan == (
            "Chưa có kế hoạch năm 2025: biểu đồ chỉ ghi số đã kết nạp.")
        assert sorted(data.children_admitted or []) == [0, 4]  # Bộc Bố 3 + 1, Nhạn Môn 0
        render_progress_chart(data, texts)
        shown = texts_of(drawn[-1])
        assert texts.no_target not in shown and "4" in shown
        _, english = await chart_data(session, en, district, Period.year(2025), date(2026, 7, 1), True)
        assert english.title.endswith("— admissions in 2025") and english.no_plan.startswith("There is no annual plan")
        term = await chart_data(session, vi, district, Period.term(2025, 2030, TermStart(7, 1)), date(2026, 7, 1), True)
        assert term[1].target == "Chỉ tiêu nhiệm kỳ" and term[1].title.endswith("— chỉ tiêu nhiệm kỳ 2025-2030")
        assert term[0].months[0] == "7/25" and term[0].months[-1] == "6/30" and len(term[0].months) == 60
