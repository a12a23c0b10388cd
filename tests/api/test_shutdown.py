"""The API shutting down under open requests: a `?wait=` request that outlasts the drain still answers
with the job it recorded."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
from redis import Redis
from rq import Queue

from app.core.state import AppState
from app.jobs import service as jobs_service
from app.jobs.queue import queue_name
from app.main import create_app
from tests.api.helpers import PAIR, PAIRWISE
from tests.api.serving import serving


def test_a_wait_cut_by_the_shutdown_drain_answers_202_with_the_job(
    state: AppState, api_key: str, redis: Redis
) -> None:
    answers: list[httpx.Response] = []
    with serving(create_app(state=state), drain_seconds=1) as served:

        def submit() -> None:
            headers = {"Authorization": f"Bearer {api_key}"}
            with httpx.Client(base_url=served.url, headers=headers, timeout=30) as client:
                answers.append(client.post(f"{PAIRWISE}?wait=60", json={"items": [PAIR]}))

        waiting = threading.Thread(target=submit)
        waiting.start()
        # No worker runs: once the job is enqueued, the request waits for an end that will not come.
        deliveries = Queue(queue_name(state.settings.default_model), connection=redis)
        deadline = time.monotonic() + 10
        while deliveries.count == 0:
            assert time.monotonic() < deadline, "the job was never enqueued"
            time.sleep(0.02)
        time.sleep(0.2)
        served.server.should_exit = True  # what SIGTERM does
        stopping = time.monotonic()
        waiting.join(timeout=15)
        served.thread.join(timeout=15)
    [answer] = answers
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["status"] == "queued"
    assert time.monotonic() - stopping < 5  # the drain (1 s), not the wait (60 s)
    with state.db.unit_of_work() as session:
        assert jobs_service.get_job(session, uuid.UUID(job["id"]), "default").status == "queued"
