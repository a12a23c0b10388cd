import pytest

from app.self_reward.evaluation import pairwise_accuracy, spearman, win_rate


def test_pairwise_accuracy_perfect_and_reversed() -> None:
    assert pairwise_accuracy([1, 2, 3], [1, 2, 3]) == 1.0
    assert pairwise_accuracy([3, 2, 1], [1, 2, 3]) == 0.0
    # Only the order counts, not the scale.
    assert pairwise_accuracy([0.1, 4.5, 5], [1, 2, 3]) == 1.0


def test_pairwise_accuracy_judge_ties_count_half_and_gold_ties_are_skipped() -> None:
    # Pairs (0,1): tie -> 0.5; (0,2): right; (1,2): right. Gold tie (2,3) and (0..1 vs 3) handled below.
    assert pairwise_accuracy([2, 2, 5], [1, 2, 3]) == pytest.approx(2.5 / 3)
    # Items 1 and 2 tie in gold: their pair is not compared whatever the judge says.
    assert pairwise_accuracy([1, 5, 2], [1, 3, 3]) == 1.0


def test_pairwise_accuracy_skips_missing_judge_scores() -> None:
    assert pairwise_accuracy([1, None, 3], [1, 2, 3]) == 1.0
    assert pairwise_accuracy([None, 5, 1], [1, 2, 3]) == 0.0


def test_pairwise_accuracy_none_without_comparable_pairs() -> None:
    assert pairwise_accuracy([], []) is None
    assert pairwise_accuracy([1, 2], [3, 3]) is None
    assert pairwise_accuracy([None, 2], [1, 3]) is None


def test_pairwise_accuracy_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError):
        pairwise_accuracy([1, 2], [1])


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
