"""Plain values of the ProTeGi search: examples, candidates, hyperparameters, metrics, usage.

No I/O here; the search (search.py), the bandits (bandits.py) and the workers share these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MetricName = Literal["accuracy", "f1", "macro_f1"]
SelectorName = Literal["ucb", "ucb-e", "successive-rejects", "successive-halving", "brute-force"]
Origin = Literal["initial", "edit", "paraphrase"]


@dataclass(frozen=True)
class Example:
    """One labelled example: the values of the prompt's placeholders, and the gold label."""

    id: str
    inputs: dict[str, str]
    label: str


@dataclass(frozen=True)
class Metric:
    """How predictions are scored. ``f1`` is binary F1 of ``positive`` (required for it)."""

    name: MetricName = "accuracy"
    positive: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A prompt the search considers. ``key`` is stable across a resumed run (e.g. ``r2c5``)."""

    key: str
    text: str
    round: int
    origin: Origin = "initial"
    parent: str | None = None
    gradient: str | None = None


@dataclass(frozen=True)
class SelectorConfig:
    """Bandit selection settings (the reference's defaults).

    A *pull* scores one arm on one sample of ``samples_per_eval`` examples.
    ``ucb``/``ucb-e``: ``eval_rounds`` rounds, each pulling the ``prompts_per_round`` arms with the best
    upper bound; ``c`` weighs exploration, on LMOps' scale: the bonus divides by the examples an arm was
    scored on, not its pulls (see ``bandits.upper_bound``). ``successive-rejects`` /
    ``successive-halving`` spend the same total number of pulls (``eval_rounds * prompts_per_round``).
    ``brute-force`` scores every arm on every example given.
    """

    method: SelectorName = "ucb"
    eval_rounds: int = 8
    prompts_per_round: int = 8
    samples_per_eval: int = 32
    c: float = 1.0

    @property
    def pull_budget(self) -> int:
        return self.eval_rounds * self.prompts_per_round


@dataclass(frozen=True)
class Hyperparams:
    """ProTeGi's search settings; defaults follow the reference implementation."""

    rounds: int = 6
    beam_size: int = 4
    minibatch_size: int = 64
    n_gradients: int = 4
    errors_per_gradient: int = 4
    gradients_per_error: int = 1
    steps_per_gradient: int = 1
    mc_samples: int = 2
    max_expansion: int = 8
    # LMOps paraphrases each parent's own task section too, and draws one minibatch per round for the
    # whole beam; False keeps the alternatives (paraphrase only the edits; one minibatch per parent).
    paraphrase_parents: bool = True
    shared_minibatch: bool = True
    # Stop when the best dev score has not improved for this many rounds (None: never early-stop).
    patience: int | None = None
    selector: SelectorConfig = field(default_factory=SelectorConfig)


@dataclass(frozen=True)
class Budget:
    """Upper bounds on model calls and tokens (prompt + completion); None means unbounded."""

    max_calls: int | None = None
    max_tokens: int | None = None


@dataclass
class Usage:
    """What a run has spent. Cache hits cost nothing and are counted apart."""

    calls: int = 0
    tokens: int = 0
    cache_hits: int = 0


class BudgetExhausted(Exception):
    """The next model call would pass the budget; the search stops where it is."""


class SearchCancelled(Exception):
    """The client cancelled the job; the search stops at the next model batch."""
