"""Exit codes of the ``judge`` command, and turning the client's errors into them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import IntEnum

import typer

from judge_client import (
    BadRequest,
    ConnectionFailed,
    Forbidden,
    InvalidArgument,
    Job,
    JudgeError,
    JudgeTimeout,
    NotFound,
    Unauthorized,
    Unavailable,
)


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    UNREACHABLE = 3
    AUTH = 4
    NOT_FOUND = 5
    TIMEOUT = 6
    # The job ended, but some of its items ended in error (each result holds its cause); a job whose
    # every item failed is itself failed (1).
    ITEMS_FAILED = 7
    INTERRUPTED = 130


EPILOG = (
    "Exit codes: 0 success; 1 the job or operation failed; 2 usage error (bad option, argument or "
    "input, including input the service rejects); 3 service unreachable or unavailable; 4 authentication "
    "or permission refused; 5 not found; 6 timed out waiting; 7 some items failed (the job ended; each "
    "failed item's result holds its error); 130 interrupted (Ctrl-C)."
)


def exit_code_for(error: JudgeError) -> ExitCode:
    """The exit code that says what kind of failure ``error`` is."""
    if isinstance(error, ConnectionFailed | Unavailable):
        return ExitCode.UNREACHABLE
    if isinstance(error, Unauthorized | Forbidden):
        return ExitCode.AUTH
    if isinstance(error, NotFound):
        return ExitCode.NOT_FOUND
    if isinstance(error, JudgeTimeout):
        return ExitCode.TIMEOUT
    if isinstance(error, BadRequest | InvalidArgument):
        return ExitCode.USAGE
    return ExitCode.FAILED


def ended_code(jobs: Iterable[Job]) -> ExitCode:
    """What ended jobs say: 1 if one did not succeed, else 7 if one has items that failed, else 0."""
    ended = list(jobs)
    if not all(job.succeeded for job in ended):
        return ExitCode.FAILED
    if any(job.progress.failed for job in ended):
        return ExitCode.ITEMS_FAILED
    return ExitCode.OK


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print ``message`` on stderr; the exception to raise to exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


@contextmanager
def client_errors() -> Iterator[None]:
    """Turn a client error into its message on stderr and its exit code."""
    try:
        yield
    except JudgeError as exc:
        message = str(exc)
        for problem in exc.details[1:]:
            message += f"\n  {problem.get('field') or '-'}: {problem.get('message')}"
        raise fail(message, exit_code_for(exc)) from None
