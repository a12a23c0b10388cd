"""The async client against the real service, live on a local port."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from judge_client import AsyncJudge, BadRequest, InvalidArgument, JudgeTimeout, NotFound, SingleItem
from tests.client.live import LiveService

pytestmark = pytest.mark.anyio


async def test_pairwise_and_single(service: LiveService) -> None:
    async with AsyncJudge(service.url, service.key) as judge:
        pair = await judge.pairwise("What is 2+2?", "It is four.", "5", poll=0.05)
        graded = await judge.single("Say hi.", "hi there", poll=0.05)
    assert (pair.verdict, pair.consistent, [o.order for o in pair.orders]) == ("A", True, ["AB", "BA"])
    assert graded.score == 2.0


async def test_concurrent_calls(service: LiveService) -> None:
    async with AsyncJudge(service.url, service.key) as judge:
        results = await asyncio.gather(
            *(judge.pairwise(f"Q{i}?", "x" * i, "y" * (5 - i), id=str(i), poll=0.05) for i in range(1, 5))
        )
    assert [(r.id, r.verdict) for r in results] == [("1", "B"), ("2", "B"), ("3", "A"), ("4", "A")]


async def test_batch_wait_results_and_jobs(service: LiveService) -> None:
    service.running.clear()
    async with AsyncJudge(service.url, service.key) as judge:
        items = [SingleItem(id=f"s{i}", question="q", answer=" ".join(["w"] * i)) for i in range(1, 6)]
        job = await judge.submit_batch(items, "single", scale=(1, 10))
        assert job.status == "queued"
        with pytest.raises(JudgeTimeout):
            await judge.wait(job, timeout=0.2, poll=0.05)
        service.running.set()
        updates: list[int] = []
        ended = await judge.wait(job, poll=0.05, on_update=lambda j: updates.append(j.progress.done))
        assert ended.status == "succeeded" and updates[-1] == 5
        scores = [(r.id, r.score) async for r in judge.results(ended, page_size=2)]
        assert scores == [(f"s{i}", float(i)) for i in range(1, 6)]
        listed = [j.id async for j in judge.jobs(kind="judge_single")]
        assert listed == [job.id]
        assert (await judge.job(job.id)).progress.done == 5


async def test_errors(service: LiveService) -> None:
    async with AsyncJudge(service.url, service.key) as judge:
        with pytest.raises(NotFound):
            await judge.cancel(uuid.uuid4())
        with pytest.raises(BadRequest) as caught:
            await judge.single("q", "a", scale=(5, 1))
        assert caught.value.field == "scale"


async def test_wait_follows_the_event_stream(service: LiveService) -> None:
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http = httpx.AsyncClient(event_hooks={"request": [record]})
    async with AsyncJudge(service.url, service.key, http=http) as judge:
        service.running.clear()
        job = await judge.submit_batch([{"question": "q", "answer": "a b c"}] * 3, "single")
        sent.clear()
        service.release_when(lambda: any(r.url.path.endswith("/events") for r in sent), then=0.5)
        seen: list[str] = []
        ended = await judge.wait(job, poll=0.05, on_update=lambda j: seen.append(j.status))
    await http.aclose()
    assert (ended.status, ended.progress.done) == ("succeeded", 3)
    assert [r.url.path for r in sent] == [f"/v1/jobs/{job.id}/events", f"/v1/jobs/{job.id}"]
    assert seen[0] == "queued" and "running" in seen and seen[-1] == "succeeded"


async def test_wait_polls_where_the_event_stream_is_unavailable(service: LiveService) -> None:
    inner = httpx.AsyncHTTPTransport()

    async def no_streams(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(404, json={"detail": "Not Found"})
        return await inner.handle_async_request(request)

    polls: list[str] = []
    http = httpx.AsyncClient(transport=httpx.MockTransport(no_streams))
    async with AsyncJudge(service.url, service.key, http=http) as judge:
        service.running.clear()
        job = await judge.submit_batch([{"question": "q", "answer": "a"}], "single")
        service.release_when(lambda: len(polls) >= 3)
        ended = await judge.wait(job, poll=0.05, timeout=30, on_update=lambda j: polls.append(j.status))
    await http.aclose()
    await inner.aclose()
    assert ended.status == "succeeded" and len(polls) >= 3


async def test_environment_defaults_and_client_errors(
    service: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_URL", service.url)
    monkeypatch.setenv("JUDGE_API_KEY", service.key)
    async with AsyncJudge() as judge:
        assert (await judge.single("Say hi.", "hi there", poll=0.05)).score == 2.0
        with pytest.raises(InvalidArgument, match="no items"):
            await judge.submit_batch([])
        with pytest.raises(InvalidArgument, match="unknown option"):
            await judge.single("q", "a", swapp="none")  # type: ignore[call-overload]
