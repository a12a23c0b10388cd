"""The self-rewarding loop as a state machine: which step comes next, and the state each completed step
leaves behind. No I/O; the driver (:mod:`app.self_reward.loop`) performs the steps and commits each new
state with that step's rows, so a resumed run picks up at the first step not committed.

Iteration 0 (optional) fine-tunes M1 from the base model on the seed data: ``train``, ``register``,
``evaluate``. Iteration t >= 1 (M_t -> M_{t+1}) runs every step of :data:`LOOP_STEPS`.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from app.self_reward.domain import IterationStats, PromptGeneration


class Step(StrEnum):
    PROMPTS = "prompts"
    CANDIDATES = "candidates"
    JUDGMENTS = "judgments"
    PAIRS = "pairs"
    TRAIN = "train"
    REGISTER = "register"
    EVALUATE = "evaluate"


LOOP_STEPS: tuple[Step, ...] = tuple(Step)
SFT_STEPS: tuple[Step, ...] = (Step.TRAIN, Step.REGISTER, Step.EVALUATE)


class Stop(Exception):
    """The job fails here, decided inside a step, for a reason the client should read (no usable
    prompt, a training that failed or taught nothing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Why a run stops before its end from outside: the client cancelled it, another worker took it over
# (this one's lease expired), or the process is shutting down (the job goes back to the queue).
Interruption = Literal["cancelled", "lease lost", "shutdown"]


class Interrupted(Exception):
    """Raised inside a step (between chunks of model calls, or by a call or a training that was
    stopped) when the run is interrupted."""

    def __init__(self, why: Interruption) -> None:
        super().__init__(why)
        self.why: Interruption = why


@dataclass(frozen=True)
class RunPlan:
    """The shape of a run: ``iterations`` DPO iterations, after an SFT iteration 0 when ``sft``."""

    iterations: int
    sft: bool

    @property
    def first_iteration(self) -> int:
        return 0 if self.sft else 1

    @property
    def total(self) -> int:
        """The iterations the run counts as its progress total."""
        return self.iterations + (1 if self.sft else 0)

    def steps(self, iteration: int) -> tuple[Step, ...]:
        return SFT_STEPS if iteration == 0 else LOOP_STEPS


@dataclass(frozen=True)
class Trained:
    """A model trained by the current iteration, not yet the run's current model."""

    name: str
    path: str


@dataclass(frozen=True)
class RunState:
    """Where the run stands: the step to do next in ``iteration``, the model the iteration starts
    from, the guards' history, and why the run stopped (a guard), if it did."""

    iteration: int
    step: Step
    model: str
    history: tuple[IterationStats, ...] = ()
    stop_reason: str | None = None
    trained: Trained | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        """The checkpoint as stored in ``sr_runs.state`` (the results read ``model`` and
        ``stop_reason`` from it)."""
        data: dict[str, Any] = {
            "iteration": self.iteration,
            "step": self.step.value,
            "model": self.model,
            "history": [asdict(h) for h in self.history],
            "stop_reason": self.stop_reason,
        }
        if self.trained is not None:
            data["trained"] = {"name": self.trained.name, "path": self.trained.path}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        trained = data.get("trained")
        return cls(
            iteration=int(data["iteration"]),
            step=Step(data["step"]),
            model=str(data["model"]),
            history=tuple(IterationStats(**h) for h in data.get("history", [])),
            stop_reason=data.get("stop_reason"),
            trained=Trained(str(trained["name"]), str(trained["path"])) if trained else None,
        )


@dataclass(frozen=True)
class Work:
    """The step to perform next."""

    iteration: int
    step: Step


@dataclass(frozen=True)
class Finished:
    """The run is over: every iteration done, or a guard stopped it."""

    status: Literal["succeeded", "failed"]
    reason: str | None = None


@dataclass(frozen=True)
class Halt:
    """The run stops here, interrupted between steps; what it committed stays done."""

    why: Interruption


def start(plan: RunPlan, base_model: str) -> RunState:
    """The state of a run that has done nothing yet."""
    first = plan.first_iteration
    return RunState(iteration=first, step=plan.steps(first)[0], model=base_model)


def next_step(
    state: RunState, plan: RunPlan, interruption: Interruption | None = None
) -> Work | Finished | Halt:
    """What the run does next from ``state``; ``interruption``: what stops it now, if anything (a run
    that is over ends as it is, whatever came meanwhile)."""
    if state.stop_reason is not None:
        return Finished("failed", state.stop_reason)
    if state.iteration > plan.iterations:
        return Finished("succeeded")
    if interruption is not None:
        return Halt(interruption)
    return Work(state.iteration, state.step)


def advance(state: RunState, plan: RunPlan) -> RunState:
    """The state once ``state.step`` is done: the iteration's next step, or the next iteration's first."""
    steps = plan.steps(state.iteration)
    index = steps.index(state.step)
    if index + 1 < len(steps):
        return replace(state, step=steps[index + 1])
    following = state.iteration + 1
    return replace(state, iteration=following, step=plan.steps(following)[0])


def after_pairs(state: RunState, plan: RunPlan, stats: IterationStats, stop: str | None) -> RunState:
    """The pairs step is done: its statistics join the guards' history; a guard's ``stop`` ends the run
    (the state stays at this step, with the reason)."""
    done = replace(state, history=(*state.history, stats))
    if stop is not None:
        return replace(done, stop_reason=f"iteration {state.iteration}: {stop}")
    return advance(done, plan)


def after_train(state: RunState, plan: RunPlan, trained: Trained) -> RunState:
    return advance(replace(state, trained=trained), plan)


def after_evaluate(state: RunState, plan: RunPlan) -> RunState:
    """The iteration is done: its trained model becomes the model the next iteration starts from."""
    return advance(replace(state, model=trained_model(state).name, trained=None), plan)


def trained_model(state: RunState) -> Trained:
    """The model the current iteration trained (``register`` and ``evaluate`` need it)."""
    if state.trained is None:
        raise ValueError(f"iteration {state.iteration}: {state.step} before any model was trained")
    return state.trained


def checkpoint(done: RunState, after: RunState) -> str:
    """How the checkpoint is labelled (``sr_runs.step``) when ``done.step`` left the run in ``after``."""
    label = f"iteration {done.iteration}: {done.step.value}"
    return f"{label} (guard stop)" if after.stop_reason is not None else label


def stage(work: Work, plan: RunPlan) -> str:
    """The job's ``stage`` while ``work`` runs."""
    if work.iteration == 0:
        return f"sft: {work.step.value}"
    return f"iteration {work.iteration}/{plan.iterations}: {work.step.value}"


def iterations_done(state: RunState, plan: RunPlan) -> int:
    """The job's progress: iterations completed."""
    return max(0, state.iteration - plan.first_iteration)


def prompt_generator(
    generation: PromptGeneration, named: str | None, base_model: str, state: RunState
) -> str:
    """The model that writes the new prompts of ``state``'s iteration: with ``fixed``, the same model
    every iteration, ``named`` or else the run's base model (the paper's fixed generator); with
    ``current``, M_t, the model the iteration starts from."""
    if generation == "current":
        return state.model
    return named or base_model


def model_name(base: str, job_id: uuid.UUID, iteration: int) -> str:
    """The name the model trained by ``iteration`` is registered under."""
    return f"{base}-sr-{job_id.hex[:8]}-m{iteration + 1}"


def derive_seed(seed: int, *parts: object) -> int:
    """A seed for one use within a run (the same on a resumed run)."""
    return random.Random(":".join(str(p) for p in (seed, *parts))).randrange(2**31)
