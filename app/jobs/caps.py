"""Cost bounds of long jobs (prompt optimization, self-reward): caps on each size parameter of a request
and on the calls and tokens a job projects. The caps are settings; a request over one is a 422 that
names the parameter and the cap (its environment variable and value)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.core.config import Settings
from app.core.errors import InvalidInput
from app.jobs.schemas import CapCheck


def env_name(setting: str) -> str:
    """The environment variable of a setting: ``max_job_calls`` -> ``JUDGE_MAX_JOB_CALLS``."""
    return f"JUDGE_{setting.upper()}"


@dataclass(frozen=True)
class SizeCap:
    """A request's size parameter and the setting that caps it; ``unit`` names what a count counts
    (e.g. "examples" for a data set's size)."""

    field: str
    value: int
    setting: str
    unit: str | None = None


def check_sizes(settings: Settings, sizes: Iterable[SizeCap]) -> None:
    """InvalidInput (422) for the first size over its cap, naming the field and the cap."""
    for size in sizes:
        limit = int(getattr(settings, size.setting))
        if size.value > limit:
            amount = f"has {size.value} {size.unit}" if size.unit else f"is {size.value}"
            raise InvalidInput(
                f"{size.field} {amount}, over the cap {env_name(size.setting)}={limit}", size.field
            )


CALLS_CAP = env_name("max_job_calls")
TOKENS_CAP = env_name("max_job_tokens")
_UNITS = {CALLS_CAP: "model calls", TOKENS_CAP: "tokens"}


def cost_caps(settings: Settings, calls: int, tokens: int) -> list[CapCheck]:
    """The per-job caps on model calls and tokens, against a job's projected (or budget-bounded) cost."""
    return [
        CapCheck(
            setting=CALLS_CAP,
            limit=settings.max_job_calls,
            projected=calls,
            ok=calls <= settings.max_job_calls,
        ),
        CapCheck(
            setting=TOKENS_CAP,
            limit=settings.max_job_tokens,
            projected=tokens,
            ok=tokens <= settings.max_job_tokens,
        ),
    ]


def check_cost(caps: Iterable[CapCheck], advice: str, fields: Mapping[str, str] | None = None) -> None:
    """InvalidInput (422) naming the first cap the job's projection exceeds; ``advice`` says how to fit,
    ``fields`` names the request field that bounds each cap (by the cap's environment variable)."""
    for cap in caps:
        if not cap.ok:
            raise InvalidInput(
                f"the job projects up to {cap.projected} {_UNITS.get(cap.setting, 'units')}, over the cap "
                f"{cap.setting}={cap.limit}; {advice} (a dry run shows the projection)",
                (fields or {}).get(cap.setting),
            )
