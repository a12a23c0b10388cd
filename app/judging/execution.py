"""Running planned judge calls on an engine: one engine pass for a batch of items, each item's calls
turned into its outcome (verdicts or scores, swap combined). No database and no queue: the worker
(`workers/judging.py`) and the in-process MT-Bench runner both drive it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from app.engine.base import Engine, LabelDistribution, SamplingParams
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


def generate_outcomes(
    engine: Engine, items: Sequence[PlannedItem], sampling: SamplingParams
) -> list[ItemOutcome]:
    """Generation verdicts: every call of every item in one ``generate`` batch."""
    flat = [call for item in items for call in item.calls]
    outputs = iter(engine.generate([c.messages for c in flat], sampling))
    outcomes = []
    for item in items:
        results = []
        for call in item.calls:
            gen = next(outputs)
            # The template's reply prefix ("Verdict: [[") and the stop string that ended the reply
            # ("]]") are part of what the judge said.
            raw = call.response_prefix + gen.text + (gen.stop_string or "")
            results.append(CallOutput(call.order, raw, gen.tokens_in, gen.tokens_out, gen.latency_ms))
        options = item.options
        outcomes.append(aggregate(options.mode, options.swap, results, options.scale))
    return outcomes


def score_outcomes(engine: Engine, items: Sequence[PlannedItem]) -> list[ItemOutcome]:
    """Probability verdicts: one scoring pass over the open replies per label set (pairwise labels,
    or a grading scale's scores)."""
    by_labels: dict[tuple[str, ...], list[int]] = {}
    for i, item in enumerate(items):
        labels = tuple(verdict_labels(item.options.mode, item.options.scale))
        by_labels.setdefault(labels, []).append(i)
    dists: dict[int, list[LabelDistribution]] = {}
    for labels, indices in by_labels.items():
        scored = engine_labels(list(labels))
        calls = [call for i in indices for call in items[i].calls]
        results = iter(engine.label_logprobs([c.messages for c in calls], scored))
        for i in indices:
            dists[i] = []
            for _ in items[i].calls:
                d = next(results)
                probs = {label: d.probs[key] for label, key in zip(labels, scored, strict=True)}
                dists[i].append(dataclasses.replace(d, probs=probs))
    outcomes = []
    for i, item in enumerate(items):
        options = item.options
        orders = [
            order_outcome_from_distribution(
                options.mode,
                call.order,
                d.probs,
                d.mass,
                options.scale,
                tokens_in=d.tokens_in,
                latency_ms=d.latency_ms,
            )
            for call, d in zip(item.calls, dists[i], strict=True)
        ]
        outcomes.append(aggregate_distributions(options.mode, options.swap, orders))
    return outcomes
