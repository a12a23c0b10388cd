"""HTTP routes of summaries: one judging job's, or those of the judging jobs that carry some metadata."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query

from app.auth.dependencies import get_tenant, require
from app.core.errors import ERROR_RESPONSES
from app.core.state import AppState, get_state
from app.jobs import access
from app.summaries import service
from app.summaries.schemas import SummaryOut
from app.summaries.service import SummaryOptions

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require("judge"))])

DESCRIPTION = """Verdict counts, consistency and first-position rates; per model, win rate and
tie-adjusted win rate (pairwise) or mean score, overall and per category (grading), with 95 % percentile
bootstrap intervals; for games between every pair of models, Bradley–Terry ratings (Chatbot Arena's
logistic regression, Elo scale) with bootstrap intervals; for games against one baseline, AlpacaEval 2's
length-controlled win rates.

Models are named by MT-Bench item ids (`<question>|<model_1>[|<model_2>]|<turn>`, as `judge mtbench run`
submits them), else by the job's metadata `model_a` / `model_b`, else `A` / `B`; a category is the job's
metadata `category`. Items in error or still pending count only in the verdict figures."""


def options(
    rounds: int | None = Query(
        default=None,
        ge=0,
        description="Bootstrap resamples behind the intervals (0: none); default 1000 "
        "(`JUDGE_SUMMARY_BOOTSTRAP_ROUNDS`), at most `JUDGE_MAX_SUMMARY_BOOTSTRAP_ROUNDS`.",
    ),
    seed: int = Query(default=0, ge=0, le=2**32 - 1, description="Seed of the resampling."),
    baseline: str | None = Query(
        default=None,
        max_length=200,
        description="The model the others played against (length-controlled win rates); default: the only "
        "`model_b` that is never a `model_a`, if there is one.",
    ),
) -> SummaryOptions:
    return SummaryOptions(rounds=rounds, seed=seed, baseline=baseline)


@router.get(
    "/jobs/{job_id}/summary",
    operation_id="get_job_summary",
    summary="A judging job's summary: rates, scores and ratings with bootstrap intervals",
    description=DESCRIPTION,
    response_model=SummaryOut,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(access.job_in_scope)],
)
def get_job_summary(
    job_id: uuid.UUID,
    asked: SummaryOptions = Depends(options),
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> SummaryOut:
    return service.job_summary(state.db, job_id, tenant, state.settings, asked)


@router.get(
    "/summary",
    operation_id="get_jobs_summary",
    summary="The summary of the judging jobs with some metadata (e.g. an MT-Bench run)",
    description=DESCRIPTION,
    response_model=SummaryOut,
    responses=ERROR_RESPONSES,
)
def get_jobs_summary(
    metadata: list[str] = Query(
        max_length=32,
        description="Only jobs whose metadata has this `key:value` (repeat it: every one must match), e.g. "
        "`mtbench_run:my-run`.",
    ),
    asked: SummaryOptions = Depends(options),
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> SummaryOut:
    return service.jobs_summary(state.db, tenant, metadata, state.settings, asked)
