import pytest

from app.self_reward.evaluation import (
    exact_match,
    five_best,
    group_by_prompt,
    judge_quality,
    kendall_tau,
    pairwise_accuracy,
    spearman,
    win_rate,
)


def test_pairwise_accuracy_compares_responses_to_the_same_prompt_only() -> None:
    """The paper's Table 4 ranks the responses *to one prompt*. Across prompts, this judge would be
    wrong (it scores prompt q1's worst answer above q2's best), within each prompt it is always right."""
    groups = group_by_prompt(["q1", "q1", "q2", "q2"], [4, 5, 1, 2], [1, 2, 3, 4])
    assert groups == [[(4, 1), (5, 2)], [(1, 3), (2, 4)]]
    assert pairwise_accuracy(groups) == 1.0
    assert pairwise_accuracy([[(3, 1), (2, 2), (1, 3)]]) == 0.0


def test_pairwise_accuracy_judge_ties_disagree_and_gold_ties_are_skipped() -> None:
    # (0,1): judge tie -> disagrees; (0,2), (1,2): right. Gold-tied pairs are not compared.
    assert pairwise_accuracy([[(2, 1), (2, 2), (5, 3)]]) == pytest.approx(2 / 3)
    assert pairwise_accuracy([[(1, 1), (5, 3), (2, 3)]]) == 1.0
    assert pairwise_accuracy([[(1, 1), (None, 2), (3, 3)]]) == 1.0
    assert pairwise_accuracy([]) is None
    assert pairwise_accuracy([[(1, 3), (2, 3)], [(None, 1), (2, 3)]]) is None


def test_exact_match_needs_the_whole_order_of_a_prompt() -> None:
    right = [(1, 0), (3, 2), (4, 5)]
    one_swap = [(3, 0), (1, 2), (4, 5)]
    unparsed = [(None, 0), (3, 2), (4, 5)]
    judge_tie = [(3, 0), (3, 2), (4, 5)]
    assert exact_match([right, one_swap, unparsed, judge_tie]) == 0.25
    # A gold tie must be a judge tie too.
    assert exact_match([[(2, 3), (2, 3)], [(2, 3), (4, 3)]]) == 0.5
    assert exact_match([[(1, 1)]]) is None


def test_five_best_is_how_often_a_perfect_score_goes_to_the_best_response() -> None:
    groups = [[(5, 4), (5, 2), (1, 0)], [(5, 5), (3, 1)], [(4, 5), (2, 1)]]
    assert five_best(groups) == pytest.approx(2 / 3)
    assert five_best([[(4, 5), (3, 1)]]) is None


def test_kendall_tau_matches_scipy() -> None:
    assert kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    # tau-b with a tie in x: scipy.stats.kendalltau gives 0.9128709.
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9128709)
    assert kendall_tau([2, 2], [1, 2]) is None
    assert kendall_tau([1], [1]) is None
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1])


def test_judge_quality_reports_the_papers_measures_per_prompt() -> None:
    prompts = ["a", "a", "a", "b", "b", "b"]
    judged = [1.0, 3.0, 5.0, 2.0, None, 1.0]
    gold = [0.0, 2.0, 5.0, 4.0, 3.0, 1.0]
    quality = judge_quality(prompts, judged, gold)
    assert quality["n"] == 6 and quality["prompts"] == 2 and quality["parse_failures"] == 1
    assert quality["pairwise_accuracy"] == 1.0  # 3 pairs of a, 1 of b
    assert quality["exact_match"] == 0.5  # b has an unparsed judgment
    assert quality["five_best"] == 1.0
    assert quality["spearman"] == pytest.approx(1.0) and quality["spearman_prompts"] == 2
    assert quality["kendall_tau"] == pytest.approx(1.0) and quality["kendall_tau_prompts"] == 2
    # Ours, named apart: exact scores (the 5 and the 1; None counts as a miss), the pooled correlation.
    assert quality["score_match"] == pytest.approx(2 / 6)
    assert quality["pooled_spearman"] == pytest.approx(spearman([1, 3, 5, 2, 1], [0, 2, 5, 4, 1]))


def test_spearman() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Monotone but not linear: still perfect.
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)
    # Ties get average ranks: x ranks 1.5, 1.5, 3, 4 against 1, 2, 3, 4 (scipy gives 0.9486833).
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)
    # A textbook example: d^2 sum 4 over n 5 -> 1 - 6*4/(5*24) = 0.8.
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)


def test_spearman_none_when_undefined() -> None:
    assert spearman([], []) is None
    assert spearman([1], [2]) is None
    assert spearman([3, 3, 3], [1, 2, 3]) is None
    assert spearman([1, 2, 3], [0, 0, 0]) is None
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_win_rate() -> None:
    result = win_rate(["A", "A", "B", "tie"])
    assert result == {"win": 0.5, "loss": 0.25, "tie": 0.25, "win_rate": 0.625}
    assert win_rate(["tie", "tie"])["win_rate"] == 0.5
    assert win_rate(["B"]) == {"win": 0.0, "loss": 1.0, "tie": 0.0, "win_rate": 0.0}


def test_win_rate_rejects_empty_and_unknown_verdicts() -> None:
    with pytest.raises(ValueError):
        win_rate([])
    with pytest.raises(ValueError, match="'C'"):
        win_rate(["A", "C"])
