"""The verdict cache as one judging job uses it: the keys of an item's calls, the outcomes of the items
whose every call is cached (rebuilt by the pure judging core from the stored engine outputs), and the
entries to store for what the engine returned. The API process (a job answered whole from the cache)
and the worker (each item before its calls go to the scheduler) share it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from app.engine.base import Generation, LabelDistribution
from app.judging import cache_repository as cache_repo
from app.judging.domain import ItemOutcome, JudgeItem, JudgeOptions, PlannedCall, TemplateSpec
from app.judging.execution import PlannedItem, engine_labels, generation_outcome, score_outcome
from app.judging.params import JudgingParams
from app.judging.probabilities import verdict_labels
from app.judging.verdict_cache import (
    CachedOutput,
    CachePolicy,
    CallScope,
    call_key,
    decoding_identity,
    item_identity,
    reads,
    writes,
)


@dataclass(frozen=True)
class PlannedJudgment:
    """An item to judge with its template and its planned calls (an order each)."""

    template: TemplateSpec
    item: JudgeItem
    calls: Sequence[PlannedCall]


class JobCache:
    """One job's view of the verdict cache."""

    def __init__(self, policy: CachePolicy, scope: CallScope, options: JudgeOptions, logprobs: bool) -> None:
        self.policy = policy
        self.scope = scope
        self.options = options
        self.logprobs = logprobs

    @classmethod
    def for_job(
        cls, params: JudgingParams, tenant: str, shared: Literal["tenant", "operator"]
    ) -> JobCache | None:
        """The cache as the job may use it; None when it may not (``cache: off``, or a job recorded
        before the cache existed). ``shared``: the service's ``verdict_cache_scope``."""
        if params.cache == "off" or params.model_key is None:
            return None
        options = params.options()
        logprobs = params.verdict_mode == "logprobs"
        labels = engine_labels(verdict_labels(options.mode, options.scale)) if logprobs else None
        scope = CallScope(
            tenant=tenant if shared == "tenant" else None,
            model=params.model_key,
            parser=params.parser,
            decoding=decoding_identity(params.sampling(), params.verdict_mode, labels),
            scale=options.scale,
        )
        return cls(params.cache, scope, options, logprobs)

    @property
    def reads(self) -> bool:
        return reads(self.policy)

    def keys(self, judgment: PlannedJudgment) -> list[str]:
        item = item_identity(judgment.item)
        return [call_key(self.scope, judgment.template, item, c.order, c.sample) for c in judgment.calls]

    def lookup(self, session: Session, judgments: Sequence[PlannedJudgment]) -> list[ItemOutcome | None]:
        """Each judgment's outcome when every one of its calls is cached (and the policy reads the
        cache), else None; one query for all of them."""
        if not self.reads or not judgments:
            return [None] * len(judgments)
        keys = [self.keys(j) for j in judgments]
        found = cache_repo.find(session, [k for ks in keys for k in ks], self.scope.tenant)
        return [
            self._outcome(j, [found[k] for k in ks]) if ks and all(k in found for k in ks) else None
            for j, ks in zip(judgments, keys, strict=True)
        ]

    def _outcome(self, judgment: PlannedJudgment, outputs: list[CachedOutput]) -> ItemOutcome:
        planned = PlannedItem(judgment.calls, self.options)
        if self.logprobs:
            return score_outcome(planned, [o.distribution() for o in outputs])
        return generation_outcome(planned, [o.generation() for o in outputs])

    def entries(
        self, judgment: PlannedJudgment, outputs: Sequence[Generation | LabelDistribution]
    ) -> list[cache_repo.CacheEntry]:
        """What to store for the engine's outputs of the judgment's calls (nothing when the policy does
        not write)."""
        if not writes(self.policy):
            return []
        return [
            cache_repo.CacheEntry(
                key,
                self.scope.tenant,
                self.scope.model,
                call.order,
                call.prompt_hash,
                CachedOutput.of(output),
            )
            for key, call, output in zip(self.keys(judgment), judgment.calls, outputs, strict=True)
        ]
