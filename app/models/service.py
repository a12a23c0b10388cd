"""What the other domains ask of the registry: which model a request means, and which queue serves it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, NotFound
from app.db.tables import ModelRecord
from app.jobs.queue import queue_name
from app.models import repository
from app.models.schemas import ModelDetail, ModelList, ModelOut, ModelRef
from app.models.serving import served_dtypes


@dataclass(frozen=True)
class Serving:
    """A model and the queue its jobs go to: the queue of the model at the top of its lineage, whose
    workers load a trained descendant's weights when a job asks for it (and serve the other names
    registered for the same weights with the same engine: ``repository.serving_root``)."""

    record: ModelRecord
    queue: str

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def route(self) -> Route:
        return Route(
            self.name, self.queue, self.record.backend, self.record.artifact_path, str(self.record.id)
        )


def serving(session: Session, ref: str, field: str, tenant: str | None = None) -> Serving:
    """Resolve a model name or id; InvalidInput (422, naming ``field``) when it is not registered (or,
    with ``tenant``, belongs to another tenant)."""
    record = repository.resolve(session, ref)
    if record is None or (tenant is not None and not _visible(record, tenant)):
        known = (
            ", ".join(
                m.name for m in repository.list_models(session) if tenant is None or _visible(m, tenant)
            )
            or "none"
        )
        raise InvalidInput(f"unknown model '{ref}' (registered models: {known})", field)
    return Serving(record, queue_name(repository.serving_root(session, record).name))


@dataclass(frozen=True)
class Route:
    """Where a request's model goes: its name and its queue; and, to measure its prompts, the backend
    it was registered with and its folder."""

    name: str
    queue: str
    backend: str = "transformers"
    artifact_path: str | None = None
    # The registered row's id: a model registered again (a retrained one, under a new name) has another.
    id: str | None = None

    @property
    def local_artifact(self) -> str | None:
        """The model's folder when a local engine (not a remote server) runs it; else None."""
        return self.artifact_path if self.backend != "openai" else None


def route(session: Session, ref: str, field: str, tenant: str | None = None) -> Route:
    """:func:`serving`'s name and queue, with the model's backend and folder."""
    return serving(session, ref, field, tenant).route


class ModelRoutes:
    """Resolved model references, kept for the process's life: a registered model never changes its
    name, owner or lineage (models are never deleted), so a found one resolves the same way forever.
    Unknown models are looked up every time (one may be registered any moment)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._routes: dict[tuple[str, str | None], Route] = {}

    def route(self, session: Session, ref: str, field: str, tenant: str | None = None) -> Route:
        """:func:`route`, remembered once found."""
        key = (ref, tenant)
        found = self._routes.get(key)
        if found is None:
            found = route(session, ref, field, tenant)
            if len(self._routes) >= self.max_entries:
                self._routes = {}
            self._routes[key] = found
        return found


def _visible(record: ModelRecord, tenant: str) -> bool:
    """Operator models (no owner) are shared; a trained model belongs to its job's tenant."""
    return record.owner is None or record.owner == tenant


def _out(record: ModelRecord, default_model: str, dtypes: Mapping[str, str], owner: str) -> ModelOut:
    """``owner``: the name whose engine serves the record's weights (another name for weights a worker
    holds is served in that engine's dtype)."""
    return ModelOut(
        id=record.id,
        name=record.name,
        backend=record.backend,
        parent_id=record.parent_id,
        job_id=record.job_id,
        iteration=record.iteration,
        metrics=record.metrics,
        default=record.name == default_model,
        dtype=dtypes.get(record.name) or dtypes.get(owner),
        created_at=record.created_at,
    )


def _ref(record: ModelRecord) -> ModelRef:
    return ModelRef(id=record.id, name=record.name, iteration=record.iteration, job_id=record.job_id)


def list_models(session: Session, redis: Redis, default_model: str, tenant: str) -> ModelList:
    """The models ``tenant`` may use, each with the dtype its workers reported serving it in."""
    dtypes = served_dtypes(redis)
    registry = repository.list_models(session)
    owners = repository.weights_owners(registry)
    visible = [m for m in registry if _visible(m, tenant)]
    return ModelList(models=[_out(m, default_model, dtypes, owners[m.name]) for m in visible])


def model_detail(
    session: Session, redis: Redis, ref: str, default_model: str, tenant: str, operator: bool = False
) -> ModelDetail:
    """The model's detail; its folder on the workers' storage only for an ``operator`` (an admin key):
    a server path tells a tenant about the machine, and is of no use to it."""
    record = repository.resolve(session, ref)
    if record is None or not _visible(record, tenant):
        raise NotFound(f"no model {ref!r}")
    return ModelDetail(
        **_out(
            record, default_model, served_dtypes(redis), repository.weights_owner(session, record).name
        ).model_dump(),
        artifact_path=record.artifact_path if operator else None,
        lineage=[_ref(m) for m in repository.ancestors(session, record)],
        children=[_ref(m) for m in repository.children(session, record) if _visible(m, tenant)],
    )
