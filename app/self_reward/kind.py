"""Self-reward's job kind, registered by :mod:`app.kinds`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.tables import Job
from app.jobs.kinds import JobKind, ResultsQuery
from app.self_reward import service
from app.self_reward.schemas import SelfRewardRequest, SelfRewardResults


def read_results(session: Session, job: Job, query: ResultsQuery) -> SelfRewardResults:
    """The run's iterations and models so far (not paged)."""
    return service.results(session, job)


KIND = JobKind(
    name=service.KIND,
    params=SelfRewardRequest,
    results=read_results,
    results_model=SelfRewardResults,
    runner="workers.self_reward:run_self_reward",
    scope="jobs",
    long=True,
)
