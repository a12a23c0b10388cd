"""Verdicts read from label probabilities (``verdict_mode: "logprobs"``) instead of generated text.

The judge's reply is opened with the template's ``response_prefix`` (``"Verdict: [["``, ``"Rating: [["``),
so its next text is the verdict label: ``A``/``B``/``C`` when comparing, a whole score when grading.
One forward pass gives each label's probability; the most probable label is the verdict, and for
grading the probability-weighted mean is the expected score (G-Eval). Distributions are kept in
the caller's labels (``A`` is always ``answer_a``), so both orders of a swap can be averaged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from app.judging.domain import ItemOutcome, Mode, Order, OrderOutcome, Scale, SwapMode, Verdict
from app.judging.templates import format_number

MAX_SCALE_POINTS = 100
PAIRWISE_LABELS = ("A", "B", "C")
# Probabilities this close to the largest count as equally likely when choosing the verdict, so
# summation order (e.g. averaging AB+BA or BA+AB) can never flip it.
TIE_TOLERANCE = 1e-9

# The judge's label -> the caller's verdict, per order: in BA the judge's "A" is answer_b.
_CALLER_VERDICT: dict[Order, dict[str, Verdict]] = {
    "AB": {"A": "A", "B": "B", "C": "tie"},
    "BA": {"A": "B", "B": "A", "C": "tie"},
}
_VERDICTS: tuple[Verdict, ...] = ("A", "B", "tie")


def verdict_labels(mode: Mode, scale: Scale) -> list[str]:
    """The labels whose probabilities decide a verdict, in a fixed order.

    Pairwise: ``["A", "B", "C"]`` (``C`` is a tie). Single: every whole score on ``scale`` as a
    string, lowest first (``["1", ..., "10"]``). Raises ``ValueError`` when the scale's ends are
    not whole numbers or it has more than :data:`MAX_SCALE_POINTS` points.
    """
    if mode == "pairwise":
        return list(PAIRWISE_LABELS)
    if mode != "single":
        raise ValueError(f"unknown mode {mode!r}")
    bounds = f"{format_number(scale.min)}..{format_number(scale.max)}"
    if not (float(scale.min).is_integer() and float(scale.max).is_integer()):
        raise ValueError(f"logprobs grading needs a scale with whole-number ends, got {bounds}")
    low, high = int(scale.min), int(scale.max)
    if high <= low:
        raise ValueError(f"scale max must be greater than min, got {bounds}")
    if high - low + 1 > MAX_SCALE_POINTS:
        raise ValueError(
            f"logprobs grading reads one probability per score: at most {MAX_SCALE_POINTS} scores, "
            f"got {high - low + 1} ({bounds})"
        )
    return [str(value) for value in range(low, high + 1)]


def argmax_verdict(probs: Mapping[str, float]) -> Verdict:
    """The most probable of ``"A"``, ``"B"``, ``"tie"``; a tie for first place is a ``"tie"``
    (the judge does not prefer either answer)."""
    top = max(probs[verdict] for verdict in _VERDICTS)
    best = [verdict for verdict in _VERDICTS if probs[verdict] >= top - TIE_TOLERANCE]
    return best[0] if len(best) == 1 else "tie"


def argmax_score(probs: Mapping[str, float]) -> float:
    """The most probable score (keys are scores as strings); the lowest among equally likely ones."""
    top = max(probs.values())
    return min(float(key) for key, p in probs.items() if p >= top - TIE_TOLERANCE)


def expected_score(probs: Mapping[str, float]) -> float:
    """The probability-weighted mean score, ``sum(p * s)`` (keys are scores as strings)."""
    return math.fsum(float(key) * p for key, p in probs.items())


def render_distribution(labels: Sequence[str], probs: Mapping[str, float], mass: float) -> str:
    """A compact, readable rendering of the judge's distribution in its own labels, kept as the raw
    output: ``P(A)=0.61 P(B)=0.30 P(C)=0.09 mass=0.93``."""
    parts = [f"P({label})={probs[label]:.2f}" for label in labels]
    # The mass can be tiny (the judge would rather have said something else): keep its digits.
    parts.append(f"mass={mass:.2g}")
    return " ".join(parts)


def _check_distribution(labels: Sequence[str], probs: Mapping[str, float], mass: float) -> None:
    if set(probs) != set(labels):
        raise ValueError(f"expected probabilities for the labels {list(labels)}, got {sorted(probs)}")
    values = [*probs.values(), mass]
    if not all(math.isfinite(p) and p >= 0 for p in values):
        raise ValueError(f"probabilities and mass must be finite and non-negative, got {dict(probs)}, {mass}")


def order_outcome_from_distribution(
    mode: Mode,
    order: Order,
    probs: Mapping[str, float],
    mass: float,
    scale: Scale,
    *,
    tokens_in: int = 0,
    latency_ms: float = 0.0,
    queue_ms: float = 0.0,
) -> OrderOutcome:
    """One order's outcome from the judge's label distribution (an engine ``LabelDistribution``).

    ``probs`` is keyed by :func:`verdict_labels` (the judge's labels, as it saw the answers in
    ``order``); ``mass`` is how much probability the labels had before normalising. The outcome's
    ``probs`` are renormalised and in the caller's labels (``"A"``, ``"B"``, ``"tie"``; scores as
    strings), ``verdict`` (pairwise) or ``score`` (single) is the most probable label, and ``raw``
    renders the distribution (see :func:`render_distribution`). A ``mass`` of 0, meaning the judge
    would say none of the labels, is an error outcome, never a guessed verdict. Raises
    ``ValueError`` when the labels, the order or the values do not fit ``mode`` and ``scale``.
    """
    labels = verdict_labels(mode, scale)
    if (mode == "single") != (order == "single"):
        raise ValueError(f"order {order!r} does not fit {mode} judging")
    _check_distribution(labels, probs, mass)
    total = math.fsum(probs.values())
    if mass <= 0 or total <= 0:
        return OrderOutcome(
            order=order,
            raw=render_distribution(labels, probs, mass),
            error="the judge put no probability on any verdict label",
            tokens_in=tokens_in,
            latency_ms=latency_ms,
            queue_ms=queue_ms,
        )
    judge = {label: probs[label] / total for label in labels}
    raw = render_distribution(labels, judge, mass)
    if mode == "single":
        caller = judge
        return OrderOutcome(
            order=order,
            raw=raw,
            score=argmax_score(caller),
            probs=caller,
            tokens_in=tokens_in,
            latency_ms=latency_ms,
            queue_ms=queue_ms,
        )
    mapping = _CALLER_VERDICT[order]
    caller = dict.fromkeys(_VERDICTS, 0.0)
    for label in labels:
        caller[mapping[label]] = judge[label]
    return OrderOutcome(
        order=order,
        raw=raw,
        verdict=argmax_verdict(caller),
        probs=caller,
        tokens_in=tokens_in,
        latency_ms=latency_ms,
        queue_ms=queue_ms,
    )


def _check_orders(mode: Mode, swap: SwapMode, outcomes: Sequence[OrderOutcome]) -> None:
    got = sorted(outcome.order for outcome in outcomes)
    if mode == "single":
        expected: tuple[list[str], ...] = (["single"],)
    elif swap == "conservative":
        expected = (["AB", "BA"],)
    elif swap == "random":
        expected = (["AB"], ["BA"])
    elif swap == "none":
        expected = (["AB"],)
    else:
        raise ValueError(f"unknown swap mode {swap!r}")
    if got not in expected:
        raise ValueError(f"{mode} judging with swap {swap!r} cannot combine outcomes for orders {got}")


def aggregate_distributions(mode: Mode, swap: SwapMode, outcomes: Sequence[OrderOutcome]) -> ItemOutcome:
    """Combine an item's order outcomes (from :func:`order_outcome_from_distribution`, one per
    order from :func:`app.judging.swap.orders_for`) into its outcome.

    Any failed order makes the item an error. Pairwise: ``probs`` is the order's distribution, or
    with conservative swap the mean of both orders'; ``verdict`` is its most probable label, except
    that conservative swap, as with generated verdicts, declares a winner only when both orders' own
    most probable labels agree (``consistent``) and a tie otherwise, whatever the mean favours.
    Single: ``score`` is the most probable score and ``expected_score`` the probability-weighted mean.
    Raises ``ValueError`` if the orders do not match ``mode`` and ``swap`` or an order has no
    distribution.
    """
    _check_orders(mode, swap, outcomes)
    orders = tuple(outcomes)
    failed = [outcome for outcome in orders if outcome.error is not None]
    if failed:
        reason = "; ".join(f"order {outcome.order}: {outcome.error}" for outcome in failed)
        return ItemOutcome(status="error", orders=orders, error=reason)
    dists = []
    for outcome in orders:
        if outcome.probs is None:
            raise ValueError(f"order {outcome.order} has no label distribution")
        dists.append(outcome.probs)
    if mode == "single":
        probs = dict(dists[0])
        return ItemOutcome(
            status="ok",
            orders=orders,
            score=argmax_score(probs),
            probs=probs,
            expected_score=expected_score(probs),
        )
    if swap == "conservative":
        mean: dict[str, float] = {
            verdict: (dists[0][verdict] + dists[1][verdict]) / 2 for verdict in _VERDICTS
        }
        consistent = orders[0].verdict == orders[1].verdict
        return ItemOutcome(
            status="ok",
            orders=orders,
            verdict=orders[0].verdict if consistent else "tie",
            consistent=consistent,
            probs=mean,
        )
    return ItemOutcome(status="ok", orders=orders, verdict=argmax_verdict(dists[0]), probs=dict(dists[0]))
