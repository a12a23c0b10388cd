"""The scheduling policy as a pure core: priority classes with aging, tenant fair shares, the token
budget of a batch."""

from __future__ import annotations

import pytest

from app.scheduling.policy import FairShare, Limits, Priority, Waiting, effective_class, next_batch

G = ("model", "generate", "greedy")


def req(
    rid: int,
    tenant: str = "a",
    priority: Priority = Priority.BATCH,
    tokens: int = 100,
    submitted: float = 0.0,
    group: object = G,
) -> Waiting:
    return Waiting(rid, priority, tenant, group, tokens, submitted)  # type: ignore[arg-type]


LIMITS = Limits(rows=4, tokens=10_000, aging_s=30.0)


def ids(batch: list[Waiting]) -> list[int]:
    return [r.id for r in batch]


def test_nothing_waiting_gives_an_empty_batch() -> None:
    assert next_batch([], LIMITS, now=0.0) == []


def test_an_interactive_request_runs_before_earlier_batch_and_background_work() -> None:
    waiting = [
        req(1, priority=Priority.BACKGROUND),
        req(2, priority=Priority.BATCH, submitted=1),
        req(3, priority=Priority.INTERACTIVE, submitted=2, group="other"),
    ]
    assert ids(next_batch(waiting, LIMITS, now=3.0)) == [3]


def test_a_batch_holds_only_requests_of_the_head_group() -> None:
    waiting = [req(1), req(2, group="sampled"), req(3), req(4, group="sampled")]
    assert ids(next_batch(waiting, LIMITS, now=1.0)) == [1, 3]


def test_the_batch_is_filled_urgent_class_first_then_the_rest_of_the_group() -> None:
    waiting = [
        req(1, priority=Priority.BACKGROUND),
        req(2, priority=Priority.BATCH, submitted=5),
        req(3, priority=Priority.BACKGROUND, submitted=1),
        req(4, priority=Priority.BATCH, submitted=6),
    ]
    assert ids(next_batch(waiting, LIMITS, now=7.0)) == [2, 4, 1, 3]


def test_an_interactive_batch_holds_only_interactive_requests() -> None:
    """A waiting client's call never rides in a full batch of other work."""
    waiting = [
        req(1, priority=Priority.BATCH),
        req(2, priority=Priority.INTERACTIVE, submitted=5),
        req(3, priority=Priority.BACKGROUND),
        req(4, priority=Priority.INTERACTIVE, tenant="b", submitted=6),
    ]
    assert ids(next_batch(waiting, LIMITS, now=7.0)) == [2, 4]


def test_rows_are_bounded() -> None:
    waiting = [req(i, submitted=i) for i in range(10)]
    assert ids(next_batch(waiting, LIMITS, now=20.0)) == [0, 1, 2, 3]


def test_the_token_budget_bounds_a_batch_but_smaller_requests_still_fit() -> None:
    limits = Limits(rows=8, tokens=1000)
    waiting = [
        req(1, tokens=600),
        req(2, tokens=600, submitted=1),
        req(3, tenant="b", tokens=300, submitted=2),
    ]
    batch = next_batch(waiting, limits, now=3.0)
    assert ids(batch) == [1, 3]
    assert sum(r.tokens for r in batch) <= 1000


def test_one_request_over_the_budget_still_runs_alone() -> None:
    waiting = [req(1, tokens=50_000), req(2, submitted=1)]
    assert ids(next_batch(waiting, LIMITS, now=2.0)) == [1]


def test_tenants_take_turns_within_a_class() -> None:
    # B queued 6 requests first; A's single request still gets into the next batch.
    waiting = [req(i, tenant="b", submitted=i) for i in range(6)] + [req(99, tenant="a", submitted=10)]
    batch = next_batch(waiting, LIMITS, now=11.0)
    assert 99 in ids(batch) and len(batch) == 4


def test_the_least_served_tenant_goes_first() -> None:
    waiting = [req(1, tenant="b"), req(2, tenant="a", submitted=1)]
    batch = next_batch(waiting, Limits(rows=1, tokens=10_000), now=2.0, usage={"b": 5000.0, "a": 10.0})
    assert ids(batch) == [2]


def test_waiting_long_enough_promotes_background_work_to_batch_but_never_above() -> None:
    old = req(1, priority=Priority.BACKGROUND, submitted=0.0)
    assert effective_class(old, now=10.0, aging_s=30.0) == Priority.BACKGROUND
    assert effective_class(old, now=31.0, aging_s=30.0) == Priority.BATCH
    assert effective_class(old, now=1e6, aging_s=30.0) == Priority.BATCH  # a client still comes first
    assert effective_class(req(2, submitted=0.0), now=1e6, aging_s=30.0) == Priority.BATCH
    assert effective_class(old, now=1e6, aging_s=0) == Priority.BACKGROUND  # aging off


def test_a_waiting_client_still_preempts_long_job_calls_that_waited_for_ages() -> None:
    aged = [req(i, priority=Priority.BACKGROUND, submitted=0.0, group="po") for i in range(8)]
    client = req(99, priority=Priority.INTERACTIVE, submitted=500.0)
    assert ids(next_batch([*aged, client], LIMITS, now=501.0)) == [99]
    assert ids(next_batch([*aged, client], LIMITS, now=501.0, more_urgent_than=Priority.BATCH)) == [99]


def test_an_aged_background_request_is_not_starved_by_a_stream_of_batch_work() -> None:
    waiting = [req(1, priority=Priority.BACKGROUND, submitted=0.0, group="po")]
    waiting += [req(10 + i, submitted=40.0 + i) for i in range(8)]
    assert ids(next_batch(waiting, Limits(rows=4, tokens=10_000, aging_s=30.0), now=61.0)) == [1]


def test_only_more_urgent_requests_qualify_to_preempt() -> None:
    waiting = [req(1, priority=Priority.BATCH), req(2, priority=Priority.INTERACTIVE, submitted=1, group="x")]
    assert ids(next_batch(waiting, LIMITS, now=2.0, more_urgent_than=Priority.BATCH)) == [2]
    assert next_batch(waiting, LIMITS, now=2.0, more_urgent_than=Priority.INTERACTIVE) == []


def test_limits_refuse_an_empty_batch() -> None:
    with pytest.raises(ValueError):
        Limits(rows=0, tokens=10)


def test_fair_share_usage_decays_with_its_half_life() -> None:
    share = FairShare(half_life_s=10.0)
    share.charge("a", 1000, now=0.0)
    share.charge("b", 100, now=0.0)
    assert share.usage(0.0) == {"a": 1000, "b": 100}
    later = share.usage(10.0)
    assert later["a"] == pytest.approx(500) and later["b"] == pytest.approx(50)
