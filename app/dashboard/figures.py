"""The charts the dashboard draws: a summary's figures (``app.summaries``: nothing is recomputed here),
a judge-agreement matrix, a self-reward job's iterations and score histograms. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.dashboard.charts import (
    BarChart,
    BarRow,
    Histogram,
    LineChart,
    bar_chart,
    histogram,
    keyed_counts,
    line_chart,
    percent,
    score_counts,
)
from app.summaries.schemas import SummaryOut

RATE = (0.0, 1.0)
# Landis and Koch's words for a kappa, from the lowest band up: (upper end, word).
KAPPA_BANDS = ((0.0, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial"))


def _count(value: float) -> str:
    return f"{value:.0f}"


@dataclass(frozen=True)
class SummaryCharts:
    win_rates: list[BarChart] = field(default_factory=list)
    scores: BarChart | None = None
    categories: list[BarChart] = field(default_factory=list)
    ratings: BarChart | None = None
    length_controlled: BarChart | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.win_rates or self.scores or self.categories or self.ratings or self.length_controlled
        )


def summary_charts(summary: SummaryOut) -> SummaryCharts:
    """Win rates (plain and tie-adjusted) and mean scores per model with their bootstrap intervals, mean
    scores per category, Bradley–Terry ratings with intervals, length-controlled win rates."""
    rates = summary.win_rates
    win_rates = (
        [
            bar_chart(
                "Win rate",
                [
                    BarRow(r.model, r.win_rate, r.win_rate_interval.low, r.win_rate_interval.high)
                    for r in rates
                ],
                RATE,
                percent,
            ),
            bar_chart(
                "Tie-adjusted win rate (a tie counts half)",
                [
                    BarRow(
                        r.model,
                        r.tie_adjusted_win_rate,
                        r.tie_adjusted_interval.low,
                        r.tie_adjusted_interval.high,
                    )
                    for r in rates
                ],
                RATE,
                percent,
            ),
        ]
        if rates
        else []
    )
    overall = [s for s in summary.scores if s.category is None]
    by_category: dict[str, list[BarRow]] = defaultdict(list)
    for s in summary.scores:
        if s.category is not None:
            by_category[s.category].append(BarRow(s.model, s.mean, s.interval.low, s.interval.high))
    score_domain = _shared_domain(
        [r for rows in by_category.values() for r in rows],
        overall_rows := [BarRow(s.model, s.mean, s.interval.low, s.interval.high) for s in overall],
    )
    ratings = summary.ratings
    rating_ends = [v for r in ratings for v in (r.interval.low, r.interval.high, r.rating)]
    return SummaryCharts(
        win_rates=win_rates,
        scores=bar_chart("Mean score", overall_rows, score_domain) if overall_rows else None,
        categories=[
            bar_chart(f"Category: {c}", rows, score_domain) for c, rows in sorted(by_category.items())
        ],
        ratings=bar_chart(
            "Bradley–Terry rating (Elo scale)",
            [BarRow(r.model, r.rating, r.interval.low, r.interval.high) for r in ratings],
            (min(rating_ends) - 50, max(rating_ends) + 50),
            _count,
        )
        if ratings
        else None,
        length_controlled=bar_chart(
            f"Length-controlled win rate against {summary.baseline}",
            [BarRow(r.model, r.length_controlled_win_rate) for r in summary.length_controlled],
            RATE,
            percent,
        )
        if summary.length_controlled
        else None,
    )


def _shared_domain(*groups: Sequence[BarRow]) -> tuple[float, float]:
    """One scale for every score chart, so categories compare at a glance."""
    values = [v for rows in groups for r in rows for v in (r.value, r.low, r.high) if v is not None]
    return (min([0.0, *values]), max([1.0, *values]))


def score_histogram(title: str, scores: Iterable[float]) -> Histogram | None:
    counts = score_counts(list(scores))
    return histogram(title, counts) if counts else None


# -- judge agreement -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgreementCell:
    kappa: float | None
    band: str  # CSS class suffix: neg, 0 to 4 (Landis and Koch's bands), self, none
    words: str


@dataclass(frozen=True)
class AgreementMatrix:
    judges: list[str]
    rows: list[list[AgreementCell]]
    overall: float | None  # Fleiss' kappa
    first_position: dict[str, float]


def _cell(kappa: float | None) -> AgreementCell:
    if kappa is None:
        return AgreementCell(None, "none", "no shared items")
    if kappa < 0:
        return AgreementCell(kappa, "neg", "worse than chance")
    for band, (upper, word) in enumerate(KAPPA_BANDS):
        if kappa <= upper:
            return AgreementCell(kappa, str(band), word)
    return AgreementCell(kappa, "5", "almost perfect")


def _first(entry: Mapping[str, Any], *keys: str) -> Any:
    return next((entry[k] for k in keys if entry.get(k) is not None), None)


def _pair(entry: Mapping[str, Any]) -> tuple[str, str, float | None] | None:
    names = entry.get("judges") or entry.get("pair")
    if isinstance(names, list | tuple) and len(names) == 2:
        a, b = names
    else:
        a, b = _first(entry, "judge_a", "a", "first"), _first(entry, "judge_b", "b", "second")
    if a is None or b is None:
        return None
    kappa = _first(entry, "kappa", "cohen_kappa", "cohens_kappa")
    return str(a), str(b), float(kappa) if kappa is not None else None


def agreement_matrix(summary: Mapping[str, Any]) -> AgreementMatrix | None:
    """The jury's pairwise agreement (Cohen's kappa per pair of judges, Fleiss' kappa overall) from a
    summary's `agreement` (or `jury`) section, if it has one with pairs; None otherwise."""
    section = _first(summary, "agreement", "jury", "judge_agreement")
    if not isinstance(section, Mapping):
        return None
    pairs = [
        p for p in map(_pair, _first(section, "pairs", "pairwise", "cohen_kappa") or []) if p is not None
    ]
    if not pairs:
        return None
    named = [
        str(j) if not isinstance(j, Mapping) else str(j.get("model") or j.get("name"))
        for j in section.get("judges") or []
    ]
    judges = list(dict.fromkeys([*named, *(n for a, b, _ in pairs for n in (a, b))]))
    kappas = {frozenset((a, b)): k for a, b, k in pairs}
    rows = [
        [
            AgreementCell(1.0, "self", "same judge") if a == b else _cell(kappas.get(frozenset((a, b))))
            for b in judges
        ]
        for a in judges
    ]
    overall = _first(section, "fleiss_kappa", "fleiss", "overall")
    first = _first(section, "first_position_rates", "first_position_rate", "first_position") or {}
    first_position = (
        {str(k): float(v) for k, v in first.items() if v is not None} if isinstance(first, Mapping) else {}
    )
    return AgreementMatrix(judges, rows, float(overall) if overall is not None else None, first_position)


# -- self-reward -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IterationCharts:
    losses: LineChart | None
    histograms: list[Histogram]
    pairs: BarChart | None
    win_rate: BarChart | None

    @property
    def empty(self) -> bool:
        return not (self.losses or self.histograms or self.pairs or self.win_rate)


def _iteration_name(iteration: int, metrics: Mapping[str, Any]) -> str:
    kind = (metrics.get("training") or {}).get("kind") or ("sft" if iteration == 0 else "dpo")
    return f"iteration {iteration} ({str(kind).upper()})"


def _get(metrics: Mapping[str, Any], *path: str) -> Any:
    value: Any = metrics
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def iteration_charts(iterations: Sequence[tuple[int, Mapping[str, Any]]]) -> IterationCharts:
    """A self-reward job's per-iteration charts from the metrics each iteration recorded: training losses
    per step, the judge's score histogram, pairs kept of the prompts, win rate against the previous
    model."""
    losses = [
        (_iteration_name(t, m), [float(v) for v in _get(m, "training", "loss_history") or []])
        for t, m in iterations
    ]
    losses = [(name, values) for name, values in losses if values]
    histograms = [
        histogram(f"Scores the judge gave, iteration {t}", keyed_counts(h))
        for t, m in iterations
        if isinstance(h := m.get("score_histogram"), Mapping) and h
    ]
    kept = [(t, _get(m, "pairs", "kept"), _get(m, "pairs", "prompts")) for t, m in iterations]
    kept = [(t, k, p) for t, k, p in kept if isinstance(k, int | float)]
    most = max([1.0, *(float(p or 0) for _, _, p in kept), *(float(k) for _, k, _ in kept)])
    win = [(t, _get(m, "evaluation", "win_rate_vs_previous", "win_rate")) for t, m in iterations]
    win = [(t, w) for t, w in win if isinstance(w, int | float)]
    return IterationCharts(
        losses=line_chart("Training loss per step", losses) if losses else None,
        histograms=histograms,
        pairs=bar_chart(
            "Preference pairs kept",
            [BarRow(f"iteration {t} (of {p})", float(k)) for t, k, p in kept],
            (0, most),
            _count,
        )
        if kept
        else None,
        win_rate=bar_chart(
            "Win rate against the previous model",
            [BarRow(f"iteration {t}", float(w)) for t, w in win],
            RATE,
            percent,
        )
        if win
        else None,
    )
