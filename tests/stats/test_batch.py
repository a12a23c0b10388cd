"""The batch figures on the job page: consistency and first-position preference."""

from __future__ import annotations

from typing import Any

import pytest

from app.jobs.schemas import ItemResult, OrderResult
from app.stats.batch import batch_stats


def pair(ab: str | None, ba: str | None, **item: Any) -> ItemResult:
    """An item judged in both orders; ``ab``/``ba`` are each order's verdict in the caller's labels
    (None: unparseable)."""
    orders = [
        OrderResult(order=o, raw="...", verdict=v, error=None if v else "no verdict")  # type: ignore[arg-type]
        for o, v in (("AB", ab), ("BA", ba))
    ]
    if ab is None or ba is None:
        defaults: dict[str, Any] = {"status": "error", "error": "unparseable"}
    else:
        defaults = {"status": "ok", "verdict": ab if ab == ba else "tie", "consistent": ab == ba}
    return ItemResult(index=0, orders=orders, **{**defaults, **item})


def test_conservative_batch() -> None:
    results = [
        pair("A", "A"),  # agree; AB picked the first shown (A), BA did not (A is shown second)
        pair("A", "B"),  # disagree: both orders picked what they showed first
        pair("B", "A"),  # disagree: both picked what they showed second
        pair("tie", "tie"),  # agree on a tie: neither picked the first shown
    ]
    stats = batch_stats(results)
    assert (stats.items, stats.ok, stats.errors, stats.pending) == (4, 4, 0, 0)
    assert stats.verdicts == {"A": 1, "tie": 3}
    assert (stats.consistent, stats.swapped) == (2, 4)
    assert stats.consistency_rate == pytest.approx(0.5)
    # First-shown picks: item 1 AB; item 2 AB and BA; none else. 8 judged orders.
    assert (stats.first_position_picks, stats.judged_orders) == (3, 8)
    assert stats.first_position_rate == pytest.approx(3 / 8)


def test_a_fully_position_biased_judge() -> None:
    """The judge always picks the first answer shown: every pair disagrees, every order picks first."""
    stats = batch_stats([pair("A", "B") for _ in range(5)])
    assert stats.consistency_rate == 0.0
    assert stats.first_position_rate == 1.0
    assert stats.verdicts == {"tie": 5}


def test_errors_count_their_parsed_orders_but_not_consistency() -> None:
    stats = batch_stats([pair("B", None), pair("A", "A")])
    assert (stats.ok, stats.errors) == (1, 1)
    assert (stats.consistent, stats.swapped) == (1, 1)
    # The error item's AB order (B: the second shown) still counts: 3 parsed orders, 1 first pick.
    assert (stats.first_position_picks, stats.judged_orders) == (1, 3)


def test_single_grading_and_random_swap() -> None:
    single = [
        ItemResult(index=i, status="ok", score=s, orders=[OrderResult(order="single", raw="", score=s)])
        for i, s in enumerate((4.0, 8.0))
    ]
    stats = batch_stats(single)
    assert stats.mean_score == pytest.approx(6.0)
    assert stats.consistency_rate is None and stats.first_position_rate is None
    shown_second = ItemResult(
        index=0, status="ok", verdict="A", orders=[OrderResult(order="BA", raw="", verdict="A")]
    )
    stats = batch_stats([shown_second])
    assert stats.consistency_rate is None  # random swap judges one order: nothing to agree with
    assert (stats.first_position_picks, stats.judged_orders) == (0, 1)


def test_pending_items_and_an_empty_batch() -> None:
    stats = batch_stats([ItemResult(index=0, status="pending")])
    assert (stats.pending, stats.judged_orders, stats.verdicts) == (1, 0, {})
    assert batch_stats([]).consistency_rate is None
