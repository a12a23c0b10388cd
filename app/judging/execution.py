"""Running planned judge calls on an engine and turning each item's calls into its outcome (verdicts or
scores, swap combined). No database and no queue: the worker (`workers/judging.py`, which sends each
call to its scheduler and builds an item's outcome as soon as its calls are back) and the in-process
MT-Bench runner (one engine pass for a batch of items) both use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.engine.base import Engine, Generation, LabelDistribution, SamplingParams
from app.judging.domain import CallOutput, ItemOutcome, JudgeOptions, PlannedCall
from app.judging.probabilities import aggregate_distributions, order_outcome_from_distribution, verdict_labels
from app.judging.swap import aggregate

# Verdict markers close with these brackets ("[[A]]", "[[7]]").
MARKER_CLOSE = "]]"


@dataclass(frozen=True)
class PlannedItem:
    """One item's planned calls (an order each) and the options that combine them."""

    calls: Sequence[PlannedCall]
    options: JudgeOptions


def engine_labels(labels: list[str]) -> list[str]:
    """The continuations to score for these verdict labels. When one label is a prefix of another
    ("1" and "10"), each is scored with the marker's closing brackets ("1]]", "10]]"), otherwise
    the shorter label would also collect the longer one's probability."""
    ambiguous = any(a != b and b.startswith(a) for a in labels for b in labels)
    return [label + MARKER_CLOSE for label in labels] if ambiguous else list(labels)


def item_labels(item: PlannedItem) -> tuple[list[str], list[str]]:
    """The item's verdict labels, and the continuations the engine scores for them."""
    labels = verdict_labels(item.options.mode, item.options.scale)
    return labels, engine_labels(labels)


def generation_outcome(item: PlannedItem, generations: Sequence[Generation]) -> ItemOutcome:
    """The item's outcome from its calls' generations (one per call, in order)."""
    results = []
    for call, gen in zip(item.calls, generations, strict=True):
        # The template's reply prefix ("Verdict: [[") and the stop string that ended the reply
        # ("]]") are part of what the judge said.
        raw = call.response_prefix + gen.text + (gen.stop_string or "")
        results.append(
            CallOutput(
                call.order,
                raw,
                gen.tokens_in,
                gen.tokens_out,
                gen.latency_ms,
                queue_ms=gen.queue_ms,
                sample=call.sample,
            )
        )
    options = item.options
    return aggregate(options.mode, options.swap, results, options.scale, options.parser)


def score_outcome(item: PlannedItem, distributions: Sequence[LabelDistribution]) -> ItemOutcome:
    """The item's outcome from its calls' label distributions over :func:`item_labels`' continuations."""
    labels, scored = item_labels(item)
    options = item.options
    orders = []
    for call, d in zip(item.calls, distributions, strict=True):
        probs = {label: d.probs[key] for label, key in zip(labels, scored, strict=True)}
        orders.append(
            order_outcome_from_distribution(
                options.mode,
                call.order,
                probs,
                d.mass,
                options.scale,
                tokens_in=d.tokens_in,
                latency_ms=d.latency_ms,
                queue_ms=d.queue_ms,
            )
        )
    return aggregate_distributions(options.mode, options.swap, orders)


def generate_outcomes(
    engine: Engine, items: Sequence[PlannedItem], sampling: SamplingParams
) -> list[ItemOutcome]:
    """Generation verdicts: every call of every item in one ``generate`` batch."""
    flat = [call for item in items for call in item.calls]
    outputs = iter(engine.generate([c.messages for c in flat], sampling))
    return [generation_outcome(item, [next(outputs) for _ in item.calls]) for item in items]


def score_outcomes(engine: Engine, items: Sequence[PlannedItem]) -> list[ItemOutcome]:
    """Probability verdicts: one scoring pass over the open replies per label set (pairwise labels,
    or a grading scale's scores)."""
    by_labels: dict[tuple[str, ...], list[int]] = {}
    for i, item in enumerate(items):
        by_labels.setdefault(tuple(item_labels(item)[1]), []).append(i)
    dists: dict[int, list[LabelDistribution]] = {}
    for scored, indices in by_labels.items():
        calls = [call for i in indices for call in items[i].calls]
        results = iter(engine.label_logprobs([c.messages for c in calls], list(scored)))
        for i in indices:
            dists[i] = [next(results) for _ in items[i].calls]
    return [score_outcome(item, dists[i]) for i, item in enumerate(items)]
