"""Which jobs an API key may touch: each kind names the scope that creates its jobs, and only a key
holding that scope (or ``admin``) may list, read, follow or cancel jobs of that kind."""

from __future__ import annotations

import uuid

from fastapi import Depends

from app.auth import keys
from app.auth.dependencies import principal
from app.auth.service import Forbidden, Principal
from app.core.state import AppState, get_state
from app.jobs import kinds
from app.jobs import repository as jobs_repo


def visible_kinds(scopes: frozenset[str]) -> tuple[str, ...]:
    """The kinds whose jobs a key with ``scopes`` may see."""
    return tuple(name for name in kinds.names() if keys.allows(scopes, (kinds.get(name).scope,)))


def check_kind(caller: Principal, kind: str) -> None:
    """Forbidden (403) unless the caller's key holds the scope of jobs of ``kind``."""
    scope = kinds.get(kind).scope
    if not keys.allows(caller.scopes, (scope,)):
        raise Forbidden(f"this API key lacks the '{scope}' scope that {kind} jobs need")


def job_in_scope(
    job_id: uuid.UUID, caller: Principal = Depends(principal), state: AppState = Depends(get_state)
) -> None:
    """A dependency of the routes that take a job id: 403 when the job's kind needs a scope the key
    lacks. A job the tenant does not have passes, for the route to answer its own 404."""
    with state.db.unit_of_work() as session:
        kind = jobs_repo.kind_of(session, job_id, caller.tenant)
    if kind is not None:
        check_kind(caller, kind)
