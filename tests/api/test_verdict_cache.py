"""The verdict cache over HTTP: a repeated job's `?wait=` request is answered from the cache, with its
results, without a worker; another tenant's identical request is not."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth.keys import SCOPES
from app.auth.service import create_key
from app.core.state import AppState
from tests.api.helpers import PAIR, PAIRWISE, with_
from tests.api.test_judgments_accept import Worker
from tests.workers.conftest import longer_answer_judge
from workers.tasks import run_job

BODY: dict[str, Any] = {"items": [with_(PAIR, id="x")]}


def test_a_repeated_wait_request_is_answered_from_the_cache_without_a_worker(
    client: TestClient, state: AppState, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = worker(longer_answer_judge)
    delivered: list[str] = []
    monkeypatch.setattr(
        state.queue, "enqueue", lambda job_id, queue, attempt=0: delivered.append(str(job_id))
    )
    first = client.post(PAIRWISE, json=BODY)
    assert first.status_code == 202
    run_job(delivered[0])

    again = client.post(PAIRWISE, params={"wait": 30}, json=BODY)
    assert again.status_code == 200, again.text
    job = again.json()
    assert (job["status"], job["progress"]) == ("succeeded", {"done": 1, "total": 1, "failed": 0})
    assert job["params"]["cache"] == "use"
    [result] = job["results"]
    assert (result["id"], result["verdict"], result["cached"]) == ("x", "B", True)
    assert len(delivered) == 1 and len(engine.batches) == 1  # never queued, no engine call

    # Without a wait too, the answer is the ended job with its results.
    plain = client.post(PAIRWISE, json=BODY)
    assert (plain.status_code, plain.json()["results"][0]["cached"]) == (200, True)

    # Another tenant's identical request is its own work.
    with state.db.unit_of_work() as session:
        _, other = create_key(session, "other-tenant", list(SCOPES), "tests")
    response = client.post(PAIRWISE, json=BODY, headers={"Authorization": f"Bearer {other}"})
    assert (response.status_code, response.json()["status"]) == (202, "queued")
    assert len(delivered) == 2


def test_a_repeated_job_whose_every_item_failed_ends_failed_from_the_cache(
    client: TestClient, state: AppState, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19, item 4: the job answered from the cache ends as the judged one did."""
    worker(lambda conv: "no idea")
    delivered: list[str] = []
    monkeypatch.setattr(
        state.queue, "enqueue", lambda job_id, queue, attempt=0: delivered.append(str(job_id))
    )
    body = {"items": [with_(PAIR, id="x")], "swap": "none"}
    assert client.post(PAIRWISE, json=body).status_code == 202
    run_job(delivered[0])
    judged = client.get(f"/v1/jobs/{delivered[0]}").json()
    assert judged["status"] == "failed"

    again = client.post(PAIRWISE, params={"wait": 30}, json=body)
    assert again.status_code == 200, again.text
    job = again.json()
    assert (job["status"], job["progress"]) == ("failed", {"done": 1, "total": 1, "failed": 1})
    assert job["error"] == judged["error"] and job["error"].startswith("its only item failed: ")
    assert job["results"][0]["cached"] is True and len(delivered) == 1
