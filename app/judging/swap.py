"""Position-bias handling: which orders to show the answers in, and how to combine the verdicts.

``conservative`` judges both orders and only keeps a verdict both agree on (a disagreement is a tie,
as in the MT-Bench paper); ``random`` shows one order picked per item; ``none`` always shows A first.
Several samples per order are pooled over both orders (see :mod:`app.judging.samples`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from app.judging.domain import (
    CallOutput,
    ItemOutcome,
    Mode,
    Order,
    OrderOutcome,
    Scale,
    SwapMode,
    Verdict,
    VerdictParser,
)
from app.judging.parsers import PARSERS
from app.judging.samples import majority, mean_score
from app.judging.verdicts import VerdictParseError

_SWAPPED: dict[Verdict, Verdict] = {"A": "B", "B": "A", "tie": "tie"}


def random_order(seed: int, item_index: int) -> Order:
    """The order ``random`` swap uses for an item: the same for the same (seed, item index), always.

    The generator is seeded with the first 8 bytes (big-endian) of
    ``sha256(f"swap:{seed}:{item_index}")``, which does not depend on Python's hash randomisation
    or version, and draws ``choice(("AB", "BA"))``.
    """
    digest = hashlib.sha256(f"swap:{seed}:{item_index}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    order: Order = rng.choice(("AB", "BA"))
    return order


def orders_for(mode: Mode, swap: SwapMode, seed: int, item_index: int) -> tuple[Order, ...]:
    """The orders to judge an item in: ``("single",)`` when grading, else one or both of AB/BA."""
    if mode == "single":
        return ("single",)
    if swap == "conservative":
        return ("AB", "BA")
    if swap == "random":
        return (random_order(seed, item_index),)
    if swap == "none":
        return ("AB",)
    raise ValueError(f"unknown swap mode {swap!r}")


def _check_orders(mode: Mode, swap: SwapMode, outputs: Sequence[CallOutput]) -> None:
    got = sorted({output.order for output in outputs})
    if mode == "single":
        expected_sets: tuple[list[str], ...] = (["single"],)
    elif swap == "conservative":
        expected_sets = (["AB", "BA"],)
    elif swap == "random":
        expected_sets = (["AB"], ["BA"])
    else:
        expected_sets = (["AB"],)
    if got not in expected_sets:
        raise ValueError(f"{mode} judging with swap {swap!r} cannot combine outputs for orders {got}")
    samples = [(output.order, output.sample) for output in outputs]
    if len(set(samples)) != len(samples):
        raise ValueError(f"cannot combine outputs that repeat an order's sample: {sorted(samples)}")


def _order_outcome(output: CallOutput, scale: Scale, parser: VerdictParser) -> OrderOutcome:
    verdict: Verdict | None = None
    score: float | None = None
    error: str | None = None
    rules = PARSERS[parser]
    try:
        if output.order == "single":
            score = rules.score(output.raw, scale)
        else:
            parsed = rules.pairwise(output.raw)
            verdict = _SWAPPED[parsed] if output.order == "BA" else parsed
    except VerdictParseError as exc:
        error = exc.message
    return OrderOutcome(
        order=output.order,
        raw=output.raw,
        verdict=verdict,
        score=score,
        error=error,
        tokens_in=output.tokens_in,
        tokens_out=output.tokens_out,
        latency_ms=output.latency_ms,
        queue_ms=output.queue_ms,
        sample=output.sample,
    )


def _failure(outcome: OrderOutcome, sampled: bool) -> str:
    where = f"order {outcome.order} sample {outcome.sample}" if sampled else f"order {outcome.order}"
    return f"{where}: {outcome.error}"


def aggregate(
    mode: Mode, swap: SwapMode, outputs: Sequence[CallOutput], scale: Scale, parser: VerdictParser = "strict"
) -> ItemOutcome:
    """Combine an item's judge outputs (one per order from :func:`orders_for` and sample) into its
    outcome, each output's verdict read with ``parser`` (see :mod:`app.judging.parsers`).

    Verdicts are in the caller's labels: ``A`` always means ``answer_a``, whatever order it was
    shown in. An order none of whose outputs parse makes the item an error (every raw text is kept);
    other unparseable samples are left out of the count. The parsed samples of every order are pooled
    (:mod:`app.judging.samples`): pairwise, the verdict with the most votes, a tie when labels share
    the most; single, the mean score. With one sample per order that is the conservative rule:
    agreeing orders give their verdict, disagreeing orders a tie. ``consistent`` (conservative swap)
    says whether each order's own majority agrees. Raises ``ValueError`` if the orders do not match
    ``mode`` and ``swap``.
    """
    _check_orders(mode, swap, outputs)
    orders = tuple(_order_outcome(output, scale, parser) for output in outputs)
    sampled = any(outcome.sample > 0 for outcome in orders)
    parsed = [outcome for outcome in orders if outcome.error is None]
    unjudged = {outcome.order for outcome in orders} - {outcome.order for outcome in parsed}
    if unjudged:
        reason = "; ".join(_failure(outcome, sampled) for outcome in orders if outcome.order in unjudged)
        return ItemOutcome(status="error", orders=orders, error=reason)
    if mode == "single":
        return ItemOutcome(status="ok", orders=orders, score=mean_score([_score(o) for o in parsed]))
    verdict = majority([_verdict(o) for o in parsed])
    if swap == "conservative":
        ab, ba = (majority([_verdict(o) for o in parsed if o.order == order]) for order in ("AB", "BA"))
        return ItemOutcome(status="ok", orders=orders, verdict=verdict, consistent=ab == ba)
    return ItemOutcome(status="ok", orders=orders, verdict=verdict)


def _verdict(outcome: OrderOutcome) -> Verdict:
    assert outcome.verdict is not None
    return outcome.verdict


def _score(outcome: OrderOutcome) -> float:
    assert outcome.score is not None
    return outcome.score
