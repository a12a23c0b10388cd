"""The text of ``judge jobs summary``: a summary's figures as plain tables."""

from __future__ import annotations

from judge_client.summaries import Interval, Summary


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _span(interval: Interval, percent: bool = True) -> str:
    if percent:
        return f"[{100 * interval.low:.1f}, {100 * interval.high:.1f}]"
    return f"[{interval.low:.2f}, {interval.high:.2f}]"


def summary_text(summary: Summary) -> str:
    """Verdict figures, then each table the summary has (95 % intervals in brackets)."""
    f = summary.figures
    verdicts = " ".join(f"{k}={v}" for k, v in sorted(f.verdicts.items())) or "-"
    lines = [f"jobs               {len(summary.jobs)}"] if summary.jobs else []  # (a file's: none)
    lines += [
        f"items              {f.items} ({f.ok} ok, {f.errors} errors, {f.pending} pending)",
        f"verdicts           {verdicts}",
        f"consistency        {_pct(f.consistency_rate)} of {f.swapped} judged in both orders",
        f"first position     {_pct(f.first_position_rate)} of {f.judged_orders} orders",
        f"bootstrap          {summary.bootstrap_rounds} rounds, seed {summary.seed}",
    ]
    if summary.win_rates:
        lines += ["", "model\tgames\twin\tloss\ttie\twin rate\t95% CI\tadjusted\t95% CI"]
        lines += [
            f"{r.model}\t{r.games}\t{r.wins}\t{r.losses}\t{r.ties}\t{_pct(r.win_rate)}\t"
            f"{_span(r.win_rate_interval)}\t{_pct(r.tie_adjusted_win_rate)}\t{_span(r.tie_adjusted_interval)}"
            for r in summary.win_rates
        ]
    if summary.ratings:
        lines += ["", "model\tBradley-Terry (Elo scale)\t95% CI"]
        lines += [f"{r.model}\t{r.rating:.1f}\t{_span(r.interval, False)}" for r in summary.ratings]
    if summary.length_controlled:
        lines += ["", f"model\tgames\twin rate\tLC win rate (vs {summary.baseline})\tlength weight"]
        lines += [
            f"{r.model}\t{r.games}\t{_pct(r.win_rate)}\t{_pct(r.length_controlled_win_rate)}\t{r.length_weight:.2f}"
            for r in summary.length_controlled
        ]
    if summary.scores:
        lines += ["", "model\tcategory\tgrades\tmean score\t95% CI"]
        lines += [
            f"{s.model}\t{s.category or '(all)'}\t{s.count}\t{s.mean:.2f}\t{_span(s.interval, False)}"
            for s in summary.scores
        ]
    return "\n".join(lines)
