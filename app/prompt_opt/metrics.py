"""Reading a label out of a task model's answer, and scoring predictions against gold labels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from app.prompt_opt.domain import Metric


@lru_cache(maxsize=1024)
def _label_pattern(label: str) -> re.Pattern[str]:
    # Whole word on both sides, and any run of whitespace where the label has one ("not  sure").
    words = (re.escape(word) for word in label.split())
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def parse_label(output: str, labels: Sequence[str]) -> str | None:
    """The label ``output`` states, spelled as in ``labels``; None when it names none.

    That is the earliest whole-word, case-insensitive occurrence of any label; at the same position the
    longer label wins ("not sure" over "not").
    """
    best: tuple[int, int] | None = None  # (start, -length): smaller is better
    found: str | None = None
    for label in labels:
        if not label.strip():
            continue
        match = _label_pattern(label).search(output)
        if match is None:
            continue
        key = (match.start(), -(match.end() - match.start()))
        if best is None or key < best:
            best, found = key, label
    return found


def per_example_correct(golds: Sequence[str], preds: Sequence[str | None]) -> list[bool]:
    """Whether each prediction equals its gold label (an unparseable prediction is wrong)."""
    _check_lengths(golds, preds)
    return [pred is not None and pred == gold for gold, pred in zip(golds, preds, strict=True)]


def score(metric: Metric, golds: Sequence[str], preds: Sequence[str | None], labels: Sequence[str]) -> float:
    """The metric over the examples, in [0, 1]; 0.0 for no examples.

    ``f1`` is binary F1 of ``metric.positive`` (a None prediction counts as not positive);
    ``macro_f1`` is the mean F1 over ``labels``. An undefined F1 counts as 0.0, as sklearn's
    ``zero_division=0``.
    """
    _check_lengths(golds, preds)
    if not golds:
        return 0.0
    if metric.name == "accuracy":
        correct = per_example_correct(golds, preds)
        return sum(correct) / len(correct)
    if metric.name == "f1":
        if metric.positive is None:
            raise ValueError("the f1 metric needs a positive label")
        return _f1(golds, preds, metric.positive)
    if not labels:
        return 0.0
    return sum(_f1(golds, preds, label) for label in labels) / len(labels)


def _f1(golds: Sequence[str], preds: Sequence[str | None], positive: str) -> float:
    tp = fp = fn = 0
    for gold, pred in zip(golds, preds, strict=True):
        if pred == positive:
            if gold == positive:
                tp += 1
            else:
                fp += 1
        elif gold == positive:
            fn += 1
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def _check_lengths(golds: Sequence[str], preds: Sequence[str | None]) -> None:
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
