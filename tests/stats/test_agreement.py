"""Inter-judge agreement: Cohen's kappa per pair, Fleiss' kappa overall (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from app.stats.agreement import cohen_kappa, fleiss_kappa, fleiss_table, panel_agreement

# Fleiss (1971)'s worked example as given on Wikipedia ("Fleiss' kappa", worked example): 10 subjects,
# 14 raters each, 5 categories; kappa = 0.210.
FLEISS_EXAMPLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def test_fleiss_kappa_matches_the_published_worked_example() -> None:
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.2099, abs=5e-4)


def test_fleiss_kappa_is_one_for_perfect_agreement_and_undefined_for_one_category() -> None:
    assert fleiss_kappa(fleiss_table([["A", "A", "A"], ["B", "B", "B"], ["tie", "tie", "tie"]])) == 1.0
    assert fleiss_kappa(fleiss_table([["A", "A"], ["A", "A"]])) is None


def test_fleiss_table_counts_each_items_ratings() -> None:
    table = fleiss_table([["A", "B", "A"], ["tie", "tie", "B"]])
    assert table.tolist() == [[2, 1, 0], [0, 1, 2]]  # columns: A, B, tie
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa(np.array([[1, 1], [2, 1]]))


def test_cohen_kappa_against_a_hand_computed_table() -> None:
    # 20 items: both say A on 8, both B on 6, A/B on 4, B/A on 2. po = 0.7, pe = 0.6*0.5 + 0.4*0.5 = 0.5.
    first = ["A"] * 8 + ["B"] * 6 + ["A"] * 4 + ["B"] * 2
    second = ["A"] * 8 + ["B"] * 6 + ["B"] * 4 + ["A"] * 2
    assert cohen_kappa(first, second) == pytest.approx(0.4)


def test_cohen_kappa_is_undefined_when_both_judges_always_agree_on_one_label() -> None:
    assert cohen_kappa(["A", "A", "A"], ["A", "A", "A"]) is None
    assert cohen_kappa(["A"], ["B"]) is None


def test_panel_agreement_pairs_every_judge_and_skips_missing_ratings() -> None:
    ratings = [
        ["A", "B", "A", "tie", None],
        ["A", "B", "B", "tie", "A"],
        ["A", "B", "A", "tie", "B"],
    ]
    panel = panel_agreement(ratings)
    assert [(p.first, p.second, p.items) for p in panel.pairs] == [(0, 1, 4), (0, 2, 4), (1, 2, 5)]
    assert panel.pairs[1].kappa == pytest.approx(1.0)
    assert panel.fleiss_items == 4
    assert panel.fleiss == pytest.approx(
        fleiss_kappa(fleiss_table([list(r) for r in zip(*ratings, strict=True)][:4]))
    )
