"""Worst-case cost of a run, for ``dry_run`` and for checking a budget before accepting a job. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from app.prompt_opt.bandits import projected_evaluations
from app.prompt_opt.domain import Hyperparams
from app.prompt_opt.search import final_eval_calls


@dataclass(frozen=True)
class Sizes:
    train: int
    dev: int
    test: int


@dataclass(frozen=True)
class RunProjection:
    task_calls: int
    optimizer_calls: int
    final_eval_calls: int
    tokens: int
    per_round: list[dict[str, int]]

    @property
    def calls(self) -> int:
        return self.task_calls + self.optimizer_calls


def project(
    params: Hyperparams, sizes: Sizes, task_call_tokens: int, optimizer_call_tokens: int
) -> RunProjection:
    """Calls and tokens of a run where nothing comes from the cache and every parent has errors.

    ``task_call_tokens`` / ``optimizer_call_tokens``: estimated tokens of one call of each model.
    """
    start = sizes.dev
    final = final_eval_calls(sizes.dev, sizes.test)
    task_calls, optimizer_calls = start + final, 0
    per_round: list[dict[str, int]] = []
    parents = 1
    for _ in range(params.rounds):
        gradients = parents * params.n_gradients * params.gradients_per_error
        edits = gradients * params.steps_per_gradient
        paraphrased = edits + (parents if params.paraphrase_parents else 0)
        produced = edits + paraphrased * params.mc_samples
        per_parent = min(params.max_expansion, produced // parents) if parents else 0
        arms = parents + parents * per_parent
        pool = sizes.dev if params.selector.method == "brute-force" and sizes.dev else sizes.train
        round_task = (
            parents * min(params.minibatch_size, sizes.train)
            + projected_evaluations(params.selector, arms, params.beam_size, pool)
            + min(params.beam_size, arms) * sizes.dev
        )
        round_optimizer = parents * params.n_gradients + gradients + paraphrased * params.mc_samples
        per_round.append({"task_calls": round_task, "optimizer_calls": round_optimizer})
        task_calls += round_task
        optimizer_calls += round_optimizer
        parents = min(params.beam_size, arms)
    tokens = task_calls * task_call_tokens + optimizer_calls * optimizer_call_tokens
    return RunProjection(task_calls, optimizer_calls, final, tokens, per_round)
