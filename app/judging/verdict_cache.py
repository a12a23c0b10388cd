"""The verdict cache's rules, without I/O: when a job may read or write the cache, and the key of one
judge call.

A key names everything that decides what the engine returns for a call and how it is read: the scope
(the tenant, or none when the operator shares the cache), the model and its weights' identity, the
template (name@version and the hash of its text), the parser, the decoding (temperature, token limit,
stop strings, the seed when sampling, the verdict mode and the scored labels), the scale, the item's
inputs and the order. An identical call has the same key; a change to any part gives another.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.engine.base import Generation, LabelDistribution, SamplingParams
from app.judging.domain import JudgeItem, Order, Scale, TemplateSpec, VerdictMode, VerdictParser

# use: read the cache, and store what the engine returns on a miss; refresh: never read, store the new
# outputs (replacing the old); off: neither.
CachePolicy = Literal["use", "refresh", "off"]


def resolve_policy(requested: CachePolicy | None, temperature: float) -> CachePolicy:
    """The job's policy: the request's, else `use` for greedy decoding and `off` for sampled decoding.
    A sampled verdict is one draw: it is reused only when the request asks with an explicit `use` (and
    then only by a call with the same seed, which is part of the key)."""
    if requested is not None:
        return requested
    return "use" if temperature == 0 else "off"


def reads(policy: CachePolicy) -> bool:
    return policy == "use"


def writes(policy: CachePolicy) -> bool:
    return policy != "off"


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def model_identity(model_id: str | None, name: str, backend: str, artifact: str | None) -> str:
    """The judge model's identity: its registered row (a retrained model is another row, whatever its
    name), backend and weights' location, hashed (the location is the operator's business)."""
    return _digest(["model", model_id, name, backend, artifact])[:32]


@functools.lru_cache(maxsize=256)
def template_identity(spec: TemplateSpec) -> str:
    """name@version and the hash of everything the template renders."""
    text = [
        spec.mode,
        spec.system,
        spec.user,
        spec.response_prefix,
        spec.multi_turn,
        spec.reference,
        spec.cot,
    ]
    return f"{spec.name}@{spec.version}:{_digest(text)}"


def decoding_identity(
    sampling: SamplingParams, verdict_mode: VerdictMode, labels: Sequence[str] | None
) -> dict[str, Any]:
    """What decides the engine's output besides the prompt. The seed counts only when sampling (greedy
    decoding ignores it)."""
    return {
        "verdict_mode": verdict_mode,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "stop": list(sampling.stop),
        "seed": sampling.seed if sampling.temperature > 0 else None,
        "labels": list(labels) if labels is not None else None,
    }


@dataclass(frozen=True)
class CallScope:
    """The parts of a key that a job's calls share."""

    tenant: str | None  # None: shared by every tenant (verdict_cache_scope = operator)
    model: str  # :func:`model_identity`
    parser: VerdictParser
    decoding: dict[str, Any]  # :func:`decoding_identity`
    scale: Scale

    @functools.cached_property
    def digest(self) -> str:
        scale = [self.scale.min, self.scale.max]
        return _digest([self.tenant, self.model, self.parser, self.decoding, scale])


def item_identity(item: JudgeItem) -> str:
    """The hash of what the judge is shown of the item (not the client's id for it)."""
    shown: list[object] = [item.turns, item.answers_a, item.answers_b, item.references, item.judged_turn]
    if item.rubric is not None:  # (only then: the keys of items without one stay as they were)
        shown.append([item.rubric.criteria, item.rubric.descriptions])
    return _digest(shown)


def call_key(scope: CallScope, template: TemplateSpec, item: str, order: Order, sample: int = 0) -> str:
    """SHA-256 (hex) of a call's identity: ``item`` is the item's :func:`item_identity`; ``sample``
    which of the order's samples the call is."""
    return _digest([scope.digest, template_identity(template), item, order, sample])


@dataclass(frozen=True)
class CachedOutput:
    """What the engine returned for a call: generated text, or a label distribution."""

    text: str | None = None
    stop_string: str | None = None
    probabilities: dict[str, float] | None = None
    mass: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0

    @classmethod
    def of(cls, output: Generation | LabelDistribution) -> CachedOutput:
        if isinstance(output, LabelDistribution):
            return cls(probabilities=dict(output.probs), mass=output.mass, tokens_in=output.tokens_in)
        return cls(
            text=output.text,
            stop_string=output.stop_string,
            tokens_in=output.tokens_in,
            tokens_out=output.tokens_out,
        )

    def generation(self) -> Generation:
        """As the engine's generation; no engine time (latency and queue time 0)."""
        return Generation(
            self.text or "", self.tokens_in, self.tokens_out, "stop", stop_string=self.stop_string
        )

    def distribution(self) -> LabelDistribution:
        """As the engine's label distribution; no engine time."""
        mass = self.mass if self.mass is not None else 1.0
        return LabelDistribution(probs=dict(self.probabilities or {}), tokens_in=self.tokens_in, mass=mass)
