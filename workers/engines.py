"""The engines a worker holds: its own model's, and others loaded on demand. Only the scheduler
(`workers/scheduler.py`) touches them."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TypeVar

from app.engine.base import Conversation, Engine
from app.engine.precision import precision_of
from app.models.availability import LoadReports

T = TypeVar("T")

log = logging.getLogger(__name__)

# How long a worker trusts what it looked up about whose weights a name is.
OWNER_SECONDS = 30.0
_now = time.monotonic  # (a test moves this clock)


class EngineBusy(RuntimeError):
    """Serving the model now would swap or close an engine that a running batch is using."""


class EnginePool:
    """``main`` serves ``model`` (and, by swapping its weights in place, models trained from it when no
    separate engine can be loaded). Other models get engines of their own, loaded on demand, at most
    ``max_extra`` at once (least recently used closed first). A load on demand that fails is told to
    ``reports`` (the API then refuses that model's jobs, saying why), one that succeeds clears it.
    ``weights_owner`` names the model whose engine serves a model's weights (another name registered
    for the same folder is served by that model's engine: see :meth:`serving_name`)."""

    def __init__(
        self,
        main: Engine,
        model: str,
        max_extra: int,
        load_engine: Callable[[str], Engine] | None = None,
        family_path: Callable[[str], Path] | None = None,
        family_of: Callable[[str], str | None] | None = None,
        reports: LoadReports | None = None,
        weights_owner: Callable[[str], str] | None = None,
    ) -> None:
        self.main = main
        self.model = model
        self.max_extra = max_extra
        self.load_engine = load_engine
        self.family_path = family_path
        self.family_of = family_of
        self.reports = reports
        self.weights_owner = weights_owner
        self._owners: dict[str, tuple[str, float]] = {}  # name -> (owner, when looked up)
        self.extra: OrderedDict[str, Engine] = OrderedDict()
        # Whose weights ``main`` holds now: ``model``, or a descendant it swapped to.
        self.loaded_model = model

    def serving_name(self, model: str) -> str:
        """The name ``model``'s requests are batched and served under: the model registered first for
        its weights, else ``model``. Remembered for OWNER_SECONDS (a name registered again for another
        folder is seen within that long, without a registry query per request)."""
        if self.weights_owner is None or model == self.model:
            return model
        now = _now()
        found = self._owners.get(model)
        if found is None or now - found[1] >= OWNER_SECONDS:
            try:
                found = (self.weights_owner(model), now)
            except Exception:  # noqa: BLE001 - the registry unreachable: serve it under its own name
                log.warning("could not look up whose weights %r are", model, exc_info=True)
                return found[0] if found is not None else model
            self._owners[model] = found
        return found[0]

    def peek(self, model: str) -> Engine | None:
        """The engine holding ``model``'s weights now, without loading anything."""
        if model == self.loaded_model:
            return self.main
        return self.extra.get(model)

    def get(self, model: str, busy: Collection[Engine] = ()) -> Engine:
        """The engine serving ``model``, loading or swapping as needed; never one in ``busy`` that
        holds other weights (EngineBusy)."""
        held = self.peek(model)
        if held is not None:
            if model in self.extra:
                self.extra.move_to_end(model)
            return held
        family = model == self.model or self._in_family(model)
        if self.load_engine is not None and self.max_extra > 0 and model != self.model:
            return self._load_extra(model, busy)
        if family:
            if any(e is self.main for e in busy):
                raise EngineBusy(f"the engine of {self.loaded_model!r} is busy")
            self._loading(model, lambda: self._swap_in(model), lambda _: self.main)
            self.loaded_model = model
            return self.main
        raise RuntimeError(f"this worker serves {self.model!r} and cannot load {model!r}")

    def _load_extra(self, model: str, busy: Collection[Engine]) -> Engine:
        assert self.load_engine is not None
        while len(self.extra) >= self.max_extra:
            victim = next((name for name, e in self.extra.items() if not any(e is b for b in busy)), None)
            if victim is None:
                raise EngineBusy(f"every extra engine is busy; cannot load {model!r}")
            self.extra.pop(victim).close()
        load = self.load_engine
        engine = self._loading(model, lambda: load(model), lambda loaded: loaded)
        self.extra[model] = engine
        return engine

    def _swap_in(self, model: str) -> None:
        path = self.family_path(model) if self.family_path is not None else None
        if path is None:
            raise RuntimeError(f"no local weights for {model!r}")
        self.main.load_weights(path, model)

    def _loading(self, model: str, load: Callable[[], T], engine: Callable[[T], Engine]) -> T:
        """``load()``, its outcome told to ``reports`` (with the dtype of ``engine(outcome)``, the
        engine that now holds ``model``)."""
        try:
            loaded = load()
        except Exception as error:
            if self.reports is not None:
                self.reports.failed(model, error)
            raise
        if self.reports is not None:
            self.reports.loaded(model, precision_of(engine(loaded)))
        return loaded

    def _in_family(self, model: str) -> bool:
        return self.family_of is not None and self.family_of(model) == self.model

    def render_chat(self, model: str, conversation: Conversation) -> str:
        """The prompt text ``model`` would see (any loaded engine of its family renders alike)."""
        engine = self.peek(model) or self.main
        return engine.render_chat(conversation)

    def close(self) -> None:
        for engine in self.extra.values():
            engine.close()
        self.extra.clear()
        self.main.close()


# Without a figure from the engine: tokens of key/value memory a batch may hold.
_FALLBACK_BATCH_TOKENS = 65_536


def default_batch_tokens(engine: Engine, share: float = 0.25) -> int:
    """The batch token budget when none is set: ``share`` of the device's memory (GPU memory on a GPU,
    else the machine's) over the model's key/value bytes per token."""
    per_token = getattr(engine, "kv_bytes_per_token", None)
    memory = getattr(engine, "device_memory_bytes", None)
    if not isinstance(per_token, int) or not isinstance(memory, int) or per_token <= 0:
        return _FALLBACK_BATCH_TOKENS
    budget = max(4096, int(memory * share) // per_token)
    log.info(
        "batch token budget: %d tokens (%.1f GiB of key/value memory at %d bytes per token)",
        budget,
        budget * per_token / 2**30,
        per_token,
    )
    return budget
