"""Self-reward jobs: validate and record a submission, load its seed data, read its results."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.config import Settings
from app.core.db import after_commit
from app.core.errors import InvalidInput, NotFound
from app.core.idempotency import Idempotency
from app.datasets import repository as datasets_repo
from app.db.tables import Job
from app.engine.base import Conversation
from app.jobs import repository as jobs_repo
from app.jobs.caps import SizeCap, check_cost, check_sizes, cost_caps
from app.jobs.creation import admit_long_job, record_job
from app.jobs.queue import JobQueue
from app.jobs.schemas import JobOptionsIn
from app.jobs.tokens import CHARS_PER_TOKEN
from app.models import repository as models_repo
from app.models import service as models_service
from app.models.availability import check_servable
from app.self_reward import head_to_head, seed_data
from app.self_reward import repository as sr_repo
from app.self_reward.domain import EvalExample, SeedExample
from app.self_reward.instruct import few_shot_conversation
from app.self_reward.projection import STAGES, CallShape, LoopPlan, Training, project
from app.self_reward.rubric import eft_judgment_ok, judge_conversation
from app.self_reward.schemas import (
    EFTSource,
    IFTSource,
    IterationOut,
    IterationProjection,
    SelfRewardDryRunOut,
    SelfRewardProjection,
    SelfRewardRequest,
    SelfRewardResults,
    StageProjection,
)

KIND = "self_reward"


@dataclass(frozen=True)
class SeedData:
    ift: list[SeedExample]
    eft: list[EvalExample]
    heldout: list[EvalExample]


def _dataset_rows(session: Session, dataset_id: uuid.UUID, tenant: str, field: str) -> list[dict[str, str]]:
    dataset = datasets_repo.get_dataset(session, dataset_id, tenant)
    if dataset is None:
        raise InvalidInput(f"unknown dataset {dataset_id}", field)
    return [{**row.inputs, "label": row.label} for row in datasets_repo.rows(session, dataset.id)]


def _ift(session: Session, source: IFTSource | None, tenant: str) -> list[SeedExample]:
    if source is None:
        return seed_data.ift_examples()
    if source.rows is not None:
        return [SeedExample(r.prompt, r.response) for r in source.rows]
    assert source.dataset_id is not None
    rows = _dataset_rows(session, source.dataset_id, tenant, "ift.dataset_id")
    if any("prompt" not in r or "response" not in r for r in rows):
        raise InvalidInput("an IFT dataset needs the fields prompt and response", "ift.dataset_id")
    return [SeedExample(r["prompt"], r["response"]) for r in rows]


def _eft(session: Session, source: EFTSource | None, tenant: str, name: str) -> list[EvalExample]:
    if source is None:
        return seed_data.eft_examples("train" if name == "eft" else "heldout")
    if source.rows is not None:
        examples = [EvalExample(r.prompt, r.response, r.judgment, r.score) for r in source.rows]
    else:
        assert source.dataset_id is not None
        rows = _dataset_rows(session, source.dataset_id, tenant, f"{name}.dataset_id")
        if any(k not in r for r in rows for k in ("prompt", "response", "judgment")):
            raise InvalidInput(
                "an EFT dataset needs the fields prompt, response, judgment and the score as label",
                f"{name}.dataset_id",
            )
        try:
            examples = [EvalExample(r["prompt"], r["response"], r["judgment"], int(r["label"])) for r in rows]
        except ValueError as exc:
            raise InvalidInput(f"EFT labels must be scores 0-5: {exc}", f"{name}.dataset_id") from exc
    for i, example in enumerate(examples):
        problem = eft_judgment_ok(example)
        if problem is None:
            continue
        if source.rows is not None:
            raise InvalidInput(f"{name} example {i}: {problem}", f"{name}.rows[{i}]")
        # A dataset's rows are not request fields: name the dataset and the row.
        raise InvalidInput(f"{name} dataset row {i}: {problem}", f"{name}.dataset_id")
    return examples


def load_seed_data(session: Session, request: SelfRewardRequest, tenant: str) -> SeedData:
    """The job's IFT, EFT and held-out EFT examples; InvalidInput (422) naming the field at fault."""
    return SeedData(
        ift=_ift(session, request.ift, tenant),
        eft=_eft(session, request.eft, tenant, "eft"),
        heldout=_eft(session, request.eft_heldout, tenant, "eft_heldout"),
    )


def _request_sizes(request: SelfRewardRequest) -> list[SizeCap]:
    sizes = [
        SizeCap("iterations", request.iterations, "max_sr_iterations"),
        SizeCap("prompts_per_iteration", request.prompts_per_iteration, "max_sr_prompts_per_iteration"),
        SizeCap(
            "instruct.max_attempts_factor", request.instruct.max_attempts_factor, "max_sr_attempts_factor"
        ),
        SizeCap("candidates.n", request.candidates.n, "max_sr_candidates"),
        SizeCap("judge.samples", request.judge.samples, "max_sr_judge_samples"),
        SizeCap("evaluation.heldout_prompts", request.evaluation.heldout_prompts, "max_sr_heldout_prompts"),
        SizeCap("instruct.max_tokens", request.instruct.max_tokens, "max_job_new_tokens"),
        SizeCap("candidates.max_tokens", request.candidates.max_tokens, "max_job_new_tokens"),
        SizeCap("judge.max_tokens", request.judge.max_tokens, "max_job_new_tokens"),
        SizeCap("evaluation.max_tokens", request.evaluation.max_tokens, "max_job_new_tokens"),
        SizeCap("dpo.epochs", request.dpo.epochs, "max_sr_training_epochs"),
        SizeCap("dpo.max_length", request.dpo.max_length, "max_sr_training_max_length"),
    ]
    if request.sft.enabled:
        sizes += [
            SizeCap("sft.epochs", request.sft.epochs, "max_sr_training_epochs"),
            SizeCap("sft.max_length", request.sft.max_length, "max_sr_training_max_length"),
        ]
    return sizes


def _source_field(name: str, source: IFTSource | EFTSource | None) -> str:
    if source is None:
        return name
    return f"{name}.rows" if source.rows is not None else f"{name}.dataset_id"


def _seed_sizes(request: SelfRewardRequest, data: SeedData) -> list[SizeCap]:
    return [
        SizeCap(_source_field("ift", request.ift), len(data.ift), "max_sr_seed_examples", "examples"),
        SizeCap(_source_field("eft", request.eft), len(data.eft), "max_sr_seed_examples", "examples"),
        SizeCap(
            _source_field("eft_heldout", request.eft_heldout),
            len(data.heldout),
            "max_sr_seed_examples",
            "examples",
        ),
    ]


def _chars(conversation: Conversation) -> int:
    return sum(len(m["content"]) for m in conversation)


def _mean(values: list[int]) -> int:
    return sum(values) // max(1, len(values))


def loop_plan(request: SelfRewardRequest, data: SeedData) -> LoopPlan:
    """The run's sizes and the length of each kind of call, measured on the real prompts built from the
    seed data (generated prompts are taken to be as long as the seed ones, answers as long as their
    token limit allows)."""
    seeds = [ex.prompt for ex in data.ift]
    prompt_chars = _mean([len(p) for p in seeds])
    shots = few_shot_conversation(seeds, [], request.instruct.domain(), random.Random(request.seed))
    answer_chars = request.candidates.max_tokens * CHARS_PER_TOKEN
    heldout = list(dict.fromkeys(ex.prompt for ex in data.heldout))[: request.evaluation.heldout_prompts]
    heldout_chars = _mean([len(p) for p in heldout])
    eval_answer = "x" * (request.evaluation.max_tokens * CHARS_PER_TOKEN)
    win_rate = head_to_head.plan(["x" * heldout_chars], [eval_answer], [eval_answer])[0]
    sft = request.sft
    return LoopPlan(
        iterations=request.iterations,
        prompts_per_iteration=request.prompts_per_iteration,
        attempts_factor=request.instruct.max_attempts_factor,
        candidates=request.candidates.n,
        judge_samples=request.judge.samples,
        eval_prompts=len(heldout),
        eval_judged=len(data.heldout),
        win_rate_calls_per_prompt=len(win_rate),
        sft=Training(len(data.ift) + len(data.eft), sft.epochs, sft.batch_size) if sft.enabled else None,
        dpo=Training(request.prompts_per_iteration, request.dpo.epochs, request.dpo.batch_size),
        prompt_call=CallShape(_chars(shots), request.instruct.max_tokens),
        candidate_call=CallShape(prompt_chars, request.candidates.max_tokens),
        judgment_call=CallShape(
            _chars(judge_conversation("", "")) + prompt_chars + answer_chars, request.judge.max_tokens
        ),
        answer_call=CallShape(heldout_chars, request.evaluation.max_tokens),
        grading_call=CallShape(
            _mean([_chars(judge_conversation(ex.prompt, ex.response)) for ex in data.heldout]),
            request.judge.max_tokens,
        ),
        win_rate_call=CallShape(_mean([_chars(c.messages) for c in win_rate]), head_to_head.MAX_TOKENS),
    )


def projection(settings: Settings, request: SelfRewardRequest, data: SeedData) -> SelfRewardProjection:
    """The run's calls, tokens and training steps at most, against the server's per-job caps."""
    run = project(loop_plan(request, data))
    stages = {
        name: StageProjection(calls=run.stage(name).calls, tokens=run.stage(name).tokens) for name in STAGES
    }
    caps = cost_caps(settings, run.calls, run.tokens)
    return SelfRewardProjection(
        **stages,
        calls=run.calls,
        tokens=run.tokens,
        training_steps=run.training_steps,
        per_iteration=[
            IterationProjection(
                iteration=it.iteration, calls=it.calls, tokens=it.tokens, training_steps=it.training_steps
            )
            for it in run.iterations
        ],
        caps=caps,
        fits_budget=all(c.ok for c in caps),
    )


def submit(
    session: Session,
    settings: Settings,
    queue: JobQueue,
    request: SelfRewardRequest,
    tenant: str,
    idem: Idempotency | None = None,
) -> Job | SelfRewardDryRunOut:
    """Validate and record the job; it is enqueued after the caller's commit, on the queue of the base
    model's family (its workers load each new model's weights in turn). With ``dry_run``, return its
    projected cost instead, recording nothing. A retry with the same Idempotency-Key returns the first
    request's job. A size over its cap, or a projection over the per-job caps, is a 422 naming the cap;
    a tenant at its quota of long jobs gets a 429."""
    replayed = admit_long_job(session, settings, tenant, idem, request.dry_run, _request_sizes(request))
    if replayed is not None:
        return replayed
    base = models_service.serving(session, request.base_model or settings.default_model, "base_model", tenant)
    if base.record.backend == "openai":
        raise InvalidInput(
            "self-reward jobs train the model: the base model must have local weights", "base_model"
        )
    generator = None
    if request.prompt_generator is not None:
        if request.prompt_generation == "current":
            raise InvalidInput(
                "prompt_generator names a fixed generator, but prompt_generation 'current' has M_t write "
                "the prompts",
                "prompt_generator",
            )
        generator = models_service.serving(session, request.prompt_generator, "prompt_generator", tenant).name
    for name, training in (("sft", request.sft), ("dpo", request.dpo)):
        if training.min_learning_rate > training.learning_rate:
            raise InvalidInput(
                f"{name}.min_learning_rate cannot exceed {name}.learning_rate", f"{name}.min_learning_rate"
            )
    if request.instruct.seed_shots > request.instruct.shots:
        raise InvalidInput("instruct.seed_shots cannot exceed instruct.shots", "instruct.seed_shots")
    if request.instruct.min_words > request.instruct.max_words:
        raise InvalidInput("instruct.min_words cannot exceed instruct.max_words", "instruct.min_words")
    data = load_seed_data(session, request, tenant)
    check_sizes(settings, _seed_sizes(request, data))
    if len(data.ift) < 2:
        raise InvalidInput("self-instruct needs at least 2 IFT examples to show as shots", "ift")
    heldout_prompts = len({ex.prompt for ex in data.heldout})
    if request.evaluation.heldout_prompts > heldout_prompts:
        raise InvalidInput(
            f"evaluation.heldout_prompts is {request.evaluation.heldout_prompts} but the held-out EFT data "
            f"has {heldout_prompts} distinct prompts",
            "evaluation.heldout_prompts",
        )
    cost = projection(settings, request, data)
    if request.dry_run:
        return SelfRewardDryRunOut(
            projection=cost, ift_size=len(data.ift), eft_size=len(data.eft), heldout_size=len(data.heldout)
        )
    check_cost(
        cost.caps, "lower iterations, prompts_per_iteration, candidates.n, judge.samples or max_tokens"
    )
    check_servable(queue.redis, base.route, "base_model")
    params = request.model_dump(mode="json", exclude={"dry_run", *JobOptionsIn.OPTION_FIELDS})
    params.update(base_model=base.name, prompt_generator=generator)
    job = record_job(
        session,
        settings,
        request,
        kind=KIND,
        model=base.name,
        queue=base.queue,
        params=params,
        total=request.iterations + (1 if request.sft.enabled else 0),
        tenant=tenant,
    )
    idempotency.remember(session, tenant, idem, job.id)
    job_id, q = job.id, base.queue
    after_commit(session, lambda: queue.enqueue(job_id, q))
    return job


def results(session: Session, job: Job) -> SelfRewardResults:
    request = SelfRewardRequest.model_validate(job.params)
    run = sr_repo.get_run(session, job.id)
    state = run.state if run is not None else {}
    out = []
    for row in sr_repo.iterations(session, job.id):
        model = models_repo.get(session, row.model_id) if row.model_id is not None else None
        out.append(
            IterationOut(
                iteration=row.iteration,
                model_id=row.model_id,
                model=model.name if model is not None else None,
                metrics=row.metrics,
                flags=row.flags,
            )
        )
    return SelfRewardResults(
        job_id=job.id,
        status=job.status,
        stage=job.stage,
        stop_reason=state.get("stop_reason"),
        base_model=request.base_model or job.model,
        final_model=state.get("model"),
        iterations=out,
    )


def get_results(session: Session, job_id: uuid.UUID, tenant: str) -> SelfRewardResults:
    job = jobs_repo.get_job(session, job_id, tenant)
    if job is None or job.kind != KIND:
        raise NotFound(f"no self-reward job {job_id}")
    return results(session, job)
