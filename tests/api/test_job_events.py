"""`GET /v1/jobs/{id}/events`: the job's state, then its live events (status, progress, stage, end) as
Server-Sent Events; resuming with Last-Event-ID; tenant isolation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.config import Settings
from app.core.db import Database
from app.core.state import AppState
from app.jobs import repository as jobs_repo
from app.jobs.events import stream_key
from app.jobs.queue import JobQueue
from app.main import create_app
from app.models import repository as models_repo
from tests.api.helpers import PAIR, PAIRWISE, assert_error
from tests.api.serving import serving
from tests.conftest import TEST_REDIS_URL
from tests.jobs.sse_client import Event, EventReader, parse
from tests.workers.conftest import ScriptedEngine, first_position_judge, install_scripted_worker
from workers import context
from workers.tasks import run_job

Worker = Callable[[Callable[[Any], str]], ScriptedEngine]


def _create(client: TestClient | httpx.Client, n_items: int = 3) -> str:
    response = client.post(PAIRWISE, json={"items": [PAIR] * n_items})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _events(client: TestClient, job_id: str, last_event_id: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    response = client.get(f"/v1/jobs/{job_id}/events", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    return parse(response.text)


def _names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


# What a run of a 10-item pairwise job (two items per engine batch, results committed every 8
# items) announces, in order.
RUN_ITEMS = 10
RUN = [
    ("status", {"status": "running", "attempts": 1}),
    ("progress", {"done": 8, "total": 10, "failed": 0}),
    ("stage", {"stage": "judging"}),
    ("progress", {"done": 10, "total": 10, "failed": 0}),
]


def _run_events(events: list[Event]) -> list[tuple[str, Any]]:
    return [(e.name, e.data) for e in events if e.name != "end"]


def _assert_a_run(events: list[Event]) -> None:
    """The events of a 10-item run: running, progress at least every 8 items (more often when the
    worker has nothing else in flight, which depends on timing), the judging stage, all 10 done."""
    seen = _run_events(events)
    assert seen[0] == RUN[0]
    assert ("stage", {"stage": "judging"}) in seen
    done = [data["done"] for name, data in seen if name == "progress"]
    assert done == sorted(set(done)) and done[-1] == RUN_ITEMS
    assert all(b - a <= 8 for a, b in zip([0, *done], done, strict=False))
    assert all(data["failed"] == 0 for name, data in seen if name == "progress")


# An ended job (the whole response at once) ----------------------------------------------------------


def test_a_finished_jobs_stream_is_its_state_then_its_end(client: TestClient, worker: Worker) -> None:
    worker(first_position_judge)
    job_id = _create(client)
    run_job(job_id)
    state, end = _events(client, job_id)
    assert state.name == "state"
    assert (state.data["id"], state.data["status"], state.data["progress"]) == (
        job_id,
        "succeeded",
        {"done": 3, "total": 3, "failed": 0},
    )
    assert "params" not in state.data
    assert end.name == "end"
    assert end.data["status"] == "succeeded" and end.data["error"] is None
    assert end.data["progress"] == {"done": 3, "total": 3, "failed": 0} and end.data["finished_at"]
    assert state.id == end.id and state.id is not None


def test_resuming_replays_every_event_after_last_event_id(client: TestClient, worker: Worker) -> None:
    worker(first_position_judge)
    job_id = _create(client, RUN_ITEMS)
    run_job(job_id)
    # From before the first event: the whole run, in order, with increasing ids.
    everything = _events(client, job_id, "0-0")
    assert _run_events(everything) == RUN
    assert everything[-1].name == "end" and everything[-1].data["status"] == "succeeded"
    ids = [e.id for e in everything]
    assert all(ids) and ids == sorted(ids, key=lambda i: tuple(int(p) for p in str(i).split("-")))
    # From the middle: only what came after.
    after_first_progress = _events(client, job_id, everything[1].id)
    assert [(e.name, e.id) for e in after_first_progress] == [(e.name, e.id) for e in everything[2:]]


def test_resuming_after_the_end_answers_204_so_event_source_stops(client: TestClient, worker: Worker) -> None:
    worker(first_position_judge)
    job_id = _create(client)
    run_job(job_id)
    end = _events(client, job_id, "0-0")[-1]
    response = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(end.id)})
    assert response.status_code == 204 and response.content == b""


def test_resuming_behind_a_trimmed_stream_starts_from_the_jobs_state(
    client: TestClient, worker: Worker, redis: Redis
) -> None:
    worker(first_position_judge)
    job_id = _create(client)
    run_job(job_id)
    first = _events(client, job_id, "0-0")[0]
    redis.xtrim(stream_key(job_id), maxlen=1, approximate=False)  # the run's first events are gone
    events = _events(client, job_id, first.id)
    assert _names(events) == ["state", "end"]
    assert events[0].data["status"] == "succeeded"


def test_resuming_after_the_stream_expired_starts_from_the_jobs_state(
    client: TestClient, worker: Worker, redis: Redis
) -> None:
    worker(first_position_judge)
    job_id = _create(client)
    run_job(job_id)
    some_id = _events(client, job_id, "0-0")[1].id
    redis.delete(stream_key(job_id))
    events = _events(client, job_id, some_id)
    assert _names(events) == ["state", "end"]
    assert events[1].data["status"] == "succeeded"


def test_a_job_cancelled_while_queued_ends_its_stream(client: TestClient) -> None:
    job_id = _create(client)
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    [end] = _events(client, job_id, "0-0")
    assert (end.name, end.data["status"]) == ("end", "cancelled")


def test_another_tenants_job_is_404(client: TestClient, state: AppState, worker: Worker) -> None:
    worker(first_position_judge)
    job_id = _create(client)
    run_job(job_id)
    with state.db.unit_of_work() as session:
        _, other = create_key(session, "other-tenant", list(SCOPES), "other")
    for headers in ({}, {"Last-Event-ID": "0-0"}):
        response = client.get(
            f"/v1/jobs/{job_id}/events", headers={"Authorization": f"Bearer {other}", **headers}
        )
        assert_error(response, 404, "not_found", None)


def test_an_unknown_job_is_404(client: TestClient) -> None:
    assert_error(client.get(f"/v1/jobs/{uuid.uuid4()}/events"), 404, "not_found", None)


def test_the_openapi_document_describes_each_event(client: TestClient, worker: Worker) -> None:
    # (found by the schemathesis fuzz: a `schema` of type string read as every event's schema)
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    [declared] = paths["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"].values()
    assert set(declared) == {"itemSchema"}
    event_schema = declared["itemSchema"]["properties"]
    worker(first_position_judge)
    job_id = _create(client)
    run_job(job_id)
    events = _events(client, job_id, "0-0")
    assert {e.name for e in events} == {"status", "progress", "stage", "end"}
    assert {e.name for e in events} <= set(event_schema["event"]["enum"])


@pytest.mark.parametrize("bad", ["17", "abc", "1-2-3", "-1-0"])
def test_a_malformed_last_event_id_is_422(client: TestClient, bad: str) -> None:
    job_id = _create(client)
    response = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": bad})
    assert_error(response, 422, "validation_error", "Last-Event-ID")


# A live stream (a real server in a thread, a worker in the test) ---------------------------------------


@dataclass
class Live:
    url: str
    token: str
    state: AppState

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=httpx.Timeout(15.0)
        )


@pytest.fixture
def live(
    committing_url: str,
    settings: Settings,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Live]:
    """The app served by uvicorn on a free port, on a database whose commits every connection sees.
    Indirect parameters: ``keepalive`` (seconds, 0.3 unless given) and the async Redis client's
    ``socket_timeout`` (redis-py's default unless given)."""
    options: dict[str, float] = getattr(request, "param", {})
    settings = settings.model_copy(
        update={
            "database_url": committing_url,
            "events_keepalive_seconds": options.get("keepalive", 0.3),
            "batch_size": 4,
        }
    )
    db = Database(committing_url)
    with db.unit_of_work() as session:
        models_repo.upsert(session, settings.default_model, "transformers", None)
        _, token = create_key(session, f"live-{uuid.uuid4().hex[:8]}", list(SCOPES), "live tests")
    state = AppState(
        settings=settings,
        db=db,
        redis=redis,
        async_redis=AsyncRedis.from_url(
            TEST_REDIS_URL,
            **({"socket_timeout": options["socket_timeout"]} if "socket_timeout" in options else {}),
        ),
        queue=JobQueue.from_settings(redis, settings),
    )
    monkeypatch.setattr(context, "_current", None)
    install_scripted_worker(
        settings.model_copy(update={"job_lease_seconds": 600.0}),
        db,
        state.queue,
        first_position_judge,
        "live",
    )
    try:
        with serving(create_app(state=state)) as served:
            yield Live(served.url, token, state)
    finally:
        db.dispose()


def test_a_live_stream_receives_status_progress_and_end_as_the_worker_runs(live: Live) -> None:
    with live.client() as client:
        job_id = _create(client, RUN_ITEMS)
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            reader = EventReader(response.iter_lines())
            state = reader.next()
            assert state is not None and state.name == "state"
            assert (state.data["status"], state.data["progress"]) == (
                "queued",
                {"done": 0, "total": RUN_ITEMS, "failed": 0},
            )
            assert reader.retry == 3000
            # The job runs only now, while the client listens.
            run_job(job_id)
            rest = reader.rest()  # returns once the server closes the stream after `end`
        _assert_a_run(rest)
        assert rest[-1].name == "end" and rest[-1].data["status"] == "succeeded"
        # Reconnecting from the state event's id replays exactly what followed it.
        with client.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(state.id)}
        ) as again:
            assert [(e.name, e.id) for e in EventReader(again.iter_lines()).rest()] == [
                (e.name, e.id) for e in rest
            ]


def test_an_idle_stream_keeps_alive_and_still_ends_when_the_end_was_never_announced(live: Live) -> None:
    with live.client() as client:
        job_id = _create(client)
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            reader = EventReader(response.iter_lines())
            assert reader.next() is not None  # the state
            # The job ends in the database without any event (as if Redis lost the announcement).
            with live.state.db.unit_of_work() as session:
                assert jobs_repo.finish(session, uuid.UUID(job_id), "failed", "lost in transit")
            started = time.monotonic()
            rest = reader.rest()
        assert "keep-alive" in reader.comments
        assert time.monotonic() - started < 5
        assert _names(rest) == ["state", "end"]
        assert rest[-1].data == {**rest[-1].data, "status": "failed", "error": "lost in transit"}


# Keep-alives further apart than the Redis client's socket timeout: a read blocking for a whole
# interval would outlive the timeout. "given": a timeout of the client's own (redis-py's 5 s against a
# 15 s interval, scaled down; Redis itself ends a block up to 0.1 s late, so the timeout is not scaled
# below 0.5 s). "default": the service's own client, made without one, so redis-py's default (5 s)
# applies, which its pool's settings do not name; keep-alives 6 s apart.
@pytest.mark.parametrize(
    ("live", "keepalives"),
    [({"keepalive": 0.75, "socket_timeout": 0.5}, 3), ({"keepalive": 6.0}, 1)],
    indirect=["live"],
    ids=["given", "default"],
)
def test_a_quiet_stream_stays_open_past_the_redis_socket_timeout(live: Live, keepalives: int) -> None:
    interval = live.state.settings.events_keepalive_seconds
    with live.client() as client:
        job_id = _create(client)
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            lines = response.iter_lines()
            reader = EventReader(lines)
            assert reader.next() is not None  # the state
            started, seen = time.monotonic(), 0
            while seen < keepalives:
                seen += next(lines) == ": keep-alive"  # the stream must not end meanwhile
            # Whole intervals passed with nothing happening, and the stream still delivers the end.
            assert time.monotonic() - started >= keepalives * interval - 0.1
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
            rest = reader.rest()
        assert [(e.name, e.data["status"]) for e in rest] == [("end", "cancelled")]


def test_a_live_stream_ends_when_the_job_is_cancelled(live: Live) -> None:
    with live.client() as client:
        job_id = _create(client)
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            reader = EventReader(response.iter_lines())
            assert reader.next() is not None
            assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
            rest = reader.rest()
        assert [(e.name, e.data["status"]) for e in rest] == [("end", "cancelled")]
