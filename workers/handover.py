"""Requests the scheduler hands straight to an engine that batches continuously itself (vLLM, see
:class:`app.engine.base.SelfBatchingEngine`), instead of building batches for it.

Such an engine gets each request as it comes, with its priority class as the engine's request priority;
cancel and worker stop abort the engine's requests. Tenant fair shares, aging and the scheduler's token
budget do not apply to them: the engine's own scheduler decides (vLLM: priority, then arrival; its
``max_num_batched_tokens``). A request for a model the engine does not hold now (a weight swap in
progress, a model not loaded yet) is left to the scheduler's queue.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from app.engine.base import (
    Conversation,
    Engine,
    EngineError,
    NotServing,
    SamplingParams,
    SelfBatchingEngine,
)

Settle = Callable[..., None]


@dataclass(frozen=True)
class _Handed:
    engine: SelfBatchingEngine
    job_id: uuid.UUID | None
    future: Future[Any]


class HandOver:
    """The requests handed to self-batching engines and still out. ``settle(future, result=...,
    error=...)`` resolves a caller's future once (the scheduler's)."""

    def __init__(self, peek: Callable[[str], Engine | None], settle: Settle) -> None:
        self._peek = peek
        self._settle = settle
        self._lock = threading.Lock()
        self._out: dict[str, _Handed] = {}
        self._ids = itertools.count()

    def submit(
        self,
        model: str,
        prompt: Conversation,
        sampling: SamplingParams | None,
        labels: Sequence[str] | None,
        priority: int,
        job_id: uuid.UUID | None,
        future: Future[Any],
    ) -> bool:
        """Hand the request to ``model``'s engine if that engine batches itself and holds the model
        now; ``future`` then resolves with the engine's answer. False: the caller queues it."""
        engine = self._peek(model)
        if not isinstance(engine, SelfBatchingEngine):
            return False
        request_id = f"judge-{next(self._ids)}"
        with self._lock:
            self._out[request_id] = _Handed(engine, job_id, future)
        try:
            if sampling is not None:
                inner = engine.submit_generate(request_id, model, prompt, sampling, int(priority))
            else:
                assert labels is not None
                inner = engine.submit_scores(request_id, model, prompt, labels, int(priority))
        except NotServing:
            self._forget(request_id)
            return False
        except EngineError as exc:  # a closed or broken engine: the request fails alone
            self._forget(request_id)
            self._settle(future, error=exc)
            return True
        inner.add_done_callback(lambda done: self._finished(request_id, done))
        return True

    def _finished(self, request_id: str, inner: Future[Any]) -> None:
        handed = self._forget(request_id)
        if handed is None:
            return  # cancelled or stopped: its future is settled already
        error = inner.exception() if not inner.cancelled() else EngineError("the engine dropped the request")
        if error is not None:
            self._settle(handed.future, error=error)
        else:
            self._settle(handed.future, inner.result())

    def _forget(self, request_id: str) -> _Handed | None:
        with self._lock:
            return self._out.pop(request_id, None)

    def cancel(self, job_id: uuid.UUID, error: BaseException) -> int:
        """Abort the job's requests in their engines; their futures fail with ``error`` now."""
        return self._abort(lambda handed: handed.job_id == job_id, error)

    def stop(self, error: BaseException) -> int:
        """Abort every request out (the worker is stopping)."""
        return self._abort(lambda handed: True, error)

    def _abort(self, which: Callable[[_Handed], bool], error: BaseException) -> int:
        with self._lock:
            picked = {rid: h for rid, h in self._out.items() if which(h)}
            for rid in picked:
                del self._out[rid]
        by_engine: dict[int, tuple[SelfBatchingEngine, list[str]]] = {}
        for rid, handed in picked.items():
            by_engine.setdefault(id(handed.engine), (handed.engine, []))[1].append(rid)
            self._settle(handed.future, error=error)
        for engine, ids in by_engine.values():
            engine.abort(ids)
        return len(picked)

    def holds(self, futures: Collection[Future[Any]]) -> bool:
        """Whether any of ``futures`` waits on an engine (nothing for the scheduler to run for it)."""
        with self._lock:
            out = {id(h.future) for h in self._out.values()}
        return any(id(f) in out for f in futures)
