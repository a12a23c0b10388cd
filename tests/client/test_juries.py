"""The client's `judges=` (a jury) against the real service, live on a local port: the live worker also
serves the second judge model (an engine of its own, loaded on demand), standing in for that model's
worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.models import repository as models_repo
from judge_client import InvalidArgument, Judge
from tests.client.live import LiveService, scripted_judge
from tests.workers.conftest import ScriptedEngine
from workers import context

OTHER = "judge-b"


@pytest.fixture
def judge(service: LiveService) -> Iterator[Judge]:
    with service.state.db.unit_of_work() as session:
        models_repo.upsert(session, OTHER, "transformers", None)
    pool = context.current().engines
    pool.load_engine = lambda model: ScriptedEngine(scripted_judge)
    pool.max_extra = 1
    with Judge(service.url, service.key) as client:
        yield client


def test_a_jury_through_the_client_reports_every_judge_and_their_agreement(
    judge: Judge, service: LiveService
) -> None:
    default = service.state.settings.default_model
    result = judge.pairwise("What is 2+2?", "It is four.", "5", judges=[default, OTHER], poll=0.05)
    assert result.verdict == "A"
    assert result.judges is not None
    assert [(j.model, j.verdict) for j in result.judges] == [(default, "A"), (OTHER, "A")]
    assert result.votes == {"A": 2, "B": 0, "tie": 0}
    jury = next(judge.jobs())
    assert jury.model.startswith("jury: ")
    summary = judge.summary(jury.id)
    assert summary.jury is not None
    assert [j.model for j in summary.jury.judges] == [default, OTHER]
    assert summary.jury.fleiss_items == 1


def test_weighted_jury_options_reach_the_service(judge: Judge, service: LiveService) -> None:
    default = service.state.settings.default_model
    graded = judge.single(
        "Say hello.",
        "hello there my friend",
        judges=[{"model": default, "weight": 2}, {"model": OTHER, "weight": 1}],
        aggregate="weighted",
        poll=0.05,
    )
    assert graded.score == pytest.approx(4.0)
    assert [j.weight for j in graded.judges or []] == [2, 1]
    with pytest.raises(InvalidArgument, match="judges must be a list"):
        judge.single("Say hello.", "hi", judges=OTHER)
