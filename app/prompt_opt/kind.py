"""Prompt optimization's job kind, registered by :mod:`app.kinds`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.tables import Job
from app.jobs.kinds import JobKind, ResultsQuery
from app.prompt_opt import service
from app.prompt_opt.schemas import PromptOptimizationRequest, PromptOptimizationResults


def read_results(session: Session, job: Job, query: ResultsQuery) -> PromptOptimizationResults:
    """The run's results (not paged)."""
    return service.results(session, job)


KIND = JobKind(
    name=service.KIND,
    params=PromptOptimizationRequest,
    results=read_results,
    results_model=PromptOptimizationResults,
    runner="workers.prompt_opt:run_prompt_opt",
    scope="jobs",
    long=True,
)
