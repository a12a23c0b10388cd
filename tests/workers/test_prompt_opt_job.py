"""Prompt-optimization jobs in the worker, against the real database, with a scripted engine whose
"task model" is right exactly when the prompt mentions what an example needs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import delete, func, select, update

from app.core.config import Settings
from app.db.base import utcnow
from app.db.tables import Job, PoCandidate, PoRound, PredictionCache
from app.engine.base import Conversation
from app.jobs import repository as jobs_repo
from app.jobs.kinds import JobKind
from app.jobs.queue import JobQueue
from app.models import repository as models_repo
from app.prompt_opt import service as po_service
from app.prompt_opt.schemas import PromptOptimizationRequest, PromptOptimizationResults
from tests.conftest import RollbackDatabase
from tests.workers.conftest import ScriptedEngine, install_scripted_worker
from workers import context
from workers.lease import LeaseKeeper
from workers.long_jobs import LongJobs
from workers.tasks import run_job

CATS = ("sarcasm", "negation", "irony")
BASE = "Decide whether the review is positive or negative."
INITIAL = (
    f"# Task\n{BASE}\n\n# Output format\nAnswer with one word: positive or negative.\n\n"
    "# Prediction\nReview: {text}\nAnswer:"
)


def rows(prefix: str, n: int) -> list[dict[str, str]]:
    out = []
    for i in range(n):
        cat = (None, *CATS)[i % 4]
        label = "positive" if i % 2 else "negative"
        tag = f"[{cat}] " if cat else ""
        out.append({"text": f"{tag}review {prefix}{i} (truly {label})", "label": label})
    return out


def scripted(conv: Conversation) -> str:
    system = conv[0]["content"] if conv[0]["role"] == "system" else ""
    user = conv[-1]["content"]
    if "prompt engineer" not in system:  # the task model
        review = re.search(r"Review: (.*)\nAnswer:", user)
        assert review, user
        text = review.group(1)
        gold = re.search(r"\(truly (\w+)\)", text).group(1)  # type: ignore[union-attr]
        cat = re.match(r"\[(\w+)\]", text)
        right = cat is None or cat.group(1) in user.split("# Output format")[0].lower()
        return gold if right else ("negative" if gold == "positive" else "positive")
    task = re.search(r'"""\n(.*?)\n"""', user, re.S)
    assert task, user
    known = set(re.findall(r"\b(sarcasm|negation|irony)\b", task.group(1)))
    if "distinct reason" in user:
        missed = sorted({c for c in re.findall(r"\[(\w+)\]", user) if c not in known})
        return f"<START>The instruction ignores {missed[0]}.<END>" if missed else "<START>Too vague.<END>"
    if "improved version" in user:
        reason = re.search(r"ignores (\w+)", user)
        cats = known | ({reason.group(1)} if reason else set())
        return f"<START>{BASE} Pay attention to: {', '.join(sorted(cats))}.<END>"
    return f"<START>{task.group(1)}<END>"  # a paraphrase that changes nothing


def body(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "task_description": "Sentiment of product reviews",
        "labels": ["positive", "negative"],
        "initial_prompt": INITIAL,
        "data": {
            "train": {"rows": rows("t", 32)},
            "dev": {"rows": rows("d", 16)},
            "test": {"rows": rows("x", 16)},
        },
        "hyperparameters": {
            "rounds": 3,
            "beam_size": 2,
            "minibatch_size": 16,
            "n_gradients": 2,
            "errors_per_gradient": 3,
            "mc_samples": 1,
            "max_expansion": 4,
            "selector": {"eval_rounds": 3, "prompts_per_round": 3, "samples_per_eval": 8},
        },
        "seed": 3,
    }
    request.update(overrides)
    return request


@pytest.fixture
def po_settings(worker_settings: Settings) -> Settings:
    return worker_settings.model_copy(update={"model_call_retries": 2, "model_retry_backoff_seconds": 0.0})


@pytest.fixture
def engine(
    po_settings: Settings, db: RollbackDatabase, redis: Redis, registered_model: str
) -> ScriptedEngine:
    return install_scripted_worker(po_settings, db, JobQueue(redis, 60), scripted, "po-worker")


@pytest.fixture
def submit_as(
    po_settings: Settings, db: RollbackDatabase, redis: Redis, registered_model: str
) -> Callable[[str, dict[str, Any]], uuid.UUID]:
    def _submit(tenant: str, payload: dict[str, Any]) -> uuid.UUID:
        request = PromptOptimizationRequest.model_validate(payload)
        with db.unit_of_work() as session:
            job = po_service.submit(session, po_settings, JobQueue(redis, 60), request, tenant)
            assert isinstance(job, Job)
            return job.id

    return _submit


@pytest.fixture
def submit_po(submit_as: Callable[[str, dict[str, Any]], uuid.UUID]) -> Callable[[dict[str, Any]], uuid.UUID]:
    return lambda payload: submit_as("default", payload)


def results(db: RollbackDatabase, job_id: uuid.UUID) -> tuple[Job, PromptOptimizationResults]:
    with db.unit_of_work() as session:
        job = jobs_repo.get_job(session, job_id)
        assert job is not None
        return job, po_service.results(session, job)


def prompts_run(engine: ScriptedEngine) -> int:
    return sum(len(b) for b in engine.batches)


def test_a_job_finds_the_better_prompt_and_records_the_search(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    job_id = submit_po(body())
    assert run_job(str(job_id)) == "succeeded"
    job, out = results(db, job_id)
    assert job.status == "succeeded"
    assert (job.progress_done, job.progress_total) == (3, 3)
    assert job.detail is not None and job.detail["usage"]["calls"] == out.usage["calls"] > 0
    assert out.stop_reason == "rounds"
    assert out.best_prompt is not None and "Pay attention to:" in out.best_prompt
    test = out.evaluation["test"]
    assert test["initial"]["accuracy"] == pytest.approx(0.25)
    assert test["best"]["accuracy"] > test["initial"]["accuracy"]
    assert [r.round for r in out.rounds] == [1, 2, 3]
    assert any(c.origin == "edit" and c.gradient for c in out.candidates)
    assert sum(1 for c in out.candidates if c.in_beam) == 2  # the final beam
    assert out.candidates[0].key == "r0c0" and out.candidates[0].dev_score == pytest.approx(0.25)


def test_no_prediction_is_computed_twice_across_jobs(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    first = submit_po(body())
    run_job(str(first))
    spent = prompts_run(engine)
    second = submit_po(body())
    run_job(str(second))
    assert prompts_run(engine) == spent  # every output came from the cache
    _, out1 = results(db, first)
    _, out2 = results(db, second)
    assert out2.best_prompt == out1.best_prompt
    assert out2.usage["calls"] == 0 and out2.usage["cache_hits"] > 0


def test_another_tenant_reusing_the_rows_gets_no_cache_hits(
    db: RollbackDatabase, engine: ScriptedEngine, submit_as: Callable[[str, dict[str, Any]], uuid.UUID]
) -> None:
    """Issue 17 probe 4: a hit on tenant A's cached outputs would tell tenant B what A ran."""
    first = submit_as("tenant-a", body())
    run_job(str(first))
    spent = prompts_run(engine)
    second = submit_as("tenant-b", body())
    run_job(str(second))
    _, out1 = results(db, first)
    _, out2 = results(db, second)
    # B pays for every call A paid for, and hits only its own outputs, exactly as A did.
    assert out2.usage == out1.usage and out2.usage["calls"] > 0
    assert prompts_run(engine) == 2 * spent
    with db.unit_of_work() as session:
        tenants = set(session.scalars(select(PredictionCache.tenant)))
    assert tenants == {"tenant-a", "tenant-b"}


def test_an_operator_wide_cache_is_shared_only_when_the_setting_says_so(
    db: RollbackDatabase,
    po_settings: Settings,
    redis: Redis,
    registered_model: str,
    submit_as: Callable[[str, dict[str, Any]], uuid.UUID],
) -> None:
    shared = po_settings.model_copy(update={"prediction_cache_scope": "operator"})
    install_scripted_worker(shared, db, JobQueue(redis, 60), scripted, "po-worker")
    run_job(str(submit_as("tenant-a", body())))
    second = submit_as("tenant-b", body())
    run_job(str(second))
    _, out = results(db, second)
    assert out.usage["calls"] == 0 and out.usage["cache_hits"] > 0
    with db.unit_of_work() as session:
        assert set(session.scalars(select(PredictionCache.tenant))) == {None}


def test_budget_stops_the_job_exactly_at_its_limit(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    payload = body(budget={"max_calls": 57})
    payload["data"] = {"train": {"rows": rows("t", 32)}}
    job_id = submit_po(payload)
    assert run_job(str(job_id)) == "succeeded"
    _, out = results(db, job_id)
    assert out.stop_reason == "budget"
    assert out.usage["calls"] == 57
    assert prompts_run(engine) == 57


def test_a_killed_worker_resumes_from_the_last_step(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    reference = submit_po(body())
    run_job(str(reference))
    needed = prompts_run(engine)
    _, expected = results(db, reference)
    with db.unit_of_work() as session:
        session.execute(delete(PredictionCache))

    class Killed(BaseException):
        pass

    engine.batches.clear()
    original = engine.generate

    def dying(prompts: Any, sampling: Any) -> Any:
        if len(engine.batches) == 9:
            raise Killed
        return original(prompts, sampling)

    engine.generate = dying  # type: ignore[method-assign]
    job_id = submit_po(body())
    with pytest.raises(Killed):
        run_job(str(job_id))
    with db.unit_of_work() as session:
        assert session.scalar(
            select(func.count()).select_from(PoCandidate).where(PoCandidate.job_id == job_id)
        )
        # the worker is gone; its lease runs out
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(1)))
    engine.generate = original  # type: ignore[method-assign]
    assert run_job(str(job_id)) == "succeeded"

    job, out = results(db, job_id)
    assert job.attempts == 2
    assert out.best_prompt == expected.best_prompt
    assert out.evaluation == expected.evaluation
    assert prompts_run(engine) == needed  # the killed attempt's outputs were not computed again
    with db.unit_of_work() as session:
        rounds = session.scalars(select(PoRound.round).where(PoRound.job_id == job_id)).all()
    assert sorted(rounds) == [1, 2, 3]


def test_cancel_stops_the_job_mid_round(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    job_id = submit_po(body())
    original = engine.generate

    def cancelling(prompts: Any, sampling: Any) -> Any:
        if len(engine.batches) == 4:
            with db.unit_of_work() as session:
                session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        return original(prompts, sampling)

    engine.generate = cancelling  # type: ignore[method-assign]
    assert run_job(str(job_id)) == "cancelled"
    job, _ = results(db, job_id)
    assert job.status == "cancelled"
    # The call in flight (a chunk of 16 prompts: four engine batches of 4) finished; no other started.
    assert len(engine.batches) == 8


def test_a_failing_model_fails_the_job_after_bounded_retries(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    attempts = []

    def broken(prompts: Any, sampling: Any) -> Any:
        attempts.append(1)
        raise RuntimeError("CUDA error: device lost")

    engine.generate = broken  # type: ignore[method-assign]
    job_id = submit_po(body())
    assert run_job(str(job_id)) == "failed"
    job, _ = results(db, job_id)
    assert job.status == "failed"
    assert job.error is not None and "failed 3 times in a row" in job.error and "device lost" in job.error
    # Each try: one engine batch, then its first call alone; failing the same way, the engine is
    # taken for broken and the try's other calls fail without running.
    assert len(attempts) == 6


def _judge_rows(prefix: str, n: int) -> list[dict[str, str]]:
    """Raters prefer the complete answer, shown first or second."""
    out = []
    for i in range(n):
        good, bad = f"A complete, careful answer number {i}.", f"Meh {i}."
        a, b, label = (good, bad, "A") if i % 2 else (bad, good, "B")
        out.append({"question": f"{prefix} question {i}?", "answer_a": a, "answer_b": b, "label": label})
    return out


def scripted_judge(conv: Conversation) -> str:
    system = conv[0]["content"] if conv[0]["role"] == "system" else ""
    user = conv[-1]["content"]
    if "prompt engineer" in system:
        task = re.search(r'"""\n(.*?)\n"""', user, re.S)
        assert task, user
        if "distinct reason" in user:
            return "<START>It does not say that complete answers are better.<END>"
        if "improved version" in user:
            return f"<START>{task.group(1)} Complete answers beat short ones.<END>"
        return f"<START>{task.group(1)}<END>"
    if "Complete answers beat short ones" not in system:
        return "[[A]]"  # position bias
    a = re.search(r"=== Answer A ===\n(.*?)\n=== End of Answer A ===", user, re.S)
    b = re.search(r"=== Answer B ===\n(.*?)\n=== End of Answer B ===", user, re.S)
    assert a and b
    return "[[A]]" if len(a.group(1)) > len(b.group(1)) else "[[B]]"


def test_judge_agreement_optimizes_a_judge_template_toward_human_verdicts(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    engine.reply = scripted_judge
    payload = body(
        task_type="judge-agreement",
        task_description="Agree with our raters on which answer is better",
        labels=[],
        initial_prompt=None,
        judge_template="pairwise",
    )
    payload["data"] = {
        "train": {"rows": _judge_rows("t", 16)},
        "dev": {"rows": _judge_rows("d", 8)},
        "test": {"rows": _judge_rows("x", 8)},
    }
    payload["hyperparameters"]["rounds"] = 1
    job_id = submit_po(payload)
    assert run_job(str(job_id)) == "succeeded"
    _, out = results(db, job_id)
    test = out.evaluation["test"]
    assert test["initial"]["accuracy"] == pytest.approx(0.5)
    assert test["best"]["accuracy"] == pytest.approx(1.0)
    assert out.best_template is not None
    assert out.best_template["system"].endswith("Complete answers beat short ones.")
    assert "{answer_a}" in out.best_template["user"] and "[[A]]" in out.best_template["user"]


def test_a_separate_optimizer_model_is_loaded_beside_the_task_model(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    optimizer = ScriptedEngine(scripted)
    loaded: list[str] = []

    def load(name: str) -> ScriptedEngine:
        loaded.append(name)
        return optimizer

    context.current().engines.load_engine = load  # type: ignore[assignment]
    with db.unit_of_work() as session:
        models_repo.upsert(session, "bigger-optimizer", "transformers", None)
    job_id = submit_po(body(optimizer_model="bigger-optimizer"))
    assert run_job(str(job_id)) == "succeeded"
    assert loaded == ["bigger-optimizer"]
    optimizer_prompts = [conv for batch in optimizer.batches for conv in batch]
    task_prompts = [conv for batch in engine.batches for conv in batch]
    assert optimizer_prompts and all("prompt engineer" in conv[0]["content"] for conv in optimizer_prompts)
    assert task_prompts and not any("prompt engineer" in conv[0]["content"] for conv in task_prompts)


def test_shutdown_hands_the_job_back_and_the_next_worker_finishes_it_without_paying_twice(
    db: RollbackDatabase, engine: ScriptedEngine, submit_po: Callable[[dict[str, Any]], uuid.UUID]
) -> None:
    job_id = submit_po(body())
    original = engine.generate
    ctx = context.current()

    def stopping(prompts: Any, sampling: Any) -> Any:
        if len(engine.batches) == 4:
            ctx.shutdown.set()  # SIGTERM while this batch is on the engine
        return original(prompts, sampling)

    engine.generate = stopping  # type: ignore[method-assign]
    assert run_job(str(job_id)) == "handed back (shutdown)"
    # The call in flight (a chunk of 16 prompts: four engine batches of 4) finished; no other started.
    assert len(engine.batches) == 8
    with db.unit_of_work() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
    calls_before = len(engine.batches)

    ctx.shutdown.clear()
    engine.generate = original  # type: ignore[method-assign]
    assert run_job(str(job_id)) == "succeeded"
    job, _ = results(db, job_id)
    assert job.status == "succeeded" and job.attempts == 1
    # The calls made before the shutdown came from the prediction cache the second time.
    assert job.detail is not None and job.detail["usage"]["cache_hits"] >= calls_before - 1


def test_a_long_job_whose_runner_cannot_load_fails_its_attempt_instead_of_hanging(
    db: RollbackDatabase,
    engine: ScriptedEngine,
    submit_po: Callable[[dict[str, Any]], uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken deploy (the kind's module does not import): the claimed job goes back to the queue with
    the reason, then fails after its last attempt; it never stays `running` with no one running it."""

    def broken(self: JobKind) -> Any:
        raise ImportError("cannot import name 'STOP'")

    monkeypatch.setattr(JobKind, "load_runner", broken)
    ctx = context.current()
    job_id = submit_po(body())
    long_jobs = LongJobs(ctx, LeaseKeeper(db, ctx.worker_id, 600))
    long_jobs._stop.set()  # no background starts: this test claims by hand
    for attempt in (1, 2):
        assert long_jobs.claim_and_start(job_id) == attempt
        job, _ = results(db, job_id)
        assert job.error is not None and "could not start" in job.error and "STOP" in job.error
    assert job.status == "failed"  # job_max_attempts is 2 here
    assert long_jobs.running() == []
