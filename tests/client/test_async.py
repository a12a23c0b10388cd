"""The async client against the real service, live on a local port."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from judge_client import AsyncJudge, BadRequest, JudgeTimeout, NotFound, SingleItem
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
