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
from app.summaries.schemas import JuryOut, SummaryOut

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


def score_histogram(
    title: str, scores: Iterable[float], scale: tuple[int, int] | None = None
) -> Histogram | None:
    """How many of ``scores`` fall on each whole point of ``scale`` (None: no score)."""
    counts = score_counts(list(scores), scale)
    return histogram(title, counts) if counts else None


# -- judge agreement -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgreementCell:
    kappa: float | None
    band: str  # CSS class suffix: neg, 0 to 5 (Landis and Koch's bands), self, none
    words: str
    items: int  # items both judges rated


@dataclass(frozen=True)
class AgreementMatrix:
    jury: JuryOut
    judges: list[str]
    rows: list[list[AgreementCell]]


def _cell(kappa: float | None, items: int) -> AgreementCell:
    if kappa is None:
        return AgreementCell(None, "none", "undefined (e.g. both always gave one label)", items)
    if kappa < 0:
        return AgreementCell(kappa, "neg", "worse than chance", items)
    for band, (upper, word) in enumerate(KAPPA_BANDS):
        if kappa <= upper:
            return AgreementCell(kappa, str(band), word, items)
    return AgreementCell(kappa, "5", "almost perfect", items)


def agreement_matrix(jury: JuryOut | None) -> AgreementMatrix | None:
    """A jury's Cohen's kappa of every pair of judges as a symmetric judges x judges matrix (None: not a
    jury)."""
    if jury is None:
        return None
    judges = list(
        dict.fromkeys(
            [*(j.model for j in jury.judges), *(n for k in jury.cohen_kappa for n in (k.judge_a, k.judge_b))]
        )
    )
    pairs = {frozenset((k.judge_a, k.judge_b)): k for k in jury.cohen_kappa}
    rows = []
    for a in judges:
        row = []
        for b in judges:
            pair = pairs.get(frozenset((a, b)))
            if a == b:
                row.append(AgreementCell(1.0, "self", "the same judge", 0))
            elif pair is None:
                row.append(AgreementCell(None, "none", "not compared", 0))
            else:
                row.append(_cell(pair.kappa, pair.items))
        rows.append(row)
    return AgreementMatrix(jury, judges, rows)


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
