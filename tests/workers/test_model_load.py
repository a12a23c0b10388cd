"""A worker that cannot load its model reports why (the API refuses the model's jobs meanwhile); a
worker that loads it clears the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from app.core.config import Settings
from app.jobs.queue import queue_name
from app.models import repository as models_repo
from app.models.availability import load_failure, report_load_failure
from app.models.registry import ModelUnavailable
from tests.conftest import RollbackDatabase
from workers import main as worker_main


def test_a_model_whose_folder_is_gone_is_reported_for_its_queue(
    settings: Settings, db: RollbackDatabase, redis: Redis, tmp_path: Path
) -> None:
    gone = tmp_path / "gone-model"
    with db.unit_of_work() as session:
        models_repo.upsert(session, "gone-model", "transformers", str(gone))
    with pytest.raises(ModelUnavailable):
        worker_main.load_own_engine(settings, db, redis, "gone-model", "host:1:gone-model")
    failure = load_failure(redis, queue_name("gone-model"))
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
    assert load_failure(redis, queue) is None
