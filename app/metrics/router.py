"""``GET /metrics`` in the Prometheus text format, and wiring the metrics into the app."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from app.auth.dependencies import require
from app.core.config import Settings
from app.core.state import AppState
from app.metrics.collector import ServiceCollector
from app.metrics.http import HttpMetrics, RequestMetricsMiddleware


def _router(admin_only: bool) -> APIRouter:
    # Not part of the JSON API contract (openapi.yaml): a Prometheus scrape target.
    router = APIRouter(
        include_in_schema=False, dependencies=[Depends(require("admin"))] if admin_only else []
    )

    @router.get("/metrics")
    def metrics(request: Request) -> Response:
        registry: CollectorRegistry = request.app.state.metrics_registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Count requests and serve ``/metrics`` as ``settings.metrics_access`` says (``off``: neither)."""
    if settings.metrics_access == "off":
        return
    # One registry per app (not prometheus_client's global one), so several apps in one process
    # (tests) keep their own figures.
    registry = CollectorRegistry()

    def state() -> AppState:
        judge: AppState = app.state.judge
        return judge

    registry.register(ServiceCollector(state, settings.metrics_jobs_cache_seconds))
    app.state.metrics_registry = registry
    app.add_middleware(RequestMetricsMiddleware, metrics=HttpMetrics(registry))
    app.include_router(_router(admin_only=settings.metrics_access == "admin"))
