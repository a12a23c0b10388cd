"""Self-consistency in the worker: k sampled judgments per order, each sample with its own seed,
pooled into the item's verdict or score with every raw output kept."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from app.engine.base import Conversation
from app.jobs import service as jobs_service
from app.judging.samples import sample_seed
from tests.conftest import RollbackDatabase
from tests.workers.conftest import ScriptedEngine, longer_answer_judge
from workers.tasks import run_job

Submit = Callable[[str, dict[str, Any]], uuid.UUID]
Install = Callable[[Callable[[Conversation], str]], ScriptedEngine]


def _nth_call(reply: Callable[[Conversation, int], str]) -> Callable[[Conversation], str]:
    """A judge whose reply depends on how often it has seen this very prompt (0, 1, 2, ...)."""
    seen: Counter[str] = Counter()

    def answer(conv: Conversation) -> str:
        key = repr(conv)
        n = seen[key]
        seen[key] += 1
        return reply(conv, n)

    return answer


def _results(db: RollbackDatabase, job_id: uuid.UUID) -> list[dict[str, Any]]:
    with db.unit_of_work() as session:
        job = jobs_service.get_job(session, job_id, "default")
        assert job.status == "succeeded"
        return [r.model_dump() for r in jobs_service.all_results(session, job)]


def test_pairwise_samples_are_pooled_over_both_orders(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    # Every third look at a prompt, the judge calls it a tie; otherwise it prefers the longer answer (B).
    engine = make_worker(_nth_call(lambda conv, n: "C]]" if n % 3 == 2 else longer_answer_judge(conv)))
    pair = {"question": "Q?", "answer_a": "short", "answer_b": "a much longer answer"}
    body = {"items": [pair, pair], "swap": "conservative", "samples": 3, "temperature": 0.7, "seed": 5}
    job_id = submit("pairwise", body)
    assert run_job(str(job_id)) == "done"
    # 2 items x 2 orders x 3 samples, each sample decoded with its own seed.
    assert sum(len(batch) for batch in engine.batches) == 12
    assert {s.seed for s in engine.samplings} == {sample_seed(5, i) for i in range(3)}
    for r in _results(db, job_id):
        assert (r["status"], r["verdict"], r["consistent"]) == ("ok", "B", True)
        assert r["votes"] == {"A": 0, "B": 4, "tie": 2}
        assert r["agreement"] == 4 / 6
        assert [(o["order"], o["sample"]) for o in r["orders"]] == [
            (order, sample) for order in ("AB", "BA") for sample in range(3)
        ]
        assert (
            sorted(o["raw"] for o in r["orders"])
            == ["Verdict: [[A]]"] * 2 + ["Verdict: [[B]]"] * 2 + ["Verdict: [[C]]"] * 2
        )


def test_single_samples_give_the_mean_and_its_spread(
    db: RollbackDatabase, make_worker: Install, submit: Submit
) -> None:
    make_worker(_nth_call(lambda conv, n: ["6]]", "8]]", "no rating", "10]]"][n]))
    body = {"items": [{"question": "Q?", "answer": "A."}], "samples": 4, "temperature": 1.0}
    job_id = submit("single", body)
    assert run_job(str(job_id)) == "done"
    [r] = _results(db, job_id)
    # The unparseable sample is kept with its error and left out of the mean.
    assert (r["status"], r["score"], r["score_std"]) == ("ok", 8.0, 2.0)
    assert r["agreement"] == 1 / 3
    assert r["votes"] is None
    assert [o["sample"] for o in r["orders"]] == [0, 1, 2, 3]
    assert sum(o["error"] is not None for o in r["orders"]) == 1
    assert sorted(o["raw"] for o in r["orders"]) == [
        "Rating: [[10]]",
        "Rating: [[6]]",
        "Rating: [[8]]",
        "Rating: [[no rating",
    ]
