"""The ``model`` label of worker figures. ``/metrics`` may be public: an operator's model is labelled
by its name, a model trained for a tenant (named by that tenant's job) by one shared label."""

from __future__ import annotations

import logging

from app.core.db import Database
from app.models import repository as models_repo

log = logging.getLogger(__name__)

TENANT_MODEL = "tenant-model"


class ModelLabels:
    """``labels(model)`` → the label. Found models are remembered (a registered model never changes its
    owner); a model not registered (yet), or a lookup that fails, gets the shared label."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._labels: dict[str, str] = {}

    def __call__(self, model: str) -> str:
        label = self._labels.get(model)
        if label is not None:
            return label
        try:
            with self._db.unit_of_work() as session:
                record = models_repo.get_by_name(session, model)
                owner = record.owner if record is not None else None
        except Exception:  # noqa: BLE001 - metrics never fail the work they measure
            log.debug("could not look model %s up for its metrics label", model, exc_info=True)
            return TENANT_MODEL
        if record is None:
            return TENANT_MODEL
        label = self._labels[model] = model if owner is None else TENANT_MODEL
        return label
