"""Self-reward jobs: validate and record a submission, load its seed data, read its results."""

from __future__ import annotations

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
from app.jobs import repository as jobs_repo
from app.jobs.capacity import check_capacity
from app.jobs.creation import record_job
from app.jobs.queue import JobQueue
from app.jobs.schemas import JobOptionsIn
from app.models import repository as models_repo
from app.models import service as models_service
from app.self_reward import repository as sr_repo
from app.self_reward import seed_data
from app.self_reward.domain import EvalExample, SeedExample
from app.self_reward.rubric import eft_judgment_ok
from app.self_reward.schemas import (
    EFTSource,
    IFTSource,
    IterationOut,
    SelfRewardRequest,
    SelfRewardResults,
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


def submit(
    session: Session,
    settings: Settings,
    queue: JobQueue,
    request: SelfRewardRequest,
    tenant: str,
    idem: Idempotency | None = None,
) -> Job:
    """Validate and record the job; it is enqueued after the caller's commit, on the queue of the base
    model's family (its workers load each new model's weights in turn). A retry with the same
    Idempotency-Key returns the first request's job."""
    earlier = idempotency.replay(session, tenant, idem)
    replayed = jobs_repo.get_job(session, earlier, tenant) if earlier is not None else None
    if replayed is not None:
        return replayed
    check_capacity(session, settings, tenant)
    base = models_service.serving(session, request.base_model or settings.default_model, "base_model", tenant)
    if base.record.backend == "openai":
        raise InvalidInput(
            "self-reward jobs train the model: the base model must have local weights", "base_model"
        )
    generator = None
    if request.prompt_generator is not None:
        generator = models_service.serving(session, request.prompt_generator, "prompt_generator", tenant).name
    if request.instruct.seed_shots > request.instruct.shots:
        raise InvalidInput("instruct.seed_shots cannot exceed instruct.shots", "instruct.seed_shots")
    if request.instruct.min_words > request.instruct.max_words:
        raise InvalidInput("instruct.min_words cannot exceed instruct.max_words", "instruct.min_words")
    data = load_seed_data(session, request, tenant)
    if len(data.ift) < 2:
        raise InvalidInput("self-instruct needs at least 2 IFT examples to show as shots", "ift")
    if request.evaluation.heldout_prompts > len(data.heldout):
        raise InvalidInput(
            f"evaluation.heldout_prompts is {request.evaluation.heldout_prompts} but the held-out EFT data "
            f"has {len(data.heldout)} examples",
            "evaluation.heldout_prompts",
        )
    params = request.model_dump(mode="json", exclude=set(JobOptionsIn.OPTION_FIELDS))
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
