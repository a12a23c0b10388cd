"""Judging's job kinds (pairwise, single grading): params, results reader and runner, registered by
:mod:`app.kinds`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.core.cursors import decode_index_cursor, encode_cursor
from app.db.tables import Job
from app.jobs.kinds import JobKind, ResultsQuery
from app.jobs.schemas import ResultPage
from app.judging import repository as judging_repo
from app.judging.jury_members import members_moved, with_judges
from app.judging.params import JudgingParams

NAMES = ("judge_pairwise", "judge_single")


def read_results(session: Session, job: Job, query: ResultsQuery) -> ResultPage:
    """A page of the job's item results, in item order (only items in ``query.status`` if given)."""
    after = decode_index_cursor(query.cursor) if query.cursor else -1
    items = judging_repo.results_page(session, job.id, after, query.limit + 1, query.status)
    next_cursor = None
    if len(items) > query.limit:
        items = items[: query.limit]
        next_cursor = encode_cursor([items[-1].index])
    return ResultPage(
        job_id=job.id,
        status=job.status,  # type: ignore[arg-type]
        results=with_judges(session, job, items),
        next_cursor=next_cursor,
    )


KINDS = tuple(
    JobKind(
        name=name,
        params=JudgingParams,
        results=read_results,
        results_model=ResultPage,
        # Judging jobs are fused into the worker's judging loop.
        runner="workers.tasks:run_judging",
        scope="judge",
        # A jury job's members are judging jobs of its kind.
        members_moved=members_moved,
    )
    for name in NAMES
)
