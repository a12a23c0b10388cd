"""Reading a judge model's final verdict out of its raw text.

Judges are asked to end with a double-bracket marker: ``[[A]]``/``[[B]]``/``[[C]]`` when comparing,
``Rating: [[7]]`` when grading. Reasoning before the verdict may quote markers too, so the LAST
well-formed marker is the verdict. A missing marker is an error, never a silent tie or a guessed
number from the prose.
"""

from __future__ import annotations

import math
import re

from app.judging.domain import Scale, Verdict
from app.judging.templates import format_number

# Any double-bracket span without brackets inside; the content decides whether it is a marker.
_BRACKETED = re.compile(r"\[\[([^\[\]\n]{0,40})\]\]")
_PAIRWISE_LABELS: dict[str, Verdict] = {"A": "A", "B": "B", "C": "tie"}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


class VerdictParseError(ValueError):
    """The judge output holds no usable verdict."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _pairwise_label(content: str) -> Verdict | None:
    label = content.strip()
    # The letters must be capitals, as the templates ask; "tie" is accepted in any case.
    if label.casefold() == "tie":
        return "tie"
    return _PAIRWISE_LABELS.get(label)


def _parse_number(content: str) -> float | None:
    text = content.strip()
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _no_marker(raw: str, expected: str) -> VerdictParseError:
    if not raw.strip():
        return VerdictParseError("the judge output is empty")
    others = [match.group(0) for match in _BRACKETED.finditer(raw)]
    if others:
        return VerdictParseError(f"no {expected} in the judge output (its last bracket was {others[-1]!r})")
    return VerdictParseError(f"no {expected} in the judge output")


def parse_pairwise(raw: str) -> Verdict:
    """The last ``[[A]]``, ``[[B]]``, ``[[C]]`` (tie) or ``[[tie]]`` marker in ``raw``.

    Inner whitespace is tolerated (``[[ A ]]``). Raises :class:`VerdictParseError` when there is none.
    """
    verdict: Verdict | None = None
    for match in _BRACKETED.finditer(raw):
        label = _pairwise_label(match.group(1))
        if label is not None:
            verdict = label
    if verdict is None:
        raise _no_marker(raw, "verdict marker ([[A]], [[B]] or [[C]])")
    return verdict


def parse_score(raw: str, scale: Scale) -> float:
    """The number in the last ``[[number]]`` marker in ``raw`` (e.g. ``Rating: [[7]]``).

    Raises :class:`VerdictParseError` when there is no marker or the number lies outside ``scale``.
    """
    score: float | None = None
    for match in _BRACKETED.finditer(raw):
        value = _parse_number(match.group(1))
        if value is not None:
            score = value
    if score is None:
        raise _no_marker(raw, "rating marker such as [[5]]")
    if not scale.contains(score):
        bounds = f"{format_number(scale.min)}..{format_number(scale.max)}"
        raise VerdictParseError(f"score {format_number(score)} is outside the scale {bounds}")
    return score
