"""GET /metrics: every family is exposed, and moves when the API answers and a worker judges."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from redis import Redis

from app.auth.service import create_key
from app.core.state import AppState
from app.engine.base import Conversation
from app.jobs import repository as jobs_repo
from app.main import create_app
from app.metrics import families as fam
from app.models import repository as models_repo
from tests.api.helpers import DEFAULT_MODEL, DEFAULT_QUEUE, PAIR, PAIRWISE, with_
from tests.workers.conftest import ScriptedEngine, user_text
from workers import context
from workers.tasks import run_job

REQUIRED = {
    "judge_http_requests",
    "judge_http_request_duration_seconds",
    "judge_queue_depth",
    "judge_jobs",
    "judge_judgments",
    "judge_judgments_per_second",
    "judge_batch_size",
    "judge_model_latency_seconds",
    "judge_parse_errors",
    "judge_items",
    "judge_metrics_source_up",
}


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(self, name: str) -> list[Sample]:
        return [s for f in self.families.values() for s in f.samples if s.name == name]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value (0 when the series does not exist yet)."""
        return sum(s.value for s in self.samples(name) if labels.items() <= s.labels.items())


def scrape(client: TestClient) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


@pytest.fixture
def metered(state: AppState, api_key: str) -> Iterator[TestClient]:
    """The app with its jobs-by-state count never cached, so each scrape sees the database as it is."""
    fresh = dataclasses.replace(
        state, settings=state.settings.model_copy(update={"metrics_jobs_cache_seconds": 0})
    )
    with TestClient(create_app(state=fresh), headers={"Authorization": f"Bearer {api_key}"}) as c:
        yield c


def test_every_family_is_exposed_without_a_key(client: TestClient) -> None:
    client.headers.pop("Authorization")
    assert set(scrape(client).families) >= REQUIRED


def test_figures_move_with_requests_and_a_worker_job(
    metered: TestClient, state: AppState, worker: Callable[[Callable[[Conversation], str]], ScriptedEngine]
) -> None:
    def judge(conv: Conversation) -> str:
        return "no verdict at all" if "garbled" in user_text(conv) else "A]]"

    before = scrape(metered)
    assert before.value("judge_judgments_total") == 0
    assert before.value("judge_queue_depth", queue=DEFAULT_QUEUE) == 0
    body = {"items": [PAIR, with_(PAIR, question="garbled question")]}
    response = metered.post(PAIRWISE, json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    queued = scrape(metered)
    assert queued.value("judge_queue_depth", queue=DEFAULT_QUEUE) == 1
    assert queued.value("judge_jobs", state="queued", kind="judge_pairwise") == 1
    requests = {"method": "POST", "route": PAIRWISE, "status": "202"}
    assert queued.value("judge_http_requests_total", **requests) == 1
    assert queued.value("judge_http_request_duration_seconds_count", method="POST", route=PAIRWISE) == 1

    worker(judge)
    assert run_job(job_id) == "done"
    assert metered.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    assert metered.get("/no/such/path").status_code == 404

    after = scrape(metered)
    labels = {"model": DEFAULT_MODEL, "mode": "pairwise"}
    # Two items, both orders each: 4 judgments, the garbled item's 2 unparseable.
    assert after.value("judge_judgments_total", **labels) == 4
    assert after.value("judge_parse_errors_total", **labels) == 2
    assert after.value("judge_items_total", status="ok", **labels) == 1
    assert after.value("judge_items_total", status="error", **labels) == 1
    engine = {"model": DEFAULT_MODEL, "operation": "generate"}
    assert after.value("judge_batch_size_sum", **engine) == 4  # one batch of 4 prompts (batch_size 4)
    assert after.value("judge_batch_size_count", **engine) == 1
    assert after.value("judge_batch_size_bucket", le="4.0", **engine) == 1
    assert after.value("judge_batch_size_bucket", le="2.0", **engine) == 0
    assert after.value("judge_model_latency_seconds_count", **engine) == 1
    assert after.value("judge_jobs", state="succeeded", kind="judge_pairwise") == 1
    assert after.value("judge_jobs", state="queued", kind="judge_pairwise") == 0
    assert (
        after.value("judge_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="200") == 1
    )
    assert after.value("judge_http_requests_total", route="unmatched", status="404") == 1
    assert after.value("judge_metrics_source_up", source="redis") == 1
    assert after.value("judge_metrics_source_up", source="database") == 1


def test_tenants_trained_models_are_not_named(
    client: TestClient, state: AppState, worker: Callable[[Callable[[Conversation], str]], ScriptedEngine]
) -> None:
    """Issue 17 probe 10: the public /metrics showed the names of models trained for tenants."""
    with state.db.unit_of_work() as session:
        root = models_repo.get_by_name(session, DEFAULT_MODEL)
        assert root is not None
        job = jobs_repo.create_job(
            session,
            kind="self_reward",
            model=DEFAULT_MODEL,
            queue=DEFAULT_QUEUE,
            params={},
            total=1,
            tenant="acme",
        )
        models_repo.register_trained(
            session,
            name="acme-secret-project-sr-1",
            backend="transformers",
            artifact_path="/models/acme-secret-project-sr-1",
            parent_id=root.id,
            job_id=job.id,
            iteration=1,
            metrics={},
            owner="acme",
        )
    worker(lambda conv: "[[A]]")
    metrics = context.current().metrics
    metrics.record_engine_call("acme-secret-project-sr-1", "generate", 2, 0.1)
    metrics.record_judgments("acme-secret-project-sr-1", "pairwise", 2, 0, {"ok": 1})
    metrics.record_engine_call(DEFAULT_MODEL, "generate", 3, 0.1)
    client.headers.pop("Authorization")
    text = client.get("/metrics").text
    assert "acme-secret-project" not in text
    result = Scrape(text)
    assert result.value("judge_batch_size_sum", model="tenant-model", operation="generate") == 2
    assert result.value("judge_judgments_total", model="tenant-model", mode="pairwise") == 2
    assert result.value("judge_batch_size_sum", model=DEFAULT_MODEL, operation="generate") == 3


def test_judgments_per_second_over_the_last_minute(metered: TestClient, redis: Redis) -> None:
    slot = fam.recent_slots(time.time())[-1]
    redis.set(fam.RECENT_KEY_PREFIX + str(slot), 90)
    redis.set(fam.RECENT_KEY_PREFIX + str(slot - 100), 1000)  # long ago: outside the window
    assert scrape(metered).value("judge_judgments_per_second") == pytest.approx(1.5)


def test_an_unreachable_redis_is_reported_not_fatal(state: AppState) -> None:
    broken = dataclasses.replace(state, redis=Redis(host="127.0.0.1", port=1, socket_connect_timeout=1))
    with TestClient(create_app(state=broken)) as c:
        result = scrape(c)
    assert result.value("judge_metrics_source_up", source="redis") == 0
    assert result.value("judge_metrics_source_up", source="database") == 1
    assert "judge_jobs" in result.families and "judge_http_requests" in result.families


def key_with(state: AppState, *scopes: str) -> str:
    with state.db.unit_of_work() as session:
        return create_key(session, "default", list(scopes), "metrics")[1]


def test_admin_access_needs_an_admin_key(state: AppState) -> None:
    admin_only = dataclasses.replace(
        state, settings=state.settings.model_copy(update={"metrics_access": "admin"})
    )
    with TestClient(create_app(state=admin_only)) as c:
        assert c.get("/metrics").status_code == 401
        judge_key = key_with(state, "judge")
        assert c.get("/metrics", headers={"Authorization": f"Bearer {judge_key}"}).status_code == 403
        admin_key = key_with(state, "admin")
        response = c.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"})
        assert response.status_code == 200 and "judge_jobs" in response.text


def test_metrics_can_be_turned_off(state: AppState) -> None:
    off = dataclasses.replace(state, settings=state.settings.model_copy(update={"metrics_access": "off"}))
    with TestClient(create_app(state=off)) as c:
        assert c.get("/metrics").status_code == 404


def test_metrics_is_not_part_of_the_json_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/metrics" not in paths
    assert not [p for p in paths if p.startswith("/dashboard")]
