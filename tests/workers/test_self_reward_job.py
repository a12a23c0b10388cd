"""Self-reward jobs in the worker against the real database, with a scripted engine and a recorded
training step (the real training is tested in tests/training and end to end in tests/e2e)."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import func, select, update

from app.core.config import Settings
from app.db.base import utcnow
from app.db.tables import Job, SrCandidate, SrJudgment, SrPrompt
from app.engine.base import Conversation
from app.jobs import repository as jobs_repo
from app.jobs.queue import JobQueue
from app.models import repository as models_repo
from app.self_reward import service as sr_service
from app.self_reward.rubric import STOP
from app.self_reward.schemas import SelfRewardRequest, SelfRewardResults
from app.training.specs import DPOSpec, SFTSpec, TrainResult
from tests.conftest import RollbackDatabase
from tests.workers.conftest import ScriptedEngine, install_scripted_worker
from workers import context
from workers import self_reward as sr_worker
from workers.tasks import run_job

WORDS = [
    "volcano",
    "library",
    "bicycle",
    "orchestra",
    "glacier",
    "bakery",
    "satellite",
    "harbor",
    "meadow",
    "compass",
    "lantern",
    "canyon",
    "theater",
    "garden",
    "tunnel",
    "market",
    "island",
    "factory",
    "museum",
    "rainforest",
    "desert",
    "bridge",
    "castle",
    "airport",
    "vineyard",
    "subway",
    "lighthouse",
]


def eft(prompt: str, score: int) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "response": "An answer.",
        "judgment": f"Some criteria met.\nScore: {score}",
        "score": score,
    }


class World:
    """A scripted model: writes varied new tasks, answers of varied length, and grades longer answers
    higher (so pairs form)."""

    def __init__(self, judge: Callable[[str], str] | None = None) -> None:
        self.counter = itertools.count()
        self.judge = judge or (lambda answer: f"Reasoning.\nScore: {min(5, len(answer.split()) // 3)}")

    def __call__(self, conv: Conversation) -> str:
        text = conv[-1]["content"]
        if "=== Answer A ===" in text:
            return "A]]"
        if "<response>" in text:  # the rubric
            return self.judge(text.split("<response>", 1)[1].split("</response>", 1)[0])
        if "Task 1" in text:
            rng = random.Random(next(self.counter))
            return "Compare " + " ".join(rng.sample(WORDS, 6)) + "."
        n = next(self.counter)
        return " ".join(["word"] * (3 + (n % 5) * 3))


@pytest.fixture
def trained() -> Iterator[list[SFTSpec | DPOSpec]]:
    specs: list[SFTSpec | DPOSpec] = []

    def fake(kind: str, spec: SFTSpec | DPOSpec, timeout_s: float, *args: Any, **kwargs: Any) -> TrainResult:
        specs.append(spec)
        return TrainResult(spec.output_path, {"first_loss": 0.69, "last_loss": 0.41, "steps": 2})

    original = sr_worker.train
    sr_worker.train = fake  # type: ignore[assignment]
    yield specs
    sr_worker.train = original  # type: ignore[assignment]


@pytest.fixture
def engine(
    worker_settings: Settings, db: RollbackDatabase, redis: Redis, registered_model: str
) -> ScriptedEngine:
    with db.unit_of_work() as session:
        models_repo.upsert(session, registered_model, "transformers", "/models/base")
    scripted = install_scripted_worker(worker_settings, db, JobQueue(redis, 60), World(), "sr-worker")
    ctx = context.current()
    ctx.engines.family_of = lambda name: registered_model
    ctx.engines.family_path = lambda name: Path("/models") / name
    return scripted


def body(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "ift": {
            "rows": [{"prompt": f"Seed task {i} about {WORDS[i]}?", "response": "Done."} for i in range(6)]
        },
        "eft": {"rows": [eft(f"Question {i}?", i % 6) for i in range(6)]},
        "eft_heldout": {"rows": [eft(f"Held-out question {i} on {WORDS[i + 5]}?", i % 6) for i in range(4)]},
        "iterations": 2,
        "prompts_per_iteration": 3,
        "candidates": {"n": 3, "max_tokens": 64},
        "judge": {"samples": 2, "max_tokens": 64},
        "evaluation": {"heldout_prompts": 2, "max_tokens": 32},
        "seed": 5,
    }
    request.update(overrides)
    return request


@pytest.fixture
def submit_sr(
    worker_settings: Settings, db: RollbackDatabase, redis: Redis, registered_model: str
) -> Callable[[dict[str, Any]], uuid.UUID]:
    def _submit(payload: dict[str, Any]) -> uuid.UUID:
        request = SelfRewardRequest.model_validate(payload)
        with db.unit_of_work() as session:
            return sr_service.submit(session, worker_settings, JobQueue(redis, 60), request, "default").id

    return _submit


def results(db: RollbackDatabase, job_id: uuid.UUID) -> tuple[Job, SelfRewardResults]:
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None
        return job, sr_service.results(session, job)


def test_the_loop_trains_registers_and_evaluates_each_iteration(
    db: RollbackDatabase,
    engine: ScriptedEngine,
    trained: list[SFTSpec | DPOSpec],
    submit_sr: Callable[[dict[str, Any]], uuid.UUID],
    registered_model: str,
) -> None:
    # the scripted judge prefers longer answers: the length guard would (rightly) stop the loop
    job_id = submit_sr(body(guards={"max_length_ratio": 10.0}))
    run_job(str(job_id))
    job, out = results(db, job_id)
    assert job.status == "succeeded", job.error
    assert (job.progress_done, job.progress_total) == (3, 3)
    assert [i.iteration for i in out.iterations] == [0, 1, 2]
    assert all(i.model_id is not None for i in out.iterations)

    sft, dpo1, dpo2 = trained
    assert isinstance(sft, SFTSpec) and len(sft.examples) == 6 + 6
    assert sft.examples[-1]["completion"].endswith("Score: 5")
    assert isinstance(dpo1, DPOSpec) and isinstance(dpo2, DPOSpec)
    assert dpo1.base_path == sft.output_path and dpo2.base_path == dpo1.output_path
    first = out.iterations[1].metrics
    assert first["pairs"]["kept"] == len(dpo1.pairs) > 0
    assert all(p["chosen"] != p["rejected"] for p in dpo1.pairs)
    assert first["prompts"]["kept"] == 3
    assert first["candidates"]["total"] == 9
    assert first["judgments"]["total"] == 18 and first["judgments"]["parse_failures"] == 0
    assert sum(first["score_histogram"].values()) == 18
    assert first["length"]["chosen_mean_words"] > first["length"]["rejected_mean_words"]
    assert first["training"]["last_loss"] < first["training"]["first_loss"]
    evaluation = first["evaluation"]
    assert evaluation["eft_heldout"]["n"] == 4
    assert evaluation["win_rate_vs_previous"]["n"] == 2

    # Lineage: base -> m1 (SFT) -> m2 -> m3, each registered for the tenant with its job and iteration.
    names = [i.model for i in out.iterations]
    with db.unit_of_work() as session:
        chain = [models_repo.get_by_name(session, n) for n in names]
        assert all(m is not None and m.job_id == job_id and m.owner == "default" for m in chain)
        parents = [models_repo.get(session, m.parent_id).name for m in chain]  # type: ignore[union-attr,arg-type]
    assert parents == [registered_model, names[0], names[1]]
    assert out.final_model == names[-1]
    # The one engine swapped weights between the models of the run.
    assert names[-1] in engine.loaded and names[0] in engine.loaded


def test_a_killed_worker_resumes_without_redoing_finished_stages(
    db: RollbackDatabase,
    engine: ScriptedEngine,
    trained: list[SFTSpec | DPOSpec],
    submit_sr: Callable[[dict[str, Any]], uuid.UUID],
) -> None:
    class Killed(BaseException):
        pass

    original = engine.generate
    judging_batches = 0

    def dying(prompts: Any, sampling: Any) -> Any:
        nonlocal judging_batches
        if "<response>" in prompts[0][-1]["content"]:
            judging_batches += 1
            if judging_batches == 1:
                raise Killed
        return original(prompts, sampling)

    engine.generate = dying  # type: ignore[method-assign]
    job_id = submit_sr(body(iterations=1, sft={"enabled": False}))
    with pytest.raises(Killed):
        run_job(str(job_id))
    with db.unit_of_work() as session:
        prompts_before = session.scalar(
            select(func.count())
            .select_from(SrPrompt)
            .where(SrPrompt.job_id == job_id, SrPrompt.dropped.is_(None))
        )
        cands_before = [
            c.text for c in session.scalars(select(SrCandidate).where(SrCandidate.job_id == job_id))
        ]
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow()))
    assert prompts_before == 3 and len(cands_before) == 9
    few_shot_before = sum(1 for b in engine.batches for c in b if "Task 1" in c[-1]["content"])

    assert run_job(str(job_id)) == "succeeded"
    few_shot_after = sum(1 for b in engine.batches for c in b if "Task 1" in c[-1]["content"])
    assert few_shot_after == few_shot_before  # the prompts stage was not redone
    with db.unit_of_work() as session:
        cands_after = [
            c.text for c in session.scalars(select(SrCandidate).where(SrCandidate.job_id == job_id))
        ]
    assert cands_after == cands_before  # nor the candidates stage
    job, out = results(db, job_id)
    assert job.attempts == 2
    assert [i.iteration for i in out.iterations] == [1]
    assert len(trained) == 1


def test_a_guard_stops_the_loop_when_every_prompt_ties(
    db: RollbackDatabase,
    engine: ScriptedEngine,
    trained: list[SFTSpec | DPOSpec],
    submit_sr: Callable[[dict[str, Any]], uuid.UUID],
) -> None:
    engine.reply = World(judge=lambda answer: "Fine.\nScore: 3")
    job_id = submit_sr(body(iterations=1, sft={"enabled": False}))
    assert run_job(str(job_id)) == "failed"
    job, out = results(db, job_id)
    assert job.error is not None and "preference pair" in job.error
    assert out.stop_reason == job.error
    assert out.iterations[0].metrics["pairs"]["tie_dropped"] == 3
    assert trained == []  # nothing was trained on no data


def test_judgments_stop_after_the_score_line_and_are_read_there(
    db: RollbackDatabase,
    engine: ScriptedEngine,
    trained: list[SFTSpec | DPOSpec],
    submit_sr: Callable[[dict[str, Any]], uuid.UUID],
) -> None:
    # What follows the score line used to be read as the score (5 here); the references read the line.
    engine.reply = World(
        judge=lambda answer: f"Relevant.\nScore: {len(answer) % 5}\nI would not award 5 points."
    )
    job_id = submit_sr(
        body(iterations=1, sft={"enabled": False}, guards={"min_pairs": 1, "max_tie_rate": 1.0})
    )
    run_job(str(job_id))
    judge_samplings = [s for s in engine.samplings if s.stop == STOP]
    assert judge_samplings, "the rubric judgments were generated without the score-line stop"
    with db.unit_of_work() as session:
        rows = session.scalars(select(SrJudgment).where(SrJudgment.job_id == job_id)).all()
        assert rows
        for row in rows:
            assert row.raw.endswith("\n") and "award 5" not in row.raw
            assert row.score == float(row.raw.rstrip().rsplit("Score: ", 1)[1])


def test_the_length_guard_stops_a_loop_whose_chosen_answers_keep_growing(
    db: RollbackDatabase,
    engine: ScriptedEngine,
    trained: list[SFTSpec | DPOSpec],
    submit_sr: Callable[[dict[str, Any]], uuid.UUID],
) -> None:
    job_id = submit_sr(body(iterations=3, sft={"enabled": False}))
    assert run_job(str(job_id)) == "failed"
    job, out = results(db, job_id)
    assert job.error is not None and job.error.startswith("iteration 2: length explosion")
    assert out.iterations[0].flags and "as long as rejected" in out.iterations[0].flags[0]
    assert len(trained) == 1  # iteration 1 trained; iteration 2 stopped before training


def test_cancel_stops_at_the_next_safe_point(
    db: RollbackDatabase,
    engine: ScriptedEngine,
    trained: list[SFTSpec | DPOSpec],
    submit_sr: Callable[[dict[str, Any]], uuid.UUID],
) -> None:
    job_id = submit_sr(body(iterations=2, sft={"enabled": False}))
    original = engine.generate

    def cancelling(prompts: Any, sampling: Any) -> Any:
        if "<response>" in prompts[0][-1]["content"]:
            with db.unit_of_work() as session:
                session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        return original(prompts, sampling)

    engine.generate = cancelling  # type: ignore[method-assign]
    assert run_job(str(job_id)) == "cancelled"
    job, out = results(db, job_id)
    assert job.status == "cancelled"
    assert trained == []


def test_a_nul_in_generated_prompts_answers_and_judgments_is_stored_as_a_replacement_character(
    db: RollbackDatabase,
    engine: ScriptedEngine,
    trained: list[SFTSpec | DPOSpec],
    submit_sr: Callable[[dict[str, Any]], uuid.UUID],
) -> None:
    world = World()

    def with_nul(conv: Conversation) -> str:  # Postgres text cannot hold U+0000: the writes failed
        text = world(conv)
        return text if text.endswith("]]") else text[0] + "\x00" + text[1:]

    engine.reply = with_nul
    job_id = submit_sr(body(iterations=1, guards={"max_length_ratio": 10.0}))
    run_job(str(job_id))
    job, _ = results(db, job_id)
    assert job.status == "succeeded", job.error
    with db.unit_of_work() as session:
        for column in (SrPrompt.raw, SrCandidate.text, SrJudgment.raw):
            texts = list(session.scalars(select(column).where(column.table.c.job_id == job_id)))
            assert texts and all("\x00" not in t for t in texts), column
            assert any("\ufffd" in t for t in texts), column
