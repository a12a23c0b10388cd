import math

from app.self_reward.domain import PairDecision, PairSettings, ScoredCandidate
from app.self_reward.pairs import score_histogram, select_pair

PLAIN = PairSettings()
LENGTH = PairSettings(length_control=True)


def cand(index: int, *scores: float, text: str | None = None, finished: bool = True) -> ScoredCandidate:
    return ScoredCandidate(
        index=index, text=text if text is not None else f"answer {index}", scores=scores, finished=finished
    )


def test_best_mean_is_chosen_and_worst_rejected() -> None:
    candidates = [cand(0, 3, 3, 3), cand(1, 5, 4, 4), cand(2, 1, 2, 2), cand(3, 4, 4, 3)]
    assert select_pair(candidates, PLAIN) == PairDecision(1, 2, "4.33 vs 1.67")


def test_fewer_than_two_scored_candidates_give_no_pair() -> None:
    expected = PairDecision(None, None, "fewer than 2 scored candidates")
    assert select_pair([], PLAIN) == expected
    assert select_pair([cand(0, 4)], PLAIN) == expected
    # Unparsed judgments leave a candidate without scores.
    assert select_pair([cand(0, 4), cand(1)], PLAIN) == expected


def test_unfinished_candidates_are_excluded_even_when_best_or_worst() -> None:
    candidates = [cand(0, 5, 5, finished=False), cand(1, 4), cand(2, 2), cand(3, 0, finished=False)]
    assert select_pair(candidates, PLAIN) == PairDecision(1, 2, "4.00 vs 2.00")
    assert select_pair([cand(0, 5, finished=False), cand(1, 1)], PLAIN).chosen is None


def test_all_equal_means_tie() -> None:
    assert select_pair([cand(0, 3, 4), cand(1, 4, 3), cand(2, 3.5)], PLAIN) == PairDecision(
        None, None, "all candidates tie at 3.50"
    )
    # Ties are judged on means, not on summation order.
    assert select_pair([cand(0, 0.1, 0.2, 0.3), cand(1, 0.3, 0.2, 0.1)], PLAIN).chosen is None


def test_equal_means_prefer_the_more_certain_judgment() -> None:
    candidates = [cand(0, 5, 3), cand(1, 4, 4), cand(2, 1, 3), cand(3, 2, 2)]
    decision = select_pair(candidates, PLAIN)
    assert (decision.chosen, decision.rejected) == (1, 3)
    assert decision.reason == "4.00 vs 2.00"


def test_length_control_prefers_shorter_chosen_and_longer_rejected() -> None:
    candidates = [
        cand(0, 5, text="a long and rambling best answer"),
        cand(1, 5, text="short best"),
        cand(2, 1, text="short bad"),
        cand(3, 1, text="a long and rambling bad answer"),
    ]
    decision = select_pair(candidates, LENGTH)
    assert (decision.chosen, decision.rejected) == (1, 3)
    # Without length control the lower index wins.
    decision = select_pair(candidates, PLAIN)
    assert (decision.chosen, decision.rejected) == (0, 2)


def test_variance_outranks_length() -> None:
    candidates = [
        cand(0, 4, 4, text="a long but consistently judged answer"),
        cand(1, 5, 3, text="short"),
        cand(2, 1, 1, text="x"),
        cand(3, 0, 2, text="a long answer the judge disagreed about"),
    ]
    decision = select_pair(candidates, LENGTH)
    assert (decision.chosen, decision.rejected) == (0, 2)


def test_equal_everything_falls_back_to_lower_index() -> None:
    candidates = [
        cand(3, 2, text="same"),
        cand(1, 4, text="same"),
        cand(0, 2, text="same"),
        cand(2, 4, text="same"),
    ]
    decision = select_pair(candidates, LENGTH)
    assert (decision.chosen, decision.rejected) == (1, 0)


def test_indexes_are_the_candidates_own_not_positions() -> None:
    decision = select_pair([cand(7, 1), cand(4, 5)], PLAIN)
    assert (decision.chosen, decision.rejected) == (4, 7)


def test_score_histogram_buckets_by_rounded_point() -> None:
    histogram = score_histogram([0, 0.4, 1.5, 2.49, 2.5, 3.67, 4.5, 5, 5, 7, -1, math.nan])
    assert histogram == {"0": 3, "1": 0, "2": 2, "3": 1, "4": 1, "5": 4}
    assert score_histogram([]) == {"0": 0, "1": 0, "2": 0, "3": 0, "4": 0, "5": 0}
    assert list(score_histogram([3])) == ["0", "1", "2", "3", "4", "5"]
