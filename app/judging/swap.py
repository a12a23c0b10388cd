"""Position-bias handling: which orders to show the answers in, and how to combine the verdicts.

``conservative`` judges both orders and only keeps a verdict both agree on (a disagreement is a tie,
as in the MT-Bench paper); ``random`` shows one order picked per item; ``none`` always shows A first.
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
    got = sorted(output.order for output in outputs)
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
    )


def aggregate(
    mode: Mode, swap: SwapMode, outputs: Sequence[CallOutput], scale: Scale, parser: VerdictParser = "strict"
) -> ItemOutcome:
    """Combine an item's judge outputs (one per order from :func:`orders_for`) into its outcome, each
    output's verdict read with ``parser`` (see :mod:`app.judging.parsers`).

    Verdicts are in the caller's labels: ``A`` always means ``answer_a``, whatever order it was
    shown in. Any unparseable output makes the item an error (every order's raw text is kept).
    Conservative swap: agreeing orders give their verdict with ``consistent=True``; disagreeing
    orders give a tie with ``consistent=False``. Raises ``ValueError`` if the orders do not match
    ``mode`` and ``swap``.
    """
    _check_orders(mode, swap, outputs)
    orders = tuple(_order_outcome(output, scale, parser) for output in outputs)
    failed = [outcome for outcome in orders if outcome.error is not None]
    if failed:
        reason = "; ".join(f"order {outcome.order}: {outcome.error}" for outcome in failed)
        return ItemOutcome(status="error", orders=orders, error=reason)
    if mode == "single":
        return ItemOutcome(status="ok", orders=orders, score=orders[0].score)
    if swap == "conservative":
        first, second = orders[0].verdict, orders[1].verdict
        if first == second:
            return ItemOutcome(status="ok", orders=orders, verdict=first, consistent=True)
        return ItemOutcome(status="ok", orders=orders, verdict="tie", consistent=False)
    return ItemOutcome(status="ok", orders=orders, verdict=orders[0].verdict)
