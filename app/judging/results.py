"""Turns stored items and calls into API results."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

from app.jobs.schemas import ItemResult, OrderResult
from app.judging.domain import Verdict
from app.judging.samples import Consensus, score_consensus, verdict_consensus

_ORDER_RANK = {"AB": 0, "BA": 1, "single": 2}


class StoredCall(Protocol):
    """A judge call as stored: a :class:`JudgeCall`, or the values just written of one."""

    @property
    def order(self) -> str: ...
    @property
    def sample(self) -> int: ...
    @property
    def raw(self) -> str: ...
    @property
    def verdict(self) -> str | None: ...
    @property
    def score(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def probabilities(self) -> dict[str, float] | None: ...
    @property
    def tokens_in(self) -> int: ...
    @property
    def tokens_out(self) -> int: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def queue_ms(self) -> float: ...
    @property
    def cached(self) -> bool: ...


class StoredItem(Protocol):
    """A judgment item as stored: a :class:`JudgmentItem`, or the values just written of one."""

    @property
    def index(self) -> int: ...
    @property
    def inputs(self) -> dict[str, Any]: ...
    @property
    def status(self) -> str: ...
    @property
    def verdict(self) -> str | None: ...
    @property
    def score(self) -> float | None: ...
    @property
    def consistent(self) -> bool | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def expected_score(self) -> float | None: ...
    @property
    def probabilities(self) -> dict[str, float] | None: ...
    @property
    def generated_references(self) -> list[str] | None: ...
    @property
    def calls(self) -> Sequence[StoredCall]: ...


def _consensus(calls: Sequence[StoredCall]) -> Consensus | None:
    """How the item's samples agree; None unless it was judged with several samples per order."""
    parsed = [call for call in calls if call.error is None]
    if not parsed or all(call.sample == 0 for call in calls):
        return None
    if parsed[0].order == "single":
        return score_consensus([call.score for call in parsed if call.score is not None])
    return verdict_consensus([cast(Verdict, call.verdict) for call in parsed if call.verdict is not None])


def item_result(item: StoredItem, calls: Iterable[StoredCall] | None = None) -> ItemResult:
    """The item as the API shows it; ``calls`` (default: the item's stored calls) are its judge calls,
    e.g. the ones a worker has just stored."""
    judged = sorted(
        (call for call in (item.calls if calls is None else calls) if call.order in _ORDER_RANK),
        key=lambda c: (_ORDER_RANK[c.order], c.sample),
    )
    orders = [
        OrderResult(
            order=call.order,  # type: ignore[arg-type]
            sample=call.sample,
            raw=call.raw,
            verdict=call.verdict,  # type: ignore[arg-type]
            score=call.score,
            error=call.error,
            probabilities=call.probabilities,
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            latency_ms=call.latency_ms,
            queue_ms=call.queue_ms,
            cached=call.cached,
        )
        for call in judged
    ]
    consensus = _consensus(judged) if item.status == "ok" else None
    return ItemResult(
        index=item.index,
        id=item.inputs.get("id"),
        status=item.status,  # type: ignore[arg-type]
        verdict=item.verdict,  # type: ignore[arg-type]
        score=item.score,
        consistent=item.consistent,
        votes=dict(consensus.votes) if consensus is not None and consensus.votes is not None else None,
        score_std=consensus.score_std if consensus is not None else None,
        agreement=consensus.agreement if consensus is not None else None,
        error=item.error,
        expected_score=item.expected_score,
        probabilities=item.probabilities,
        generated_references=item.generated_references,
        cached=bool(orders) and all(o.cached for o in orders),
        orders=orders,
        rubric=item.inputs.get("rubric"),
    )
