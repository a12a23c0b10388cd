"""Turns stored items and calls into API results."""

from __future__ import annotations

from collections.abc import Iterable

from app.db.tables import JudgeCall, JudgmentItem
from app.jobs.schemas import ItemResult, OrderResult

_ORDER_RANK = {"AB": 0, "BA": 1, "single": 2}


def item_result(item: JudgmentItem, calls: Iterable[JudgeCall] | None = None) -> ItemResult:
    """The item as the API shows it; ``calls`` (default: the item's stored calls) are its judge calls,
    e.g. the ones a worker has just stored."""
    orders = [
        OrderResult(
            order=call.order,  # type: ignore[arg-type]
            raw=call.raw,
            verdict=call.verdict,  # type: ignore[arg-type]
            score=call.score,
            error=call.error,
            probabilities=call.probabilities,
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            latency_ms=call.latency_ms,
            queue_ms=call.queue_ms,
        )
        for call in sorted(item.calls if calls is None else calls, key=lambda c: _ORDER_RANK.get(c.order, 9))
        if call.order in _ORDER_RANK
    ]
    return ItemResult(
        index=item.index,
        id=item.inputs.get("id"),
        status=item.status,  # type: ignore[arg-type]
        verdict=item.verdict,  # type: ignore[arg-type]
        score=item.score,
        consistent=item.consistent,
        error=item.error,
        expected_score=item.expected_score,
        probabilities=item.probabilities,
        generated_references=item.generated_references,
        orders=orders,
    )
