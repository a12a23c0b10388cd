import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from app.prompt_opt.bandits import ArmStats, Selection, projected_evaluations, select, upper_bound
from app.prompt_opt.domain import Example, SelectorConfig, SelectorName

EXAMPLES = [Example(id=f"e{i}", inputs={"text": str(i)}, label="x") for i in range(200)]


class Arms:
    """Arms with known accuracies; records every pull call.

    ``exact``: a pull scores exactly the arm's accuracy. Otherwise each (arm, example) is correct when a
    hash-derived uniform number falls below the accuracy, so a pull's score is a noisy, reproducible
    estimate.
    """

    def __init__(self, accuracies: Sequence[float], exact: bool = False) -> None:
        self.accuracies = list(accuracies)
        self.exact = exact
        self.calls: list[tuple[list[int], list[str]]] = []

    def correct(self, arm: int, example: Example) -> bool:
        digest = hashlib.sha256(f"{arm}:{example.id}".encode()).hexdigest()
        return int(digest[:8], 16) / 2**32 < self.accuracies[arm]

    def __call__(self, arms: Sequence[int], sample: Sequence[Example]) -> list[float]:
        self.calls.append((list(arms), [ex.id for ex in sample]))
        if self.exact:
            return [self.accuracies[arm] for arm in arms]
        return [sum(self.correct(arm, ex) for ex in sample) / len(sample) for arm in arms]

    @property
    def evaluations(self) -> int:
        return sum(len(arms) * len(sample) for arms, sample in self.calls)

    def pulls(self) -> list[int]:
        counts = [0] * len(self.accuracies)
        for arms, _ in self.calls:
            for arm in arms:
                counts[arm] += 1
        return counts


def best(accuracies: Sequence[float], k: int) -> list[int]:
    return sorted(range(len(accuracies)), key=lambda i: -accuracies[i])[:k]


# Deliberately not in index order, so that index tie-breaks cannot pass for skill.
ACCURACIES = [0.35, 0.9, 0.15, 0.55, 0.8, 0.25, 0.45, 0.05]


def test_arm_stats_mean_and_selection_top() -> None:
    assert ArmStats().mean is None
    assert ArmStats(pulls=4, examples=40, total=2.0).mean == 0.5
    assert Selection(stats=[ArmStats()] * 3, ranking=[2, 0, 1]).top(2) == [2, 0]


def test_brute_force_scores_every_arm_on_every_example_in_one_call() -> None:
    arms = Arms(ACCURACIES)
    config = SelectorConfig(method="brute-force")
    selection = select(config, len(ACCURACIES), 2, arms, EXAMPLES, random.Random(0))
    assert len(arms.calls) == 1
    assert arms.calls[0] == (list(range(8)), [ex.id for ex in EXAMPLES])
    assert arms.evaluations == 8 * len(EXAMPLES) == projected_evaluations(config, 8, 2, len(EXAMPLES))
    empirical = [sum(arms.correct(a, ex) for ex in EXAMPLES) / len(EXAMPLES) for a in range(8)]
    assert selection.ranking == sorted(range(8), key=lambda a: (-empirical[a], a))
    assert selection.top(2) == best(ACCURACIES, 2)
    assert all(s.pulls == 1 and s.examples == len(EXAMPLES) for s in selection.stats)


@pytest.mark.parametrize("method", ["ucb", "ucb-e"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ucb_focuses_pulls_on_the_best_arms_and_finds_them(method: SelectorName, seed: int) -> None:
    arms = Arms(ACCURACIES)
    config = SelectorConfig(method=method, eval_rounds=16, prompts_per_round=3, samples_per_eval=32)
    selection = select(config, 8, 2, arms, EXAMPLES, random.Random(seed))
    assert selection.top(2) == best(ACCURACIES, 2)
    pulls = [s.pulls for s in selection.stats]
    assert pulls == arms.pulls()
    top2, bottom2 = best(ACCURACIES, 2), best([-a for a in ACCURACIES], 2)
    assert min(pulls[a] for a in top2) > max(pulls[a] for a in bottom2)
    # One call per round, prompts_per_round arms on one fresh sample each.
    assert len(arms.calls) == 16
    assert all(len(called) == 3 and len(sample) == 32 == len(set(sample)) for called, sample in arms.calls)
    assert arms.evaluations == projected_evaluations(config, 8, 2, len(EXAMPLES)) == 16 * 3 * 32


def test_ucb_round_one_has_no_bonus_then_explores_unpulled_arms() -> None:
    # LMOps calls choose(n, t) with the 0-based round: round 0 is random, round 1 has ln 1 = 0 (the first
    # round's arms again, greedily), then an unpulled arm's bonus sqrt(ln t / 1e-3) outranks any mean.
    arms = Arms(ACCURACIES, exact=True)
    config = SelectorConfig(method="ucb", eval_rounds=4, prompts_per_round=2)
    select(config, 8, 1, arms, EXAMPLES, random.Random(3))
    rounds = [called for called, _ in arms.calls]
    assert rounds[1] == rounds[0]
    later = [arm for called in rounds[2:] for arm in called]
    assert len(set(later)) == 4 and not set(later) & set(rounds[0])


def test_ucb_bonus_counts_examples_not_pulls_as_lmops_does() -> None:
    # LMOps' UCBBandits: counts += samples_per_eval per pull; index = mean + c * sqrt(ln t / (counts + 1e-3)).
    ucb = SelectorConfig(method="ucb", c=1.0, samples_per_eval=32)
    two_pulls = 2 * 32
    assert upper_bound(ucb, 0.5, two_pulls, 3) == pytest.approx(0.5 + math.sqrt(math.log(3) / 64.001))
    # 0.131, where counting the 2 pulls instead (the old scale) gave sqrt(ln 3 / 2.001) = 0.741: sqrt(32) x.
    assert upper_bound(ucb, 0.5, two_pulls, 3) - 0.5 == pytest.approx(0.131017, abs=1e-6)
    assert upper_bound(replace(ucb, c=2.0), 0.25, 32, 7) == pytest.approx(
        0.25 + 2 * math.sqrt(math.log(7) / 32.001)
    )
    assert upper_bound(ucb, 0.9, 32, 1) == 0.9  # ln 1 = 0
    assert upper_bound(ucb, 0.0, 0, 2) == pytest.approx(math.sqrt(math.log(2) / 1e-3))
    ucb_e = SelectorConfig(method="ucb-e", c=2.0)
    assert upper_bound(ucb_e, 0.5, 64, 5) == pytest.approx(0.5 + 2 * math.sqrt(2 / 64.001))
    with pytest.raises(ValueError, match="t >= 1"):
        upper_bound(ucb, 0.5, 64, 0)


def lmops_ucb(
    n_prompts: int,
    exs: Sequence[Example],
    scorer: Arms,
    rounds: int,
    num_prompts_per_round: int,
    samples_per_eval: int,
    c: float,
    mode: str,
    rng: random.Random,
) -> list[float]:
    """LMOps' UCBBanditEvaluator.__call__ and UCBBandits (prompt_optimization/evaluators.py), verbatim
    but for the module-level ``random`` (here ``rng``) and the order of tied arms, which LMOps leaves to
    ``np.argsort`` (here: lower index first)."""
    counts = np.zeros(n_prompts)
    scores = np.zeros(n_prompts)
    num_prompts_per_round = min(num_prompts_per_round, n_prompts)
    for ri in range(rounds):
        if np.sum(counts) == 0:
            chosen = rng.sample(range(n_prompts), num_prompts_per_round)
        else:
            means = np.divide(scores, counts, out=np.zeros_like(scores), where=counts != 0)
            n = counts + 1e-3
            ucb_scores = means + c * (np.sqrt(np.log(ri) / n) if mode == "ucb" else np.sqrt(c / n))
            chosen = list(np.argsort(-ucb_scores, kind="stable")[:num_prompts_per_round])
        sampled_data = rng.sample(list(exs), samples_per_eval)
        for i, score in zip(chosen, scorer(chosen, sampled_data), strict=True):
            counts[i] += samples_per_eval
            scores[i] += score * samples_per_eval
    return list(np.divide(scores, counts, out=np.zeros_like(scores), where=counts != 0))


@pytest.mark.parametrize("method", ["ucb", "ucb-e"])
@pytest.mark.parametrize(("c", "seed"), [(1.0, 0), (1.0, 1), (0.3, 2), (2.0, 3)])
def test_ucb_pulls_exactly_what_lmops_pulls(method: SelectorName, c: float, seed: int) -> None:
    accuracies = [random.Random(seed * 100 + a).uniform(0.3, 0.8) for a in range(12)]
    config = SelectorConfig(method=method, eval_rounds=10, prompts_per_round=4, samples_per_eval=16, c=c)
    ours, theirs = Arms(accuracies), Arms(accuracies)
    selection = select(config, 12, 4, ours, EXAMPLES, random.Random(seed))
    reference = lmops_ucb(12, EXAMPLES, theirs, 10, 4, 16, c, method, random.Random(seed))
    assert [(sorted(arms), sample) for arms, sample in ours.calls] == [
        (sorted(arms), sample) for arms, sample in theirs.calls
    ]
    assert [s.mean or 0.0 for s in selection.stats] == pytest.approx(reference)
    assert [s.examples for s in selection.stats] == [16 * n for n in theirs.pulls()]


def test_ucb_ranks_never_pulled_arms_last_and_caps_arms_per_round() -> None:
    arms = Arms(ACCURACIES, exact=True)
    selection = select(
        SelectorConfig(eval_rounds=1, prompts_per_round=3), 8, 1, arms, EXAMPLES, random.Random(0)
    )
    pulled = arms.calls[0][0]
    assert selection.ranking[:3] == sorted(pulled, key=lambda a: -ACCURACIES[a])
    assert selection.ranking[3:] == sorted(set(range(8)) - set(pulled))
    assert all(selection.stats[a].mean is None for a in selection.ranking[3:])

    capped = Arms([0.1, 0.2, 0.3])
    config = SelectorConfig(eval_rounds=2, prompts_per_round=10)
    select(config, 3, 1, capped, EXAMPLES, random.Random(0))
    assert [called for called, _ in capped.calls] == [[0, 1, 2], [0, 1, 2]]
    assert capped.evaluations == projected_evaluations(config, 3, 1, len(EXAMPLES))


def test_successive_rejects_follows_the_phase_schedule_and_rejects_the_worst_first() -> None:
    accuracies = [0.5, 0.9, 0.1, 0.7, 0.3]
    arms = Arms(accuracies, exact=True)
    config = SelectorConfig(
        method="successive-rejects", eval_rounds=4, prompts_per_round=5, samples_per_eval=10
    )
    selection = select(config, 5, 1, arms, EXAMPLES, random.Random(0))
    # K=5, n=20: logbar = 1/2 + 1/2 + 1/3 + 1/4 + 1/5; n_k = ceil(15 / (logbar * (6 - k))) = 2, 3, 3, 5.
    logbar = 0.5 + sum(1 / i for i in range(2, 6))
    assert [math.ceil(15 / (logbar * (6 - k))) for k in range(1, 5)] == [2, 3, 3, 5]
    assert [len(called) for called, _ in arms.calls] == [5, 5, 4, 2, 2]
    assert [s.pulls for s in selection.stats] == [3, 5, 2, 5, 3]
    assert [s.eliminated_round for s in selection.stats] == [3, None, 1, 4, 2]
    assert selection.ranking == [1, 3, 0, 4, 2]
    assert sum(s.pulls for s in selection.stats) <= config.pull_budget
    assert arms.evaluations == projected_evaluations(config, 5, 1, len(EXAMPLES)) == 18 * 10


def test_successive_rejects_stops_when_keep_arms_survive() -> None:
    arms = Arms(ACCURACIES, exact=True)
    config = SelectorConfig(method="successive-rejects", eval_rounds=8, prompts_per_round=8)
    selection = select(config, 8, 3, arms, EXAMPLES, random.Random(0))
    assert selection.top(3) == best(ACCURACIES, 3)
    assert [s.eliminated_round for s in selection.stats].count(None) == 3
    assert [selection.stats[a].eliminated_round for a in selection.ranking[3:]] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize("n_arms", [2, 3, 5, 8, 13])
def test_successive_rejects_never_exceeds_the_budget(n_arms: int) -> None:
    for budget in range(n_arms, 120, 7):
        arms = Arms([random.Random(budget * 31 + a).random() for a in range(n_arms)])
        config = SelectorConfig(
            method="successive-rejects", eval_rounds=budget, prompts_per_round=1, samples_per_eval=1
        )
        selection = select(config, n_arms, 1, arms, EXAMPLES, random.Random(budget))
        assert sum(s.pulls for s in selection.stats) <= budget
        assert arms.evaluations == projected_evaluations(config, n_arms, 1, len(EXAMPLES))


def test_successive_rejects_finds_the_best_arm_with_noisy_pulls() -> None:
    arms = Arms(ACCURACIES)
    config = SelectorConfig(
        method="successive-rejects", eval_rounds=8, prompts_per_round=8, samples_per_eval=32
    )
    assert select(config, 8, 1, arms, EXAMPLES, random.Random(0)).top(1) == best(ACCURACIES, 1)


def test_successive_halving_halves_until_keep_arms_remain() -> None:
    accuracies = [0.1 * (i + 1) for i in range(10)][::-1]  # arm 0 is the best
    arms = Arms(accuracies, exact=True)
    config = SelectorConfig(
        method="successive-halving", eval_rounds=6, prompts_per_round=10, samples_per_eval=8
    )
    selection = select(config, 10, 3, arms, EXAMPLES, random.Random(0))
    # rounds = ceil(log2(10 / 3)) = 2; round 1: 10 arms x 60 // (10 * 2) = 3 pulls; round 2: 5 arms x 6.
    assert [len(called) for called, _ in arms.calls] == [10] * 3 + [5] * 6
    assert [s.pulls for s in selection.stats] == [9] * 5 + [3] * 5
    assert [s.eliminated_round for s in selection.stats] == [None] * 3 + [2] * 2 + [1] * 5
    assert selection.ranking == list(range(10))
    assert arms.evaluations == projected_evaluations(config, 10, 3, len(EXAMPLES)) == (30 + 30) * 8


def test_successive_halving_never_drops_below_keep_and_spends_at_least_one_pull() -> None:
    arms = Arms(ACCURACIES, exact=True)
    config = SelectorConfig(method="successive-halving", eval_rounds=1, prompts_per_round=1)
    selection = select(config, 8, 5, arms, EXAMPLES, random.Random(0))
    # rounds = ceil(log2(8 / 5)) = 1, floor(1 / 8) pulls -> at least 1; ceil(8 / 2) = 4 < keep, so keep 5.
    assert [len(called) for called, _ in arms.calls] == [8]
    assert selection.top(5) == best(ACCURACIES, 5)
    assert [s.eliminated_round for s in selection.stats].count(None) == 5


def test_successive_halving_finds_the_best_arm_with_noisy_pulls() -> None:
    arms = Arms(ACCURACIES)
    config = SelectorConfig(
        method="successive-halving", eval_rounds=8, prompts_per_round=8, samples_per_eval=32
    )
    assert select(config, 8, 1, arms, EXAMPLES, random.Random(0)).top(1) == best(ACCURACIES, 1)


METHODS: list[SelectorName] = ["ucb", "ucb-e", "successive-rejects", "successive-halving", "brute-force"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n_arms", "keep", "n_examples"), [(8, 2, 200), (5, 1, 7), (12, 4, 40), (3, 3, 10)])
def test_projected_evaluations_equal_the_evaluations_requested(
    method: SelectorName, n_arms: int, keep: int, n_examples: int
) -> None:
    arms = Arms([random.Random(i).random() for i in range(n_arms)])
    config = SelectorConfig(method=method, eval_rounds=5, prompts_per_round=4, samples_per_eval=16)
    select(config, n_arms, keep, arms, EXAMPLES[:n_examples], random.Random(7))
    assert arms.evaluations == projected_evaluations(config, n_arms, keep, n_examples)
    # Samples are drawn without replacement and never exceed the examples given.
    assert all(len(sample) == len(set(sample)) <= n_examples for _, sample in arms.calls)


@pytest.mark.parametrize("method", METHODS)
def test_the_same_seed_gives_the_same_selection(method: SelectorName) -> None:
    config = SelectorConfig(method=method, eval_rounds=6, prompts_per_round=3, samples_per_eval=16)
    runs = []
    for _ in range(2):
        arms = Arms(ACCURACIES)
        runs.append((select(config, 8, 2, arms, EXAMPLES, random.Random(42)), arms.calls))
    assert runs[0] == runs[1]
    if method != "brute-force":
        other = Arms(ACCURACIES)
        select(config, 8, 2, other, EXAMPLES, random.Random(43))
        assert other.calls != runs[0][1]


def test_nothing_is_pulled_when_every_arm_is_kept() -> None:
    arms = Arms([0.1, 0.9])
    selection = select(SelectorConfig(), 2, 4, arms, [], random.Random(0))
    assert arms.calls == []
    assert selection.ranking == [0, 1]
    assert all(s == ArmStats() for s in selection.stats)
    assert projected_evaluations(SelectorConfig(), 2, 4, 0) == 0


def test_invalid_arguments() -> None:
    arms = Arms([0.1, 0.9, 0.5])
    with pytest.raises(ValueError, match="keep"):
        select(SelectorConfig(), 3, 0, arms, EXAMPLES, random.Random(0))
    with pytest.raises(ValueError, match="n_arms"):
        select(SelectorConfig(), 0, 1, arms, EXAMPLES, random.Random(0))
    with pytest.raises(ValueError, match="no examples"):
        select(SelectorConfig(), 3, 1, arms, [], random.Random(0))
    with pytest.raises(ValueError, match="2 scores for 3 arms"):
        select(
            SelectorConfig(method="brute-force"), 3, 1, lambda a, s: [0.0, 1.0], EXAMPLES, random.Random(0)
        )
