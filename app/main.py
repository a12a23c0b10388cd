"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

import app.kinds  # noqa: F401 - registers the job kinds
from app import health
from app.apidocs.router import router as apidocs_router
from app.core.config import Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.limits import BodySizeLimit
from app.core.nul_bytes import refuse_nul_bytes
from app.core.state import AppState
from app.dashboard.router import router as dashboard_router
from app.datasets.router import router as datasets_router
from app.jobs import kinds as job_kinds
from app.jobs.router import add_results_route
from app.jobs.router import router as jobs_router
from app.judging.router import router as judging_router
from app.metrics.router import install_metrics
from app.models.router import router as models_router
from app.prompt_opt.router import router as prompt_opt_router
from app.self_reward.router import router as self_reward_router
from app.summaries.router import router as summaries_router
from app.webhooks.router import router as webhooks_router

API_VERSION = "0.1.0"


def create_app(settings: Settings | None = None, state: AppState | None = None) -> FastAPI:
    """Build the app. ``state`` may be given (tests); otherwise it is built from settings at startup."""
    settings = settings or (state.settings if state else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state is None
        judge = state if state is not None else AppState.build(settings)
        app.state.judge = judge
        try:
            yield
        finally:
            if owned:
                await judge.close()
            else:
                await judge.job_ends.stop()  # (it belongs to this event loop)

    app = FastAPI(
        title="Judge service",
        version=API_VERSION,
        description="LLM-as-a-judge over HTTP: pairwise and single-answer grading, reference-guided and "
        "chain-of-thought judging, position swap; jobs queued to model workers.",
        lifespan=lifespan,
        # Served by app.apidocs with local assets (FastAPI's own pages load theirs from a CDN).
        docs_url=None,
        redoc_url=None,
        # Before every route's own validation: Postgres cannot store a NUL character.
        dependencies=[Depends(refuse_nul_bytes)],
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(judging_router)
    app.include_router(prompt_opt_router)
    app.include_router(self_reward_router)
    add_results_route(job_kinds.results_models())
    app.include_router(jobs_router)
    app.include_router(summaries_router)
    app.include_router(webhooks_router)
    app.include_router(models_router)
    app.include_router(datasets_router)
    app.include_router(dashboard_router)
    app.include_router(apidocs_router)
    install_metrics(app, settings)
    return app
