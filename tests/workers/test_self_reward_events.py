"""A self-reward job announces its iterations and stages on its live event stream."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis

from app.training.specs import DPOSpec, SFTSpec
from tests.jobs.streams import stream_events
from tests.workers.conftest import ScriptedEngine
from tests.workers.test_self_reward_job import body, engine, submit_sr, trained  # noqa: F401 (fixtures)
from workers.tasks import run_job


def test_the_stream_shows_each_iteration_and_stage_then_the_end(
    redis: Redis,
    engine: ScriptedEngine,  # noqa: F811
    trained: list[SFTSpec | DPOSpec],  # noqa: F811
    submit_sr: Callable[[dict[str, Any]], uuid.UUID],  # noqa: F811
) -> None:
    job_id = submit_sr(body(iterations=1, guards={"max_length_ratio": 10.0}))
    run_job(str(job_id))
    events = stream_events(redis, job_id)
    assert (events[-1].name, events[-1].data["status"]) == ("end", "succeeded")
    stages = [e.data["stage"] for e in events if e.name == "stage"]
    assert stages[0] == "sft: train"
    assert [s for s in stages if s.startswith("iteration")] == [
        f"iteration 1/1: {step}"
        for step in ("prompts", "candidates", "judgments", "pairs", "train", "register", "evaluate")
    ]
    assert stages[-1] == "done"
    progress = [(e.data["done"], e.data["total"]) for e in events if e.name == "progress"]
    assert progress[-1] == (2, 2)
