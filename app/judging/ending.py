"""How a judging job ends once every item is judged: it succeeds unless every item ended in error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ERROR_MAX_CHARS = 500


@dataclass(frozen=True)
class JudgingEnd:
    status: Literal["succeeded", "failed"]
    error: str | None = None


def judging_end(judged: int, failed: int, first_error: Callable[[], str | None]) -> JudgingEnd:
    """The end of a job of ``judged`` items, ``failed`` of which ended in error. A job whose every item
    failed fails, with the count and the first item's error (``first_error`` is read only then), e.g.
    ``all 4 items failed: <error>``; items that failed beside some that did not leave it succeeded (the
    job's ``progress.failed`` counts them)."""
    if judged == 0 or failed < judged:
        return JudgingEnd("succeeded")
    count = "its only item failed" if judged == 1 else f"all {judged} items failed"
    cause = (first_error() or "no error recorded")[:ERROR_MAX_CHARS]
    return JudgingEnd("failed", f"{count}: {cause}")
