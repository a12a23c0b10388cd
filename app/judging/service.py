"""Judging behaviour behind the HTTP routes: validate a request against the registry, record the job
and its items, and hand the job to the model's queue once the transaction commits."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.config import Settings
from app.core.db import after_commit
from app.core.errors import Conflict, InvalidInput
from app.core.idempotency import Idempotency
from app.core.state import AppState
from app.db.tables import Job, Template
from app.jobs import repository as jobs_repo
from app.jobs import service as jobs_service
from app.jobs.capacity import check_capacity
from app.jobs.creation import record_job
from app.jobs.drain import ends_on_shutdown
from app.jobs.queue import JobQueue
from app.jobs.schemas import ItemResult, JobOut
from app.judging import repository as judging_repo
from app.judging.cached_jobs import find_answer, record_answer
from app.judging.context_limits import PromptBudget, item_problem
from app.judging.domain import JudgeItem, JudgeOptions, Mode, Rubric, Scale, TemplateSpec
from app.judging.execution import engine_labels
from app.judging.jury_service import submit_jury
from app.judging.lookups import RecentLookups
from app.judging.params import JudgingParams, ScaleParams
from app.judging.parsers import resolve_parser
from app.judging.probabilities import verdict_labels
from app.judging.schemas import PairwiseRequest, RubricIn, ScaleIn, SingleRequest, TemplateIn
from app.judging.template_catalog import resolve_template
from app.judging.templates import (
    TemplateError,
    builtin_templates,
    check_template_fits,
    default_template_name,
    rubric_template_name,
    template_placeholders,
    validate_template,
)
from app.judging.verdict_cache import model_identity, resolve_policy
from app.models import service as models_service
from app.models.availability import check_servable
from app.models.context import ContextWindows
from app.models.service import Route

DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class Submitted:
    """A recorded judging job; ``results``: all of them when the verdict cache answered it whole."""

    job: Job
    results: list[ItemResult] | None = None


DEFAULT_MAX_TOKENS_COT = 1024

# Context windows for submissions made without an API process's lookups.
_CONTEXT_WINDOWS = ContextWindows()


def _item_inputs(item: JudgeItem, client_id: str | None, template: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": client_id,
        "turns": list(item.turns),
        "answers_a": list(item.answers_a),
        "answers_b": list(item.answers_b) if item.answers_b is not None else None,
        "references": list(item.references) if item.references is not None else None,
        "turn": item.judged_turn,
        "template": template,
    }
    if item.rubric is not None:  # (only then: items without one are stored as before)
        data["rubric"] = {
            "criteria": item.rubric.criteria,
            "descriptions": {str(score): text for score, text in item.rubric.descriptions},
        }
    return data


def item_from_inputs(inputs: dict[str, Any]) -> JudgeItem:
    return JudgeItem(
        turns=tuple(inputs["turns"]),
        answers_a=tuple(inputs["answers_a"]),
        answers_b=tuple(inputs["answers_b"]) if inputs.get("answers_b") is not None else None,
        references=tuple(inputs["references"]) if inputs.get("references") is not None else None,
        turn=int(inputs["turn"]),
        rubric=_stored_rubric(inputs.get("rubric")),
    )


def _stored_rubric(stored: dict[str, Any] | None) -> Rubric | None:
    if stored is None:
        return None
    scored = sorted((int(score), text) for score, text in stored["descriptions"].items())
    return Rubric(criteria=stored["criteria"], descriptions=tuple(scored))


def _rubric_problem(rubric: RubricIn, scale: ScaleIn) -> str | None:
    """Why an item's rubric does not fit the request's scale: it needs one description per whole score."""
    if not (float(scale.min).is_integer() and float(scale.max).is_integer()) or scale.max - scale.min > 9:
        return (
            "a rubric describes each whole score, so the scale must run between whole numbers with at most "
            f"10 scores (the request's is {scale.min:g} to {scale.max:g}); e.g. scale {{min: 1, max: 5}}"
        )
    wanted = [str(n) for n in range(int(scale.min), int(scale.max) + 1)]
    missing = [score for score in wanted if score not in rubric.descriptions]
    extra = sorted(set(rubric.descriptions) - set(wanted))
    if not missing and not extra:
        return None
    told = [
        f"missing {', '.join(missing)}" if missing else "",
        f"not on the scale: {', '.join(extra)}" if extra else "",
    ]
    return (
        "the rubric's descriptions must be keyed by each score of the scale "
        f"{int(scale.min)} to {int(scale.max)} ({', '.join(wanted)}): {'; '.join(t for t in told if t)}"
    )


def _rubric_template(item: JudgeItem, has_reference: bool, cot: bool, index: int) -> str:
    """The built-in rubric template for an item with a rubric (422 for what none of them grades)."""
    if item.multi_turn:
        raise InvalidInput(
            "the built-in rubric templates grade single-turn items; name a multi-turn template that shows "
            "{rubric} with `template`",
            f"items[{index}].rubric",
        )
    if cot:
        raise InvalidInput(
            "the built-in rubric templates give the score only; use cot false, or name a chain-of-thought "
            "template that shows {rubric} with `template`",
            "cot",
        )
    return rubric_template_name(has_reference)


def _check_logprobs(request: PairwiseRequest | SingleRequest) -> None:
    """``verdict_mode: logprobs`` reads the verdict label as the judge's very next text."""
    if request.cot:
        raise InvalidInput(
            "verdict_mode 'logprobs' reads the verdict as the judge's first words, so it cannot be used "
            "with cot (the judge would reason first); use verdict_mode 'generate' or cot false",
            "verdict_mode",
        )
    if isinstance(request, SingleRequest):
        try:
            verdict_labels("single", Scale(min=request.scale.min, max=request.scale.max))
        except ValueError as exc:
            raise InvalidInput(str(exc), "scale") from exc


def _check_samples(request: PairwiseRequest | SingleRequest, settings: Settings) -> None:
    """``samples`` above 1 needs outputs that can differ: sampled decoding of generated verdicts."""
    if request.samples == 1:
        return
    if request.samples > settings.max_samples:
        raise InvalidInput(f"samples must be at most {settings.max_samples}", "samples")
    if request.temperature == 0:
        raise InvalidInput(
            "samples > 1 needs sampled decoding: with temperature 0 (greedy) every sample would be the "
            "same output; set a temperature above 0",
            "samples",
        )
    if request.verdict_mode == "logprobs":
        raise InvalidInput(
            "samples > 1 cannot be used with verdict_mode 'logprobs': it reads the judge's whole verdict "
            "distribution exactly in one forward pass, so every sample would repeat it; use samples 1, or "
            "verdict_mode 'generate' to sample verdicts",
            "samples",
        )


def _no_prefix_problem(spec: TemplateSpec) -> str:
    return (
        f"template '{spec.name}' has no response_prefix: verdict_mode 'logprobs' reads the verdict label "
        "as the judge's next text after the prefix (e.g. 'Verdict: [['), so the template must open the "
        "judge's reply with one"
    )


def _prompt_budget(
    served: Route,
    request: PairwiseRequest | SingleRequest,
    mode: Mode,
    max_tokens: int,
    windows: ContextWindows,
) -> PromptBudget | None:
    """What the items' prompts are measured against; None when the model is not run from a folder on
    this machine (a remote server's, or a worker's elsewhere): the worker then fails an item that does
    not fit, alone."""
    folder = served.local_artifact
    window = windows.get(folder) if folder is not None else None
    if window is None:
        return None
    if request.verdict_mode == "logprobs":
        labels = engine_labels(verdict_labels(mode, _scale(request)))
        return PromptBudget.scoring(window, max_tokens, labels)
    return PromptBudget.generating(window, max_tokens)


def _scale(request: PairwiseRequest | SingleRequest) -> Scale:
    if isinstance(request, SingleRequest):
        return Scale(min=request.scale.min, max=request.scale.max)
    return Scale()


def submit(
    session: Session,
    settings: Settings,
    queue: JobQueue,
    mode: Mode,
    request: PairwiseRequest | SingleRequest,
    tenant: str = "default",
    idem: Idempotency | None = None,
    job_id: uuid.UUID | None = None,
    recent: RecentLookups | None = None,
    interactive: bool = False,
) -> Submitted:
    """Record a judging job and its items (under ``job_id`` if given); the job is enqueued after the
    caller's commit, unless the verdict cache answers every item (then it has ended, with its results).
    A retry with the same Idempotency-Key returns the first request's job. ``recent`` spares the lookups
    a stream of submissions would repeat (the API process's). ``interactive``: a client waits for the
    job (``?wait=``), so workers schedule its calls before batch work. A request with ``judges`` records
    a jury (:mod:`app.judging.jury_service`)."""
    if request.judges is not None:
        return submit_jury(
            session, settings, queue, mode, request, tenant, idem, job_id, recent, interactive, _submit_one
        )
    if request.aggregate is not None:
        raise InvalidInput("`aggregate` combines a jury's verdicts: it needs `judges`", "aggregate")
    return _submit_one(session, settings, queue, mode, request, tenant, idem, job_id, recent, interactive)


def _submit_one(
    session: Session,
    settings: Settings,
    queue: JobQueue,
    mode: Mode,
    request: PairwiseRequest | SingleRequest,
    tenant: str = "default",
    idem: Idempotency | None = None,
    job_id: uuid.UUID | None = None,
    recent: RecentLookups | None = None,
    interactive: bool = False,
    parent_id: uuid.UUID | None = None,
) -> Submitted:
    """:func:`submit` for one judge model (``parent_id``: as a member of that jury job)."""
    replayed = idempotency.replay_resource(
        session, tenant, idem, lambda id_: jobs_repo.get_job(session, id_, tenant), "job"
    )
    if replayed is not None:
        return Submitted(replayed)
    if len(request.items) > settings.max_items:
        raise InvalidInput(
            f"too many items: {len(request.items)} given, at most {settings.max_items} per request", "items"
        )
    max_tokens = request.max_tokens or (DEFAULT_MAX_TOKENS_COT if request.cot else DEFAULT_MAX_TOKENS)
    if max_tokens > settings.max_new_tokens_limit:
        raise InvalidInput(f"max_tokens must be at most {settings.max_new_tokens_limit}", "max_tokens")
    _check_samples(request, settings)
    logprobs = request.verdict_mode == "logprobs"
    if logprobs:
        _check_logprobs(request)

    for i, item_in in enumerate(request.items):
        size = len(item_in.model_dump_json())
        if size > settings.max_prompt_chars:
            raise InvalidInput(
                f"item is {size} characters long; at most {settings.max_prompt_chars} per item", f"items[{i}]"
            )
    check_capacity(session, settings, tenant, recent.active_jobs if recent is not None else None)
    look_up = recent.model_routes.route if recent is not None else models_service.route
    served = look_up(session, request.model or settings.default_model, "model", tenant)
    check_servable(queue.redis, served, "model")
    model = served.name
    windows = recent.context_windows if recent is not None else _CONTEXT_WINDOWS
    budget = _prompt_budget(served, request, mode, max_tokens, windows)
    swap = request.swap if isinstance(request, PairwiseRequest) else "none"
    # A recorded seed makes `swap: random` and sampling reproducible.
    seed = request.seed if request.seed is not None else random.SystemRandom().randrange(2**31)
    options = JudgeOptions(mode=mode, swap=swap, cot=request.cot, scale=_scale(request), seed=seed)

    auto_reference = request.reference is not None
    requested = resolve_template(session, request.template, tenant) if request.template else None
    if request.template and requested is None:
        raise InvalidInput(f"unknown template '{request.template}'", "template")
    if logprobs and requested is not None and not requested.response_prefix:
        raise InvalidInput(_no_prefix_problem(requested), "template")

    templates: dict[str, TemplateSpec] = {}
    inputs: list[dict[str, Any]] = []
    items: list[JudgeItem] = []
    for i, item_in in enumerate(request.items):
        item = item_in.to_domain()
        items.append(item)
        has_reference = item.references is not None or auto_reference
        rubric = getattr(item_in, "rubric", None)
        if isinstance(request, SingleRequest) and rubric is not None:
            bad_rubric = _rubric_problem(rubric, request.scale)
            if bad_rubric:
                raise InvalidInput(bad_rubric, f"items[{i}].rubric")
        if requested is not None:
            problem = check_template_fits(requested, item, mode, has_reference, request.cot)
            if problem:
                raise InvalidInput(
                    f"template '{requested.name}' cannot judge this item: {problem}", f"items[{i}]"
                )
            spec = requested
        elif item.rubric is not None:
            spec = builtin_templates()[_rubric_template(item, has_reference, request.cot, i)]
        else:
            spec = builtin_templates()[
                default_template_name(mode, item.multi_turn, has_reference, request.cot)
            ]
        if logprobs and not spec.response_prefix:
            raise InvalidInput(_no_prefix_problem(spec), "template")
        if budget is not None:
            writes_reference = auto_reference and item.references is None
            too_long = item_problem(budget, item, spec, options, i, writes_reference)
            if too_long:
                raise InvalidInput(too_long, f"items[{i}]")
        templates[spec.name] = spec
        inputs.append(_item_inputs(item, item_in.id, spec.name))

    try:
        parser = resolve_parser(request.parser, templates.values())
    except ValueError as exc:
        raise InvalidInput(f"{exc}; name one with `parser`", "parser") from None
    params = JudgingParams(
        mode=mode,
        swap=swap,
        cot=request.cot,
        temperature=request.temperature,
        max_tokens=max_tokens,
        seed=seed,
        reference_auto=auto_reference,
        template=request.template,
        templates=templates,
        scale=ScaleParams(min=request.scale.min, max=request.scale.max)
        if isinstance(request, SingleRequest)
        else None,
        verdict_mode=request.verdict_mode,
        parser=parser,
        priority="interactive" if interactive else "batch",
        samples=request.samples,
        cache=resolve_policy(request.cache, request.temperature),
        model_key=model_identity(served.id, served.name, served.backend, served.artifact_path),
    )

    answer = find_answer(session, settings, params, inputs, items, tenant)
    q = served.queue
    job = record_job(
        session,
        settings,
        request,
        kind=f"judge_{mode}",
        model=model,
        queue=q,
        params=params.stored(),
        total=len(inputs),
        tenant=tenant,
        job_id=job_id,
        parent_id=parent_id,
    )
    idempotency.remember(session, tenant, idem, job.id)
    if answer is not None:  # ended: nothing for a worker to do
        return Submitted(job, record_answer(session, queue, job, inputs, answer))
    judging_repo.add_items(session, job.id, inputs)
    recorded_id = job.id
    after_commit(session, lambda: queue.enqueue(recorded_id, q))
    return Submitted(job)


# How often a registration renumbers its version after concurrent ones took it, before it gives up (409).
_VERSION_ATTEMPTS = 50


def register_template(session: Session, body: TemplateIn, owner: str | None = None) -> Template:
    """Validate and store a client template; re-registering a name adds a new version (concurrent
    registrations get one version each). Conflict (409) for a built-in's name."""
    if body.name in builtin_templates():
        raise Conflict(f"'{body.name}' is a built-in template; choose another name", "name")
    spec = TemplateSpec(
        name=body.name,
        mode=body.mode,
        system=body.system,
        user=body.user,
        multi_turn=body.multi_turn,
        reference=body.reference,
        cot=body.cot,
        description=body.description,
        response_prefix=body.response_prefix,
        parser=body.parser,
    )
    try:
        validate_template(spec)
    except TemplateError as exc:
        raise InvalidInput(str(exc), exc.field) from exc
    # Concurrent registrations of one name may number the same version: the losers renumber.
    for _ in range(_VERSION_ATTEMPTS):
        latest = judging_repo.own_latest_template(session, body.name, owner)
        row = Template(
            name=body.name,
            version=(latest.version + 1) if latest is not None else 1,
            mode=body.mode,
            multi_turn=body.multi_turn,
            reference=body.reference,
            cot=body.cot,
            system=body.system,
            user=body.user,
            response_prefix=body.response_prefix,
            placeholders=sorted(template_placeholders(spec)),
            description=body.description,
            owner=owner,
            parser=body.parser,
        )
        if judging_repo.add_template(session, row):
            return row
    raise Conflict(
        f"template '{body.name}' is being registered by too many requests at once; retry",
        "name",
    )


async def submit_and_wait(
    state: AppState,
    mode: Mode,
    request: PairwiseRequest | SingleRequest,
    wait: float | None,
    tenant: str,
    idem: Idempotency | None = None,
) -> tuple[bool, JobOut]:
    """Record and enqueue the job; with ``wait``, hold until it ends or the wait runs out.

    Returns (ended, job); with ``wait``, an ended job carries all its results.
    """

    def record(job_id: uuid.UUID | None = None) -> tuple[uuid.UUID, bool, JobOut]:
        with state.db.unit_of_work() as session:
            submitted = submit(
                session,
                state.settings,
                state.queue,
                mode,
                request,
                tenant,
                idem,
                job_id,
                state.lookups,
                interactive=bool(wait),
            )
            job, results = submitted.job, submitted.results
            ended = job.status in jobs_service.TERMINAL
            if ended and wait and results is None:  # (a retry's job, which has ended since)
                results = jobs_service.all_results(session, job)
            return job.id, ended, jobs_service.job_out(job, results)

    if not wait:
        _, ended, job = await asyncio.to_thread(record)
        return ended, job

    def read(session: Session) -> tuple[bool, JobOut]:
        job = jobs_service.get_job(session, job_id, tenant)
        ended = job.status in jobs_service.TERMINAL
        return ended, jobs_service.job_out(job, jobs_service.all_results(session, job) if ended else None)

    def read_if_ended(session: Session) -> JobOut | None:
        ended, job = read(session)
        return job if ended else None

    def from_announcement(message: bytes) -> JobOut | None:
        """The ended job with its results, when the worker's announcement carries it."""
        if not message.startswith(b"{"):
            return None  # just the status
        job = JobOut.model_validate_json(message)
        ended = job.id == job_id and job.status in jobs_service.TERMINAL and job.results is not None
        return job if ended else None

    timeout = min(wait, state.settings.max_wait_seconds)
    # The new job's id is chosen here, so its end is listened for before the job exists: no end can
    # come before the watch, and nothing needs reading until the end is announced.
    new_id = uuid.uuid4()
    recorded: JobOut | None = None
    done: JobOut | None = None
    with ends_on_shutdown() as waited:
        async with state.job_ends.watch(new_id) as watch:
            job_id, ended, job = await asyncio.to_thread(record, new_id)
            if ended:
                return ended, job
            recorded = job
            if job_id == new_id:
                done = await jobs_service.wait_until_ended(
                    state.db,
                    watch,
                    timeout,
                    read_if_ended,
                    look_first=False,
                    from_announcement=from_announcement,
                )
        if job_id != new_id:
            # An Idempotency-Key retry: the first request's job, which may have ended already.
            async with state.job_ends.watch(job_id) as watch:
                done = await jobs_service.wait_until_ended(
                    state.db, watch, timeout, read_if_ended, from_announcement=from_announcement
                )
    if waited.cut_short:
        if recorded is None:
            raise asyncio.CancelledError  # cut short before the job was recorded: nothing to answer with
        return False, recorded  # the server is stopping: the job, to poll
    if done is not None:
        return True, done

    def read_now() -> tuple[bool, JobOut]:
        with state.db.reading() as session:
            return read(session)

    return await asyncio.to_thread(read_now)
