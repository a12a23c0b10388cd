"""Options the client commands share: how they reach the service (``--url``/``--key``, or JUDGE_URL /
JUDGE_API_KEY), waiting, output, job labels."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import typer

from app.core.config import get_settings
from judge_client import Judge

DEFAULT_URL = "http://127.0.0.1:8000"

URL = typer.Option(DEFAULT_URL, "--url", envvar="JUDGE_URL", help="The service's base URL.")
KEY = typer.Option(
    None,
    "--key",
    envvar="JUDGE_API_KEY",
    show_default=False,
    help="API key (default: the embedded mode's development key, if this machine has one).",
)
TIMEOUT = typer.Option(None, "--timeout", min=0.0, help="Give up waiting after this many seconds (exit 6).")
POLL = typer.Option(1.0, "--poll", min=0.01, help="Seconds between status checks while waiting.")
JSON = typer.Option(False, "--json", help="Print machine-readable JSON on stdout (messages go to stderr).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
METADATA_HELP = "A job label KEY:VALUE (repeat the option for several)."


def labels(values: list[str] | None) -> dict[str, str] | None:
    """``["run:7", "team:a"]`` → ``{"run": "7", "team": "a"}``; BadParameter for a value without ``:``."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        key, sep, label = value.partition(":")
        if not sep or not key:
            raise typer.BadParameter(f"{value!r} is not KEY:VALUE", param_hint="--metadata")
        out[key] = label
    return out


def resolve_key(key: str | None) -> str | None:
    """The key given, else the development key that embedded mode keeps in the data directory."""
    if key:
        return key
    path = get_settings().data_dir / "dev-api-key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def connect(url: str, key: str | None) -> Judge:
    try:
        return Judge(url, resolve_key(key))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url") from exc


@contextmanager
def open_output(output: Path | None) -> Iterator[IO[str]]:
    """``output`` opened for writing (UTF-8), or stdout when None."""
    if output is None:
        yield sys.stdout
        return
    with open(output, "w", encoding="utf-8") as fh:
        yield fh
