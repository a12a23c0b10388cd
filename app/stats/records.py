"""The plain observations that summaries are computed from. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Winner = Literal["A", "B", "tie"]


@dataclass(frozen=True)
class Game:
    """One pairwise comparison with a verdict: ``model_a``'s answer against ``model_b``'s.

    ``instruction`` identifies the prompt both answered (instruction difficulty, length control);
    ``length_a`` / ``length_b`` are the answers' lengths in characters.
    """

    model_a: str
    model_b: str
    winner: Winner
    instruction: str = ""
    length_a: int = 0
    length_b: int = 0
    category: str | None = None

    def points(self, model: str) -> float:
        """1 for a win of ``model``, 0.5 for a tie, 0 for a loss."""
        if self.winner == "tie":
            return 0.5
        won = self.model_a if self.winner == "A" else self.model_b
        return 1.0 if won == model else 0.0

    def opponent(self, model: str) -> str:
        return self.model_b if model == self.model_a else self.model_a


@dataclass(frozen=True)
class Grade:
    """One graded answer."""

    model: str
    score: float
    category: str | None = None


def baseline_of(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The baseline of comparisons (first model, second model) against one baseline: the one second
    model of every pair, never a first one (None otherwise, e.g. when every pair of models met)."""
    firsts: set[str] = set()
    seconds: set[str] = set()
    for first, second in pairs:
        firsts.add(first)
        seconds.add(second)
    if len(seconds) == 1 and not seconds & firsts:
        return next(iter(seconds))
    return None
