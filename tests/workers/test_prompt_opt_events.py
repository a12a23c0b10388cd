"""A prompt-optimization job announces its rounds and steps on its live event stream, and keeps the
client's metadata out of its parameters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis

from app.jobs import repository as jobs_repo
from tests.conftest import RollbackDatabase
from tests.jobs.streams import stream_events
from tests.workers.conftest import ScriptedEngine
from tests.workers.test_prompt_opt_job import (  # noqa: F401 (fixtures)
    body,
    engine,
    po_settings,
    submit_as,
    submit_po,
)
from workers.tasks import run_job


def test_the_stream_shows_each_round_and_step_then_the_end(
    db: RollbackDatabase,
    redis: Redis,
    engine: ScriptedEngine,  # noqa: F811
    submit_po: Callable[[dict[str, Any]], uuid.UUID],  # noqa: F811
) -> None:
    job_id = submit_po(body(metadata={"mtbench_run": "po-1"}))
    assert run_job(str(job_id)) == "succeeded"
    events = stream_events(redis, job_id)
    assert (events[0].name, events[0].data["status"]) == ("status", "running")
    assert (events[-1].name, events[-1].data["status"]) == ("end", "succeeded")
    stages = [e.data["stage"] for e in events if e.name == "stage"]
    assert stages[0].startswith("round 1/3: ")
    assert {s.split(":")[0] for s in stages if s.startswith("round")} == {
        "round 1/3",
        "round 2/3",
        "round 3/3",
    }
    assert stages[-2:] == ["final evaluation", "done"]
    # Consecutive stage events always differ: only changes are announced.
    assert all(a != b for a, b in zip(stages, stages[1:], strict=False))
    progress = [(e.data["done"], e.data["total"]) for e in events if e.name == "progress"]
    assert progress == sorted(progress) and progress[-1] == (3, 3)
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None
        assert job.job_metadata == {"mtbench_run": "po-1"}
        assert "metadata" not in job.params and "callback_url" not in job.params
