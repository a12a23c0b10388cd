"""The model registry: registering local folders, finding a served model on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from app.core.config import Settings
from app.core.errors import InvalidInput
from app.jobs import repository as jobs_repo
from app.jobs.queue import queue_name
from app.models import repository
from app.models.registry import ModelUnavailable, ensure_local_model, register_local
from app.models.service import ModelRoutes, Route
from tests.conftest import RollbackDatabase


def _fake_model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    return path


def test_register_local_folder(settings: Settings, db: RollbackDatabase, tmp_path: Path) -> None:
    folder = _fake_model_folder(tmp_path / "my-judge")
    record = register_local(settings, db, "my-judge", folder)
    assert record.artifact_path == str(folder.resolve())
    with db.unit_of_work() as session:
        assert repository.get_by_name(session, "my-judge") is not None
    # Re-registering moves the artifact instead of duplicating the model.
    other = _fake_model_folder(tmp_path / "v2")
    assert register_local(settings, db, "my-judge", other).artifact_path == str(other.resolve())


def test_register_rejects_a_folder_without_a_model(
    settings: Settings, db: RollbackDatabase, tmp_path: Path
) -> None:
    with pytest.raises(ModelUnavailable, match="not a model folder"):
        register_local(settings, db, "empty", tmp_path)


def test_ensure_local_model_finds_the_data_dir_copy_and_registers_it(
    settings: Settings, db: RollbackDatabase
) -> None:
    folder = _fake_model_folder(settings.models_dir / "local-judge")
    assert ensure_local_model(settings, db, "local-judge") == folder
    with db.unit_of_work() as session:
        record = repository.get_by_name(session, "local-judge")
        assert record is not None and record.artifact_path == str(folder)


def test_unknown_model_that_cannot_be_pulled(settings: Settings, db: RollbackDatabase) -> None:
    with pytest.raises(ModelUnavailable, match="judge models pull"):
        ensure_local_model(settings, db, "nowhere-model")


def test_model_routes_keep_found_models_and_look_unknown_ones_up_again(db: RollbackDatabase) -> None:
    routes = ModelRoutes()
    with db.unit_of_work() as session:
        with pytest.raises(InvalidInput):
            routes.route(session, "late-judge", "model", "t")
        base = repository.upsert(session, "late-judge", "transformers", None)
        job = jobs_repo.create_job(
            session, kind="self_reward", model="late-judge", queue="q", params={}, total=1, tenant="t"
        )
        trained = repository.register_trained(
            session,
            name="late-judge-it1",
            backend="transformers",
            artifact_path="/models/late-judge-it1",
            parent_id=base.id,
            job_id=job.id,
            iteration=1,
            metrics={},
            owner="t",
        )
        # Registered meanwhile: found now (the miss was not kept); a trained model goes to its root's queue.
        assert routes.route(session, "late-judge", "model", "t") == Route(
            "late-judge", queue_name("late-judge"), id=str(base.id)
        )
        assert routes.route(session, str(trained.id), "model", "t") == Route(
            "late-judge-it1",
            queue_name("late-judge"),
            "transformers",
            "/models/late-judge-it1",
            str(trained.id),
        )
        with pytest.raises(InvalidInput):  # another tenant's model stays unknown to this one
            routes.route(session, "late-judge-it1", "model", "other")
    statements: list[str] = []
    event.listen(db.connection, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with db.unit_of_work() as session:
        assert routes.route(session, "late-judge", "model", "t").name == "late-judge"
    assert statements == []  # a found model resolves the same way forever: no lookup
    with db.unit_of_work() as session, pytest.raises(InvalidInput):
        routes.route(session, "never-registered", "model", "t")
    assert statements  # (an unknown one is looked up each time)
