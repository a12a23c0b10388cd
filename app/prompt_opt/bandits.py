"""Best-arm identification: which candidate prompts form the next beam.

Each arm is a candidate prompt; a *pull* scores one arm on a random sample of examples. The caller's
``pull`` function scores several arms on one sample at once, so that it can run them as one model
batch. All randomness comes from the given ``random.Random``: the same seed, arms and examples give the
same selection, which is how a resumed job replays a selection (its model outputs come from a cache).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.prompt_opt.domain import Example, SelectorConfig

PullFn = Callable[[Sequence[int], Sequence[Example]], Sequence[float]]
"""Scores each given arm (index) on the given sample; returns one score per arm, in order."""

# Keeps the exploration bonus finite for arms never pulled (the reference's constant).
_EPSILON = 1e-3


@dataclass
class ArmStats:
    pulls: int = 0  # times the arm was scored on a sample
    examples: int = 0  # examples it was scored on in total
    total: float = 0.0  # sum of its pull scores
    eliminated_round: int | None = None  # successive rejects/halving: phase it was dropped in

    @property
    def mean(self) -> float | None:
        """Mean pull score; None when the arm was never pulled."""
        return self.total / self.pulls if self.pulls else None


@dataclass
class Selection:
    stats: list[ArmStats]
    ranking: list[int]  # every arm, best first

    def top(self, k: int) -> list[int]:
        """The ``k`` best arms, best first."""
        return self.ranking[:k]


def select(
    config: SelectorConfig,
    n_arms: int,
    keep: int,
    pull: PullFn,
    examples: Sequence[Example],
    rng: random.Random,
) -> Selection:
    """Rank ``n_arms`` arms so that the first ``keep`` are the best the method can tell.

    When ``n_arms <= keep`` nothing is pulled: every arm is kept, ranked by index, with zero pulls.
    Raises ValueError for ``keep < 1``, ``n_arms < 1``, or no examples when pulls are needed.
    """
    if keep < 1 or n_arms < 1:
        raise ValueError(f"need keep >= 1 and n_arms >= 1 (got keep={keep}, n_arms={n_arms})")
    stats = [ArmStats() for _ in range(n_arms)]
    if n_arms <= keep:
        return Selection(stats, list(range(n_arms)))
    if not examples:
        raise ValueError("no examples to score the arms on")
    sampler = _Sampler(config, pull, examples, rng, stats)
    if config.method == "brute-force":
        sampler.pull(range(n_arms), examples)
        return Selection(stats, _by_mean(stats, range(n_arms)))
    if config.method in ("ucb", "ucb-e"):
        return _ucb(config, sampler, rng)
    if config.method == "successive-rejects":
        return _successive_rejects(config, keep, sampler)
    if config.method == "successive-halving":
        return _successive_halving(config, keep, sampler)
    raise ValueError(f"unknown selection method {config.method!r}")


def projected_evaluations(config: SelectorConfig, n_arms: int, keep: int, n_examples: int) -> int:
    """The arm x example evaluations :func:`select` will request with these arguments.

    Exact for every method (for ``ucb``/``ucb-e`` it is also their upper bound: every round pulls the
    same number of arms).
    """
    if keep < 1 or n_arms < 1:
        raise ValueError(f"need keep >= 1 and n_arms >= 1 (got keep={keep}, n_arms={n_arms})")
    if n_arms <= keep or n_examples <= 0:
        return 0
    if config.method == "brute-force":
        return n_arms * n_examples
    sample = min(config.samples_per_eval, n_examples)
    if config.method in ("ucb", "ucb-e"):
        return max(0, config.eval_rounds) * min(config.prompts_per_round, n_arms) * sample
    if config.method == "successive-rejects":
        schedule = _rejects_schedule(n_arms, keep, config.pull_budget)
        return sum((n_arms - k) * pulls for k, pulls in enumerate(schedule)) * sample
    if config.method == "successive-halving":
        return (
            sum(alive * pulls for alive, pulls in _halving_schedule(n_arms, keep, config.pull_budget))
            * sample
        )
    raise ValueError(f"unknown selection method {config.method!r}")


class _Sampler:
    """Draws samples and records pull results in the arms' stats."""

    def __init__(
        self,
        config: SelectorConfig,
        pull: PullFn,
        examples: Sequence[Example],
        rng: random.Random,
        stats: list[ArmStats],
    ) -> None:
        self._size = min(config.samples_per_eval, len(examples))
        self._pull = pull
        self._examples = examples
        self._rng = rng
        self.stats = stats

    def pull_sampled(self, arms: Sequence[int]) -> None:
        """Score ``arms`` together on one fresh sample drawn without replacement."""
        self.pull(arms, self._rng.sample(list(self._examples), self._size))

    def pull(self, arms: Sequence[int], sample: Sequence[Example]) -> None:
        arms = list(arms)
        scores = list(self._pull(arms, sample))
        if len(scores) != len(arms):
            raise ValueError(f"pull returned {len(scores)} scores for {len(arms)} arms")
        for arm, value in zip(arms, scores, strict=True):
            arm_stats = self.stats[arm]
            arm_stats.pulls += 1
            arm_stats.examples += len(sample)
            arm_stats.total += float(value)


def _by_mean(stats: Sequence[ArmStats], arms: Sequence[int] | range) -> list[int]:
    """``arms`` best mean first; never-pulled arms last; ties by lower index."""

    def key(arm: int) -> tuple[int, float, int]:
        mean = stats[arm].mean
        return (1, 0.0, arm) if mean is None else (0, -mean, arm)

    return sorted(arms, key=key)


def _ucb(config: SelectorConfig, sampler: _Sampler, rng: random.Random) -> Selection:
    stats = sampler.stats
    n_arms = len(stats)
    per_round = min(config.prompts_per_round, n_arms)
    # t is the round's 0-based index, as in LMOps' UCBBanditEvaluator (round t=1 has ln 1 = 0: no bonus).
    for t in range(config.eval_rounds):
        if all(s.pulls == 0 for s in stats):
            chosen = rng.sample(range(n_arms), per_round)
        else:
            bounds = [upper_bound(config, s.mean or 0.0, s.examples, t) for s in stats]
            # Ties go to the lower index (LMOps leaves their order to numpy's sort).
            chosen = sorted(range(n_arms), key=lambda arm: (-bounds[arm], arm))[:per_round]
        sampler.pull_sampled(sorted(chosen))
    return Selection(stats, _by_mean(stats, range(n_arms)))


def upper_bound(config: SelectorConfig, mean: float, examples: int, t: int) -> float:
    """An arm's index in bandit round ``t`` (0-based), on LMOps' scale (``UCBBandits.choose``).

    ``ucb``: ``mean + c * sqrt(ln t / n)``; ``ucb-e``: ``mean + c * sqrt(c / n)``, where ``n`` is the
    number of *examples* the arm was scored on (LMOps adds ``samples_per_eval`` per pull) plus 1e-3, and
    ``mean`` is 0 for an arm never pulled. Raises ValueError for ``ucb`` with ``t < 1`` (ln 0).
    """
    n = examples + _EPSILON
    if config.method == "ucb-e":
        return mean + config.c * math.sqrt(config.c / n)
    if t < 1:
        raise ValueError(f"ucb needs round t >= 1 (got {t})")
    return mean + config.c * math.sqrt(math.log(t) / n)


def _rejects_schedule(n_arms: int, keep: int, budget: int) -> list[int]:
    """Pulls per surviving arm in each phase of successive rejects, until ``keep`` arms survive.

    Phase k (1-based) tops every survivor up to n_k = ceil((budget - K) / (logbar * (K + 1 - k)))
    pulls, with logbar = 1/2 + sum_{i=2..K} 1/i; that spends at most ``budget`` pulls over all K - 1
    phases. Every arm gets at least one pull, even when the budget is smaller than K.
    """
    logbar = 0.5 + sum(1 / i for i in range(2, n_arms + 1))
    previous = 0
    schedule: list[int] = []
    for k in range(1, n_arms - keep + 1):
        n_k = max(1, math.ceil((budget - n_arms) / (logbar * (n_arms + 1 - k))))
        schedule.append(max(0, n_k - previous))
        previous = max(previous, n_k)
    return schedule


def _successive_rejects(config: SelectorConfig, keep: int, sampler: _Sampler) -> Selection:
    stats = sampler.stats
    alive = list(range(len(stats)))
    rejected: list[int] = []
    for phase, pulls in enumerate(_rejects_schedule(len(stats), keep, config.pull_budget), start=1):
        for _ in range(pulls):
            sampler.pull_sampled(alive)
        worst = _by_mean(stats, alive)[-1]
        stats[worst].eliminated_round = phase
        alive.remove(worst)
        rejected.append(worst)
    return Selection(stats, _by_mean(stats, alive) + rejected[::-1])


def _halving_schedule(n_arms: int, keep: int, budget: int) -> list[tuple[int, int]]:
    """(surviving arms, pulls per arm) for each round of successive halving."""
    rounds = max(1, math.ceil(math.log2(n_arms / keep)))
    schedule: list[tuple[int, int]] = []
    alive = n_arms
    while alive > keep and len(schedule) < rounds:
        schedule.append((alive, max(1, budget // (alive * rounds))))
        alive = max(keep, math.ceil(alive / 2))
    return schedule


def _successive_halving(config: SelectorConfig, keep: int, sampler: _Sampler) -> Selection:
    stats = sampler.stats
    alive = list(range(len(stats)))
    dropped: list[list[int]] = []
    for round_, (_, pulls) in enumerate(_halving_schedule(len(stats), keep, config.pull_budget), start=1):
        for _ in range(pulls):
            sampler.pull_sampled(alive)
        # Means pool every pull an arm has had so far, not just this round's: more data, same budget.
        ranked = _by_mean(stats, alive)
        survivors = max(keep, math.ceil(len(alive) / 2))
        alive, out = ranked[:survivors], ranked[survivors:]
        for arm in out:
            stats[arm].eliminated_round = round_
        dropped.append(out)
    return Selection(stats, _by_mean(stats, alive) + [arm for out in reversed(dropped) for arm in out])
