"""From stored or inline rows to the search's examples: label mapping, seeded shuffle, slicing. Pure."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.prompt_opt.domain import Example


@dataclass(frozen=True)
class Row:
    inputs: dict[str, str]
    label: str


class DataError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def label_map(labels: Sequence[str], label_values: Sequence[str] | None) -> dict[str, str]:
    """Dataset label value -> the label word the prompt uses."""
    values = label_values if label_values is not None else labels
    return {str(value): label for value, label in zip(values, labels, strict=True)}


def take(
    rows: Sequence[Row], *, shuffle: bool, start: int, count: int | None, seed: int, source: str
) -> list[Row]:
    """The slice a split asks for; the shuffle depends only on the seed and the source, so slices of
    one source taken by different splits are disjoint when their ranges are."""
    ordered = list(rows)
    if shuffle:
        random.Random(f"{seed}:{source}").shuffle(ordered)
    end = None if count is None else start + count
    return ordered[start:end]


def to_examples(rows: Sequence[Row], mapping: Mapping[str, str], split: str, source: str) -> list[Example]:
    """Examples with labels in the prompt's words. Raises DataError naming an unknown label."""
    examples = []
    for i, row in enumerate(rows):
        if row.label not in mapping:
            known = ", ".join(repr(v) for v in mapping)
            raise DataError(f"{split}: label {row.label!r} is not one of the label values ({known})", split)
        examples.append(Example(id=f"{source}:{i}", inputs=row.inputs, label=mapping[row.label]))
    return examples


def example_hash(example: Example) -> str:
    payload = json.dumps([example.inputs, example.label], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()
