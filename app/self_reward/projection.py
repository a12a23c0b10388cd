"""Worst-case cost of a self-reward run, for ``dry_run`` and for the caps checked before a job is
accepted. Pure.

Every bound is an upper one: self-instruct stops early once it has enough prompts, unfinished
candidates are not judged and a prompt whose candidates all tie gives no DPO pair, so a real run makes
at most these calls and training steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.jobs.tokens import estimate_tokens

STAGES = ("prompts", "candidates", "judgments", "evaluation")


@dataclass(frozen=True)
class CallShape:
    """One kind of engine call: its prompt's length in characters and its completion limit."""

    prompt_chars: int
    max_new_tokens: int

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.prompt_chars, self.max_new_tokens)


@dataclass(frozen=True)
class Training:
    """One training run: examples seen per epoch (at most), epochs and examples per step."""

    examples: int
    epochs: int
    batch_size: int

    @property
    def steps(self) -> int:
        return math.ceil(self.examples / self.batch_size) * self.epochs


@dataclass(frozen=True)
class LoopPlan:
    """What a run does, from its request and seed data.

    ``eval_prompts``: held-out prompts answered by both models and compared (each comparison takes
    ``win_rate_calls_per_prompt`` judge calls); ``eval_judged``: held-out EFT examples graded.
    ``sft`` is None when the run skips the SFT stage; ``dpo.examples`` is the most pairs of one
    iteration (one per kept prompt).
    """

    iterations: int
    prompts_per_iteration: int
    attempts_factor: int
    candidates: int
    judge_samples: int
    eval_prompts: int
    eval_judged: int
    win_rate_calls_per_prompt: int
    sft: Training | None
    dpo: Training
    prompt_call: CallShape
    candidate_call: CallShape
    judgment_call: CallShape
    answer_call: CallShape
    grading_call: CallShape
    win_rate_call: CallShape


@dataclass(frozen=True)
class StageCost:
    calls: int = 0
    tokens: int = 0

    def __add__(self, other: StageCost) -> StageCost:
        return StageCost(self.calls + other.calls, self.tokens + other.tokens)


def _cost(calls: int, shape: CallShape) -> StageCost:
    return StageCost(calls, calls * shape.tokens)


@dataclass(frozen=True)
class IterationCost:
    """Iteration 0 is the SFT stage (training and evaluation only)."""

    iteration: int
    stages: dict[str, StageCost]
    training_steps: int

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stages.values())

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.stages.values())


@dataclass(frozen=True)
class LoopProjection:
    iterations: list[IterationCost]

    def stage(self, name: str) -> StageCost:
        """One stage's calls and tokens over every iteration."""
        total = StageCost()
        for it in self.iterations:
            total += it.stages[name]
        return total

    @property
    def calls(self) -> int:
        return sum(it.calls for it in self.iterations)

    @property
    def tokens(self) -> int:
        return sum(it.tokens for it in self.iterations)

    @property
    def training_steps(self) -> int:
        return sum(it.training_steps for it in self.iterations)


def _evaluation(plan: LoopPlan) -> StageCost:
    # Both models answer the held-out prompts, the new one grades the held-out EFT examples and judges
    # its answers against the previous model's.
    return (
        _cost(2 * plan.eval_prompts, plan.answer_call)
        + _cost(plan.eval_judged, plan.grading_call)
        + _cost(plan.eval_prompts * plan.win_rate_calls_per_prompt, plan.win_rate_call)
    )


def project(plan: LoopPlan) -> LoopProjection:
    """Engine calls, estimated tokens and training steps of every stage of every iteration, at most."""
    out: list[IterationCost] = []
    evaluation = _evaluation(plan)
    none = StageCost()
    if plan.sft is not None:
        stages = {"prompts": none, "candidates": none, "judgments": none, "evaluation": evaluation}
        out.append(IterationCost(0, stages, plan.sft.steps))
    wanted = plan.prompts_per_iteration
    candidates = wanted * plan.candidates
    for t in range(1, plan.iterations + 1):
        stages = {
            "prompts": _cost(wanted * plan.attempts_factor, plan.prompt_call),
            "candidates": _cost(candidates, plan.candidate_call),
            "judgments": _cost(candidates * plan.judge_samples, plan.judgment_call),
            "evaluation": evaluation,
        }
        out.append(IterationCost(t, stages, plan.dpo.steps))
    return LoopProjection(out)
