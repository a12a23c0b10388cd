"""The self-rewarding loop's state machine, walked without a database or a model."""

from __future__ import annotations

import json
import uuid

import pytest

from app.self_reward import machine
from app.self_reward.domain import IterationStats
from app.self_reward.machine import (
    Finished,
    Halt,
    RunPlan,
    RunState,
    Step,
    Trained,
    Work,
)

SFT_THEN_TWO = RunPlan(iterations=2, sft=True)
STATS = IterationStats(
    prompts=3, pairs=2, ties=1, judgments=18, chosen_lengths=[9, 12], rejected_lengths=[3, 6]
)


def perform(state: RunState, plan: RunPlan, work: Work) -> RunState:
    """What a driver commits after each step, with made-up outputs."""
    if work.step is Step.PAIRS:
        return machine.after_pairs(state, plan, STATS, None)
    if work.step is Step.TRAIN:
        n = work.iteration + 1
        return machine.after_train(state, plan, Trained(f"m{n}", f"/models/m{n}"))
    if work.step is Step.EVALUATE:
        return machine.after_evaluate(state, plan)
    return machine.advance(state, plan)


def walk(state: RunState, plan: RunPlan) -> tuple[list[tuple[Work, RunState]], Finished | Halt]:
    """Every step from ``state`` to the end, each with the state committed after it, through the
    checkpoint's JSON as a resumed run reads it."""
    done = []
    while isinstance(work := machine.next_step(state, plan), Work):
        state = RunState.from_json(json.loads(json.dumps(perform(state, plan, work).to_json())))
        done.append((work, state))
    return done, work


def test_a_run_with_sft_trains_m1_then_runs_every_step_of_each_iteration() -> None:
    steps, end = walk(machine.start(SFT_THEN_TWO, "base"), SFT_THEN_TWO)
    stages = [machine.stage(work, SFT_THEN_TWO) for work, _ in steps]
    assert stages == [
        "sft: train",
        "sft: register",
        "sft: evaluate",
        *(f"iteration 1/2: {s}" for s in machine.LOOP_STEPS),
        *(f"iteration 2/2: {s}" for s in machine.LOOP_STEPS),
    ]
    assert end == Finished("succeeded")
    final = steps[-1][1]
    assert (final.iteration, final.step, final.model, final.trained) == (3, Step.PROMPTS, "m3", None)
    assert final.history == (STATS, STATS)
    assert machine.iterations_done(final, SFT_THEN_TWO) == SFT_THEN_TWO.total == 3


def test_without_sft_the_run_starts_at_iteration_1_with_new_prompts() -> None:
    plan = RunPlan(iterations=1, sft=False)
    state = machine.start(plan, "base")
    assert (state.iteration, state.step, state.model) == (1, Step.PROMPTS, "base")
    assert machine.iterations_done(state, plan) == 0 and plan.total == 1
    steps, end = walk(state, plan)
    assert [work.step for work, _ in steps] == list(machine.LOOP_STEPS)
    assert end == Finished("succeeded")
    assert machine.iterations_done(steps[-1][1], plan) == 1


def test_progress_counts_the_iterations_done() -> None:
    steps, _ = walk(machine.start(SFT_THEN_TWO, "base"), SFT_THEN_TWO)
    done = [machine.iterations_done(after, SFT_THEN_TWO) for _, after in steps]
    assert done[:3] == [0, 0, 1]  # SFT counts once its evaluation is committed
    assert done[-1] == 3 and done == sorted(done)


def test_a_resumed_run_continues_at_the_first_step_not_committed() -> None:
    start = machine.start(SFT_THEN_TWO, "base")
    steps, _ = walk(start, SFT_THEN_TWO)
    committed = [start] + [after for _, after in steps]
    for i, state in enumerate(committed):
        resumed, end = walk(RunState.from_json(state.to_json()), SFT_THEN_TWO)
        assert [work for work, _ in resumed] == [work for work, _ in steps[i:]], f"after {i} steps"
        assert end == Finished("succeeded")


def test_the_checkpoint_keeps_its_stored_shape() -> None:
    stored = {
        "iteration": 1,
        "step": "register",
        "model": "base-sr-0123abcd-m1",
        "history": [
            {
                "prompts": 3,
                "pairs": 2,
                "ties": 1,
                "judgments": 18,
                "parse_failures": 0,
                "chosen_lengths": [9, 12],
                "rejected_lengths": [3, 6],
            }
        ],
        "stop_reason": None,
        "trained": {"name": "base-sr-0123abcd-m2", "path": "/models/base-sr-0123abcd-m2"},
    }
    state = RunState.from_json(stored)
    assert state.step is Step.REGISTER
    assert state.trained == Trained("base-sr-0123abcd-m2", "/models/base-sr-0123abcd-m2")
    assert state.to_json() == stored
    evaluated = machine.after_evaluate(machine.advance(state, SFT_THEN_TWO), SFT_THEN_TWO)
    assert "trained" not in evaluated.to_json()


def test_the_model_trained_by_an_iteration_is_the_next_iterations_model_only_once_evaluated() -> None:
    state = RunState(iteration=1, step=Step.TRAIN, model="m1")
    trained = machine.after_train(state, SFT_THEN_TWO, Trained("m2", "/models/m2"))
    assert (trained.step, trained.model, trained.trained) == (
        Step.REGISTER,
        "m1",
        Trained("m2", "/models/m2"),
    )
    evaluated = machine.after_evaluate(machine.advance(trained, SFT_THEN_TWO), SFT_THEN_TWO)
    assert (evaluated.iteration, evaluated.step, evaluated.model, evaluated.trained) == (
        2,
        Step.PROMPTS,
        "m2",
        None,
    )


@pytest.mark.parametrize("step", [Step.REGISTER, Step.EVALUATE])
def test_registering_or_evaluating_with_no_trained_model_is_an_error(step: Step) -> None:
    state = RunState(iteration=1, step=step, model="m1")
    with pytest.raises(ValueError, match="before any model was trained"):
        machine.trained_model(state)


def test_the_final_iteration_ends_the_run() -> None:
    state = RunState(iteration=2, step=Step.EVALUATE, model="m2", trained=Trained("m3", "/models/m3"))
    assert machine.next_step(state, SFT_THEN_TWO) == Work(2, Step.EVALUATE)
    after = machine.after_evaluate(state, SFT_THEN_TWO)
    assert machine.checkpoint(state, after) == "iteration 2: evaluate"
    assert machine.next_step(after, SFT_THEN_TWO) == Finished("succeeded")
    assert after.model == "m3"


def test_a_guard_stop_ends_the_run_failed_with_its_reason() -> None:
    state = RunState(iteration=2, step=Step.PAIRS, model="m2", history=(STATS,))
    after = machine.after_pairs(state, SFT_THEN_TWO, STATS, "length explosion: chosen answers grow")
    assert after.step is Step.PAIRS and after.history == (STATS, STATS)
    assert after.stop_reason == "iteration 2: length explosion: chosen answers grow"
    assert machine.checkpoint(state, after) == "iteration 2: pairs (guard stop)"
    assert machine.next_step(after, SFT_THEN_TWO) == Finished("failed", after.stop_reason)
    # A run resumed from that checkpoint does not go on.
    assert machine.next_step(RunState.from_json(after.to_json()), SFT_THEN_TWO, "cancelled") == Finished(
        "failed", after.stop_reason
    )


def test_pairs_that_pass_the_guards_lead_to_training() -> None:
    state = RunState(iteration=1, step=Step.PAIRS, model="m1")
    after = machine.after_pairs(state, SFT_THEN_TWO, STATS, None)
    assert (after.step, after.stop_reason, after.history) == (Step.TRAIN, None, (STATS,))
    assert machine.checkpoint(state, after) == "iteration 1: pairs"


@pytest.mark.parametrize("why", ["cancelled", "lease lost", "shutdown"])
def test_an_interruption_halts_the_run_before_its_next_step(why: machine.Interruption) -> None:
    steps, _ = walk(machine.start(SFT_THEN_TWO, "base"), SFT_THEN_TWO)
    for _, state in steps[:-1]:
        assert machine.next_step(state, SFT_THEN_TWO, why) == Halt(why)


def test_a_cancel_after_the_last_step_leaves_the_run_succeeded() -> None:
    steps, _ = walk(machine.start(SFT_THEN_TWO, "base"), SFT_THEN_TWO)
    assert machine.next_step(steps[-1][1], SFT_THEN_TWO, "cancelled") == Finished("succeeded")


def test_trained_models_are_named_after_the_base_the_job_and_the_iteration() -> None:
    job_id = uuid.UUID("0123abcd-0000-0000-0000-000000000000")
    assert machine.model_name("qwen", job_id, 0) == "qwen-sr-0123abcd-m1"
    assert machine.model_name("qwen", job_id, 2) == "qwen-sr-0123abcd-m3"


def test_seeds_are_the_same_on_a_resumed_run_and_differ_by_use() -> None:
    assert machine.derive_seed(5, 1, "cand") == machine.derive_seed(5, 1, "cand")
    assert machine.derive_seed(5, 1, "cand") != machine.derive_seed(5, 1, "judge")
    assert machine.derive_seed(5, 1, "cand") != machine.derive_seed(6, 1, "cand")


def test_a_fixed_model_writes_the_prompts_of_every_iteration_unless_mt_is_asked_for() -> None:
    steps, _ = walk(machine.start(SFT_THEN_TWO, "base"), SFT_THEN_TWO)
    second = next(after for work, after in steps if after.iteration == 2 and after.step is Step.PROMPTS)
    assert second.model == "m2"  # M_t of iteration 2
    assert machine.prompt_generator("fixed", None, "base", second) == "base"  # the paper's fixed generator
    assert machine.prompt_generator("fixed", "writer", "base", second) == "writer"
    assert machine.prompt_generator("current", None, "base", second) == "m2"
