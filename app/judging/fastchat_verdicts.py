"""FastChat llm_judge's verdict rules (``common.py``), reproduced exactly, so MT-Bench runs make the
judgments FastChat would make from the same judge text.

Pairwise (output format ``[[A]]``): presence in priority order, not position: ``[[A]]`` anywhere wins,
else ``[[B]]``, else ``[[C]]`` (a tie), else no verdict. Rating (output format ``[[rating]]``): the
FIRST ``[[n]]`` (``n`` digits, optionally a ``.`` and more digits), else the first ``[n]``; the number
is read as a Python literal and no range is checked, so ``[[11]]`` is a rating of 11.
"""

from __future__ import annotations

import ast
import re

from app.judging.domain import Verdict
from app.judging.verdicts import VerdictParseError

# FastChat's one_score_pattern and one_score_pattern_backup.
_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
_PRIORITY: tuple[tuple[str, Verdict], ...] = (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie"))


def parse_pairwise(raw: str) -> Verdict:
    """``A`` if ``[[A]]`` occurs anywhere in ``raw``, else ``B`` for ``[[B]]``, else ``tie`` for
    ``[[C]]``. Raises :class:`VerdictParseError` when none occurs (FastChat's ``error``)."""
    for marker, verdict in _PRIORITY:
        if marker in raw:
            return verdict
    raise VerdictParseError("no [[A]], [[B]] or [[C]] in the judge output")


def parse_rating(raw: str) -> float:
    """The number of the first ``[[n]]`` in ``raw``, else of the first ``[n]``, with no range check.
    Raises :class:`VerdictParseError` when there is neither (FastChat's rating ``-1``), or when Python
    cannot read the number as a literal (``[[07]]``, on which FastChat's own call fails)."""
    match = _RATING.search(raw) or _RATING_BACKUP.search(raw)
    if match is None:
        raise VerdictParseError("no [[rating]] or [rating] in the judge output")
    try:
        value = ast.literal_eval(match.group(1))
    except (SyntaxError, ValueError):
        raise VerdictParseError(f"the rating {match.group(1)!r} is not a number Python reads") from None
    return float(value)
