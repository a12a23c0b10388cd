"""What the other domains ask of the registry: which model a request means, and which queue serves it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, NotFound
from app.db.tables import ModelRecord
from app.jobs.queue import queue_name
from app.models import repository


@dataclass(frozen=True)
class Serving:
    """A model and the queue its jobs go to: the queue of the model at the top of its lineage, whose
    workers load a trained descendant's weights when a job asks for it."""

    record: ModelRecord
    queue: str

    @property
    def name(self) -> str:
        return self.record.name


def serving(session: Session, ref: str, field: str) -> Serving:
    """Resolve a model name or id; InvalidInput (422, naming ``field``) when it is not registered."""
    record = repository.resolve(session, ref)
    if record is None:
        known = ", ".join(m.name for m in repository.list_models(session)) or "none"
        raise InvalidInput(f"unknown model '{ref}' (registered models: {known})", field)
    return Serving(record, queue_name(repository.root(session, record).name))


def get_model(session: Session, ref: str) -> ModelRecord:
    record = repository.resolve(session, ref)
    if record is None:
        raise NotFound(f"no model {ref!r}")
    return record
