"""Progress chart as PNG: cumulative admissions against the plan's expected line, children as bars."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ChartTexts:
    """Every label of the chart, already in the reader's language."""

    title: str
    actual: str  # legend: cumulative admissions
    expected: str  # legend: what the plan expects by each month
    target: str  # legend: the target line
    months_axis: str
    count_axis: str
    children_title: str
    percent_axis: str
    no_target: str  # shown instead of a bar for a child without a target


@dataclass(frozen=True)
class ChartData:
    """What the chart shows: month labels, cumulative actual (up to today), expected line and children."""

    months: Sequence[str]
    actual: Sequence[int]  # cumulative, only for months that have started
    expected: Sequence[float] | None  # cumulative plan at each month end, None without a target
    target: int | None
    children: Sequence[tuple[str, float | None, bool]]  # (name, percent of target or None, behind schedule)


# Layout in inches (fixed, computed here: matplotlib's constrained layout costs a third of the render).
WIDTH = 9.0
TOP_BLOCK = 5.2  # the cumulative chart with its title, tick labels and axis label
ROW = 0.45  # one child's bar
MARGIN = 0.3
FONT = {"font.family": "DejaVu Sans", "font.size": 13, "text.parse_math": False}


def render_progress_chart(data: ChartData, texts: ChartTexts, *, max_children: int = 15) -> bytes:
    """Return a PNG (900 px wide, about 1,300 px tall with children, readable on a phone) of the unit's progress."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # Unit names are user data: "$" must not switch on mathtext (ValueError on unbalanced "$").
    with matplotlib.rc_context(FONT):
        children = list(data.children)[:max_children]
        bars = ROW * len(children) + 1.6 if children else 0.0
        height = TOP_BLOCK + bars
        figure = Figure(figsize=(WIDTH, height), dpi=100)

        def box(left: float, bottom: float, top: float) -> list[float]:
            """Return an axes rectangle in figure fractions from inches."""
            return [left / WIDTH, bottom / height, (WIDTH - MARGIN - left) / WIDTH, (top - bottom) / height]

        # Room on the left for the y tick labels (the largest count) and the axis label.
        largest = max([data.target or 0, *data.actual, *(data.expected or ()), 1])
        left = max(1.0, _text_width([f"{int(largest * 1.12):,}"]) + 0.5)
        _cumulative(figure.add_axes(box(left, bars + 1.25, height - 0.5)), data, texts)
        if children:
            names = [_short(name) for name, _, _ in children]
            left = min(_text_width(names) + 0.35, WIDTH / 2)
            _children(figure.add_axes(box(left, 0.8, bars - 0.5)), children, texts)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _text_width(lines: Sequence[str]) -> float:
    """Return the width in inches of the widest line at the chart's font size."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    font = FontProperties(family=FONT["font.family"], size=FONT["font.size"])
    measure = TextToPath()
    return max(measure.get_text_width_height_descent(line, font, ismath=False)[0] for line in lines) / 72


def _cumulative(ax, data: ChartData, texts: ChartTexts) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.ticker import MaxNLocator

    positions = list(range(len(data.months)))
    ax.set_title(texts.title, fontsize=16, fontweight="bold", loc="left")
    if data.expected is not None:
        ax.plot(positions, list(data.expected), linestyle="--", color="#888888", linewidth=2, label=texts.expected)
    if data.target is not None:
        ax.axhline(data.target, color="#2e7d32", linewidth=1.2, linestyle=":", label=texts.target)
    shown = list(data.actual)
    ax.plot(positions[: len(shown)], shown, marker="o", color="#c62828", linewidth=3, label=texts.actual)
    if shown:
        ax.annotate(_count(shown[-1]), (len(shown) - 1, shown[-1]), textcoords="offset points", xytext=(6, 6),
                    fontsize=13, fontweight="bold", color="#c62828")
    step = max(1, len(positions) // 12)
    ticks = positions[::step]
    ax.set_xticks(ticks, [data.months[i] for i in ticks], rotation=45 if len(ticks) > 8 else 0,
                  ha="right" if len(ticks) > 8 else "center", rotation_mode="anchor")
    ax.set_xlabel(texts.months_axis)
    ax.set_ylabel(texts.count_axis)
    top = max([data.target or 0, *shown, 1])
    ax.set_ylim(0, top * 1.12)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 2,5 ticks
    ax.yaxis.set_major_formatter(lambda value, _position: _count(value))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=12, frameon=False)


def _children(ax, children: list[tuple[str, float | None, bool]], texts: ChartTexts) -> None:  # type: ignore[no-untyped-def]
    names = [_short(name) for name, _, _ in children][::-1]
    values = [value for _, value, _ in children][::-1]
    positions = list(range(len(names)))
    colors = ["#c62828" if behind else "#2e7d32" for _, _, behind in children][::-1]
    ax.barh(positions, [v or 0 for v in values], color=colors)
    for y, value in zip(positions, values):
        label = texts.no_target if value is None else f"{value:.1f}".replace(".", ",") + " %"
        ax.text((value or 0) + 1, y, label, va="center", fontsize=12)
    ax.set_yticks(positions, names)
    ax.axvline(100, color="#2e7d32", linewidth=1, linestyle=":")
    top = max([v for v in values if v is not None] + [100])
    ax.set_xlim(0, top * 1.25)
    ax.set_title(texts.children_title, fontsize=15, fontweight="bold", loc="left")
    ax.set_xlabel(texts.percent_axis)


def _count(value: float) -> str:
    """Return a whole count the Vietnamese way, as the rest of the chart (2.817)."""
    return f"{int(round(value)):,}".replace(",", ".")


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
