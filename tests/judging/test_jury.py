"""The jury's aggregate of its judges' verdicts and scores (pure)."""

from __future__ import annotations

import pytest

from app.judging.jury import JudgeVote, jury_verdict, weighted_verdict


def vote(verdict: str | None = None, weight: float = 1.0, **orders: str) -> JudgeVote:
    return JudgeVote(weight=weight, verdict=verdict, by_order=dict(orders) or None)  # type: ignore[arg-type]


def test_majority_takes_the_most_common_verdict_and_counts_votes() -> None:
    outcome = jury_verdict("pairwise", "majority", [vote("A"), vote("A"), vote("B")])
    assert outcome.verdict == "A"
    assert outcome.votes == {"A": 2, "B": 1, "tie": 0}
    assert outcome.agreement == pytest.approx(2 / 3)


def test_majority_with_leaders_sharing_the_most_votes_is_a_tie() -> None:
    assert jury_verdict("pairwise", "majority", [vote("A"), vote("B")]).verdict == "tie"
    assert jury_verdict("pairwise", "majority", [vote("A"), vote("B"), vote("tie")]).verdict == "tie"


def test_weighted_verdict_follows_the_heaviest_total_not_the_head_count() -> None:
    outcome = jury_verdict("pairwise", "weighted", [vote("A", 1), vote("A", 1), vote("B", 3)])
    assert outcome.verdict == "B"
    assert outcome.votes == {"A": 2.0, "B": 3.0, "tie": 0.0}
    # Majority over the same votes says A: the weights decide.
    assert jury_verdict("pairwise", "majority", [vote("A", 1), vote("A", 1), vote("B", 3)]).verdict == "A"
    assert weighted_verdict(["A", "B"], [1.5, 1.5])[0] == "tie"


def test_judges_in_error_are_left_out_and_no_verdict_is_an_error() -> None:
    assert jury_verdict("pairwise", "majority", [vote("B"), vote(None), vote(None)]).verdict == "B"
    failed = jury_verdict("pairwise", "majority", [vote(None), vote(None)])
    assert failed.verdict is None and failed.error is not None


def test_jury_consistency_compares_its_verdicts_over_each_order() -> None:
    # Two judges flip with the order (first-position bias), one does not: the jury's majority flips.
    flipping = [vote("tie", AB="A", BA="B"), vote("tie", AB="A", BA="B"), vote("A", AB="A", BA="A")]
    assert jury_verdict("pairwise", "majority", flipping).consistent is False
    steady = [vote("A", AB="A", BA="A"), vote("A", AB="A", BA="A"), vote("tie", AB="A", BA="B")]
    assert jury_verdict("pairwise", "majority", steady).consistent is True
    # Unknown unless every judge judged both orders.
    assert jury_verdict("pairwise", "majority", [vote("A", AB="A"), vote("A")]).consistent is None


def test_single_mean_and_weighted_mean() -> None:
    votes = [JudgeVote(weight=3, score=8), JudgeVote(weight=1, score=4), JudgeVote(weight=5)]
    mean = jury_verdict("single", "mean", votes)
    assert mean.score == pytest.approx(6.0)
    assert mean.score_std == pytest.approx(2.828427, abs=1e-6)
    assert jury_verdict("single", "weighted", votes).score == pytest.approx(7.0)


def test_aggregates_that_do_not_fit_the_mode_are_refused() -> None:
    with pytest.raises(ValueError, match="does not apply"):
        jury_verdict("pairwise", "mean", [vote("A"), vote("B")])
    with pytest.raises(ValueError, match="does not apply"):
        jury_verdict("single", "majority", [JudgeVote(weight=1, score=3)])
