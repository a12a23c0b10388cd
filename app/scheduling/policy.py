"""Which waiting model requests run next: priority classes with aging, fair shares between tenants,
and a token budget per engine batch. Pure: plain values in, plain values out.

A *request* is one engine call for one prompt (one judge order, one generation, one scoring pass).
Requests that can share an engine batch have the same ``group`` (same model, same kind of pass, same
decoding). A batch is built around the most urgent request:

1. **Class.** ``INTERACTIVE`` (a client holding a ``?wait=`` request) before ``BATCH`` (judging jobs)
   before ``BACKGROUND`` (a long job's internal calls). A background request that has waited
   ``aging_s`` moves up to ``BATCH``, so a stream of judging jobs cannot starve a long job; nothing is
   promoted to ``INTERACTIVE``, so a waiting client always comes first (and may preempt the rest).
   An ``INTERACTIVE`` batch holds only ``INTERACTIVE`` requests: a waiting client's call never rides
   in a full batch of other work (its answer would take as long as that whole batch). A less urgent
   batch is filled with the rest of its group, most urgent class first.
2. **Fair share.** Within a class, tenants take turns: the tenant that has been served the fewest
   tokens recently (``usage``, decayed by the caller) goes first, and the batch is filled round-robin
   over tenants, so one tenant's stream of large jobs cannot keep another's single item waiting.
3. **Budget.** A batch holds at most ``rows`` requests and at most ``tokens`` of key/value memory,
   counted as each row's prompt plus its new-token allowance. The first request is always taken (it
   fits the model's context, or it fails alone), so a large one cannot block forever.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum


class Priority(IntEnum):
    """Scheduling classes, most urgent first."""

    INTERACTIVE = 0
    BATCH = 1
    BACKGROUND = 2


@dataclass(frozen=True)
class Waiting:
    """What the policy needs to know of one waiting request."""

    id: int
    priority: Priority
    tenant: str
    group: Hashable
    # Rows x (prompt + new tokens): the key/value memory the request holds while it runs.
    tokens: int
    submitted: float  # monotonic seconds


@dataclass(frozen=True)
class Limits:
    """One engine batch's bounds, and how fast waiting requests gain priority."""

    rows: int
    tokens: int
    aging_s: float = 30.0

    def __post_init__(self) -> None:
        if self.rows < 1 or self.tokens < 1:
            raise ValueError("a batch must allow at least one row and one token")


def effective_class(request: Waiting, now: float, aging_s: float) -> int:
    """The request's class after aging: one class more urgent per ``aging_s`` waited, but never
    INTERACTIVE unless it is one: a waiting client always comes first, while a long job's calls that
    waited catch up with batch judging (and then take turns with it in arrival order)."""
    if aging_s <= 0 or request.priority == Priority.INTERACTIVE:
        return int(request.priority)
    promoted = int(max(0.0, now - request.submitted) // aging_s)
    return max(int(Priority.BATCH), int(request.priority) - promoted)


def _ordered(
    waiting: Iterable[Waiting], now: float, aging_s: float, usage: Mapping[str, float]
) -> list[Waiting]:
    """Most urgent first: class, then the least-served tenant, then arrival."""
    return sorted(
        waiting,
        key=lambda r: (effective_class(r, now, aging_s), usage.get(r.tenant, 0.0), r.submitted, r.id),
    )


def next_batch(
    waiting: Sequence[Waiting],
    limits: Limits,
    now: float,
    usage: Mapping[str, float] | None = None,
    more_urgent_than: int | None = None,
) -> list[Waiting]:
    """The requests of the next engine batch (empty when nothing qualifies).

    ``usage``: tokens recently served per tenant (fair share). ``more_urgent_than``: only requests
    whose effective class is strictly more urgent than this class qualify (preempting a running batch
    of that class).
    """
    usage = usage or {}
    candidates = [
        r
        for r in waiting
        if more_urgent_than is None or effective_class(r, now, limits.aging_s) < more_urgent_than
    ]
    if not candidates:
        return []
    ordered = _ordered(candidates, now, limits.aging_s, usage)
    head = ordered[0]
    head_class = effective_class(head, now, limits.aging_s)
    same_group = [r for r in ordered if r.group == head.group]
    # Urgent classes first; within a class, one request per tenant in turn (least-served tenant first).
    by_class: dict[int, OrderedDict[str, list[Waiting]]] = {}
    for r in same_group:
        by_class.setdefault(effective_class(r, now, limits.aging_s), OrderedDict()).setdefault(
            r.tenant, []
        ).append(r)
    chosen = [head]
    used = head.tokens
    by_class[head_class][head.tenant].remove(head)
    for cls in sorted(by_class):
        if head_class == Priority.INTERACTIVE and cls != head_class:
            break
        queues = by_class[cls]
        while any(queues.values()) and len(chosen) < limits.rows:
            progressed = False
            for queue in queues.values():
                if not queue or len(chosen) >= limits.rows:
                    continue
                candidate = queue[0]
                if used + candidate.tokens > limits.tokens:
                    # This tenant's next request does not fit; others' smaller ones still may.
                    queue.clear()
                    continue
                queue.pop(0)
                chosen.append(candidate)
                used += candidate.tokens
                progressed = True
            if not progressed:
                break
        if len(chosen) >= limits.rows:
            break
    return chosen


class FairShare:
    """Tokens served per tenant, decaying with a half-life, so shares reflect recent use."""

    def __init__(self, half_life_s: float = 30.0) -> None:
        self.half_life_s = half_life_s
        self._served: dict[str, float] = {}
        self._at = 0.0

    def _decay(self, now: float) -> None:
        if now <= self._at:
            return
        factor = 0.5 ** ((now - self._at) / self.half_life_s) if self.half_life_s > 0 else 0.0
        self._served = {t: v * factor for t, v in self._served.items() if v * factor > 1e-3}
        self._at = now

    def charge(self, tenant: str, tokens: float, now: float) -> None:
        self._decay(now)
        self._served[tenant] = self._served.get(tenant, 0.0) + tokens

    def usage(self, now: float) -> dict[str, float]:
        self._decay(now)
        return dict(self._served)
