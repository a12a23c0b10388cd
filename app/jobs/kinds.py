"""Job kinds, registered by the packages that own them; this base layer knows none of them.

A kind says how its params are validated (a pydantic model, re-validated wherever a job's params are
read: the API that records them, the worker that runs them), how its results are read, what runs it in
a worker (an import path, so the API never imports worker code) and whether it is a long job (an
orchestrator with its own quota, rather than judging fused into shared batches). The list of kinds is
written once, in :mod:`app.kinds`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.db.tables import Job


@dataclass(frozen=True)
class ResultsQuery:
    """What a caller asked of a job's results (paging applies to kinds whose results are items)."""

    limit: int
    cursor: str | None = None
    status: str | None = None


ResultsReader = Callable[[Session, Job, ResultsQuery], BaseModel]
# Called (in the member's transaction, with the parent's row locked) when a member job of a job of
# this kind progresses or ends: (session, the job queue, the parent job).
MembersMoved = Callable[[Session, Any, Job], None]


@dataclass(frozen=True)
class JobKind:
    name: str
    params: type[BaseModel]
    results: ResultsReader
    results_model: type[BaseModel]
    # "module:function" of the worker-side runner.
    runner: str
    # The API key scope that creates jobs of this kind, and alone may read, follow and cancel them.
    scope: str
    long: bool = False
    # Kinds whose jobs have member jobs (a jury's judges): keeps the parent's progress and ends it.
    members_moved: MembersMoved | None = None

    def validate_params(self, params: dict[str, Any]) -> BaseModel:
        """The job's params as its model (raises pydantic's ValidationError when they do not fit)."""
        return self.params.model_validate(params)

    def load_runner(self) -> Callable[..., Any]:
        module, _, name = self.runner.partition(":")
        runner: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return runner


_registry: dict[str, JobKind] = {}


def register(kind: JobKind) -> None:
    """Make ``kind`` known (once per name; registering the same kind again is a no-op)."""
    known = _registry.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"job kind {kind.name!r} is registered twice, differently")
    _registry[kind.name] = kind


def get(name: str) -> JobKind:
    try:
        return _registry[name]
    except KeyError:
        raise LookupError(f"unknown job kind {name!r}") from None


def names() -> tuple[str, ...]:
    return tuple(_registry)


def long_kinds() -> tuple[str, ...]:
    """Kinds that run for hours as orchestrators (a tenant may have only a few active)."""
    return tuple(name for name, kind in _registry.items() if kind.long)


def results_models() -> tuple[type[BaseModel], ...]:
    """Every kind's results model, without repeats, in registration order."""
    return tuple(dict.fromkeys(kind.results_model for kind in _registry.values()))
