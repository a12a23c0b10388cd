"""``Judge.summary`` against the live service: one job's, and the labelled jobs'."""

from __future__ import annotations

import pytest

from judge_client import Judge, NotFound, Summary
from tests.client.live import LiveService

PAIRS = [
    {"question": f"q{i}", "answer_a": "a long and careful answer", "answer_b": "short"} for i in range(3)
] + [{"question": "q3", "answer_a": "no", "answer_b": "a longer answer than that"}]


def test_summary_of_a_job_and_of_labelled_jobs(service: LiveService) -> None:
    with Judge(service.url, service.key) as judge:
        labels = {"run": "s1", "model_a": "tuned", "model_b": "base"}
        job = judge.submit_batch(PAIRS, wait=30, metadata=labels)
        one = judge.summary(job, rounds=100, seed=1)
        assert isinstance(one, Summary) and one.jobs == [job.id]
        assert (one.bootstrap_rounds, one.seed, one.baseline) == (100, 1, "base")
        tuned = next(r for r in one.win_rates if r.model == "tuned")
        assert (tuned.wins, tuned.losses, tuned.win_rate) == (3, 1, 0.75)
        assert tuned.win_rate_interval.low <= 0.75 <= tuned.win_rate_interval.high
        assert [r.model for r in one.length_controlled] == ["tuned"]
        assert judge.summary(metadata={"run": "s1"}, rounds=100, seed=1) == one
        with pytest.raises(NotFound):
            judge.summary(metadata={"run": "none"})
        with pytest.raises(ValueError):
            judge.summary(job, metadata={"run": "s1"})
        with pytest.raises(ValueError):
            judge.summary()
