"""What a judging job carries from the API to the worker: a pydantic model, stored with the job and
re-validated by the worker (never a dict whose keys the reader has to know)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.engine.base import SamplingParams
from app.judging.domain import JudgeOptions, Mode, Scale, SwapMode, TemplateSpec, VerdictMode, VerdictParser
from app.judging.execution import MARKER_CLOSE
from app.judging.jury import Aggregate
from app.judging.verdict_cache import CachePolicy

Priority = Literal["interactive", "batch"]


class ScaleParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int | float
    max: int | float


class JurorParams(BaseModel):
    """One judge of a jury: its model (a member job judges with it), weight and template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    weight: float = Field(default=1.0, gt=0)
    template: str | None = None


class JuryParams(BaseModel):
    """A jury job's judges (in the request's order) and how their verdicts combine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    judges: tuple[JurorParams, ...] = Field(min_length=2)
    aggregate: Aggregate


class JudgingParams(BaseModel):
    """A judging job's options, as recorded. Keys at their default are left out of the stored form,
    so jobs recorded before an option existed read the same."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode
    swap: SwapMode
    cot: bool
    temperature: float = Field(ge=0)
    max_tokens: int = Field(ge=1)
    # A recorded seed makes `swap: random` and sampling reproducible.
    seed: int
    reference_auto: bool
    template: str | None
    # Snapshot of every template used, so a later edit cannot change a queued job.
    templates: dict[str, TemplateSpec]
    scale: ScaleParams | None = None
    verdict_mode: VerdictMode = "generate"
    # How generated verdicts are read (the request's choice, else its templates').
    parser: VerdictParser = "strict"
    # "interactive": a client waits for the job (`?wait=`); workers schedule its calls first.
    priority: Priority = "batch"
    # The verdict cache: the job's policy (resolved when it was submitted) and its judge model's identity
    # (jobs recorded before the cache existed have none, and neither read nor write it).
    cache: CachePolicy = "off"
    model_key: str | None = None
    # Judgments per order (self-consistency): sampled decoding only, generated verdicts only.
    samples: int = Field(default=1, ge=1)
    # A jury job (its calls run in its member jobs, one per judge).
    jury: JuryParams | None = None

    @model_validator(mode="after")
    def _samples_are_sampled(self) -> Self:
        if self.samples > 1 and (self.temperature == 0 or self.verdict_mode != "generate"):
            raise ValueError("samples > 1 needs a temperature above 0 and generated verdicts")
        return self

    def stored(self) -> dict[str, Any]:
        """The form kept with the job: options at their default are left out (top level only)."""
        dumped = self.model_dump(mode="json")
        for name, info in type(self).model_fields.items():
            if not info.is_required() and getattr(self, name) == info.default:
                dumped.pop(name, None)
        return dumped

    def options(self) -> JudgeOptions:
        scale = self.scale or ScaleParams(min=1, max=10)
        return JudgeOptions(
            mode=self.mode,
            swap=self.swap,
            cot=self.cot,
            scale=Scale(min=scale.min, max=scale.max),
            seed=self.seed,
            verdict_mode=self.verdict_mode,
            parser=self.parser,
            samples=self.samples,
        )

    def sampling(self) -> SamplingParams:
        """How the job's judge calls decode. Greedy calls carry no seed, so greedy jobs share batches."""
        return SamplingParams(
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed if self.temperature > 0 else None,
            # A verdict-only reply is complete at the marker's closing brackets.
            stop=(MARKER_CLOSE,) if self.verdict_only() else (),
        )

    def verdict_only(self) -> bool:
        """Whether every template opens the reply with the verdict marker ("Verdict: [["): then the
        judgment is complete at the marker's closing brackets."""
        return all(spec.response_prefix for spec in self.templates.values())
