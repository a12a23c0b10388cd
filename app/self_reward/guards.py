"""Guards that stop a self-rewarding job before it trains on data it should not trust: too few pairs,
a judge whose output cannot be read, judgments that no longer separate answers, or a reward that has
turned into "longer is better" (the length growth Yuan et al. 2024 observe over iterations)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.self_reward.domain import GuardSettings, IterationStats


@dataclass
class GuardResult:
    """``stop``: why the job must stop after this iteration (several reasons joined by "; "), or None.
    ``flags``: warnings worth showing that do not stop it."""

    stop: str | None = None
    flags: list[str] = field(default_factory=list)


def _percent(rate: float) -> str:
    return f"{rate:.0%}"


def length_ratio(stats: IterationStats) -> float | None:
    """Mean chosen length over mean rejected length; None without lengths on both sides or when every
    rejected answer is empty."""
    if not stats.chosen_lengths or not stats.rejected_lengths:
        return None
    rejected = sum(stats.rejected_lengths) / len(stats.rejected_lengths)
    if rejected <= 0:
        return None
    return (sum(stats.chosen_lengths) / len(stats.chosen_lengths)) / rejected


def _too_long(stats: IterationStats, settings: GuardSettings) -> bool:
    ratio = length_ratio(stats)
    return ratio is not None and ratio > settings.max_length_ratio


def _pairs_text(pairs: int) -> str:
    if pairs == 0:
        return "no preference pair survived"
    return f"only {pairs} preference pair{'s' if pairs != 1 else ''} survived"


def check_iteration(
    stats: IterationStats, history: Sequence[IterationStats], settings: GuardSettings
) -> GuardResult:
    """What the guards say after the pairs stage of an iteration.

    ``history`` holds the earlier iterations' stats of this job, oldest first, without ``stats``.
    Stops: fewer than ``min_pairs`` pairs (the reason adds the tie rate when ties caused it); judge
    parse failures over ``max_parse_failure_rate`` of judgments; chosen answers longer than rejected by
    over ``max_length_ratio`` for ``length_growth_iterations`` iterations in a row, this one included.
    Flags: a tie rate over ``max_tie_rate`` with enough pairs left; a single iteration over the length
    ratio.
    """
    stops: list[str] = []
    flags: list[str] = []

    if stats.judgments > 0:
        failure_rate = stats.parse_failures / stats.judgments
        if failure_rate > settings.max_parse_failure_rate:
            stops.append(
                f"parse failures {_percent(failure_rate)} of judgments "
                f"(limit {_percent(settings.max_parse_failure_rate)})"
            )

    tie_rate = stats.ties / stats.prompts if stats.prompts > 0 else 0.0
    tie_text = f"ties on {_percent(tie_rate)} of prompts (limit {_percent(settings.max_tie_rate)})"
    too_many_ties = tie_rate > settings.max_tie_rate
    if stats.pairs < settings.min_pairs:
        # Ties alone are a judge that cannot separate answers, worth a warning; they stop the job
        # only once they leave too few pairs to train on, and then they are the cause worth naming.
        cause = f": {tie_text}" if too_many_ties else ""
        stops.append(f"{_pairs_text(stats.pairs)} (minimum {settings.min_pairs}){cause}")
    elif too_many_ties:
        flags.append(tie_text)

    ratio = length_ratio(stats)
    if ratio is not None and ratio > settings.max_length_ratio:
        needed = max(settings.length_growth_iterations, 1)
        earlier = list(history[-(needed - 1) :]) if needed > 1 else []
        in_a_row = len(earlier) == needed - 1 and all(_too_long(past, settings) for past in earlier)
        limit = f"(limit {settings.max_length_ratio:.2f}x)"
        if in_a_row:
            stops.append(
                f"length explosion: chosen answers {ratio:.2f}x as long as rejected ones, over the limit "
                f"for {needed} iteration{'s' if needed != 1 else ''} in a row {limit}"
            )
        else:
            flags.append(f"chosen answers {ratio:.2f}x as long as rejected ones {limit}")

    return GuardResult(stop="; ".join(stops) if stops else None, flags=flags)
