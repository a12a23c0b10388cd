"""Chart geometry for the dashboard's inline SVG (drawn by ``templates/_charts.html``, no script): bar
charts with interval whiskers, histograms and line charts. Pure: values in, coordinates out.

Coordinates are in the SVG's own units (its ``viewBox``); the page scales the drawing to its width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

WIDTH = 640.0
# Horizontal bar charts: the label column, then the plot, then the value's text.
LABEL_WIDTH = 140.0
VALUE_WIDTH = 160.0
PLOT_WIDTH = WIDTH - LABEL_WIDTH - VALUE_WIDTH
ROW_HEIGHT = 24.0
BAR_HEIGHT = 14.0
AXIS_HEIGHT = 22.0
# Histograms and line charts: the plot's height and its margins.
PLOT_HEIGHT = 150.0
MARGIN_LEFT = 48.0
MARGIN_RIGHT = 12.0
MARGIN_TOP = 12.0
LEGEND_WIDTH = 110.0  # line charts: each line's name at its end
MARGIN_BOTTOM = 30.0
TICKS = 5
LABEL_CHARS = 22


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def number(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class Tick:
    at: float  # x (bar charts) or y (histograms, line charts)
    text: str


@dataclass(frozen=True)
class BarRow:
    """One bar: ``value``, with its interval (``low``, ``high``) if it has one."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Bar:
    label: str  # shown (shortened)
    full_label: str
    value: float
    text: str  # the value (and interval) as text
    y: float
    x: float
    width: float
    whisker: tuple[float, float] | None  # x of the interval's ends


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    ticks: list[Tick]
    height: float
    axis_y: float
    width: float = WIDTH

    @property
    def label_x(self) -> float:
        return LABEL_WIDTH - 6

    @property
    def value_x(self) -> float:
        return LABEL_WIDTH + PLOT_WIDTH + 6


def _scale(lo: float, hi: float, start: float, length: float) -> Callable[[float], float]:
    span = hi - lo if hi > lo else 1.0
    return lambda v: start + (min(max(v, lo), hi) - lo) / span * length


def _ticks(lo: float, hi: float, place: Callable[[float], float], fmt: Callable[[float], str]) -> list[Tick]:
    return [
        Tick(place(lo + (hi - lo) * i / (TICKS - 1)), fmt(lo + (hi - lo) * i / (TICKS - 1)))
        for i in range(TICKS)
    ]


def _domain(rows: Sequence[BarRow]) -> tuple[float, float]:
    values = [v for r in rows for v in (r.value, r.low, r.high) if v is not None]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    if hi == lo:
        hi = lo + 1.0
    return lo, hi


def bar_chart(
    title: str,
    rows: Sequence[BarRow],
    domain: tuple[float, float] | None = None,
    fmt: Callable[[float], str] = number,
) -> BarChart:
    """Horizontal bars from the domain's low end (default: 0 and the values' extent), one per row, in
    the order given; a row with an interval gets a whisker from ``low`` to ``high``."""
    lo, hi = domain if domain is not None else _domain(rows)
    x = _scale(lo, hi, LABEL_WIDTH, PLOT_WIDTH)
    bars = []
    for i, row in enumerate(rows):
        interval = row.low is not None and row.high is not None
        text = fmt(row.value) + (f" [{fmt(row.low)}, {fmt(row.high)}]" if interval else "")  # type: ignore[arg-type]
        start, end = x(lo), x(row.value)
        bars.append(
            Bar(
                label=_short(row.label),
                full_label=row.label,
                value=row.value,
                text=text,
                y=i * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2,
                x=start,
                width=max(end - start, 0.0),
                whisker=(x(row.low), x(row.high)) if interval else None,  # type: ignore[arg-type]
            )
        )
    axis_y = len(rows) * ROW_HEIGHT
    return BarChart(title, bars, _ticks(lo, hi, x, fmt), axis_y + AXIS_HEIGHT, axis_y)


@dataclass(frozen=True)
class Column:
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Histogram:
    title: str
    columns: list[Column]
    ticks: list[Tick]
    height: float
    baseline: float  # y of the x axis
    width: float = WIDTH
    left: float = MARGIN_LEFT
    right: float = WIDTH - MARGIN_RIGHT


def histogram(title: str, counts: Sequence[tuple[str, int]]) -> Histogram:
    """Vertical bars, one per bin in the order given (labels under them), heights to scale with counts."""
    most = max([1, *(c for _, c in counts)])
    step = -(-most // (TICKS - 1))  # whole counts, at most TICKS ticks
    top = step * -(-most // step)
    baseline = MARGIN_TOP + PLOT_HEIGHT
    y = _scale(0, top, baseline, -PLOT_HEIGHT)
    slot = (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / max(len(counts), 1)
    columns = [
        Column(label, count, MARGIN_LEFT + i * slot + slot * 0.1, y(count), slot * 0.8, baseline - y(count))
        for i, (label, count) in enumerate(counts)
    ]
    ticks = [Tick(y(n), str(n)) for n in range(0, top + 1, step)]
    return Histogram(title, columns, ticks, baseline + MARGIN_BOTTOM, baseline)


def score_counts(scores: Sequence[float], scale: tuple[int, int] | None = None) -> list[tuple[str, int]]:
    """Scores counted per whole point (halves up), every point of ``scale`` (low, high) and any score
    outside it; without a scale, from the lowest score to the highest."""
    points = [int(s + 0.5) if s >= 0 else -int(-s + 0.5) for s in scores]
    if not points:
        return []
    low, high = scale if scale is not None else (min(points), max(points))
    return [(str(p), points.count(p)) for p in range(min(low, *points), max(high, *points) + 1)]


def keyed_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """A stored histogram (keys are numbers as text) in numeric order."""

    def order(key: str) -> tuple[float, str]:
        try:
            return float(key), key
        except ValueError:
            return float("inf"), key

    return [(k, int(counts[k])) for k in sorted(counts, key=order)]


@dataclass(frozen=True)
class Line:
    label: str
    points: str  # SVG polyline points: "x,y x,y ..."
    last: tuple[float, float]  # where its label goes
    series: int  # which colour


@dataclass(frozen=True)
class LineChart:
    title: str
    lines: list[Line]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    height: float
    baseline: float
    x_label: str
    width: float = WIDTH
    left: float = MARGIN_LEFT
    right: float = WIDTH - MARGIN_RIGHT - LEGEND_WIDTH


def line_chart(title: str, series: Sequence[tuple[str, Sequence[float]]], x_label: str = "step") -> LineChart:
    """One line per series, x the value's position (from 1), on one shared y scale."""
    values = [v for _, vs in series for v in vs]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    longest = max([1, *(len(vs) for _, vs in series)])
    baseline = MARGIN_TOP + PLOT_HEIGHT
    x = _scale(1, max(longest, 2), MARGIN_LEFT, WIDTH - MARGIN_LEFT - MARGIN_RIGHT - LEGEND_WIDTH)
    y = _scale(lo, hi, baseline, -PLOT_HEIGHT)
    lines = []
    for n, (label, vs) in enumerate(series):
        if not vs:
            continue
        coords = [(x(i + 1), y(v)) for i, v in enumerate(vs)]
        lines.append(Line(label, " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords), coords[-1], n % 6))
    x_steps = min(longest - 1, TICKS - 1) or 1
    x_ticks = [
        Tick(x(1 + (longest - 1) * i / x_steps), str(round(1 + (longest - 1) * i / x_steps)))
        for i in range(x_steps + 1)
    ]
    return LineChart(
        title, lines, _ticks(lo, hi, y, number), x_ticks, baseline + MARGIN_BOTTOM, baseline, x_label
    )
