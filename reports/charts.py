"""Progress chart as PNG, drawn for a phone: cumulative admissions against the plan's expected line,
children as bars.

Telegram shows a photo about 360 px wide on a phone, so the chart is portrait, 3.6 in wide at 800 px
(one figure inch is about 100 px on the screen), with large type and few labels: at most six month
ticks, the last cumulative value written on the line, the plan written on its line instead of a
legend entry, and at most eight children with shortened names and a value label each.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from core.i18n import format_percent
from models.progress import percent


@dataclass(frozen=True)
class ChartTexts:
    """Every label of the chart, already in the reader's language."""

    title: str
    actual: str  # legend: cumulative admissions
    expected: str  # legend: what the plan expects by each month
    target: str  # label of the plan's line ("Kế hoạch năm: 90")
    months_axis: str  # kept for callers; the month ticks speak for themselves on a phone
    count_axis: str  # kept for callers; heading of the children's count bars when no title for them is given
    children_title: str
    percent_axis: str  # kept for callers; the bars carry their own value labels
    no_target: str  # shown instead of a bar for a child without a target
    no_plan: str | None = None  # note line when the unit has no plan for the period ("no plan assigned")
    children_admitted_title: str | None = None  # heading of the children's count bars without a plan


@dataclass(frozen=True)
class ChartData:
    """What the chart shows: month labels, cumulative actual (up to today), expected line and children."""

    months: Sequence[str]
    actual: Sequence[int]  # cumulative, only for months that have started
    expected: Sequence[float] | None  # cumulative plan at each month end, None without a target
    target: int | None  # None: no plan for the period, the chart shows the counts only
    children: Sequence[tuple[str, float | None, bool]]  # (name, percent of target or None, behind schedule)
    # Admitted per child, in the order of `children`. Without a plan the bars show these counts
    # (without them and without any child's target, the bars are left out rather than all saying no_target).
    children_admitted: Sequence[int] | None = None


# Geometry in inches: the figure is 3.6 in wide and shown ≈ 360 px wide, so 1 in ≈ 100 screen px and
# 1 pt ≈ 1.4 screen px whatever the resolution; 800 px across (222 dpi) keeps it sharp on a 2x screen.
WIDTH = 3.6
PIXELS_WIDE = 800
DPI = PIXELS_WIDE / WIDTH
HEIGHT = 5.4  # with children: 800 × 1,200 px (2:3)
HEIGHT_ALONE = 4.5  # without children: 800 × 1,000 px (4:5)
SIDE = 0.14  # left and right margin
MAX_CHILDREN = 8
MAX_MONTH_TICKS = 6
TICK_STEPS = (1, 2, 3, 4, 6, 12, 24, 36, 60)  # months between ticks: 12 puts the same month of each year

TITLE_SIZE = 12.5
LABEL_SIZE = 10.0
TICK_SIZE = 9.5
NOTE_SIZE = 9.5
ROW = 0.25  # one child's bar row

RED, GREEN, GREY, BLUE = "#c62828", "#2e7d32", "#757575", "#1565c0"
FONT = {"font.family": "DejaVu Sans", "font.size": LABEL_SIZE, "text.parse_math": False}
NBSP = "\u00a0"


def render_progress_chart(data: ChartData, texts: ChartTexts, *, max_children: int = MAX_CHILDREN) -> bytes:
    """Return a portrait PNG (800 × 1,200 px with children, 800 × 1,000 without) of the unit's progress."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # Unit names are user data: "$" must not switch on mathtext (ValueError on unbalanced "$").
    with matplotlib.rc_context(FONT):
        rows, hidden, rows_title, percent_mode = _child_rows(data, texts, max_children)
        height = HEIGHT if rows else HEIGHT_ALONE
        figure = Figure(figsize=(WIDTH, height), dpi=DPI)
        figure.patch.set_facecolor("white")

        def frac_x(inches: float) -> float:
            return inches / WIDTH

        def frac_y(inches: float) -> float:
            return inches / height

        # Header, from the top down: title (two lines at most), the no-plan note, the legend.
        top = height - 0.1
        title = _wrap(texts.title, WIDTH - 2 * SIDE, TITLE_SIZE, bold=True, max_lines=2)
        figure.text(frac_x(SIDE), frac_y(top), "\n".join(title), ha="left", va="top",
                    fontsize=TITLE_SIZE, fontweight="bold", linespacing=1.15)
        top -= _lines_height(len(title), TITLE_SIZE) + 0.06
        planned = data.target is not None
        if not planned and texts.no_plan:
            note = _wrap(texts.no_plan, WIDTH - 2 * SIDE, NOTE_SIZE, max_lines=2)
            figure.text(frac_x(SIDE), frac_y(top), "\n".join(note), ha="left", va="top",
                        fontsize=NOTE_SIZE, color=GREY, style="italic", linespacing=1.15)
            top -= _lines_height(len(note), NOTE_SIZE) + 0.06
        legend = [(texts.actual, {"color": RED, "linewidth": 2.5})]
        if planned and data.expected is not None:
            legend.append((texts.expected, {"color": GREY, "linewidth": 2, "linestyle": "--"}))
        top = _legend(figure, legend, top, frac_x, frac_y)

        # The cumulative chart fills what the children's block leaves.
        bars_top = 0.0
        if rows:
            bars_top = 0.15 + ROW * (len(rows) + (1 if hidden else 0)) + 0.36
        bottom = bars_top + 0.3  # month tick labels
        largest = max([data.target or 0, *data.actual, *(data.expected or ()), 1])
        left = SIDE + _text_width([_count(largest * 1.2)], TICK_SIZE) + 0.1
        right = WIDTH - SIDE - 0.06
        ax = figure.add_axes((frac_x(left), frac_y(bottom), frac_x(right - left), frac_y(top - 0.05 - bottom)))
        _cumulative(ax, data, texts, right - left, top - 0.05 - bottom)

        if rows:
            heading = _fit(rows_title, WIDTH - 2 * SIDE, LABEL_SIZE + 0.5, bold=True)
            figure.text(frac_x(SIDE), frac_y(bars_top - 0.08), heading, ha="left", va="top",
                        fontsize=LABEL_SIZE + 0.5, fontweight="bold")
            names_width = max(_text_width([name for name, *_ in rows], TICK_SIZE), 0.3)
            left = SIDE + names_width + 0.08
            bars = figure.add_axes((frac_x(left), frac_y(0.15), frac_x(WIDTH - SIDE - left),
                                    frac_y(bars_top - 0.36 - 0.15)))
            _children(bars, rows, hidden, percent_mode=percent_mode)
        buffer = io.BytesIO()
        # zlib level 3 instead of 6: a third of the encoding time for a few percent more bytes.
        figure.savefig(buffer, format="png", dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def month_ticks(count: int, most: int = MAX_MONTH_TICKS) -> list[int]:
    """Return the positions of at most `most` month ticks: every 2nd month of a year, every 12th of a term."""
    if count <= 0:
        return []
    step = next((s for s in TICK_STEPS if -(-count // s) <= most), -(-count // most))
    return list(range(0, count, step))


def short_names(names: Sequence[str], width: float, size: float = TICK_SIZE) -> list[str]:
    """Return the names without the words they all start with ("Chi bộ thôn "), each cut to `width` inches."""
    words = [name.split() for name in names]
    common = 0
    if len(words) > 1:
        while all(len(w) > common + 1 for w in words) and len({w[common] for w in words}) == 1:
            common += 1
    return [_fit(" ".join(w[common:]) or name, width, size) for w, name in zip(words, names)]


Row = tuple[str, float | None, str, str]  # shortened name, bar length, value label, colour


def _child_rows(data: ChartData, texts: ChartTexts, most: int) -> tuple[list[Row], int, str, bool]:
    """Return the bar rows, how many children are left out, the heading and whether the bars are percentages."""
    children = list(data.children)
    if not children:
        return [], 0, "", True
    shown = children[:most]
    names = short_names([name for name, _, _ in shown], WIDTH * 0.4)
    counts = data.children_admitted
    if data.target is None and counts is not None and len(counts) >= len(shown):
        rows = [(name, float(count), _count(count), BLUE) for name, count in zip(names, counts)]
        return rows, len(children) - len(shown), texts.children_admitted_title or texts.count_axis, False
    if all(value is None for _, value, _ in children):
        return [], 0, "", True  # nothing to compare: every bar would say no_target
    rows = [(name, value, texts.no_target if value is None else format_percent(value), RED if behind else GREEN)
            for name, (_, value, behind) in zip(names, shown)]
    return rows, len(children) - len(shown), texts.children_title, True


def _legend(figure, entries, top: float, frac_x, frac_y) -> float:  # type: ignore[no-untyped-def]
    """Draw one legend line per entry below `top` (inches); return the new top."""
    from matplotlib.lines import Line2D

    line = _lines_height(1, LABEL_SIZE) + 0.02
    for label, style in entries:
        middle = top - line / 2
        figure.add_artist(Line2D([frac_x(SIDE), frac_x(SIDE + 0.32)], [frac_y(middle)] * 2, **style))
        figure.text(frac_x(SIDE + 0.4), frac_y(middle), _fit(label, WIDTH - 2 * SIDE - 0.4, LABEL_SIZE),
                    ha="left", va="center_baseline", fontsize=LABEL_SIZE)
        top -= line
    return top


def _cumulative(ax, data: ChartData, texts: ChartTexts, width: float, height: float) -> None:  # type: ignore[no-untyped-def]
    """Draw the expected line, the plan's line and the cumulative line into `ax` (`width` × `height` inches)."""
    from matplotlib.ticker import MaxNLocator

    count = len(data.months)
    positions = list(range(count))
    shown = list(data.actual)
    planned = data.target is not None
    if planned and data.expected is not None:
        ax.plot(positions, list(data.expected), linestyle="--", color=GREY, linewidth=2)
    if planned:
        assert data.target is not None
        ax.axhline(data.target, color=GREEN, linewidth=1.4, linestyle=":")
        ax.annotate(f"{texts.target}: {_count(data.target)}", (0.02, data.target), xycoords=ax.get_yaxis_transform(),
                    textcoords="offset points", xytext=(0, 3), ha="left", va="bottom", fontsize=TICK_SIZE,
                    color=GREEN, fontweight="bold")
    markers = "o" if len(shown) <= 24 else None
    ax.plot(positions[: len(shown)], shown, marker=markers, markersize=4, color=RED, linewidth=2.5)
    top = max([data.target or 0, *shown, *(data.expected or ()), 1]) * 1.15
    if shown:  # room above the last point for its label (about 0.3 in of the axes' height)
        top = max(top, shown[-1] / (1 - 0.3 / height))
    ax.set_ylim(0, top)
    ax.set_xlim(-0.4, max(count - 1, 1) + 0.4)
    if shown:
        _annotate_last(ax, data, shown, top, width)
    ticks = month_ticks(count)
    ax.set_xticks(ticks, [data.months[i] for i in ticks])
    ax.tick_params(labelsize=TICK_SIZE, length=3)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))  # counts: no 2,5 ticks
    ax.yaxis.set_major_formatter(lambda value, _position: _count(value))
    ax.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _annotate_last(ax, data: ChartData, shown: list[int], top: float, width: float) -> None:  # type: ignore[no-untyped-def]
    """Write the last cumulative value (and its share of the plan) next to its point, off the other lines.

    Ahead of the expected line the label goes above the point, behind it below; to the right of the point
    while the months left leave room for it, else against the point's left (above) or the chart's right
    edge (below), where the cumulative line does not run.
    """
    last, x = shown[-1], len(shown) - 1
    label = _count(last)
    if data.target:
        label += f" ({format_percent(percent(last, data.target))})"
    size = LABEL_SIZE + 1
    expected = list(data.expected or ())
    above = x >= len(expected) or last >= expected[x]
    low, high = ax.get_xlim()
    room = (high - x) / (high - low) * width
    dy = 7 if above else -12
    style = {"ha": "left", "va": "bottom" if above else "top", "fontsize": size, "fontweight": "bold", "color": RED,
             "textcoords": "offset points",
             "bbox": {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}}
    if room >= _text_width([label], size, bold=True) + 0.12:
        ax.annotate(label, (x, last), xytext=(5, dy), **style)
    elif above:
        ax.annotate(label, (x, last), xytext=(-5, dy), **{**style, "ha": "right"})
    else:
        ax.annotate(label, (0.99, last), xycoords=ax.get_yaxis_transform(), xytext=(0, dy), **{**style, "ha": "right"})


def _children(ax, rows: list[Row], hidden: int, *, percent_mode: bool) -> None:  # type: ignore[no-untyped-def]
    rows = rows[::-1]  # barh draws bottom-up; the first child goes on top
    positions = list(range(len(rows)))
    values = [value or 0.0 for _, value, _, _ in rows]
    ax.barh(positions, values, color=[colour for *_, colour in rows], height=0.62)
    top = max(values + ([100.0] if percent_mode else [1.0]))
    ax.set_xlim(0, top * 1.45)  # room for the value label after the longest bar
    for y, (_, value, label, _) in zip(positions, rows):
        ax.text((value or 0) + top * 0.03, y, label, va="center", ha="left", fontsize=TICK_SIZE,
                color=GREY if value is None else "black", style="italic" if value is None else "normal")
    if percent_mode:
        ax.axvline(100, color=GREEN, linewidth=1, linestyle=":")
    for y, (name, *_) in zip(positions, rows):  # plain texts: matplotlib's Tick objects cost ~8 ms each
        ax.annotate(name, (0, y), xycoords=ax.get_yaxis_transform(), xytext=(-4, 0), textcoords="offset points",
                    ha="right", va="center", fontsize=TICK_SIZE)
    ax.set_yticks([])
    ax.set_ylim(-0.5 - (1 if hidden else 0), len(rows) - 0.5)
    if hidden:
        ax.text(0, -1, f"… +{hidden}", va="center", ha="left", fontsize=TICK_SIZE, color=GREY)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)


def _count(value: float) -> str:
    """Return a whole count the Vietnamese way, as the rest of the chart (2.817)."""
    return f"{int(round(value)):,}".replace(",", ".")


@lru_cache(maxsize=8)
def _font(size: float, bold: bool):  # type: ignore[no-untyped-def]
    from matplotlib.font_manager import FontProperties

    return FontProperties(family=FONT["font.family"], size=size, weight="bold" if bold else "normal")


def _text_width(lines: Sequence[str], size: float, bold: bool = False) -> float:
    """Return the width in inches of the widest line at `size` points."""
    return max((_line_width(line, size, bold) for line in lines), default=0.0)


def _line_width(line: str, size: float, bold: bool) -> float:
    """Return the width in inches of one line: the sum of its characters' advances (no kerning, 2 % spare).

    FreeType's full layout costs about 1 ms a string; one glyph's advance, cached, costs nothing.
    """
    return sum(_advance(char, bold) for char in line) * size * 1.02 / 72


@lru_cache(maxsize=4096)
def _advance(char: str, bold: bool) -> float:
    """Return a character's advance in ems (combining marks advance nothing)."""
    from matplotlib.font_manager import findfont, get_font
    from matplotlib.ft2font import LoadFlags

    font = get_font(findfont(_font(10, bold)))
    font.set_size(100, 72)  # a 100 px em: the advance (16.16 fixed point) in px, / 100 in ems
    return font.load_char(ord(char), flags=LoadFlags.NO_HINTING).linearHoriAdvance / 65536 / 100


def _lines_height(lines: int, size: float) -> float:
    """Return the height in inches of `lines` lines of text at `size` points (line spacing 1.15)."""
    return lines * size * 1.15 * 1.2 / 72


def _fit(text: str, width: float, size: float, bold: bool = False) -> str:
    """Return the text, cut with "…" so that it is at most `width` inches wide."""
    if _line_width(text, size, bold) <= width:
        return text
    low, high = 0, len(text) - 1  # the longest prefix that fits with "…" (binary search: few measurements)
    while low < high:
        middle = (low + high + 1) // 2
        if _line_width(text[:middle].rstrip() + "…", size, bold) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"


def _wrap(text: str, width: float, size: float, *, bold: bool = False, max_lines: int = 2) -> list[str]:
    """Break the text at spaces into lines at most `width` inches wide; cut the last line with "…"."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and _text_width([f"{line} {words[0]}"], size, bold) <= width:
            line += " " + words.pop(0)
        lines.append(line)
    if words:
        lines[-1] = _fit(f"{lines[-1]} {' '.join(words)}", width, size, bold)
    return [_fit(line, width, size, bold) for line in lines] or [""]
