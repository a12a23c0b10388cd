"""The worst-case cost of a self-reward run: calls, tokens and training steps per stage and iteration."""

from __future__ import annotations

import dataclasses

from app.jobs.tokens import estimate_tokens
from app.self_reward.projection import CallShape, LoopPlan, Training, project

SHAPE = CallShape(prompt_chars=300, max_new_tokens=100)  # 300 // 3 + 1 + 100 = 201 tokens a call


def plan(**changes: object) -> LoopPlan:
    base = LoopPlan(
        iterations=2,
        prompts_per_iteration=10,
        attempts_factor=4,
        candidates=4,
        judge_samples=3,
        eval_prompts=5,
        eval_judged=7,
        win_rate_calls_per_prompt=2,
        sft=Training(examples=21, epochs=2, batch_size=4),
        dpo=Training(examples=10, epochs=3, batch_size=4),
        prompt_call=SHAPE,
        candidate_call=SHAPE,
        judgment_call=SHAPE,
        answer_call=SHAPE,
        grading_call=SHAPE,
        win_rate_call=SHAPE,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_call_costs_its_prompt_estimate_plus_its_completion_limit() -> None:
    assert SHAPE.tokens == estimate_tokens(300, 100) == 201


def test_each_stage_of_an_iteration_multiplies_out_the_sizes() -> None:
    run = project(plan(sft=None))
    assert [it.iteration for it in run.iterations] == [1, 2]
    first = run.iterations[0]
    assert first.stages["prompts"].calls == 10 * 4  # every attempt the factor allows
    assert first.stages["candidates"].calls == 10 * 4
    assert first.stages["judgments"].calls == 10 * 4 * 3
    # both models answer 5 prompts, 7 EFT examples graded, 5 comparisons of 2 orders
    assert first.stages["evaluation"].calls == 2 * 5 + 7 + 5 * 2
    assert first.calls == 40 + 40 + 120 + 27
    assert first.tokens == first.calls * 201
    assert first.training_steps == 3 * 3  # ceil(10 / 4) steps, 3 epochs


def test_the_sft_stage_trains_and_evaluates_only() -> None:
    run = project(plan())
    sft = run.iterations[0]
    assert sft.iteration == 0
    assert sft.stages["prompts"].calls == sft.stages["candidates"].calls == sft.stages["judgments"].calls == 0
    assert sft.stages["evaluation"].calls == 27
    assert sft.training_steps == 6 * 2  # ceil(21 / 4) steps, 2 epochs


def test_totals_add_up_over_stages_and_iterations() -> None:
    run = project(plan())
    assert len(run.iterations) == 3
    stages = ("prompts", "candidates", "judgments", "evaluation")
    assert run.calls == sum(run.stage(s).calls for s in stages) == sum(it.calls for it in run.iterations)
    assert run.tokens == sum(run.stage(s).tokens for s in stages)
    assert run.training_steps == 12 + 2 * 9
    assert run.stage("judgments").calls == 2 * 120


def test_tokens_follow_each_calls_own_shape() -> None:
    long_judgments = plan(judgment_call=CallShape(prompt_chars=3000, max_new_tokens=500), sft=None)
    run = project(long_judgments)
    assert run.stage("judgments").tokens == 2 * 120 * estimate_tokens(3000, 500)
    assert run.stage("candidates").tokens == 2 * 40 * 201


def test_the_cost_grows_with_every_size_parameter() -> None:
    base = project(plan()).calls
    for change in (
        {"iterations": 3},
        {"prompts_per_iteration": 11},
        {"attempts_factor": 5},
        {"candidates": 5},
        {"judge_samples": 4},
        {"eval_prompts": 6},
        {"eval_judged": 8},
    ):
        assert project(plan(**change)).calls > base, change


def test_the_absurd_request_of_the_issue_projects_over_a_billion_calls() -> None:
    run = project(plan(iterations=20, prompts_per_iteration=100_000, candidates=32, judge_samples=16))
    assert run.stage("judgments").calls == 20 * 100_000 * 32 * 16
    assert run.calls > 10**9
