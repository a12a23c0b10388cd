"""Self-consistency: pooling several sampled judgments per order (app/judging/samples.py, swap.aggregate)."""

import statistics

import pytest

from app.judging.domain import CallOutput, JudgeItem, JudgeOptions, Order, Scale, SwapMode, Verdict
from app.judging.planning import plan_item
from app.judging.samples import majority, sample_seed, score_consensus, verdict_consensus, vote_counts
from app.judging.swap import aggregate
from app.judging.templates import builtin_templates

TEN = Scale(1, 10)


def outs(order: Order, *raws: str) -> list[CallOutput]:
    return [CallOutput(order=order, raw=raw, sample=i) for i, raw in enumerate(raws)]


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["A"], "A"),
        (["A", "A", "B"], "A"),
        (["B", "tie", "B", "A"], "B"),
        # Labels sharing the most votes: the samples prefer neither answer.
        (["A", "B"], "tie"),
        (["A", "A", "tie", "tie"], "tie"),
        (["A", "B", "tie"], "tie"),
    ],
)
def test_majority_and_its_ties(verdicts: list[Verdict], expected: Verdict) -> None:
    assert majority(verdicts) == expected
    assert majority(list(reversed(verdicts))) == expected


def test_vote_counts_and_agreement() -> None:
    assert vote_counts(["A", "A", "tie"]) == {"A": 2, "B": 0, "tie": 1}
    consensus = verdict_consensus(["B", "B", "B", "A"])
    assert (consensus.samples, consensus.agreement, consensus.votes) == (4, 0.75, {"A": 1, "B": 3, "tie": 0})
    with pytest.raises(ValueError):
        majority([])


def test_score_consensus_is_sample_std_and_modal_share() -> None:
    consensus = score_consensus([7.0, 8.0, 7.0, 6.0])
    assert consensus.score_std == pytest.approx(statistics.stdev([7, 8, 7, 6]))
    assert consensus.agreement == 0.5
    assert consensus.votes is None
    assert score_consensus([5.0]).score_std is None


def test_sample_seeds_differ_and_sample_zero_keeps_the_job_seed() -> None:
    seeds = [sample_seed(42, i) for i in range(10)]
    assert seeds[0] == 42
    assert len(set(seeds)) == 10
    assert all(0 <= s < 2**31 for s in seeds)
    assert seeds == [sample_seed(42, i) for i in range(10)]
    assert sample_seed(43, 1) != seeds[1]


def test_samples_are_pooled_over_both_orders() -> None:
    # Caller's labels: AB says A, A, B; BA's judge "B" is the caller's A, so BA says A, B, tie.
    outputs = outs("AB", "[[A]]", "[[A]]", "[[B]]") + outs("BA", "[[B]]", "[[A]]", "[[C]]")
    outcome = aggregate("pairwise", "conservative", outputs, TEN)
    # Pooled: A 3, B 2, tie 1 -> A; AB's own majority is A, BA's is a three-way tie: not consistent.
    assert (outcome.status, outcome.verdict, outcome.consistent) == ("ok", "A", False)
    assert [(o.order, o.sample) for o in outcome.orders] == [("AB", 0), ("AB", 1), ("AB", 2)] + [
        ("BA", 0),
        ("BA", 1),
        ("BA", 2),
    ]
    assert [o.raw for o in outcome.orders] == [o.raw for o in outputs]


def test_pooled_tie_and_agreeing_orders() -> None:
    split = aggregate(
        "pairwise", "conservative", outs("AB", "[[A]]", "[[A]]") + outs("BA", "[[A]]", "[[A]]"), TEN
    )
    assert (split.verdict, split.consistent) == ("tie", False)  # A 2, B 2
    # AB: B, B, tie; BA (caller's labels): B, B, A. Pooled B 4; each order's majority is B.
    outputs = outs("AB", "[[B]]", "[[B]]", "[[C]]") + outs("BA", "[[A]]", "[[A]]", "[[B]]")
    agreed = aggregate("pairwise", "conservative", outputs, TEN)
    assert (agreed.verdict, agreed.consistent) == ("B", True)


@pytest.mark.parametrize("swap", ["none", "random"])
def test_one_order_majority(swap: SwapMode) -> None:
    outcome = aggregate("pairwise", swap, outs("AB", "[[B]]", "[[B]]", "[[A]]"), TEN)
    assert (outcome.verdict, outcome.consistent) == ("B", None)


def test_unparseable_samples_are_left_out_until_an_order_has_none() -> None:
    partly = aggregate("pairwise", "none", outs("AB", "[[A]]", "no verdict", "[[A]]"), TEN)
    assert (partly.status, partly.verdict, partly.error) == ("ok", "A", None)
    assert partly.orders[1].error is not None
    failed = aggregate("pairwise", "conservative", outs("AB", "[[A]]", "[[A]]") + outs("BA", "?", ""), TEN)
    assert failed.status == "error"
    assert failed.error is not None
    assert failed.error.startswith("order BA sample 0: no verdict marker")
    assert "order BA sample 1: the judge output is empty" in failed.error
    assert "order AB" not in failed.error


def test_single_scores_are_averaged() -> None:
    outcome = aggregate("single", "none", outs("single", "[[7]]", "[[8]]", "[[6]]", "[[x]]"), TEN)
    assert (outcome.status, outcome.score) == ("ok", 7.0)


def test_repeated_samples_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match="cannot combine"):
        aggregate("pairwise", "none", outs("AB", "[[A]]") + outs("AB", "[[B]]"), TEN)


def test_plan_lists_each_samples_orders_together() -> None:
    item = JudgeItem(turns=("2+2?",), answers_a=("4",), answers_b=("5",))
    options = JudgeOptions(mode="pairwise", swap="conservative", samples=3)
    calls = plan_item(item, builtin_templates()["pairwise"], options, item_index=0)
    assert [(c.order, c.sample) for c in calls] == [(o, s) for s in range(3) for o in ("AB", "BA")]
    assert calls[0].messages == calls[2].messages and calls[0].prompt_hash == calls[4].prompt_hash
    assert calls[0].prompt_hash != calls[1].prompt_hash
