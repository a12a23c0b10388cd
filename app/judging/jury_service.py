"""Recording a jury: the jury job the caller sees (one id, one progress, one cancel) and one member job
per judge, an ordinary judging job on that judge model's queue (its own scheduler, batching and verdict
cache), recorded in the same transaction. The jury never goes to a queue itself: it is running from the
start and ends when its last member does (:mod:`app.judging.jury_members`)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.config import Settings
from app.core.errors import ApiError, InvalidInput
from app.core.idempotency import Idempotency
from app.db.base import utcnow
from app.db.tables import Job
from app.jobs import repository as jobs_repo
from app.jobs.creation import record_job
from app.jobs.queue import JobQueue
from app.judging import repository as judging_repo
from app.judging.domain import Mode
from app.judging.jury import AGGREGATES, DEFAULT_AGGREGATE, Aggregate
from app.judging.jury_members import members_moved, with_judges
from app.judging.lookups import RecentLookups
from app.judging.params import JudgingParams, JurorParams, JuryParams
from app.judging.schemas import JurorIn, PairwiseRequest, SingleRequest

if TYPE_CHECKING:
    from app.judging.service import Submitted

# What the caller sees as the jury's model (its judges follow, as far as the column holds).
_JURY_MODEL = "jury: "
_MODEL_CHARS = 200


class SubmitOne(Protocol):
    def __call__(
        self,
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
    ) -> Submitted: ...


def _jurors(mode: Mode, request: PairwiseRequest | SingleRequest) -> tuple[list[JurorParams], Aggregate]:
    """The request's judges and aggregate, checked (422 naming the field at fault)."""
    if request.model is not None:
        raise InvalidInput("give either `model` (one judge) or `judges` (a jury), not both", "model")
    aggregate = request.aggregate or DEFAULT_AGGREGATE[mode]
    if aggregate not in AGGREGATES[mode]:
        allowed = " or ".join(f"'{a}'" for a in AGGREGATES[mode])
        raise InvalidInput(
            f"aggregate '{aggregate}' cannot combine {mode} judgments; use {allowed}", "aggregate"
        )
    jurors: list[JurorParams] = []
    seen: set[str] = set()
    for i, judge in enumerate(request.judges or []):
        spec = judge if isinstance(judge, JurorIn) else JurorIn(model=judge)
        if spec.model in seen:
            raise InvalidInput(
                f"judge '{spec.model}' is named twice; a jury's judges are distinct models",
                f"judges[{i}].model",
            )
        seen.add(spec.model)
        if "weight" in spec.model_fields_set and aggregate != "weighted":
            raise InvalidInput(
                "a judge's `weight` counts only with `aggregate: weighted`", f"judges[{i}].weight"
            )
        jurors.append(JurorParams(model=spec.model, weight=spec.weight, template=spec.template))
    return jurors, aggregate


def _member_request(
    request: PairwiseRequest | SingleRequest, juror: JurorParams
) -> PairwiseRequest | SingleRequest:
    """What one judge is asked: the jury's request with its model (and template), no jury options, and
    no metadata or callback (those belong to the jury job)."""
    return request.model_copy(
        update={
            "model": juror.model,
            "template": juror.template or request.template,
            "judges": None,
            "aggregate": None,
            "metadata": None,
            "callback_url": None,
        }
    )


def _naming_the_judge(error: ApiError, index: int, juror: JurorParams) -> ApiError:
    """A member's refusal, its field pointing at the judge it concerns."""
    if error.field == "model" or (error.field == "template" and juror.template is not None):
        error.field = f"judges[{index}].{error.field}"
    if error.field is not None and error.field.startswith("judges["):
        error.message = f"judge '{juror.model}': {error.message}"
    return error


def submit_jury(
    session: Session,
    settings: Settings,
    queue: JobQueue,
    mode: Mode,
    request: PairwiseRequest | SingleRequest,
    tenant: str,
    idem: Idempotency | None,
    job_id: uuid.UUID | None,
    recent: RecentLookups | None,
    interactive: bool,
    submit_one: SubmitOne,
) -> Submitted:
    """Record the jury job and its members (each checked as a one-judge request would be); the members
    are enqueued after the caller's commit. When the verdict cache answers every judge, the jury has
    ended, with its results."""
    from app.judging.service import Submitted

    jurors, aggregate = _jurors(mode, request)
    replayed = idempotency.replay_resource(
        session, tenant, idem, lambda id_: jobs_repo.get_job(session, id_, tenant), "job"
    )
    if replayed is not None:
        return Submitted(replayed)
    jury = record_job(
        session,
        settings,
        request,
        kind=f"judge_{mode}",
        model=_JURY_MODEL,
        queue="",
        params={},
        total=len(request.items),
        tenant=tenant,
        job_id=job_id,
    )
    members: list[Job] = []
    for i, juror in enumerate(jurors):
        try:
            member = submit_one(
                session,
                settings,
                queue,
                mode,
                _member_request(request, juror),
                tenant,
                recent=recent,
                interactive=interactive,
                parent_id=jury.id,
            ).job
        except ApiError as exc:
            raise _naming_the_judge(exc, i, juror) from None
        if any(m.model == member.model for m in members):
            raise InvalidInput(
                f"judge '{juror.model}' is model '{member.model}', already on the jury", f"judges[{i}].model"
            )
        members.append(member)
        jurors[i] = juror.model_copy(update={"model": member.model})
    first = JudgingParams.model_validate(members[0].params)
    templates = dict(first.templates)
    for member in members[1:]:
        templates.update(JudgingParams.model_validate(member.params).templates)
    params = first.model_copy(
        update={
            "template": request.template,
            "templates": templates,
            "model_key": None,
            "jury": JuryParams(judges=tuple(jurors), aggregate=aggregate),
        }
    )
    jury.params = params.stored()
    jury.model = (_JURY_MODEL + ", ".join(j.model for j in jurors))[:_MODEL_CHARS]
    jury.queue = members[0].queue
    # Never delivered: it runs while its members do, and ends with the last of them.
    jury.status = "running"
    jury.started_at = utcnow()
    first_items = judging_repo.results_page(session, members[0].id, -1, len(request.items) + 1)
    judging_repo.add_items(session, jury.id, [row.inputs for row in first_items])
    idempotency.remember(session, tenant, idem, jury.id)
    members_moved(session, queue, jury)  # (every member answered from the verdict cache: it ends now)
    if jury.status in jobs_repo.TERMINAL:
        rows = judging_repo.results_page(session, jury.id, -1, len(request.items) + 1)
        return Submitted(jury, with_judges(session, jury, rows))
    return Submitted(jury)
