"""The client's operations as flows (see ``_protocol``): written once, driven by the sync and the async
client alike."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from judge_client._payloads import Item, judging_body, one_item
from judge_client._protocol import (
    CloseStream,
    Emit,
    Flow,
    HttpRequest,
    HttpResponse,
    NextEvent,
    OpenStream,
    Param,
    RetryPolicy,
    ServerEvent,
    Sleep,
    call,
)
from judge_client._sse import MEDIA_TYPE
from judge_client.errors import InvalidArgument, JobFailed, JudgeError, JudgeTimeout
from judge_client.summaries import Summary
from judge_client.types import ItemResult, ItemStatus, Job, JobKind, JobStatus, Kind, Template

# The service's default cap on `?wait=`; a longer wait goes on by polling.
SERVER_WAIT_CAP = 600.0
# A followed event stream that sends nothing (not even its keep-alive comment, every 15 s by default)
# for this long is given up for polling.
STREAM_QUIET_LIMIT = 60.0

JobRef = Job | str | uuid.UUID
OnUpdate = Callable[[Job], None]
M = TypeVar("M", bound=BaseModel)


def job_id(job: JobRef) -> str:
    """The id of a job given as a Job, its id string or a UUID."""
    if isinstance(job, Job):
        return job.id
    if isinstance(job, uuid.UUID):
        return str(job)
    if isinstance(job, str) and job.strip():
        return job.strip()
    raise InvalidArgument(f"not a job or job id: {job!r}")


def _job_path(job: JobRef, suffix: str = "") -> str:
    return f"/v1/jobs/{quote(job_id(job), safe='')}{suffix}"


def _json(response: HttpResponse) -> Any:
    try:
        return json.loads(response.body)
    except ValueError as exc:
        raise JudgeError(
            f"the service answered {response.status} with a body that is not JSON: "
            f"{response.body[:200].decode('utf-8', 'replace')!r}",
            status=response.status,
        ) from exc


def _parse(model: type[M], data: Any) -> M:
    """A response's body as ``model``; a JudgeError when the service sent something else."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise JudgeError(f"the service's answer is not a valid {model.__name__}: {exc}") from exc


def get_job(job: JobRef, policy: RetryPolicy) -> Flow[Job]:
    response = yield from call(HttpRequest("GET", _job_path(job)), policy)
    return _parse(Job, _json(response))


def cancel(job: JobRef, policy: RetryPolicy) -> Flow[Job]:
    response = yield from call(HttpRequest("POST", _job_path(job, "/cancel")), policy)
    return _parse(Job, _json(response))


def submit(
    kind: Kind, items: Iterable[Item], options: Mapping[str, Any], wait: float | None, policy: RetryPolicy
) -> Flow[Job]:
    """Create a judging job. One Idempotency-Key per call, repeated on its retries. ``wait``: seconds
    the service may hold the request for the job to end (then the job carries its results)."""
    body = judging_body(kind, items, options)
    server_wait = min(wait, SERVER_WAIT_CAP) if wait else 0.0
    request = HttpRequest(
        "POST",
        f"/v1/judgments/{kind}",
        params={"wait": server_wait} if server_wait else {},
        json=body,
        headers={"Idempotency-Key": str(uuid.uuid4())},
        extra_timeout=server_wait,
    )
    response = yield from call(request, policy)
    return _parse(Job, _json(response))


def wait_for(
    job: JobRef, timeout: float | None, poll: float, on_update: OnUpdate | None, policy: RetryPolicy
) -> Flow[Job]:
    """Wait until the job ends (any final status) and return it; JudgeTimeout after ``timeout``.

    Follows the job's event stream (``GET /v1/jobs/{id}/events``): ``on_update`` sees the job after
    each change. Where the stream is unavailable, or drops before the job's end, polls every ``poll``
    seconds instead (``on_update`` then sees every state polled)."""
    if poll <= 0:
        raise InvalidArgument("poll must be positive")
    deadline = None if timeout is None else time.monotonic() + timeout
    current = job if isinstance(job, Job) else None
    if current is None or not current.ended:
        followed = yield from _follow(job, current, deadline, on_update)
        if followed is not None:
            current = yield from get_job(job, policy)
            if on_update is not None:
                on_update(current)
            return current
        current = None
    while True:
        if current is None or not current.ended:
            current = yield from get_job(job, policy)
        if on_update is not None:
            on_update(current)
        if current.ended:
            return current
        remaining = _remaining(deadline)
        if remaining is not None and remaining <= 0:
            raise JudgeTimeout(
                f"job {current.id} still {current.status} ({current.progress.done}/"
                f"{current.progress.total}) after {timeout:g} s",
                current,
            )
        yield Sleep(poll if remaining is None else min(poll, remaining))
        current = None


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _follow(
    job: JobRef, current: Job | None, deadline: float | None, on_update: OnUpdate | None
) -> Flow[Job | None]:
    """Follow the job's event stream to its ``end`` event: the job as the events left it, or None
    when the stream could not be followed that far (unavailable, dropped, quiet past the deadline)."""
    remaining = _remaining(deadline)
    if remaining is not None and remaining <= 0:
        return None
    request = HttpRequest(
        "GET",
        _job_path(job, "/events"),
        headers={"Accept": MEDIA_TYPE},
        read_timeout=STREAM_QUIET_LIMIT if remaining is None else min(STREAM_QUIET_LIMIT, remaining),
    )
    opened = yield OpenStream(request)
    if not (isinstance(opened, HttpResponse) and opened.status == 200):
        return None  # no stream (a 204: the job ended meanwhile), or none here: the caller polls
    while True:
        event = yield NextEvent()
        if not isinstance(event, ServerEvent):
            break
        updated = apply_event(current, event)
        if updated is None or updated is current:
            continue
        current = updated
        if event.name == "end":
            yield CloseStream()
            return current
        if on_update is not None:
            on_update(current)
    yield CloseStream()
    return None


def apply_event(job: Job | None, event: ServerEvent) -> Job | None:
    """The job after one event of its stream (see the service's ``GET /v1/jobs/{id}/events``): ``state``
    is the whole job (but its params), ``status``, ``progress``, ``stage`` and ``end`` change some of
    its fields. ``job`` unchanged for an event that says nothing about it; None before any ``state``,
    or for an event whose data cannot be read."""
    try:
        data = json.loads(event.data)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if event.name == "state":
        params = job.params if job is not None else {}
        return _job_or_none({"params": params, **data})
    if job is None:
        return None
    changes: dict[str, Any]
    if event.name == "progress":
        changes = {"progress": {**job.progress.model_dump(), **data}}
    elif event.name in ("status", "stage", "end"):
        changes = {k: v for k, v in data.items() if k in Job.model_fields}
        if isinstance(changes.get("progress"), dict):
            changes["progress"] = {**job.progress.model_dump(), **changes["progress"]}
    else:
        return job
    return _job_or_none({**job.model_dump(), **changes})


def _job_or_none(data: dict[str, Any]) -> Job | None:
    try:
        return Job.model_validate(data)
    except ValidationError:
        return None


def judge_one(
    kind: Kind,
    item: Item,
    options: Mapping[str, Any],
    timeout: float | None,
    poll: float,
    policy: RetryPolicy,
) -> Flow[ItemResult]:
    """Judge one item and return its result: the service holds the request while it can, then the job
    is polled. JobFailed when the job fails or is cancelled, JudgeTimeout after ``timeout``."""
    started = time.monotonic()
    job = yield from submit(kind, [item], options, SERVER_WAIT_CAP if timeout is None else timeout, policy)
    if not job.ended:
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        job = yield from wait_for(job, remaining, poll, None, policy)
    if not job.succeeded:
        raise JobFailed(job)
    if job.results:
        return job.results[0]
    response = yield from call(HttpRequest("GET", _job_path(job, "/results"), params={"limit": 1}), policy)
    first = _result_items(job, _json(response))
    if not first:
        raise JudgeError(f"job {job.id} succeeded without results")
    return first[0]


def _result_items(job: JobRef, page: Any) -> list[ItemResult]:
    if not isinstance(page, dict) or not isinstance(page.get("results"), list):
        raise JudgeError(f"job {job_id(job)} has no item results (only judging jobs have)")
    return [_parse(ItemResult, raw) for raw in page["results"]]


def _job_items(page: Any) -> list[Job]:
    if not isinstance(page, dict) or not isinstance(page.get("jobs", []), list):
        raise JudgeError("the service's answer lists no jobs")
    return [_parse(Job, raw) for raw in page.get("jobs", [])]


def _paged(
    path: str, params: dict[str, Param], read: Callable[[Any], list[Any]], policy: RetryPolicy
) -> Flow[None]:
    """Emit what ``read`` finds on each page of a cursor-paginated listing, one request per page."""
    cursor: str | None = None
    while True:
        query = {**params, "cursor": cursor} if cursor else params
        response = yield from call(HttpRequest("GET", path, params=query), policy)
        page = _json(response)
        for value in read(page):
            yield Emit(value)
        cursor = page.get("next_cursor")
        if not cursor:
            return


def results(job: JobRef, page_size: int, policy: RetryPolicy, status: ItemStatus | None = None) -> Flow[None]:
    """Emit every item result of a judging job in item order (only those in ``status`` if given), one
    page at a time (a job that came back from a wait with its results needs no request)."""
    if isinstance(job, Job) and job.results is not None and len(job.results) == job.progress.total:
        for result in job.results:
            if status is None or result.status == status:
                yield Emit(result)
        return
    params: dict[str, Param] = {"limit": page_size}
    if status is not None:
        params["status"] = status
    yield from _paged(_job_path(job, "/results"), params, lambda p: _result_items(job, p), policy)


def list_jobs(
    status: JobStatus | None,
    kind: JobKind | None,
    model: str | None,
    metadata: Mapping[str, str] | None,
    page_size: int,
    policy: RetryPolicy,
) -> Flow[None]:
    """Emit the caller's jobs, newest first, one page at a time; ``metadata``: every label must match."""
    filters = {"status": status, "kind": kind, "model": model}
    params: dict[str, Param] = {k: v for k, v in filters.items() if v is not None}
    if metadata:
        params["metadata"] = [f"{k}:{v}" for k, v in metadata.items()]
    yield from _paged("/v1/jobs", {**params, "limit": page_size}, _job_items, policy)


def summary(
    job: JobRef | None,
    metadata: Mapping[str, str] | None,
    rounds: int | None,
    seed: int,
    baseline: str | None,
    policy: RetryPolicy,
) -> Flow[Summary]:
    """The summary of one judging job, or of the judging jobs carrying every ``metadata`` label."""
    if (job is None) == (not metadata):
        raise InvalidArgument("give a job or metadata labels, not both")
    params: dict[str, Param] = {"seed": seed}
    if rounds is not None:
        params["rounds"] = rounds
    if baseline is not None:
        params["baseline"] = baseline
    if job is not None:
        path = _job_path(job, "/summary")
    else:
        path = "/v1/summary"
        params["metadata"] = [f"{k}:{v}" for k, v in (metadata or {}).items()]
    response = yield from call(HttpRequest("GET", path, params=params), policy)
    return _parse(Summary, _json(response))


def templates(policy: RetryPolicy) -> Flow[list[Template]]:
    response = yield from call(HttpRequest("GET", "/v1/templates"), policy)
    page = _json(response)
    listed = page.get("templates") if isinstance(page, dict) else None
    if not isinstance(listed, list):
        raise JudgeError("the service's answer lists no templates", status=response.status)
    return [_parse(Template, t) for t in listed]


def create_template(fields: Mapping[str, Any], policy: RetryPolicy) -> Flow[Template]:
    """Register a template (a new version when the name exists); idempotent across retries."""
    request = HttpRequest(
        "POST", "/v1/templates", json=dict(fields), headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    response = yield from call(request, policy)
    return _parse(Template, _json(response))


def judge(
    kind: Kind,
    question: str | Sequence[str],
    answers: Sequence[str | Sequence[str]],
    reference: str | Sequence[str] | None,
    turn: int | None,
    id: str | None,
    wait: bool,
    timeout: float | None,
    poll: float,
    options: Mapping[str, Any],
    policy: RetryPolicy,
) -> Flow[ItemResult | Job]:
    """``pairwise``/``single`` of the clients: one item, its result (``wait``) or its job."""
    item = one_item(kind, question, answers, reference, turn, id)
    if not wait:
        return (yield from submit(kind, [item], options, None, policy))
    return (yield from judge_one(kind, item, options, timeout, poll, policy))
