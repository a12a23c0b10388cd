"""A worker that cannot load its model reports why (the API refuses the model's jobs meanwhile); a
worker that loads it clears the report."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from redis import Redis

from app.core.config import Settings
from app.engine.precision import Precision
from app.jobs.queue import queue_name
from app.models import repository as models_repo
from app.models.availability import (
    LoadReports,
    clear_load_failure,
    load_failure,
    load_failures,
    report_load_failure,
)
from app.models.registry import ModelUnavailable
from app.models.serving import served_dtypes
from tests.conftest import RollbackDatabase
from workers import main as worker_main
from workers.engines import EnginePool


def test_a_model_whose_folder_is_gone_is_reported_for_its_queue(
    settings: Settings, db: RollbackDatabase, redis: Redis, tmp_path: Path
) -> None:
    gone = tmp_path / "gone-model"
    with db.unit_of_work() as session:
        models_repo.upsert(session, "gone-model", "transformers", str(gone))
    with pytest.raises(ModelUnavailable):
        worker_main.load_own_engine(settings, db, redis, "gone-model", "host:1:gone-model")
    failure = load_failure(redis, queue_name("gone-model"), "gone-model")
    assert failure is not None
    assert (failure.model, failure.worker) == ("gone-model", "host:1:gone-model")
    assert failure.reason.startswith("ModelUnavailable: model 'gone-model' is not on disk")


def test_loading_the_model_clears_the_report(
    settings: Settings, db: RollbackDatabase, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = queue_name("fixed-model")
    report_load_failure(redis, queue, "fixed-model", "its folder was missing", "host:1:fixed-model")
    engine = object()
    monkeypatch.setattr(worker_main, "resolve_model_path", lambda *_: None)
    monkeypatch.setattr(worker_main, "build_engine", lambda *_: engine)
    assert worker_main.load_own_engine(settings, db, redis, "fixed-model", "host:2:fixed-model") is engine
    assert load_failure(redis, queue, "fixed-model") is None


def test_the_loaded_engines_dtype_is_reported_and_logged(
    settings: Settings,
    db: RollbackDatabase,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = SimpleNamespace(precision=Precision("bfloat16", "auto: the CPU has native bf16 (amx_bf16)"))
    monkeypatch.setattr(worker_main, "resolve_model_path", lambda *_: None)
    monkeypatch.setattr(worker_main, "build_engine", lambda *_: engine)
    with caplog.at_level(logging.INFO, logger=worker_main.__name__):
        worker_main.load_own_engine(settings, db, redis, "bf16-model", "host:3:bf16-model")
    assert served_dtypes(redis)["bf16-model"] == "bfloat16"
    assert "serving model bf16-model in bfloat16 (auto: the CPU has native bf16 (amx_bf16))" in caplog.text


# Models loaded on demand ---------------------------------------------------------------------------


class _Weights:
    """An engine whose weight swaps fail while ``broken`` names the model."""

    def __init__(self) -> None:
        self.broken: str | None = None
        self.precision = Precision("bfloat16", "auto: the CPU has native bf16")

    def load_weights(self, model_path: Path, model_name: str) -> None:
        if model_name == self.broken:
            raise OSError(f"{model_path}: safetensors header truncated")

    def close(self) -> None:
        pass


def _pool(redis: Redis, engine: _Weights, load_engine: Any = None, max_extra: int = 0) -> EnginePool:
    return EnginePool(
        engine,  # type: ignore[arg-type]
        "root-model",
        max_extra,
        load_engine,
        family_path=lambda name: Path("/models") / name,
        family_of=lambda name: "root-model",
        reports=LoadReports(redis, queue_name("root-model"), "host:1:root-model"),
    )


def test_a_descendant_whose_weights_cannot_load_is_reported_and_a_load_clears_it(redis: Redis) -> None:
    queue = queue_name("root-model")
    engine = _Weights()
    engine.broken = "child-model"
    pool = _pool(redis, engine)
    with pytest.raises(OSError):
        pool.get("child-model")
    failure = load_failure(redis, queue, "child-model")
    assert failure is not None and not failure.blocks_queue
    assert failure.reason == "OSError: /models/child-model: safetensors header truncated"
    assert load_failure(redis, queue, "root-model") is None  # the root's jobs still run
    engine.broken = None
    assert pool.get("child-model") is engine
    assert load_failure(redis, queue, "child-model") is None
    # The descendant runs in the engine it was swapped into, in that engine's dtype.
    assert served_dtypes(redis)["child-model"] == "bfloat16"


def test_a_second_model_that_cannot_load_is_reported_for_the_workers_queue(redis: Redis) -> None:
    def load_engine(name: str) -> Any:
        raise RuntimeError(f"model {name!r} is not on disk")

    pool = _pool(redis, _Weights(), load_engine, max_extra=1)
    with pytest.raises(RuntimeError):
        pool.get("optimizer-model")
    [failure] = load_failures(redis)
    assert (failure.queue, failure.model) == (queue_name("root-model"), "optimizer-model")
    # Its own queue's workers may load it: only the jobs of this queue that name it are held.
    assert load_failure(redis, queue_name("optimizer-model"), "optimizer-model") is None


def test_registering_a_model_again_clears_every_report_of_it(redis: Redis) -> None:
    report_load_failure(redis, queue_name("m"), "m", "its folder is missing", "w1")
    report_load_failure(redis, queue_name("other"), "m", "its folder is missing", "w2")
    report_load_failure(redis, queue_name("other"), "other", "CUDA out of memory", "w2")
    clear_load_failure(redis, "m")
    assert [f.model for f in load_failures(redis)] == ["other"]
