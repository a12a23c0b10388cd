"""``judge batch FILE.jsonl``: judge every item of a JSONL file on a running service, with a progress
bar, and write one result per item (JSONL, in input order)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from app.commands.exits import ExitCode, client_errors, ended_code, fail
from app.commands.options import (
    JSON,
    KEY,
    METADATA_HELP,
    POLL,
    QUIET,
    TIMEOUT,
    URL,
    connect,
    labels,
    open_output,
)
from app.commands.progress import STDERR, JobBar, items_progress
from judge_client import BadRequest, ItemResult, Job, Judge
from judge_client.types import Aggregate, Kind, Swap, VerdictMode


@dataclass(frozen=True)
class InputItems:
    items: list[dict[str, Any]]
    lines: list[int]  # the input line of each item (blank lines are skipped)
    source: str


def read_items(lines: Iterable[str], source: str) -> InputItems:
    """The JSON objects of a JSONL text, one per non-blank line; ValueError naming the line at fault."""
    items: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source} line {number}: not JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            kind = type(value).__name__
            raise ValueError(f"{source} line {number}: an item must be a JSON object, not {kind}")
        items.append(value)
        numbers.append(number)
    if not items:
        raise ValueError(f"{source} holds no items")
    return InputItems(items, numbers, source)


_ITEM_FIELD = re.compile(r"^items\[(\d+)\]")


def where(field: str | None, inputs: InputItems, offset: int) -> str:
    """The input line an item error of the chunk starting at ``offset`` points to."""
    match = _ITEM_FIELD.match(field or "")
    if match is None:
        return inputs.source
    index = offset + int(match.group(1))
    return f"{inputs.source} line {inputs.lines[index]}" if index < len(inputs.lines) else inputs.source


def summarize(results: Iterable[ItemResult], jobs: list[Job], output: str) -> dict[str, Any]:
    """Counts over the results: ok and error items, verdicts, inconsistent pairs, mean score; with
    several samples (or judges) per item, their mean agreement and the items they split on."""
    statuses: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    scores: list[float] = []
    agreements: list[float] = []
    inconsistent = 0
    for result in results:
        statuses[result.status] += 1
        if result.verdict is not None:
            verdicts[result.verdict] += 1
        if result.score is not None:
            scores.append(result.score)
        if result.agreement is not None:
            agreements.append(result.agreement)
        inconsistent += result.consistent is False
    return {
        "status": "succeeded" if all(j.succeeded for j in jobs) else "failed",
        "jobs": [
            {"id": j.id, "status": j.status, "error": j.error, "failed": j.progress.failed} for j in jobs
        ],
        "items": sum(statuses.values()),
        "ok": statuses["ok"],
        "errors": statuses["error"],
        "verdicts": dict(verdicts),
        "inconsistent": inconsistent,
        "mean_score": sum(scores) / len(scores) if scores else None,
        "mean_agreement": sum(agreements) / len(agreements) if agreements else None,
        "split": sum(1 for a in agreements if a < 1),
        "output": output,
    }


def summary_text(summary: dict[str, Any]) -> str:
    text = f"{summary['items']} item(s): {summary['ok']} ok, {summary['errors']} error(s)"
    if summary["verdicts"]:
        text += "; verdicts " + ", ".join(f"{k} {v}" for k, v in sorted(summary["verdicts"].items()))
        text += f"; {summary['inconsistent']} inconsistent"
    if summary["mean_score"] is not None:
        text += f"; mean score {summary['mean_score']:.2f}"
    if summary["mean_agreement"] is not None:
        text += (
            f"; agreement {100 * summary['mean_agreement']:.0f}% on average, {summary['split']} item(s) split"
        )
    for job in summary["jobs"]:
        if job["status"] != "succeeded":
            text += f"\njob {job['id']} {job['status']}" + (f": {job['error']}" if job["error"] else "")
    return text + f"\nresults: {summary['output']}"


def juror(spec: str) -> str | dict[str, Any]:
    """A ``--judge`` value: ``MODEL``, or ``MODEL,template=NAME[@VERSION],weight=W`` (either key)."""
    model, *pairs = [part.strip() for part in spec.split(",")]
    if not model or "=" in model:
        raise typer.BadParameter(f"{spec!r}: give the judge's model first (MODEL[,template=NAME][,weight=W])")
    judge: dict[str, Any] = {"model": model}
    for pair in pairs:
        key, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or key not in ("template", "weight") or not value or key in judge:
            raise typer.BadParameter(f"{spec!r}: after the model, give template=NAME or weight=W, once each")
        if key == "weight":
            try:
                judge["weight"] = float(value)
            except ValueError:
                raise typer.BadParameter(f"{spec!r}: weight must be a number, not {value!r}") from None
        else:
            judge["template"] = value
    return judge if len(judge) > 1 else model


def _options(
    kind: Kind,
    model: str | None,
    template: str | None,
    swap: Swap | None,
    verdict_mode: VerdictMode | None,
    cot: bool,
    auto_reference: bool,
    temperature: float | None,
    max_tokens: int | None,
    seed: int | None,
    scale: tuple[float | None, float | None],
    samples: int | None = None,
    judges: list[str] | None = None,
    aggregate: Aggregate | None = None,
) -> dict[str, Any]:
    if (scale[0] is None) != (scale[1] is None):
        raise typer.BadParameter("give both --scale-min and --scale-max, or neither")
    if kind == "pairwise" and scale[0] is not None:
        raise typer.BadParameter("--scale-min/--scale-max apply to --kind single only")
    if kind == "single" and swap is not None:
        raise typer.BadParameter("--swap applies to --kind pairwise only")
    if aggregate is not None and not judges:
        raise typer.BadParameter("--aggregate applies to a jury (--judge, given twice or more)")
    options: dict[str, Any] = {
        "model": model,
        "template": template,
        "swap": swap,
        "verdict_mode": verdict_mode,
        "cot": cot or None,
        "auto_reference": auto_reference or None,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "seed": seed,
        "scale": scale if scale[0] is not None else None,
        "samples": samples,
        "judges": [juror(spec) for spec in judges] if judges else None,
        "aggregate": aggregate,
    }
    return {k: v for k, v in options.items() if v is not None}


def _submit(judge: Judge, inputs: InputItems, kind: Kind, options: dict[str, Any], chunk: int) -> list[Job]:
    jobs: list[Job] = []
    for start in range(0, len(inputs.items), chunk):
        try:
            jobs.append(judge.submit_batch(inputs.items[start : start + chunk], kind, **options))
        except BadRequest as exc:
            raise fail(f"{where(exc.field, inputs, start)}: {exc.message}", ExitCode.USAGE) from None
    return jobs


def batch(
    file: str = typer.Argument(..., help="JSONL file of items, one JSON object per line ('-': stdin)."),
    kind: Kind = typer.Option("pairwise", help="pairwise (answer_a/answer_b) or single (answer)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the results here (JSONL) instead of stdout."
    ),
    model: str | None = typer.Option(None, help="Judge model (default: the service's)."),
    template: str | None = typer.Option(None, help="Template name or name@version."),
    swap: Swap | None = typer.Option(None, help="Position swap (pairwise; service default conservative)."),
    verdict_mode: VerdictMode | None = typer.Option(None, help="generate or logprobs."),
    cot: bool = typer.Option(False, help="Chain-of-thought templates."),
    auto_reference: bool = typer.Option(False, help="The judge writes its own reference answers first."),
    temperature: float | None = typer.Option(None, min=0.0, max=2.0),
    max_tokens: int | None = typer.Option(None, min=1),
    seed: int | None = typer.Option(None, min=0),
    samples: int | None = typer.Option(
        None,
        min=1,
        help="Self-consistency: judge each order this many times (with --temperature above 0); each "
        "result then carries its `votes` (or `score_std`) and `agreement`.",
    ),
    judges: list[str] | None = typer.Option(
        None,
        "--judge",
        help="A jury: give --judge once per judge (2-7), as MODEL or MODEL,template=NAME,weight=W; each "
        "result then carries every judge's own verdict, the `votes` and the judges' `agreement`.",
    ),
    aggregate: Aggregate | None = typer.Option(
        None, help="How a jury's verdicts combine: majority, mean or weighted (service default by kind)."
    ),
    scale_min: float | None = typer.Option(None, help="Grading scale (single), with --scale-max."),
    scale_max: float | None = typer.Option(None),
    metadata: list[str] | None = typer.Option(None, help=METADATA_HELP),
    chunk_size: int = typer.Option(
        1000, min=1, help="Items per job (at most the service's per-request maximum)."
    ),
    timeout: float | None = TIMEOUT,
    poll: float = POLL,
    url: str = URL,
    key: str | None = KEY,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Judge every item of a JSONL file (fields as in the API: question or turns, answer_a and answer_b
    or answer, ...) and write one result per item, in input order, with the global `index`. With
    --json, a summary object goes to stdout (holding the results as `results` unless --output is given).
    Exit 1 if a job failed, 7 if some items failed."""
    options = _options(
        kind,
        model,
        template,
        swap,
        verdict_mode,
        cot,
        auto_reference,
        temperature,
        max_tokens,
        seed,
        (scale_min, scale_max),
        samples,
        judges,
        aggregate,
    )
    if metadata:
        options["metadata"] = labels(metadata)
    try:
        if file == "-":
            inputs = read_items(sys.stdin, "stdin")
        else:
            with open(file, encoding="utf-8") as fh:
                inputs = read_items(fh, file)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="FILE") from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None

    deadline = None if timeout is None else time.monotonic() + timeout
    with client_errors(), connect(url, key) as judge:
        jobs = _submit(judge, inputs, kind, options, chunk_size)
        STDERR.print(f"submitted {len(inputs.items)} item(s) as job(s) {', '.join(j.id for j in jobs)}")
        try:
            ended: list[Job] = []
            with items_progress(quiet) as progress:
                bar = JobBar(progress, len(inputs.items), "judging")
                for start, job in zip(range(0, len(inputs.items), chunk_size), jobs, strict=True):
                    bar.offset = start
                    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                    ended.append(judge.wait(job, timeout=remaining, poll=poll, on_update=bar))
        except KeyboardInterrupt:
            STDERR.print(
                "interrupted: the job(s) go on; `judge jobs results ID` fetches one's results, "
                "`judge jobs cancel ID` stops one"
            )
            raise
        results: list[ItemResult] = []
        records: list[dict[str, Any]] = []
        for start, job in zip(range(0, len(inputs.items), chunk_size), ended, strict=True):
            for result in judge.results(job):
                results.append(result)
                records.append(
                    result.model_dump(mode="json") | {"index": start + result.index, "job_id": job.id}
                )
    # With --json and no --output, stdout holds one JSON document: the summary, with the results.
    inline = as_json and output is None
    if not inline:
        with open_output(output) as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
    summary = summarize(results, ended, str(output) if output else "stdout")
    if inline:
        typer.echo(json.dumps(summary | {"results": records}, ensure_ascii=False))
    elif as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(summary_text(summary), err=True)
    code = ended_code(ended)
    if code != ExitCode.OK:
        raise typer.Exit(int(code))
