"""What an API process remembers between judging submissions, so a stream of them does not repeat the
same lookups: resolved models, tenants' active-job counts and models' context windows."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.jobs.capacity import ActiveJobCounts
from app.models.context import ContextWindows
from app.models.service import ModelRoutes


@dataclass
class RecentLookups:
    model_routes: ModelRoutes = field(default_factory=ModelRoutes)
    active_jobs: ActiveJobCounts = field(default_factory=ActiveJobCounts)
    context_windows: ContextWindows = field(default_factory=ContextWindows)
