"""Probability verdicts: labels, the BA mapping, argmax and its ties, expected scores, swap averaging."""

from __future__ import annotations

import math

import pytest

from app.judging.domain import Mode, Order, OrderOutcome, Scale, SwapMode
from app.judging.probabilities import (
    MAX_SCALE_POINTS,
    aggregate_distributions,
    argmax_score,
    argmax_verdict,
    expected_score,
    order_outcome_from_distribution,
    render_distribution,
    verdict_labels,
)

TEN = Scale(1, 10)


def pair(order: Order, a: float, b: float, c: float, mass: float = 1.0) -> OrderOutcome:
    """An order's outcome from the judge's P(A), P(B), P(C) as it saw the answers in ``order``."""
    return order_outcome_from_distribution("pairwise", order, {"A": a, "B": b, "C": c}, mass, TEN)


def grade(probs: dict[int, float], scale: Scale = TEN, mass: float = 1.0) -> OrderOutcome:
    labels = verdict_labels("single", scale)
    dist = {label: probs.get(int(label), 0.0) for label in labels}
    return order_outcome_from_distribution("single", "single", dist, mass, scale)


# -- labels ---------------------------------------------------------------------------------------


def test_pairwise_labels_are_the_judges_letters() -> None:
    assert verdict_labels("pairwise", TEN) == ["A", "B", "C"]
    # The scale plays no part when comparing, even one logprobs grading would refuse.
    assert verdict_labels("pairwise", Scale(0.5, 1000)) == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("scale", "labels"),
    [
        (TEN, [str(i) for i in range(1, 11)]),
        (Scale(1, 5), ["1", "2", "3", "4", "5"]),
        (Scale(0, 1), ["0", "1"]),
        (Scale(-2, 2), ["-2", "-1", "0", "1", "2"]),
        (Scale(1.0, 3.0), ["1", "2", "3"]),
        (Scale(1, MAX_SCALE_POINTS), [str(i) for i in range(1, MAX_SCALE_POINTS + 1)]),
    ],
)
def test_single_labels_are_every_whole_score_lowest_first(scale: Scale, labels: list[str]) -> None:
    assert verdict_labels("single", scale) == labels


@pytest.mark.parametrize(
    ("scale", "fragment"),
    [
        (Scale(1, 7.5), "whole-number ends, got 1..7.5"),
        (Scale(0.5, 10), "whole-number ends"),
        (Scale(0, MAX_SCALE_POINTS), f"at most {MAX_SCALE_POINTS} scores, got 101 (0..100)"),
        (Scale(-1000, 1000), "got 2001"),
        (Scale(5, 5), "greater than min"),
        (Scale(10, 1), "greater than min"),
    ],
)
def test_single_labels_refuse_scales_without_a_label_per_score(scale: Scale, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        verdict_labels("single", scale)
    assert fragment in str(info.value)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        verdict_labels("ranking", TEN)  # type: ignore[arg-type]


# -- one order --------------------------------------------------------------------------------


def test_ab_keeps_the_judges_labels_with_c_as_tie() -> None:
    outcome = pair("AB", 0.61, 0.30, 0.09)
    assert outcome.probs == pytest.approx({"A": 0.61, "B": 0.30, "tie": 0.09})
    assert (outcome.order, outcome.verdict, outcome.score, outcome.error) == ("AB", "A", None, None)


def test_ba_maps_the_judges_a_to_answer_b() -> None:
    # In BA the judge saw answer_b first: its "A" is the caller's B, and its "B" the caller's A.
    outcome = pair("BA", 0.61, 0.30, 0.09)
    assert outcome.probs == pytest.approx({"A": 0.30, "B": 0.61, "tie": 0.09})
    assert outcome.verdict == "B"


def test_ba_tie_stays_a_tie() -> None:
    outcome = pair("BA", 0.2, 0.1, 0.7)
    assert outcome.verdict == "tie"
    assert outcome.probs == pytest.approx({"A": 0.1, "B": 0.2, "tie": 0.7})


def test_raw_renders_the_judges_own_labels() -> None:
    # raw is what the judge "said", in its own labels (so BA's P(A) is answer_b's probability).
    assert pair("BA", 0.61, 0.30, 0.09, mass=0.93).raw == "P(A)=0.61 P(B)=0.30 P(C)=0.09 mass=0.93"
    assert pair("AB", 1.0, 0.0, 0.0, mass=0.0012).raw == "P(A)=1.00 P(B)=0.00 P(C)=0.00 mass=0.0012"


def test_the_distribution_is_renormalised() -> None:
    outcome = pair("AB", 2.0, 1.0, 1.0)
    assert outcome.probs == pytest.approx({"A": 0.5, "B": 0.25, "tie": 0.25})
    assert outcome.raw.startswith("P(A)=0.50 P(B)=0.25 P(C)=0.25")


def test_engine_counters_are_kept() -> None:
    outcome = order_outcome_from_distribution(
        "pairwise", "AB", {"A": 1, "B": 0, "C": 0}, 1.0, TEN, tokens_in=321, latency_ms=12.5
    )
    assert (outcome.tokens_in, outcome.tokens_out, outcome.latency_ms) == (321, 0, 12.5)


def test_no_mass_on_any_label_is_an_error_not_a_guess() -> None:
    # An engine that saw no label returns uniform probabilities with mass 0.
    outcome = pair("AB", 1 / 3, 1 / 3, 1 / 3, mass=0.0)
    assert outcome.error == "the judge put no probability on any verdict label"
    assert (outcome.verdict, outcome.probs) == (None, None)
    assert outcome.raw == "P(A)=0.33 P(B)=0.33 P(C)=0.33 mass=0"
    assert pair("AB", 0.0, 0.0, 0.0, mass=0.5).error is not None


def test_single_score_is_the_most_likely_and_probs_are_keyed_by_score() -> None:
    outcome = grade({7: 0.5, 8: 0.3, 10: 0.2})
    assert outcome.score == 7.0
    assert outcome.verdict is None
    assert outcome.probs is not None and list(outcome.probs) == [str(i) for i in range(1, 11)]
    assert outcome.probs["8"] == pytest.approx(0.3)
    assert outcome.raw.startswith("P(1)=0.00 ") and "P(7)=0.50 P(8)=0.30" in outcome.raw


@pytest.mark.parametrize(("mode", "order"), [("pairwise", "single"), ("single", "AB"), ("single", "BA")])
def test_order_must_fit_the_mode(mode: Mode, order: Order) -> None:
    probs = {label: 1.0 for label in verdict_labels(mode, TEN)}
    with pytest.raises(ValueError, match="does not fit"):
        order_outcome_from_distribution(mode, order, probs, 1.0, TEN)


@pytest.mark.parametrize(
    ("mode", "probs", "fragment"),
    [
        ("pairwise", {"A": 0.5, "B": 0.5}, "expected probabilities for the labels"),
        ("pairwise", {"A": 0.5, "B": 0.3, "tie": 0.2}, "got ['A', 'B', 'tie']"),
        ("pairwise", {"A": 0.5, "B": 0.3, "C": 0.1, "D": 0.1}, "expected probabilities"),
        ("single", {"1": 1.0}, "expected probabilities"),
        ("pairwise", {"A": math.nan, "B": 0.5, "C": 0.5}, "finite and non-negative"),
        ("pairwise", {"A": -0.1, "B": 0.6, "C": 0.5}, "finite and non-negative"),
        ("pairwise", {"A": math.inf, "B": 0.0, "C": 0.0}, "finite and non-negative"),
    ],
)
def test_malformed_distributions_are_refused(mode: Mode, probs: dict[str, float], fragment: str) -> None:
    order: Order = "single" if mode == "single" else "AB"
    with pytest.raises(ValueError) as info:
        order_outcome_from_distribution(mode, order, probs, 1.0, TEN)
    assert fragment in str(info.value)


def test_bad_mass_is_refused() -> None:
    with pytest.raises(ValueError, match="finite and non-negative"):
        order_outcome_from_distribution("pairwise", "AB", {"A": 1, "B": 0, "C": 0}, -1.0, TEN)


def test_a_scale_without_labels_is_refused_per_order() -> None:
    with pytest.raises(ValueError, match="whole-number"):
        order_outcome_from_distribution("single", "single", {"1": 1.0}, 1.0, Scale(1, 1.5))


# -- argmax and expected score -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("probs", "verdict"),
    [
        ({"A": 0.5, "B": 0.3, "tie": 0.2}, "A"),
        ({"A": 0.3, "B": 0.5, "tie": 0.2}, "B"),
        ({"A": 0.3, "B": 0.3, "tie": 0.4}, "tie"),
        # Leaders that tie make a tie: the judge prefers neither answer.
        ({"A": 0.45, "B": 0.45, "tie": 0.1}, "tie"),
        ({"A": 0.4, "B": 0.2, "tie": 0.4}, "tie"),
        ({"A": 1 / 3, "B": 1 / 3, "tie": 1 / 3}, "tie"),
        # Rounding noise far below any real difference counts as a tie too.
        ({"A": 0.45 + 1e-12, "B": 0.45, "tie": 0.1}, "tie"),
        ({"A": 0.45 + 1e-6, "B": 0.45, "tie": 0.1 - 1e-6}, "A"),
    ],
)
def test_argmax_verdict(probs: dict[str, float], verdict: str) -> None:
    assert argmax_verdict(probs) == verdict


@pytest.mark.parametrize(
    ("probs", "score"),
    [
        ({"1": 0.1, "2": 0.7, "3": 0.2}, 2.0),
        # Equally likely scores: the lowest, whatever the key order.
        ({"1": 0.1, "2": 0.45, "3": 0.45}, 2.0),
        ({"3": 0.45, "2": 0.45, "1": 0.1}, 2.0),
        ({"10": 0.5, "9": 0.5}, 9.0),
        ({"-1": 0.5, "1": 0.5}, -1.0),
    ],
)
def test_argmax_score(probs: dict[str, float], score: float) -> None:
    assert argmax_score(probs) == score


def test_expected_score_is_the_probability_weighted_mean() -> None:
    assert expected_score({"1": 0.25, "2": 0.25, "3": 0.5}) == pytest.approx(2.25)
    assert expected_score({"-2": 0.5, "2": 0.5}) == pytest.approx(0.0)
    assert expected_score({"10": 1.0}) == 10.0
    # Unlike the argmax, it moves with mass below the top score.
    assert expected_score({"7": 0.6, "1": 0.4}) == pytest.approx(4.6)


def test_render_distribution_follows_the_label_order() -> None:
    assert render_distribution(["B", "A"], {"A": 0.25, "B": 0.75}, 1.0) == "P(B)=0.75 P(A)=0.25 mass=1"


# -- combining orders ------------------------------------------------------------------------------


def test_conservative_swap_averages_both_orders_in_caller_labels() -> None:
    ab = pair("AB", 0.2, 0.7, 0.1)  # caller: B 0.7
    ba = pair("BA", 0.61, 0.30, 0.09)  # caller: B 0.61
    outcome = aggregate_distributions("pairwise", "conservative", [ab, ba])
    assert outcome.status == "ok"
    assert outcome.probs == pytest.approx({"A": 0.25, "B": 0.655, "tie": 0.095})
    assert (outcome.verdict, outcome.consistent) == ("B", True)
    assert (outcome.score, outcome.expected_score, outcome.error) == (None, None, None)
    assert outcome.orders == (ab, ba)


def test_position_bias_cancels_out_in_the_average() -> None:
    # A judge that always prefers whatever it saw first: the orders disagree, the average is even.
    ab = pair("AB", 0.8, 0.1, 0.1)
    ba = pair("BA", 0.8, 0.1, 0.1)
    outcome = aggregate_distributions("pairwise", "conservative", [ab, ba])
    assert outcome.probs == pytest.approx({"A": 0.45, "B": 0.45, "tie": 0.1})
    assert (outcome.verdict, outcome.consistent) == ("tie", False)


def test_disagreeing_orders_give_a_tie_keeping_the_average() -> None:
    # Conservative swap (MT-Bench paper, and the README's promise): a winner only when both orders'
    # most likely labels agree. The mean here favours A (0.65), yet the orders disagree: a tie.
    ab = pair("AB", 0.9, 0.05, 0.05)  # A
    ba = pair("BA", 0.45, 0.55, 0.0)  # caller A 0.55, B 0.45: A
    agreeing = aggregate_distributions("pairwise", "conservative", [ab, ba])
    assert (agreeing.verdict, agreeing.consistent) == ("A", True)
    ba_b = pair("BA", 0.6, 0.4, 0.0)  # caller B 0.6
    outcome = aggregate_distributions("pairwise", "conservative", [ab, ba_b])
    assert (ab.verdict, ba_b.verdict) == ("A", "B")
    assert (outcome.verdict, outcome.consistent) == ("tie", False)
    assert outcome.probs == pytest.approx({"A": 0.65, "B": 0.325, "tie": 0.025})
    # One order calling it a tie is a disagreement too, even when the other is sure.
    ba_tie = pair("BA", 0.1, 0.1, 0.8)
    outcome = aggregate_distributions("pairwise", "conservative", [ab, ba_tie])
    assert (outcome.verdict, outcome.consistent) == ("tie", False)
    assert outcome.probs == pytest.approx({"A": 0.5, "B": 0.075, "tie": 0.425})


def test_the_average_does_not_depend_on_the_order_outcomes_come_in() -> None:
    ab = pair("AB", 0.3, 0.6, 0.1)
    ba = pair("BA", 0.3, 0.6, 0.1)
    first = aggregate_distributions("pairwise", "conservative", [ab, ba])
    second = aggregate_distributions("pairwise", "conservative", [ba, ab])
    assert (first.probs, first.verdict, first.consistent) == (second.probs, second.verdict, second.consistent)
    assert first.verdict == "tie"


@pytest.mark.parametrize(("swap", "order"), [("none", "AB"), ("random", "AB"), ("random", "BA")])
def test_one_order_gives_its_own_distribution(swap: SwapMode, order: Order) -> None:
    outcome = aggregate_distributions("pairwise", swap, [pair(order, 0.1, 0.2, 0.7)])
    assert outcome.status == "ok"
    assert (outcome.verdict, outcome.consistent) == ("tie", None)
    assert outcome.probs == pytest.approx(
        {"A": 0.1, "B": 0.2, "tie": 0.7} if order == "AB" else {"A": 0.2, "B": 0.1, "tie": 0.7}
    )


def test_single_gives_the_most_likely_and_the_expected_score() -> None:
    order = grade({6: 0.2, 7: 0.5, 10: 0.3})
    outcome = aggregate_distributions("single", "none", [order])
    assert outcome.status == "ok"
    assert outcome.score == 7.0
    assert outcome.expected_score == pytest.approx(0.2 * 6 + 0.5 * 7 + 0.3 * 10)
    assert outcome.probs == order.probs
    assert (outcome.verdict, outcome.consistent) == (None, None)


def test_single_on_a_shifted_scale() -> None:
    outcome = aggregate_distributions("single", "none", [grade({-1: 0.5, 1: 0.5}, Scale(-1, 1))])
    assert (outcome.score, outcome.expected_score) == (-1.0, pytest.approx(0.0))


def test_a_failed_order_makes_the_item_an_error_keeping_every_order() -> None:
    ab = pair("AB", 0.5, 0.5, 0.0)
    ba = pair("BA", 1 / 3, 1 / 3, 1 / 3, mass=0.0)
    outcome = aggregate_distributions("pairwise", "conservative", [ab, ba])
    assert outcome.status == "error"
    assert outcome.error == "order BA: the judge put no probability on any verdict label"
    assert (outcome.verdict, outcome.probs, outcome.consistent) == (None, None, None)
    assert outcome.orders == (ab, ba)


@pytest.mark.parametrize(
    ("mode", "swap", "orders"),
    [
        ("pairwise", "conservative", ["AB"]),
        ("pairwise", "conservative", ["AB", "AB"]),
        ("pairwise", "none", ["BA"]),
        ("pairwise", "none", ["AB", "BA"]),
        ("pairwise", "random", ["AB", "BA"]),
        ("single", "none", []),
    ],
)
def test_orders_must_match_mode_and_swap(mode: Mode, swap: SwapMode, orders: list[Order]) -> None:
    outcomes = [pair(order, 0.5, 0.3, 0.2) for order in orders]
    with pytest.raises(ValueError, match="cannot combine"):
        aggregate_distributions(mode, swap, outcomes)


def test_a_generated_outcome_cannot_be_combined_as_a_distribution() -> None:
    generated = OrderOutcome(order="AB", raw="Verdict: [[A]]", verdict="A")
    with pytest.raises(ValueError, match="no label distribution"):
        aggregate_distributions("pairwise", "none", [generated])
