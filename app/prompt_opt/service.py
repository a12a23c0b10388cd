"""Prompt-optimization jobs: validate and record a submission (or project its cost), load its splits,
and read its results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.config import Settings
from app.core.db import after_commit
from app.core.errors import InvalidInput, NotFound
from app.core.idempotency import Idempotency
from app.datasets import repository as datasets_repo
from app.db.tables import Job
from app.jobs import repository as jobs_repo
from app.jobs.caps import CALLS_CAP, TOKENS_CAP, SizeCap, check_cost, check_sizes, cost_caps
from app.jobs.creation import admit_long_job, record_job
from app.jobs.queue import JobQueue
from app.jobs.schemas import JobOptionsIn
from app.jobs.tokens import estimate_tokens
from app.judging.template_catalog import resolve_template
from app.models import service as models_service
from app.models.availability import check_servable
from app.prompt_opt import repository as po_repo
from app.prompt_opt import sections
from app.prompt_opt.data import DataError, Row, label_map, take, to_examples
from app.prompt_opt.projection import Sizes, project
from app.prompt_opt.schemas import (
    CandidateOut,
    DataSplit,
    DryRunOut,
    Projection,
    PromptOptimizationRequest,
    PromptOptimizationResults,
    RoundOut,
)
from app.prompt_opt.search import SearchState, Splits
from app.prompt_opt.tasks import JUDGE_FIELDS, JUDGE_LABELS, build_task, judge_prompt, judge_template_parts

KIND = "prompt_opt"


@dataclass(frozen=True)
class LoadedSplits:
    splits: Splits
    fields: dict[str, frozenset[str]]


def task_labels(request: PromptOptimizationRequest) -> list[str]:
    return list(JUDGE_LABELS) if request.task_type == "judge-agreement" else list(request.labels)


def initial_prompt_text(request: PromptOptimizationRequest) -> str:
    if request.initial_prompt is None:
        raise InvalidInput("no initial prompt", "initial_prompt")
    return request.initial_prompt


def _rows(session: Session, split: DataSplit, tenant: str, name: str) -> tuple[list[Row], str]:
    if split.dataset_id is not None:
        dataset = datasets_repo.get_dataset(session, split.dataset_id, tenant)
        if dataset is None:
            raise InvalidInput(f"unknown dataset {split.dataset_id}", f"data.{name}.dataset_id")
        rows = [Row(dict(r.inputs), r.label) for r in datasets_repo.rows(session, dataset.id)]
        return rows, str(dataset.id)
    assert split.rows is not None
    rows = []
    for i, row in enumerate(split.rows):
        inputs = dict(row.model_extra or {})
        bad = [k for k, v in inputs.items() if not isinstance(v, str)]
        if bad or not inputs:
            problem = f"field {bad[0]!r} must be a string" if bad else "a row needs at least one input field"
            raise InvalidInput(problem, f"data.{name}.rows[{i}]")
        rows.append(Row(inputs, str(row.label)))
    return rows, f"inline-{name}"


def load_splits(session: Session, request: PromptOptimizationRequest, tenant: str) -> LoadedSplits:
    """The job's examples, labels mapped to the prompt's words. Raises InvalidInput (422) with the
    offending field for unknown datasets, empty slices and unknown labels."""
    mapping = label_map(task_labels(request), request.label_values)
    loaded: dict[str, list[Any]] = {}
    fields: dict[str, frozenset[str]] = {}
    for name in ("train", "dev", "test"):
        split: DataSplit | None = getattr(request.data, name)
        if split is None:
            loaded[name] = []
            continue
        rows, source = _rows(session, split, tenant, name)
        rows = take(
            rows,
            shuffle=split.shuffle,
            start=split.start,
            count=split.count,
            seed=request.seed,
            source=source,
        )
        if not rows:
            raise InvalidInput(f"the {name} split is empty (check start and count)", f"data.{name}")
        try:
            loaded[name] = to_examples(rows, mapping, name, source)
        except DataError as exc:
            raise InvalidInput(str(exc), f"data.{name}") from exc
        fields[name] = frozenset.intersection(*(frozenset(r.inputs) for r in rows))
    return LoadedSplits(Splits(loaded["train"], loaded["dev"], loaded["test"]), fields)


def _resolve_initial(
    session: Session, request: PromptOptimizationRequest, tenant: str
) -> PromptOptimizationRequest:
    """The request with ``initial_prompt`` filled in from ``judge_template`` where one is named."""
    if request.judge_template is None:
        return request
    spec = resolve_template(session, request.judge_template, tenant)
    if spec is None:
        raise InvalidInput(f"unknown template '{request.judge_template}'", "judge_template")
    if spec.mode != "pairwise" or spec.multi_turn or spec.reference:
        raise InvalidInput(
            "judge-agreement optimizes single-turn pairwise templates without a reference", "judge_template"
        )
    return request.model_copy(
        update={"initial_prompt": judge_prompt(spec.system, spec.user), "judge_template": None}
    )


def _check_prompt(request: PromptOptimizationRequest, loaded: LoadedSplits) -> None:
    prompt = initial_prompt_text(request)
    try:
        names = sections.placeholders(prompt)
        sections.task_section(prompt)
    except sections.PromptError as exc:
        raise InvalidInput(f"initial prompt: {exc}", "initial_prompt") from exc
    if request.task_type == "judge-agreement":
        # Only the output-format section is filled in (it is the user message); the task section is
        # the system message, sent as is, and any other section is not sent at all.
        output_format = sections.output_format_section(prompt)
        filled = frozenset() if output_format is None else sections.placeholders(output_format)
        if output_format is None or any(f not in filled for f in JUDGE_FIELDS):
            raise InvalidInput(
                "a judge-agreement prompt needs a '# Task' section (the judge's instructions) and a "
                "'# Output format' section with {question}, {answer_a} and {answer_b}",
                "initial_prompt",
            )
        if outside := sorted((names - filled) | sections.placeholders(sections.task_section(prompt))):
            raise InvalidInput(
                f"placeholders {outside} appear outside the '# Output format' section, the only part of a "
                "judge-agreement prompt filled in with the example; use them only there",
                "initial_prompt",
            )
    if not names:
        raise InvalidInput(
            "the initial prompt has no placeholder, so the model would never see the example "
            "(use e.g. {text})",
            "initial_prompt",
        )
    for split, available in loaded.fields.items():
        unknown = sorted(names - available)
        if unknown:
            raise InvalidInput(
                f"the prompt's placeholders {unknown} are not fields of every {split} row "
                f"(fields: {sorted(available)})",
                "initial_prompt",
            )


def _check_models(
    session: Session, request: PromptOptimizationRequest, settings: Settings, tenant: str
) -> models_service.Serving:
    """The task model's serving (its queue takes the job); the optimizer model must be registered."""
    return models_service.serving(session, request.task_model or settings.default_model, "task_model", tenant)


def _optimizer_name(session: Session, request: PromptOptimizationRequest, tenant: str) -> str | None:
    if request.optimizer_model is None:
        return None
    return models_service.serving(session, request.optimizer_model, "optimizer_model", tenant).name


def _request_sizes(request: PromptOptimizationRequest) -> list[SizeCap]:
    h, selector = request.hyperparameters, request.hyperparameters.selector
    return [
        SizeCap("hyperparameters.rounds", h.rounds, "max_po_rounds"),
        SizeCap("hyperparameters.beam_size", h.beam_size, "max_po_beam_size"),
        SizeCap("hyperparameters.minibatch_size", h.minibatch_size, "max_po_minibatch_size"),
        SizeCap("hyperparameters.n_gradients", h.n_gradients, "max_po_gradients"),
        SizeCap("hyperparameters.errors_per_gradient", h.errors_per_gradient, "max_po_errors_per_gradient"),
        SizeCap("hyperparameters.gradients_per_error", h.gradients_per_error, "max_po_gradients_per_error"),
        SizeCap("hyperparameters.steps_per_gradient", h.steps_per_gradient, "max_po_steps_per_gradient"),
        SizeCap("hyperparameters.mc_samples", h.mc_samples, "max_po_paraphrases"),
        SizeCap("hyperparameters.max_expansion", h.max_expansion, "max_po_expansion"),
        SizeCap("hyperparameters.selector.eval_rounds", selector.eval_rounds, "max_po_bandit_rounds"),
        SizeCap(
            "hyperparameters.selector.prompts_per_round",
            selector.prompts_per_round,
            "max_po_prompts_per_bandit_round",
        ),
        SizeCap(
            "hyperparameters.selector.samples_per_eval", selector.samples_per_eval, "max_po_samples_per_eval"
        ),
        SizeCap("task_decoding.max_tokens", request.task_decoding.max_tokens, "max_job_new_tokens"),
        SizeCap("optimizer_decoding.max_tokens", request.optimizer_decoding.max_tokens, "max_job_new_tokens"),
    ]


def _split_sizes(loaded: LoadedSplits) -> list[SizeCap]:
    s = loaded.splits
    return [
        SizeCap("data.dev", len(s.dev), "max_po_eval_rows", "examples"),
        SizeCap("data.test", len(s.test), "max_po_eval_rows", "examples"),
    ]


def _projection(settings: Settings, request: PromptOptimizationRequest, loaded: LoadedSplits) -> Projection:
    prompt = initial_prompt_text(request)
    task = build_task(request.task_type, task_labels(request))
    examples = [*loaded.splits.train, *loaded.splits.dev, *loaded.splits.test]
    mean_chars = sum(sum(len(m["content"]) for m in task.conversation(prompt, ex)) for ex in examples) // max(
        1, len(examples)
    )
    max_new = 0 if request.task_decoding.mode == "logprobs" else request.task_decoding.max_tokens
    params = request.hyperparameters.domain()
    errors_chars = params.errors_per_gradient * mean_chars
    optimizer_chars = len(prompt) + errors_chars + 1500  # instructions of the meta prompts
    run = project(
        params,
        Sizes(len(loaded.splits.train), len(loaded.splits.dev), len(loaded.splits.test)),
        estimate_tokens(mean_chars, max_new),
        estimate_tokens(optimizer_chars, request.optimizer_decoding.max_tokens),
    )
    budget = request.budget
    fits = (budget.max_calls is None or run.calls <= budget.max_calls) and (
        budget.max_tokens is None or run.tokens <= budget.max_tokens
    )
    # The budget stops the run at its share, so a budget below the projection bounds what it spends.
    caps = cost_caps(
        settings,
        run.calls if budget.max_calls is None else min(run.calls, budget.max_calls),
        run.tokens if budget.max_tokens is None else min(run.tokens, budget.max_tokens),
    )
    within_caps = all(c.ok for c in caps)
    return Projection(
        task_calls=run.task_calls,
        optimizer_calls=run.optimizer_calls,
        calls=run.calls,
        tokens=run.tokens,
        final_eval_calls=run.final_eval_calls,
        per_round=run.per_round,
        caps=caps,
        within_caps=within_caps,
        fits_budget=fits and within_caps,
    )


def submit(
    session: Session,
    settings: Settings,
    queue: JobQueue,
    request: PromptOptimizationRequest,
    tenant: str,
    idem: Idempotency | None = None,
) -> Job | DryRunOut:
    """Validate and record the job (enqueued after the caller's commit), or, with ``dry_run``, return
    its projected cost without recording anything. A retry with the same Idempotency-Key returns the
    first request's job. A size over its cap, or a projection (bounded by the budget) over the per-job
    caps, is a 422 naming the cap; a tenant at its quota of long jobs gets a 429."""
    replayed = admit_long_job(session, settings, tenant, idem, request.dry_run, _request_sizes(request))
    if replayed is not None:
        return replayed
    task = _check_models(session, request, settings, tenant)
    # Names, not ids, from here on: the worker loads models by name.
    request = request.model_copy(
        update={"task_model": task.name, "optimizer_model": _optimizer_name(session, request, tenant)}
    )
    request = _resolve_initial(session, request, tenant)
    loaded = load_splits(session, request, tenant)
    check_sizes(settings, _split_sizes(loaded))
    _check_prompt(request, loaded)
    projection = _projection(settings, request, loaded)
    if request.budget.max_calls is not None and request.budget.max_calls <= projection.final_eval_calls:
        raise InvalidInput(
            f"budget.max_calls must exceed the {projection.final_eval_calls} calls held back for the final "
            "evaluation (initial and best prompt on dev and test)",
            "budget.max_calls",
        )
    if request.dry_run:
        s = loaded.splits
        return DryRunOut(
            projection=projection, train_size=len(s.train), dev_size=len(s.dev), test_size=len(s.test)
        )
    check_cost(
        projection.caps,
        "set a smaller budget or lower rounds, beam_size, minibatch_size or the selector's sizes",
        {CALLS_CAP: "budget.max_calls", TOKENS_CAP: "budget.max_tokens"},
    )
    check_servable(queue.redis, task.route, "task_model")
    q = task.queue
    job = record_job(
        session,
        settings,
        request,
        kind=KIND,
        model=task.name,
        queue=q,
        params=request.model_dump(mode="json", exclude={"dry_run", *JobOptionsIn.OPTION_FIELDS}),
        total=request.hyperparameters.rounds,
        tenant=tenant,
    )
    idempotency.remember(session, tenant, idem, job.id)
    job_id = job.id
    after_commit(session, lambda: queue.enqueue(job_id, q))
    return job


def _candidate_out(row: Any) -> CandidateOut:
    return CandidateOut(
        key=row.key,
        round=row.round,
        text=row.text,
        parent=row.parent_key,
        origin=row.origin,
        gradient=row.gradient,
        rejected=row.rejected,
        minibatch_score=row.minibatch_score,
        pulls=row.pulls,
        examples=row.examples,
        estimate=row.estimate,
        dev_score=row.dev_score,
        in_beam=row.in_beam,
    )


def results(session: Session, job: Job) -> PromptOptimizationResults:
    """The best prompt, its evaluation next to the initial prompt's, and the whole search so far."""
    request = PromptOptimizationRequest.model_validate(job.params)
    run = po_repo.get_run(session, job.id)
    state = SearchState.from_json(run.state) if run is not None and run.state else SearchState()
    best = state.best
    best_template = None
    if best is not None and request.task_type == "judge-agreement":
        system, user = judge_template_parts(best.text)
        best_template = {"system": system, "user": user}
    usage = {"calls": run.calls, "tokens": run.tokens, "cache_hits": run.cache_hits} if run else {}
    return PromptOptimizationResults(
        job_id=job.id,
        status=job.status,
        stop_reason=state.stop_reason,
        metric=request.metric.name,
        initial_prompt=initial_prompt_text(request),
        best_prompt=best.text if best else None,
        best_key=best.key if best else None,
        best_template=best_template,
        evaluation=state.final,
        usage=usage,
        rounds=[
            RoundOut(
                round=r.round,
                beam=r.beam,
                best_key=r.best_key,
                best_dev_score=r.best_dev_score,
                details=r.details,
            )
            for r in po_repo.rounds(session, job.id)
        ],
        candidates=[_candidate_out(c) for c in po_repo.candidates(session, job.id)],
    )


def get_results(session: Session, job_id: uuid.UUID, tenant: str) -> PromptOptimizationResults:
    job = jobs_repo.get_job(session, job_id, tenant)
    if job is None or job.kind != KIND:
        raise NotFound(f"no prompt-optimization job {job_id}")
    return results(session, job)
