"""``judge jobs get|list|wait|results|cancel|summary``: jobs on a running service, through the client."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import typer

from app.commands.exits import EPILOG, ExitCode, client_errors, ended_code
from app.commands.options import JSON, KEY, POLL, QUIET, TIMEOUT, URL, connect, labels, open_output
from app.commands.progress import JobBar, items_progress
from app.commands.summaries import summary_text
from judge_client import Job
from judge_client.types import ItemStatus, JobKind, JobStatus

jobs_cli = typer.Typer(
    help="Jobs on a running service (--url, --key or JUDGE_URL, JUDGE_API_KEY).",
    no_args_is_help=True,
    epilog=EPILOG,
)

JOB_ID = typer.Argument(..., help="The job's id.")
# The service's largest results page.
RESULTS_PAGE = 1000


def progress_text(job: Job) -> str:
    """``done/total``, with the items that failed: ``7/7 (3 failed)``."""
    failed = f" ({job.progress.failed} failed)" if job.progress.failed else ""
    return f"{job.progress.done}/{job.progress.total}{failed}"


def job_line(job: Job) -> str:
    """One line per job: id, kind, status, progress, model, creation time."""
    return (
        f"{job.id}\t{job.kind}\t{job.status}\t{progress_text(job)}\t{job.model}\t"
        f"{job.created_at:%Y-%m-%d %H:%M:%S}"
    )


def job_text(job: Job) -> str:
    lines = [
        f"job       {job.id}",
        f"kind      {job.kind}",
        f"status    {job.status}" + (f" ({job.stage})" if job.stage else ""),
        f"progress  {progress_text(job)}",
        f"model     {job.model}",
        f"created   {job.created_at.isoformat()}",
    ]
    if job.finished_at:
        lines.append(f"finished  {job.finished_at.isoformat()}")
    if job.error:
        lines.append(f"error     {job.error}")
    return "\n".join(lines)


def show(job: Job, as_json: bool) -> None:
    typer.echo(job.model_dump_json(exclude={"results"}) if as_json else job_text(job))


@jobs_cli.command("get")
def get(job_id: str = JOB_ID, url: str = URL, key: str | None = KEY, as_json: bool = JSON) -> None:
    """Show a job: status, progress (with the items that failed), error. Exit 0 whatever its status."""
    with client_errors(), connect(url, key) as judge:
        show(judge.job(job_id), as_json)


@jobs_cli.command("list")
def list_(
    status: JobStatus | None = typer.Option(None, help="Only jobs in this status."),
    kind: JobKind | None = typer.Option(None, help="Only jobs of this kind."),
    model: str | None = typer.Option(None, help="Only jobs for this model."),
    metadata: list[str] | None = typer.Option(None, help="Only jobs with this label KEY:VALUE (repeatable)."),
    limit: int = typer.Option(20, min=1, help="At most this many jobs (newest first)."),
    url: str = URL,
    key: str | None = KEY,
    as_json: bool = JSON,
) -> None:
    """List your jobs, newest first."""
    with client_errors(), connect(url, key) as judge:
        jobs = list(
            itertools.islice(
                judge.jobs(status, kind, model, labels(metadata), page_size=min(limit, 1000)),
                limit,
            )
        )
    if as_json:
        typer.echo(json.dumps({"jobs": [j.model_dump(mode="json", exclude={"results"}) for j in jobs]}))
        return
    for job in jobs:
        typer.echo(job_line(job))
    if not jobs:
        typer.echo("no jobs", err=True)


@jobs_cli.command("wait")
def wait(
    job_id: str = JOB_ID,
    timeout: float | None = TIMEOUT,
    poll: float = POLL,
    url: str = URL,
    key: str | None = KEY,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Wait for a job to end, with a progress bar. Exit 0 if it succeeded, 1 if it failed or was cancelled,
    7 if it succeeded but some of its items failed."""
    with client_errors(), connect(url, key) as judge:
        job = judge.job(job_id)
        typer.echo(f"waiting for job {job.id} ({job.status})", err=True)
        try:
            with items_progress(quiet) as progress:
                bar = JobBar(progress, job.progress.total, f"job {job.id[:8]}")
                job = judge.wait(job, timeout=timeout, poll=poll, on_update=bar)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: job {job.id} goes on (`judge jobs cancel {job.id}` stops it)", err=True)
            raise
    show(job, as_json)
    code = ended_code([job])
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


@jobs_cli.command("results")
def results(
    job_id: str = JOB_ID,
    status: ItemStatus | None = typer.Option(None, help="Only items in this status (ok, error or pending)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the results here (JSONL) instead of stdout."
    ),
    page_size: int = typer.Option(RESULTS_PAGE, min=1, max=RESULTS_PAGE, help="Results per request."),
    url: str = URL,
    key: str | None = KEY,
) -> None:
    """Fetch a judging job's item results (every page), one JSON object per line in item order, e.g.
    after an interrupted `judge batch`, or `--status error` for the items that failed."""
    count = 0
    with client_errors(), connect(url, key) as judge, open_output(output) as out:
        for result in judge.results(job_id, page_size=page_size, status=status):
            out.write(result.model_dump_json() + "\n")
            count += 1
        out.flush()
    where = output if output is not None else "stdout"
    typer.echo(f"{count} result(s) of job {job_id} written to {where}", err=True)


@jobs_cli.command("cancel")
def cancel(job_id: str = JOB_ID, url: str = URL, key: str | None = KEY, as_json: bool = JSON) -> None:
    """Cancel a job (queued: at once; running: at the worker's next check). Exit 1 if it already ended."""
    with client_errors(), connect(url, key) as judge:
        job = judge.cancel(job_id)
    if as_json:
        show(job, True)
    else:
        later = "" if job.ended else " (stops at the worker's next check)"
        typer.echo(f"{job.id} {job.status}{later}")


@jobs_cli.command("summary")
def summary(
    job_id: str | None = typer.Argument(None, help="The judging job's id (or give --metadata)."),
    metadata: list[str] | None = typer.Option(
        None,
        help="Summarize every judging job with this label KEY:VALUE (repeatable), e.g. mtbench_run:NAME.",
    ),
    rounds: int | None = typer.Option(
        None, min=0, help="Bootstrap resamples (default: the service's, 1000)."
    ),
    seed: int = typer.Option(0, min=0, help="Seed of the resampling."),
    baseline: str | None = typer.Option(None, help="The model the others played (default: inferred)."),
    url: str = URL,
    key: str | None = KEY,
    as_json: bool = JSON,
) -> None:
    """Rates, scores and ratings with 95 % bootstrap intervals, of a judging job or of labelled jobs."""
    if (job_id is None) == (not metadata):
        raise typer.BadParameter("give a job id or --metadata, not both")
    with client_errors(), connect(url, key) as judge:
        found = judge.summary(job_id, metadata=labels(metadata), rounds=rounds, seed=seed, baseline=baseline)
    typer.echo(found.model_dump_json() if as_json else summary_text(found))
