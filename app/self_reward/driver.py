"""The self-rewarding loop's I/O side: performs the steps the state machine (:mod:`app.self_reward.machine`)
asks for and commits each with the state it leaves, so a retried job resumes at the step it was in.
An interrupted step is redone from its start (its partial rows are replaced).

The process running the loop supplies a :class:`Runtime`: its model calls (through the model's
scheduler), its training dispatch, and its checks for cancel, a lost lease and shutdown. The loop
checks before every step and between chunks of model calls.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import Database
from app.engine.base import Conversation, Generation, SamplingParams
from app.jobs import lifecycle
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue
from app.models import repository as models_repo
from app.self_reward import head_to_head, machine, stages
from app.self_reward import repository as sr_repo
from app.self_reward import service as sr_service
from app.self_reward.evaluation import heldout_evaluation, judge_quality
from app.self_reward.guards import check_iteration
from app.self_reward.machine import (
    Finished,
    Halt,
    Interrupted,
    Interruption,
    RunPlan,
    RunState,
    Step,
    Stop,
    Trained,
)
from app.self_reward.rubric import STOP, judge_conversation, judgment_text, parse_score
from app.self_reward.schemas import SelfRewardRequest
from app.self_reward.service import SeedData
from app.training.runner import TrainingFailed
from app.training.specs import DPOSpec, SFTSpec, TrainResult


class Runtime(Protocol):
    """What the loop needs from the process that runs it."""

    def interruption(self) -> Interruption | None:
        """Whether the job must stop now, and why."""
        ...

    def generate(
        self, model: str, conversations: list[Conversation], sampling: SamplingParams
    ) -> list[Generation]:
        """One batch of requests to ``model``; Interrupted when the job's requests are cancelled or the
        scheduler stops."""
        ...

    def train(self, kind: Literal["sft", "dpo"], spec: SFTSpec | DPOSpec) -> TrainResult:
        """Run a training to its end. TrainingFailed when it fails; Interrupted when a cancel or a
        shutdown stopped it."""
        ...


@dataclass(frozen=True)
class LoadedJob:
    """A self-reward job as the loop starts it: its request, seed data and checkpoint."""

    job_id: uuid.UUID
    tenant: str
    request: SelfRewardRequest
    data: SeedData
    base_model: str
    plan: RunPlan
    state: RunState


def load(db: Database, job_id: uuid.UUID) -> LoadedJob:
    """Read a job to run or resume. LookupError: the job, or its base model, is gone."""
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        if job is None:
            raise LookupError(f"job {job_id} is gone")
        request = SelfRewardRequest.model_validate(job.params)
        data = sr_service.load_seed_data(session, request, job.tenant)
        run = sr_repo.get_run(session, job_id)
        base = models_repo.get_by_name(session, request.base_model or job.model)
        if base is None:
            raise LookupError(f"base model {request.base_model!r} is not registered")
        plan = RunPlan(iterations=request.iterations, sft=request.sft.enabled)
        state = (
            RunState.from_json(run.state) if run is not None and run.state else machine.start(plan, base.name)
        )
        return LoadedJob(job_id, job.tenant, request, data, base.name, plan, state)


class SelfRewardLoop:
    """Runs one self-reward job from the state it was loaded in."""

    def __init__(
        self, job: LoadedJob, db: Database, queue: JobQueue, settings: Settings, runtime: Runtime
    ) -> None:
        self.db = db
        self.queue = queue
        self.settings = settings
        self.runtime = runtime
        self.job_id = job.job_id
        self.tenant = job.tenant
        self.request = job.request
        self.data = job.data
        self.base_name = job.base_model
        self.plan = job.plan
        self.state = job.state
        self.steps: dict[Step, Callable[[int], None]] = {
            Step.PROMPTS: self._prompts,
            Step.CANDIDATES: self._candidates,
            Step.JUDGMENTS: self._judgments,
            Step.PAIRS: self._pairs,
            Step.TRAIN: self._train,
            Step.REGISTER: self._register,
            Step.EVALUATE: self._evaluate,
        }

    def run(self) -> Finished:
        """Perform steps until the run is over. Raises Stop when a step fails the job, Interrupted when
        the run is interrupted (between steps or inside one)."""
        while True:
            decision = machine.next_step(self.state, self.plan, self.runtime.interruption())
            if isinstance(decision, Halt):
                raise Interrupted(decision.why)
            if isinstance(decision, Finished):
                if decision.status == "succeeded":
                    self._progress("done")
                return decision
            self._progress(machine.stage(decision, self.plan))
            self.steps[decision.step](decision.iteration)

    def _check(self) -> None:
        why = self.runtime.interruption()
        if why is not None:
            raise Interrupted(why)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _complete(self, after: RunState, write: Callable[[Session], object]) -> None:
        """Commit a step: what it recorded (``write``) and the state it leaves, in one transaction."""
        with self.db.unit_of_work() as session:
            write(session)
            sr_repo.save_run(session, self.job_id, machine.checkpoint(self.state, after), after.to_json())
        self.state = after

    def _progress(self, stage: str) -> None:
        state = self.state
        with self.db.unit_of_work() as session:
            done = machine.iterations_done(state, self.plan)
            lifecycle.record_progress(
                session, self.queue, self.job_id, done, stage[:64], total=self.plan.total
            )
            jobs_repo.set_detail(
                session,
                self.job_id,
                {"iteration": state.iteration, "step": state.step.value, "model": state.model},
            )

    def _generate(self, model: str, convs: list[Conversation], sampling: SamplingParams) -> list[Generation]:
        """Generate in chunks, checking for cancel between them (a step may be long)."""
        chunk = max(1, self.settings.batch_size * 4)
        out: list[Generation] = []
        for start in range(0, len(convs), chunk):
            if start:
                self._check()
            out.extend(self.runtime.generate(model, convs[start : start + chunk], sampling))
        return out

    def _seed(self, *parts: object) -> int:
        return machine.derive_seed(self.request.seed, *parts)

    # -- the data steps ----------------------------------------------------------------------------
    def _prompts(self, t: int) -> None:
        req = self.request
        instruct = req.instruct.domain()
        with self.db.unit_of_work() as session:
            earlier = [
                p.text for p in sr_repo.prompts(session, self.job_id) if p.iteration < t and not p.dropped
            ]
        collector = stages.PromptCollector(
            [ex.prompt for ex in self.data.ift],
            earlier,
            instruct,
            req.prompts_per_iteration,
            req.instruct.max_attempts_factor,
            random.Random(self._seed(t, "prompts")),
        )
        sampling = SamplingParams(
            temperature=instruct.temperature,
            top_p=instruct.top_p,
            max_tokens=instruct.max_tokens,
            seed=self._seed(t, "prompts", "sampling"),
        )
        generator = machine.prompt_generator(
            req.prompt_generation, req.prompt_generator, self.base_name, self.state
        )
        while convs := collector.next_batch(self.settings.batch_size):
            collector.add(self._generate(generator, convs, sampling))

        def write(session: Session) -> None:
            sr_repo.replace_stage(session, self.job_id, t, Step.PROMPTS, collector.rows)
            sr_repo.save_iteration(session, self.job_id, t, metrics=collector.metrics())

        if not collector.kept:
            # Recorded, for the client to see why; the step stays undone.
            with self.db.unit_of_work() as session:
                write(session)
            raise Stop(f"iteration {t}: no usable prompt in {len(collector.rows)} generated")
        self._complete(machine.advance(self.state, self.plan), write)

    def _candidates(self, t: int) -> None:
        req = self.request.candidates
        with self.db.unit_of_work() as session:
            prompts = stages.kept_prompts(sr_repo.prompts(session, self.job_id, t))
        sampling = SamplingParams(
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
            seed=self._seed(t, "cand"),
        )
        gens = self._generate(self.state.model, stages.candidate_conversations(prompts, req.n), sampling)
        rows = stages.candidate_rows(prompts, req.n, gens)

        def write(session: Session) -> None:
            sr_repo.replace_stage(session, self.job_id, t, Step.CANDIDATES, rows)
            sr_repo.save_iteration(session, self.job_id, t, metrics=stages.candidate_metrics(rows))

        self._complete(machine.advance(self.state, self.plan), write)

    def _judgments(self, t: int) -> None:
        req = self.request.judge
        with self.db.unit_of_work() as session:
            requests = stages.judgment_requests(
                sr_repo.prompts(session, self.job_id, t),
                sr_repo.candidates(session, self.job_id, t),
                req.samples,
            )
        sampling = SamplingParams(
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
            seed=self._seed(t, "judge"),
            stop=STOP,
        )
        gens = self._generate(self.state.model, [r.conversation for r in requests], sampling)
        rows = stages.judgment_rows(requests, gens)

        def write(session: Session) -> None:
            sr_repo.replace_stage(session, self.job_id, t, Step.JUDGMENTS, rows)
            sr_repo.save_iteration(session, self.job_id, t, metrics=stages.judgment_metrics(rows))

        self._complete(machine.advance(self.state, self.plan), write)

    def _pairs(self, t: int) -> None:
        with self.db.unit_of_work() as session:
            decided = stages.decide_pairs(
                sr_repo.candidates(session, self.job_id, t),
                sr_repo.judgments(session, self.job_id, t),
                self.request.pair_settings(),
            )
        guard = check_iteration(decided.stats, list(self.state.history), self.request.guards.domain())

        def write(session: Session) -> None:
            sr_repo.replace_stage(session, self.job_id, t, Step.PAIRS, decided.rows)
            sr_repo.save_iteration(
                session, self.job_id, t, metrics=stages.pair_metrics(decided.stats), flags=guard.flags
            )

        # A guard's stop is part of the state: the machine ends the run next.
        self._complete(machine.after_pairs(self.state, self.plan, decided.stats, guard.stop), write)

    # -- training, registration, evaluation ----------------------------------------------------------
    def _model_path(self, name: str) -> Path:
        with self.db.unit_of_work() as session:
            record = models_repo.get_by_name(session, name)
            path = record.artifact_path if record is not None else None
        if path is None:
            raise LookupError(f"model {name!r} has no local weights")
        return Path(path)

    def _training(self, t: int, name: str) -> tuple[Literal["sft", "dpo"], SFTSpec | DPOSpec, dict[str, int]]:
        """What iteration ``t`` trains: the kind, its spec, and the counts of its data."""
        base_path = str(self._model_path(self.state.model))
        output = str(self.settings.models_dir / name)
        if t == 0:
            examples = stages.sft_examples(self.data.ift, self.data.eft)
            spec = self.request.sft.spec(base_path, output, examples, self._seed(t, "sft"))
            return "sft", spec, {"ift_examples": len(self.data.ift), "eft_examples": len(self.data.eft)}
        with self.db.unit_of_work() as session:
            pairs = stages.dpo_pairs(
                sr_repo.prompts(session, self.job_id, t),
                sr_repo.candidates(session, self.job_id, t),
                sr_repo.pairs(session, self.job_id, t),
            )
        spec_dpo = self.request.dpo.spec(base_path, output, pairs, self._seed(t, "dpo"))
        return "dpo", spec_dpo, {"pairs": len(pairs)}

    def _train(self, t: int) -> None:
        name = machine.model_name(self.base_name, self.job_id, t)
        kind, spec, counts = self._training(t, name)
        try:
            result = self.runtime.train(kind, spec)
        except TrainingFailed as exc:
            raise Stop(f"iteration {t}: {kind} training failed: {exc}") from exc
        if not result.metrics.get("steps"):
            # TRL silently drops examples longer than max_length; a run with no step taught nothing.
            raise Stop(
                f"iteration {t}: {kind} training ran no step (are all examples longer than "
                f"{kind}.max_length tokens?)",
            )
        metrics = {"training": {"kind": kind, **counts, **result.metrics}}
        self._complete(
            machine.after_train(self.state, self.plan, Trained(name, result.output_path)),
            lambda session: sr_repo.save_iteration(session, self.job_id, t, metrics=metrics),
        )

    def _register(self, t: int) -> None:
        trained = machine.trained_model(self.state)

        def write(session: Session) -> None:
            parent = models_repo.get_by_name(session, self.state.model)
            if parent is None:
                raise LookupError(f"model {self.state.model!r} is not registered")
            recorded = next(
                (r.metrics for r in sr_repo.iterations(session, self.job_id) if r.iteration == t), {}
            )
            record = models_repo.register_trained(
                session,
                name=trained.name,
                backend=self.settings.backend,
                artifact_path=trained.path,
                parent_id=parent.id,
                job_id=self.job_id,
                iteration=t,
                metrics={
                    "stage": "sft" if t == 0 else "dpo",
                    "training": recorded.get("training", {}),
                    "pairs": recorded.get("pairs"),
                    "prompts": recorded.get("prompts"),
                },
                owner=self.tenant,
            )
            sr_repo.save_iteration(session, self.job_id, t, metrics={}, model_id=record.id)

        self._complete(machine.advance(self.state, self.plan), write)

    def _evaluate(self, t: int) -> None:
        previous, new = self.state.model, machine.trained_model(self.state).name
        ev = self.request.evaluation
        heldout = self.data.heldout
        greedy = SamplingParams(temperature=0.0, max_tokens=ev.max_tokens)
        prompts = list(dict.fromkeys(ex.prompt for ex in heldout))[: ev.heldout_prompts]
        convs: list[Conversation] = [[{"role": "user", "content": p}] for p in prompts]
        before = [g.text for g in self._generate(previous, convs, greedy)] if prompts else []
        after = [g.text for g in self._generate(new, convs, greedy)] if prompts else []
        judged = self._generate(
            new,
            [judge_conversation(ex.prompt, ex.response) for ex in heldout],
            SamplingParams(temperature=0.0, max_tokens=self.request.judge.max_tokens, stop=STOP),
        )
        quality = judge_quality(
            [ex.prompt for ex in heldout],
            [parse_score(judgment_text(g)).value for g in judged],
            [float(ex.score) for ex in heldout],
        )
        evaluation = heldout_evaluation(quality, after, before)
        if prompts:
            plans = head_to_head.plan(prompts, after, before)
            calls = [call.messages for calls in plans for call in calls]
            evaluation["win_rate_vs_previous"] = head_to_head.summarize(
                plans, self._generate(new, calls, head_to_head.SAMPLING)
            )
        self._complete(
            machine.after_evaluate(self.state, self.plan),
            lambda session: sr_repo.save_iteration(
                session, self.job_id, t, metrics={"evaluation": evaluation}
            ),
        )
