"""verdict_mode: logprobs — one scoring pass per call, distributions combined across orders."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from app.engine.base import Conversation
from app.jobs import service as jobs_service
from app.judging.execution import engine_labels
from tests.conftest import RollbackDatabase
from tests.workers.conftest import ScriptedEngine
from workers.tasks import run_job

Submit = Callable[[str, dict[str, Any]], uuid.UUID]
Install = Callable[[Callable[[Conversation], str]], ScriptedEngine]


def _results(db: RollbackDatabase, job_id: uuid.UUID) -> list[Any]:
    with db.unit_of_work() as session:
        return jobs_service.all_results(session, jobs_service.get_job(session, job_id, "default"))


def _never_generates(conv: Conversation) -> str:
    raise AssertionError("logprob mode must not generate")


def test_pairwise_distributions_are_mapped_back_and_averaged(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(_never_generates)
    engine.label_weights = lambda conv: {"A": 7.0, "B": 2.0, "C": 1.0}  # first-position bias
    job_id = submit(
        "pairwise",
        {
            "verdict_mode": "logprobs",
            "swap": "conservative",
            "items": [{"question": "q", "answer_a": "a", "answer_b": "b"}],
        },
    )
    run_job(str(job_id))
    [r] = _results(db, job_id)
    assert engine.scored_labels == [["A", "B", "C"]]
    ab, ba = r.orders
    assert ab.probabilities == pytest.approx({"A": 0.7, "B": 0.2, "tie": 0.1})
    assert ba.probabilities == pytest.approx({"A": 0.2, "B": 0.7, "tie": 0.1})  # judge's A is answer_b
    assert r.probabilities == pytest.approx({"A": 0.45, "B": 0.45, "tie": 0.1})
    assert r.consistent is False
    assert ab.raw.startswith("P(A)=0.7")


def test_single_scores_with_multi_digit_scale(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(_never_generates)
    engine.label_weights = lambda conv: {"7]]": 6.0, "10]]": 3.0}
    job_id = submit("single", {"verdict_mode": "logprobs", "items": [{"question": "q", "answer": "a"}]})
    run_job(str(job_id))
    [r] = _results(db, job_id)
    # "1" is a prefix of "10": each score is scored with its closing brackets.
    assert engine.scored_labels == [[f"{s}]]" for s in range(1, 11)]]
    assert r.score == 7
    total = 6 + 3 + 8
    assert r.expected_score == pytest.approx(
        (7 * 6 + 10 * 3 + sum(s for s in range(1, 11) if s not in (7, 10))) / total
    )
    assert set(r.probabilities) == {str(s) for s in range(1, 11)}


def test_logprob_and_generate_jobs_are_never_fused(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    engine = make_worker(lambda conv: "A]]")
    item = {"question": "q", "answer_a": "a", "answer_b": "b"}
    generated = submit("pairwise", {"swap": "none", "items": [item]})
    scored = submit("pairwise", {"swap": "none", "verdict_mode": "logprobs", "items": [item]})
    run_job(str(generated))
    # One worker loop ran both jobs, in separate engine calls: one generation, one scoring pass.
    assert [len(b) for b in engine.batches] == [1, 1]
    assert engine.scored_labels == [["A", "B", "C"]] and len(engine.samplings) == 1
    assert _results(db, scored)[0].probabilities is not None


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["A", "B", "C"], ["A", "B", "C"]),
        (["1", "2", "10"], ["1]]", "2]]", "10]]"]),
        (["1", "2", "3"], ["1", "2", "3"]),
    ],
)
def test_engine_labels(labels: list[str], expected: list[str]) -> None:
    assert engine_labels(labels) == expected
