"""``judge worker``: load one model once, then serve its queue with RQ in this process."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker

from app.core.config import Settings
from app.core.db import Database
from app.engine.base import Engine
from app.engine.factory import build_engine
from app.engine.precision import precision_of
from app.jobs.queue import JobQueue, queue_name
from app.models import registry
from app.models.availability import LoadReports
from app.training.runner import terminate_all
from app.training.yielding import ServingBeacon
from app.webhooks.deliverer import Deliverer
from workers import context
from workers.lease import LeaseKeeper
from workers.long_jobs import LongJobs
from workers.sweeper import Sweeper

log = logging.getLogger(__name__)


class JudgeWorker(SimpleWorker):
    """RQ's in-process worker: jobs run in this process, so the engine (and its GPU memory) stays
    loaded for the worker's whole life."""

    def _set_ip_address(self, connection: Redis) -> None:
        # Only informational. fakeredis (embedded mode) answers CLIENT INFO in a form redis-py
        # cannot parse; a worker must not die of that.
        try:
            super()._set_ip_address(connection)
        except ValueError:
            self.ip_address = "unknown"

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat in one round trip (RQ sends its three writes one by one unless given a
        pipeline); it runs between taking a job from the queue and starting it."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        pipe = self.connection.pipeline()
        super().heartbeat(timeout, pipe)
        pipe.execute()

    def unsubscribe(self) -> None:
        """RQ's, without its minute-long wait: RQ runs redis-py's pub/sub thread with a 60-second sleep,
        which, once unsubscribed, waits that long for a subscription, and redis-py's ``stop()`` now
        joins it. The thread is a daemon: it goes with the process."""
        if self.pubsub_thread:
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub.unsubscribe()
            self.pubsub_thread.stop(timeout=1)
            self.pubsub.close()

    def request_stop(self, signum: Any, frame: Any) -> None:
        """Warm shutdown (SIGTERM / first Ctrl-C): RQ takes no new delivery and waits for the current
        one; the running job sees ``shutdown`` at its next batch or step and hands its work back. A
        second signal stops at once (RQ's cold shutdown); the lease then expires and the job is
        re-queued by a sweeper."""
        if context.has_current():
            context.current().shutdown.set()
        super().request_stop(signum, frame)


def rq_worker(redis_url: str, queue: str, worker_id: str) -> JudgeWorker:
    """RQ's worker for ``queue``, on a Redis client of its own. RQ waits for a delivery with a blocking
    pop of up to ``dequeue_timeout`` (405 s) and raises its client's socket timeout above that, but
    only for connections made afterwards: one already in a shared pool keeps redis-py's 5 s, and a pop
    made there failed (RQ then retries after up to a minute; on the embedded Redis, which does not
    cancel a blocked pop whose client has gone, that pop went on to take the next delivery for
    nobody)."""
    redis = Redis.from_url(redis_url)
    return JudgeWorker([Queue(queue, connection=redis)], connection=redis, name=worker_id.replace(":", "-"))


def resolve_model_path(settings: Settings, db: Database, model: str) -> Path | None:
    """The model's local folder (registered artifact, or pulled now if it is the default model)."""
    if settings.backend == "openai":
        with db.unit_of_work() as session:
            registry.register(session, settings, model, None)
        return None
    return registry.ensure_local_model(settings, db, model)


def load_own_engine(settings: Settings, db: Database, redis: Redis, model: str, worker_id: str) -> Engine:
    """The engine of the model this worker serves. When it cannot be loaded, the reason is reported
    for the model's queue (the API then refuses the model's jobs, saying why, `/readyz` shows it, and the
    sweepers fail its queued jobs after `JUDGE_MODEL_LOAD_FAILURE_GRACE_SECONDS`) before the error ends the
    worker; a load clears earlier reports."""
    reports = LoadReports(redis, queue_name(model), worker_id)
    try:
        path = resolve_model_path(settings, db, model)
        log.info("loading model %s (%s backend) from %s", model, settings.backend, path)
        engine = build_engine(settings, model, path)
    except Exception as exc:
        reports.failed(model, exc)
        raise
    precision = precision_of(engine)
    if precision is not None:
        log.info("serving model %s in %s (%s)", model, precision.dtype, precision.reason)
    reports.loaded(model, precision)
    return engine


def apply_torch_threads(settings: Settings) -> None:
    """`JUDGE_TORCH_THREADS`, when set: the CPU threads this worker's torch computes on."""
    if settings.torch_threads is None or settings.backend != "transformers":
        return
    import torch

    torch.set_num_threads(settings.torch_threads)
    log.info("torch computes on %d CPU thread(s) (JUDGE_TORCH_THREADS)", torch.get_num_threads())


def run_worker(settings: Settings, model: str | None = None, burst: bool = False) -> None:
    """Serve ``model``'s queue until stopped (or, with ``burst``, until the queue is empty)."""
    if not settings.redis_url:
        raise RuntimeError("the worker needs REDIS_URL (embedded mode passes its own)")
    model = model or settings.default_model
    db = Database(settings.sqlalchemy_url)
    redis = Redis.from_url(settings.redis_url)
    owner = registry.weights_owner(db, model)
    if owner != model:
        # Its jobs go to that model's queue (app/models/service.py): this worker serves it there.
        log.info("model %s has the weights of %s: serving %s's queue", model, owner, owner)
        model = owner
    name = queue_name(model)
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{model}"
    apply_torch_threads(settings)
    engine = load_own_engine(settings, db, redis, model, worker_id)
    job_queue = JobQueue.from_settings(redis, settings)
    ctx = context.WorkerContext(
        settings=settings,
        db=db,
        queue=job_queue,
        engine=engine,
        model=model,
        queue_name=name,
        worker_id=worker_id,
        load_engine=lambda other: build_engine(settings, other, resolve_model_path(settings, db, other)),
        family_path=lambda other: registry.ensure_local_model(settings, db, other),
        family_of=lambda other: registry.lineage_root(db, other),
        weights_owner=lambda other: registry.weights_owner(db, other),
    )
    context.install(ctx)
    lease = LeaseKeeper(db, worker_id, settings.job_lease_seconds).__enter__()
    ctx.lease = lease
    ctx.scheduler.start()
    ctx.long_jobs = LongJobs(ctx, lease)
    log.info(
        "scheduler: batches of at most %d rows and %d tokens (prompt + new); key/value memory at %s "
        "bytes per token",
        ctx.scheduler.limits.rows,
        ctx.scheduler.limits.tokens,
        getattr(engine, "kv_bytes_per_token", "unknown"),
    )
    # Trainings on this host pause while the scheduler holds serving work (app/training/yielding.py).
    beacon = ServingBeacon(redis, ctx.scheduler.has_serving_work)
    if settings.train_yield_to_serving != "never":
        beacon.start()
    sweeper = Sweeper(db, job_queue, name, settings)
    sweeper.start()
    deliverer = Deliverer(db, settings)
    deliverer.start()
    worker = rq_worker(settings.redis_url, name, worker_id)
    log.info("worker %s serving queue %s", worker_id, name)
    try:
        worker.work(burst=burst, logging_level="INFO", with_scheduler=False)
        if burst and not ctx.shutdown.is_set():
            ctx.long_jobs.join(timeout=None)  # a burst run ends when its work has
    finally:
        stop_serving(ctx)
        beacon.stop()
        sweeper.stop()
        deliverer.stop()
        lease.__exit__(None, None, None)
        ctx.engines.close()
        worker.connection.close()
        db.dispose()


def stop_serving(ctx: context.WorkerContext, grace_s: float = 30.0) -> None:
    """The worker is stopping: running long jobs hand themselves back (their waiting model calls fail
    with SchedulerStopped, their training children are stopped), within ``grace_s``."""
    ctx.shutdown.set()
    ctx.scheduler.stop()
    stopped = terminate_all()
    if stopped:
        log.info("stopped %d training process(es)", stopped)
    if ctx.long_jobs is not None:
        left = ctx.long_jobs.join(timeout=grace_s)
        if left:
            log.warning("%d long job(s) still running at exit; their leases will expire", len(left))
