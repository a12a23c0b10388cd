"""Figures of one judging batch (a job's items): counts, consistency and first-position preference. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.jobs.schemas import ItemResult

# The answer each pairwise order shows first, in the caller's labels.
_SHOWN_FIRST = {"AB": "A", "BA": "B"}


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class BatchStats:
    items: int
    ok: int
    errors: int
    pending: int
    verdicts: dict[str, int] = field(default_factory=dict)
    # Conservative swap: items judged in both orders, and those whose two orders agreed.
    swapped: int = 0
    consistent: int = 0
    # Pairwise orders with a verdict (ties included), and those whose verdict picked the answer shown first.
    judged_orders: int = 0
    first_position_picks: int = 0
    mean_score: float | None = None

    @property
    def consistency_rate(self) -> float | None:
        """Share of the items judged in both orders whose two orders agreed (None: no such item)."""
        return _share(self.consistent, self.swapped)

    @property
    def first_position_rate(self) -> float | None:
        """Share of the pairwise orders with a verdict that picked the answer shown first; a judge without
        position bias that never says tie sits near 0.5."""
        return _share(self.first_position_picks, self.judged_orders)


def batch_stats(results: Sequence[ItemResult]) -> BatchStats:
    """Counts, consistency and first-position preference over a job's item results. Items in error
    still count their parseable orders toward the first-position rate (it measures the judge, not the
    item), but no item in error counts toward consistency."""
    statuses = Counter(r.status for r in results)
    orders = [o for r in results for o in r.orders if o.order in _SHOWN_FIRST and o.verdict is not None]
    swapped = [r for r in results if r.consistent is not None]
    scores = [r.score for r in results if r.status == "ok" and r.score is not None]
    return BatchStats(
        items=len(results),
        ok=statuses["ok"],
        errors=statuses["error"],
        pending=statuses["pending"],
        verdicts=dict(Counter(r.verdict for r in results if r.status == "ok" and r.verdict is not None)),
        swapped=len(swapped),
        consistent=sum(1 for r in swapped if r.consistent),
        judged_orders=len(orders),
        first_position_picks=sum(1 for o in orders if o.verdict == _SHOWN_FIRST[o.order]),
        mean_score=sum(scores) / len(scores) if scores else None,
    )
