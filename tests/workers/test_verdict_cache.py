"""The verdict cache end to end: a repeated judging job is answered without engine calls (whole, when it
is recorded; item by item, in the worker), only for its own tenant, and as `cache` asks."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis

from app.core.config import Settings
from app.engine.base import Conversation
from app.jobs import service as jobs_service
from app.jobs.queue import JobQueue
from app.judging import service
from app.judging.schemas import PairwiseRequest
from tests.conftest import RollbackDatabase
from tests.workers.conftest import ScriptedEngine, longer_answer_judge
from workers.tasks import run_job

Install = Callable[[Callable[[Conversation], str]], ScriptedEngine]


def _pair(i: int) -> dict[str, Any]:
    return {
        "id": f"item-{i}",
        "question": f"Question {i}?",
        "answer_a": "short",
        "answer_b": "a much longer one",
    }


BODY: dict[str, Any] = {"items": [_pair(i) for i in range(3)], "swap": "conservative"}


class Jobs:
    """Submits jobs as the API does (answered from the cache when it can) and reads them back."""

    def __init__(self, settings: Settings, db: RollbackDatabase, redis: Redis) -> None:
        self.settings, self.db, self.queue = settings, db, JobQueue(redis, 60)

    def submit(self, body: dict[str, Any], tenant: str = "default") -> uuid.UUID:
        with self.db.unit_of_work() as session:
            request = PairwiseRequest.model_validate(body)
            return service.submit(session, self.settings, self.queue, "pairwise", request, tenant).job.id

    def read(self, job_id: uuid.UUID, tenant: str = "default") -> tuple[str, list[dict[str, Any]]]:
        with self.db.unit_of_work() as session:
            job = jobs_service.get_job(session, job_id, tenant)
            return job.status, [r.model_dump() for r in jobs_service.all_results(session, job)]

    def judged(self, body: dict[str, Any], tenant: str = "default") -> tuple[str, list[dict[str, Any]]]:
        """Submit and, unless the cache answered it, run the job on the worker."""
        job_id = self.submit(body, tenant)
        if self.read(job_id, tenant)[0] == "queued":
            assert run_job(str(job_id)) == "done"
        return self.read(job_id, tenant)


@pytest.fixture
def jobs(worker_settings: Settings, db: RollbackDatabase, redis: Redis, registered_model: str) -> Jobs:
    return Jobs(worker_settings, db, redis)


def _calls(engine: ScriptedEngine) -> int:
    return sum(len(b) for b in engine.batches)


def test_a_repeated_job_is_answered_from_the_cache_when_recorded(jobs: Jobs, make_worker: Install) -> None:
    engine = make_worker(longer_answer_judge)
    status, first = jobs.judged(BODY)
    assert (status, _calls(engine)) == ("succeeded", 6)
    assert not any(r["cached"] for r in first)

    job_id = jobs.submit(BODY)
    status, again = jobs.read(job_id)
    assert status == "succeeded"  # ended in the request's transaction: no worker, no engine
    assert _calls(engine) == 6
    assert all(r["cached"] and all(o["cached"] for o in r["orders"]) for r in again)
    assert [(r["verdict"], r["consistent"]) for r in again] == [
        (r["verdict"], r["consistent"]) for r in first
    ]
    assert [o["raw"] for r in again for o in r["orders"]] == [o["raw"] for r in first for o in r["orders"]]
    assert all(o["latency_ms"] == 0 for r in again for o in r["orders"])


def test_the_worker_serves_cached_items_and_runs_only_the_others(jobs: Jobs, make_worker: Install) -> None:
    engine = make_worker(longer_answer_judge)
    jobs.judged({**BODY, "items": [_pair(i) for i in range(2)]})
    assert _calls(engine) == 4
    status, results = jobs.judged({**BODY, "items": [_pair(i) for i in range(4)]})
    assert status == "succeeded"
    assert _calls(engine) == 4 + 4  # items 2 and 3 only
    assert [r["cached"] for r in results] == [True, True, False, False]
    assert {r["verdict"] for r in results} == {"B"}


def test_another_tenant_never_hits_a_tenants_entries(
    jobs: Jobs, make_worker: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_worker(longer_answer_judge)
    jobs.judged(BODY, tenant="acme")
    status, results = jobs.judged(BODY, tenant="globex")
    assert status == "succeeded" and not any(r["cached"] for r in results)
    assert _calls(engine) == 12
    # The operator may share the cache explicitly: then new entries are every tenant's.
    monkeypatch.setattr(jobs.settings, "verdict_cache_scope", "operator")
    jobs.judged(BODY, tenant="acme")
    _, shared = jobs.judged(BODY, tenant="globex")
    assert all(r["cached"] for r in shared)
    assert _calls(engine) == 18


def test_refresh_runs_every_call_and_replaces_the_entries(jobs: Jobs, make_worker: Install) -> None:
    engine = make_worker(longer_answer_judge)
    jobs.judged(BODY)
    engine.reply = lambda conv: "A]]"  # the judge changed its mind (e.g. a fixed bug in the serving)
    _, refreshed = jobs.judged({**BODY, "cache": "refresh"})
    assert _calls(engine) == 12
    assert not any(r["cached"] for r in refreshed)
    _, again = jobs.judged(BODY)
    assert _calls(engine) == 12
    assert all(r["cached"] for r in again)
    assert [o["raw"] for r in again for o in r["orders"]] == ["Verdict: [[A]]"] * 6


def test_off_neither_reads_nor_writes(jobs: Jobs, make_worker: Install) -> None:
    engine = make_worker(longer_answer_judge)
    jobs.judged({**BODY, "cache": "off"})
    _, results = jobs.judged(BODY)  # nothing was stored
    assert not any(r["cached"] for r in results)
    _, off = jobs.judged({**BODY, "cache": "off"})  # stored now, but not read
    assert not any(r["cached"] for r in off)
    assert _calls(engine) == 18


def test_sampled_verdicts_are_reused_only_when_asked(jobs: Jobs, make_worker: Install) -> None:
    engine = make_worker(longer_answer_judge)
    sampled = {**BODY, "temperature": 0.7, "seed": 5}
    jobs.judged(sampled)
    _, again = jobs.judged(sampled)
    assert not any(r["cached"] for r in again) and _calls(engine) == 12
    asked = {**sampled, "cache": "use"}
    jobs.judged(asked)
    _, reused = jobs.judged(asked)
    assert all(r["cached"] for r in reused) and _calls(engine) == 18
    # ... and only with the same seed: another seed is another draw.
    _, other_seed = jobs.judged({**asked, "seed": 6})
    assert not any(r["cached"] for r in other_seed) and _calls(engine) == 24


def test_logprob_verdicts_are_cached_with_their_distributions(jobs: Jobs, make_worker: Install) -> None:
    engine = make_worker(longer_answer_judge)
    engine.label_weights = lambda conv: {"A": 3.0}
    body = {**BODY, "verdict_mode": "logprobs"}
    _, first = jobs.judged(body)
    _, again = jobs.judged(body)
    assert _calls(engine) == 6
    assert all(r["cached"] for r in again)
    assert [r["probabilities"] for r in again] == [r["probabilities"] for r in first]


def test_each_sample_of_a_self_consistent_job_has_its_own_entry(jobs: Jobs, make_worker: Install) -> None:
    replies = itertools.cycle(["A]]", "B]]", "C]]", "A]]"])  # each call says something else
    engine = make_worker(lambda conv: next(replies))
    body = {**BODY, "temperature": 0.7, "seed": 5, "samples": 3, "cache": "use"}
    _, first = jobs.judged(body)
    _, again = jobs.judged(body)
    assert _calls(engine) == 18  # 3 items x 2 orders x 3 samples, once
    assert all(r["cached"] for r in again)

    def said(results: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
        return [(o["order"], o["sample"], o["raw"]) for r in results for o in r["orders"]]

    assert said(again) == said(first)
    assert len({raw for _, _, raw in said(first)}) > 1
    assert [r["votes"] for r in again] == [r["votes"] for r in first]
