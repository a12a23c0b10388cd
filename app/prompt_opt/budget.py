"""Budget accounting of a run: which of the next model calls still fit. Pure; the worker charges it.

The final evaluation (initial and best prompt on dev and test) gets its worst case held back, so a
search that spends its share still ends with measured results. Token costs of a call are known only
after it ran, so a call is admitted on an estimate (:func:`app.jobs.tokens.estimate_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.jobs.tokens import estimate_tokens as estimate_tokens
from app.prompt_opt.domain import Budget, Usage


@dataclass
class Meter:
    budget: Budget
    reserve_calls: int = 0
    reserve_tokens: int = 0
    usage: Usage = field(default_factory=Usage)
    phase: str = "search"

    def _limits(self) -> tuple[int | None, int | None]:
        calls, tokens = self.budget.max_calls, self.budget.max_tokens
        if self.phase == "search":
            calls = None if calls is None else max(0, calls - self.reserve_calls)
            tokens = None if tokens is None else max(0, tokens - self.reserve_tokens)
        return calls, tokens

    def allowance(self, estimates: Sequence[int]) -> int:
        """How many of these calls, in order, fit the budget (``estimates``: tokens of each)."""
        max_calls, max_tokens = self._limits()
        n = len(estimates)
        if max_calls is not None:
            n = min(n, max(0, max_calls - self.usage.calls))
        if max_tokens is not None:
            room = max_tokens - self.usage.tokens
            fit = 0
            for estimate in estimates[:n]:
                if estimate > room:
                    break
                room -= estimate
                fit += 1
            n = fit
        return n

    def charge(self, calls: int, tokens: int) -> None:
        self.usage.calls += calls
        self.usage.tokens += tokens

    def hit(self, n: int) -> None:
        self.usage.cache_hits += n

    def summary(self) -> dict[str, int | None]:
        max_calls, max_tokens = self._limits()
        return {
            "calls": self.usage.calls,
            "tokens": self.usage.tokens,
            "cache_hits": self.usage.cache_hits,
            "max_calls": self.budget.max_calls,
            "max_tokens": self.budget.max_tokens,
            "search_max_calls": max_calls if self.phase == "search" else None,
            "search_max_tokens": max_tokens if self.phase == "search" else None,
        }
