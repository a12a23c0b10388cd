"""``judge mtbench``: judge FastChat llm_judge bench folders, print FastChat's tables, compute agreement."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress

from app.commands.exits import ExitCode, client_errors, exit_code_for, fail
from app.commands.options import DEFAULT_URL, KEY, resolve_key
from app.commands.progress import items_progress
from app.core.config import Settings, get_settings
from app.engine.base import Engine
from app.mtbench import agreement as agreement_mod
from app.mtbench import formats, prompts, tables
from app.mtbench.formats import FormatError, Judgment, JudgmentKind, ModelAnswer, QuestionId
from app.mtbench.plan import (
    DEFAULT_BASELINE,
    RUN_MODES,
    PlanError,
    RunMode,
    Task,
    missing,
    plan,
    references_for,
)
from app.mtbench.prompts import PromptError, Templates
from app.mtbench.runner import DEFAULT_BATCH_ITEMS, RunOptions, RunSummary, Submitter, existing_judgments, run
from app.stats.records import baseline_of

mtbench_cli = typer.Typer(
    help="MT-Bench with FastChat's llm_judge files: judge a bench folder, show tables, compute agreement.",
    no_args_is_help=True,
)

_MODE_HELP = (
    "single (grade each answer 1-10), pairwise-baseline (each model against the baseline) or pairwise-all."
)


def _fail(message: str, code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    return fail(message, code)


# `--service` / JUDGE_SERVICE_URL: the names before `--url` / JUDGE_URL, still read.
_SERVICE = typer.Option(None, "--service", envvar="JUDGE_SERVICE_URL", hidden=True)


def _service_url(url: str | None, service: str | None) -> str | None:
    """The service to judge on: ``--url`` (JUDGE_URL), else the deprecated ``--service``."""
    if service and not url:
        typer.echo("warning: --service and JUDGE_SERVICE_URL are deprecated; use --url, JUDGE_URL", err=True)
        return service
    return url


def _mode(value: str) -> RunMode:
    for mode in RUN_MODES:
        if value == mode:
            return mode
    raise _fail(f"--mode must be one of {', '.join(RUN_MODES)}, got {value!r}")


def _kind(mode: RunMode) -> JudgmentKind:
    return "single" if mode == "single" else "pair"


def _models(values: list[str] | None) -> list[str] | None:
    """``--model-list`` given once per model or comma-separated."""
    if not values:
        return None
    return [m.strip() for value in values for m in value.split(",") if m.strip()]


def reference_answers(
    bench_dir: Path, name: str | None, judge_model: str
) -> dict[QuestionId, ModelAnswer] | None:
    """The reference answers to judge with: ``reference_answer/<name>.jsonl`` when named, else the judge
    model's own file, else ``gpt-4.jsonl`` (FastChat's), else the folder's only file; None without any
    (the questions' own ``reference`` fields are used then)."""
    folder = bench_dir / formats.REFERENCE_DIR
    if name is not None:
        return formats.read_answers(folder / f"{name}.jsonl")
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    for candidate in (folder / f"{judge_model}.jsonl", folder / "gpt-4.jsonl"):
        if candidate in files:
            return formats.read_answers(candidate)
    return formats.read_answers(files[0]) if len(files) == 1 else None


def load_engine(settings: Settings, judge_model: str, model_path: Path | None) -> Engine:
    """A local engine for in-process judging: ``model_path``, else the model's folder under the data
    directory (the default model is pulled there when missing); the openai backend needs no folder."""
    from app.engine.factory import build_engine
    from app.models.artifacts import ModelPullError, is_model_present, model_dir, pull_default_model

    if settings.backend == "openai":
        return build_engine(settings, judge_model, None)
    path = model_path or model_dir(settings.models_dir, judge_model)
    if not is_model_present(path):
        if model_path is None and judge_model == settings.default_model:
            try:
                path = pull_default_model(settings.models_dir)
            except ModelPullError as exc:
                raise _fail(f"could not fetch the default model: {exc}") from None
        else:
            raise _fail(f"no model at {path}; give --model-path or run `judge models pull`")
    return build_engine(settings, judge_model, path)


def _check_existing(
    done: list[Judgment], output: Path, judge_model: str, templates: Templates, tasks: list[Task]
) -> None:
    """Refuse to resume into a file written by another judge or with other prompts."""
    names = {templates.name(role) for role in {t.role for t in tasks}}
    for j in done:
        if j.judge[0] != judge_model:
            raise _fail(
                f"{output} holds judgments by {j.judge[0]!r}, not {judge_model!r}; choose another --output"
            )
        if j.judge[1] not in names:
            raise _fail(
                f"{output} holds judgments made with prompt {j.judge[1]!r}, which this run does not use "
                f"({', '.join(sorted(names))}); choose another --output or remove the file"
            )


def _line(judgment: Judgment, summary: RunSummary) -> str:
    """FastChat's per-judgment line (``--verbose``)."""
    count = f"[{summary.already_done + summary.written}/{summary.planned}]"
    if isinstance(judgment, formats.SingleJudgment):
        what = f"model: {judgment.model}, score: {formats.judgment_json(judgment)['score']}"
    else:
        what = (
            f"model_1: {judgment.model_1}, model_2: {judgment.model_2}, "
            f"g1_winner: {judgment.g1_winner}, g2_winner: {judgment.g2_winner}"
        )
    return f"{count} question: {judgment.question_id}, turn: {judgment.turn}, {what}"


class _Bar:
    """The run's progress bar (stderr): judgments written against the plan, errors in the label."""

    def __init__(self, progress: Progress, summary_total: int, done: int, verbose: bool) -> None:
        self.progress = progress
        self.verbose = verbose
        self.task = progress.add_task("judging", total=summary_total, completed=done)

    def __call__(self, judgment: Judgment, summary: RunSummary) -> None:
        errors = f" ({summary.errors} error(s))" if summary.errors else ""
        self.progress.update(
            self.task, completed=summary.already_done + summary.written, description=f"judging{errors}"
        )
        if self.verbose:
            self.progress.console.print(_line(judgment, summary), highlight=False)


@mtbench_cli.command("run")
def run_command(
    bench_dir: Path = typer.Option(
        ..., "--bench-dir", help="FastChat bench folder: question.jsonl, model_answer/, reference_answer/."
    ),
    mode: str = typer.Option("single", help=_MODE_HELP),
    judge_model: str = typer.Option(None, help="Judge model (default: the service's default model)."),
    model_list: list[str] = typer.Option(
        None, help="Models to judge (repeat or comma-separate); default: all."
    ),
    baseline_model: str = typer.Option(DEFAULT_BASELINE, help="The baseline of pairwise-baseline."),
    judge_prompts: Path = typer.Option(
        None, help="FastChat judge_prompts.jsonl: judge with those prompts instead of the built-in templates."
    ),
    reference: str = typer.Option(
        None,
        help="Reference answers: reference_answer/<NAME>.jsonl (default: the judge model's, else gpt-4's, "
        "else the only file, else the questions' own 'reference').",
    ),
    first_n: int = typer.Option(None, min=1, help="Only the first N questions (for a quick try)."),
    output: Path = typer.Option(
        None, help="Judgment file (default: model_judgment/<judge>_single|pair.jsonl)."
    ),
    url: str = typer.Option(
        None,
        "--url",
        envvar="JUDGE_URL",
        show_default=False,
        help="Judge on the service at this base URL; without it (or JUDGE_URL), judge in this process.",
    ),
    in_process: bool = typer.Option(
        False, "--in-process", help="Judge in this process even when JUDGE_URL is set."
    ),
    service: str = _SERVICE,
    key: str | None = KEY,
    verdict_mode: str = typer.Option("generate", help="generate (the judge writes its verdict) or logprobs."),
    parser: str = typer.Option(
        "fastchat",
        help="How a written verdict is read: fastchat (FastChat's rules: [[A]] anywhere wins, else [[B]], "
        "else [[C]]; a rating is the first [[n]], else [n], unchecked) or strict (the service's default: the "
        "last marker, ratings within 1-10).",
    ),
    cot: bool = typer.Option(False, help="Built-in chain-of-thought templates (the judge reasons first)."),
    temperature: float = typer.Option(0.0, min=0.0, max=2.0),
    max_tokens: int = typer.Option(None, min=1, help="Most tokens per judge reply (default: the service's)."),
    seed: int = typer.Option(0, min=0),
    batch_items: int = typer.Option(
        DEFAULT_BATCH_ITEMS, min=1, help="Items per job (per engine pass in-process)."
    ),
    run_name: str = typer.Option(None, help="Tags the run's jobs (default: <bench>/<mode>/<judge>)."),
    model_path: Path = typer.Option(None, help="In-process: the judge model's folder."),
    dry_run: bool = typer.Option(False, help="Check the files and print what would be judged, then stop."),
    verbose: bool = typer.Option(False, help="Print each judgment as FastChat does."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Judge a bench folder and write FastChat's judgment file; run it again to resume after a stop. Exit
    7 when some judgments ended in error (FastChat's `error` winner or score -1), 1 when a job failed."""
    run_mode = _mode(mode)
    target = None if in_process else _service_url(url, service)
    if verdict_mode not in ("generate", "logprobs"):
        raise _fail(f"--verdict-mode must be generate or logprobs, got {verdict_mode!r}")
    if parser not in ("fastchat", "strict"):
        raise _fail(f"--parser must be fastchat or strict, got {parser!r}")
    settings = get_settings()
    judge = judge_model or settings.default_model
    try:
        questions = formats.read_questions(bench_dir / formats.QUESTION_FILE)[:first_n]
        answers = formats.read_answer_dir(bench_dir / formats.ANSWER_DIR)
        refs = references_for(questions, reference_answers(bench_dir, reference, judge))
        tasks = plan(run_mode, questions, answers, refs, _models(model_list), baseline_model)
        templates = (
            prompts.from_fastchat(formats.read_judge_prompts(judge_prompts))
            if judge_prompts
            else prompts.builtin(cot)
        )
        for role in {task.role for task in tasks}:
            templates.spec(role)
        out = output or formats.judgment_path(bench_dir, judge, _kind(run_mode))
        done = existing_judgments(out, _kind(run_mode))
    except (FormatError, PlanError, PromptError) as exc:
        raise _fail(str(exc)) from None
    _check_existing(done, out, judge, templates, tasks)
    todo = missing(tasks, done)
    options = RunOptions(
        judge_model=judge,
        run_name=run_name or f"{bench_dir.resolve().name}/{run_mode}/{judge}",
        verdict_mode=verdict_mode,  # type: ignore[arg-type]  # checked above
        parser=parser,  # type: ignore[arg-type]  # checked above
        cot=cot,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
    )
    stats: dict[str, Any] = {
        "bench_dir": str(bench_dir),
        "mode": run_mode,
        "judge": judge,
        "baseline": baseline_model if run_mode == "pairwise-baseline" else None,
        "model_list": sorted({m for t in tasks for m in t.models}),
        "total_num_questions": len(questions),
        "total_num_matches": len(tasks),
        "already_judged": len(tasks) - len(todo),
        "to_judge": len(todo),
        "output_path": str(out),
        "judging": f"service {target}" if target else "in-process",
        "parser": parser,
    }
    typer.echo("Stats:\n" + json.dumps(stats, indent=4))
    if dry_run or not todo:
        return
    with items_progress(quiet) as progress:
        bar = _Bar(progress, len(tasks), len(tasks) - len(todo), verbose)
        summary = _judge(
            settings,
            target,
            resolve_key(key) if target else None,
            judge,
            model_path,
            templates,
            todo,
            len(tasks),
            out,
            options,
            batch_items,
            bar,
        )
    typer.echo(f"done: {summary.written} judgment(s) written ({summary.errors} error(s)) to {out}")
    if summary.errors:
        typer.echo(
            f"error: {summary.errors} judgment(s) ended in error (see their judge outputs in {out})", err=True
        )
        raise typer.Exit(int(ExitCode.ITEMS_FAILED))


def _judge(
    settings: Settings,
    service: str | None,
    key: str | None,
    judge: str,
    model_path: Path | None,
    templates: Templates,
    todo: list[Task],
    planned: int,
    out: Path,
    options: RunOptions,
    batch_items: int,
    on_judgment: Callable[[Judgment, RunSummary], None],
) -> RunSummary:
    submitter: Submitter
    client = None
    failures: tuple[type[Exception], ...]
    if service:
        from app.mtbench.remote import ServiceRunError
        from judge_client import JudgeError

        failures = (JudgeError, ServiceRunError, ValueError)
    else:
        from app.engine.base import EngineError

        failures = (EngineError, ValueError)
    try:
        if service:
            from app.mtbench.remote import ServiceSubmitter, ensure_templates, ledger_path
            from judge_client import Judge

            client = Judge(service, key)
            refs = ensure_templates(service, key, templates.custom)
            submitter = ServiceSubmitter(client, ledger_path(out), refs)
        else:
            from app.mtbench.inprocess import InProcessSubmitter

            submitter = InProcessSubmitter(load_engine(settings, judge, model_path), settings.batch_size)
        with formats.JudgmentWriter(out) as writer:
            return run(planned, todo, templates, submitter, writer, options, batch_items, on_judgment)
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: the judgments done are written; run the same command again to resume", err=True
        )
        raise typer.Exit(130) from None
    except failures as exc:
        raise _fail(str(exc), _failure_code(exc)) from None
    finally:
        if client is not None:
            client.close()


def _failure_code(exc: Exception) -> ExitCode:
    """A judge-client error's own code (4 for a refused key, 3 unreachable, ...); 1 for a job or engine
    that failed; 2 for input the run could not use."""
    from judge_client import JudgeError

    if isinstance(exc, JudgeError):
        return exit_code_for(exc)
    return ExitCode.USAGE if isinstance(exc, ValueError) else ExitCode.FAILED


@mtbench_cli.command("show")
def show_command(
    bench_dir: Path = typer.Option(Path("."), "--bench-dir", help="FastChat bench folder."),
    mode: str = typer.Option("single", help=_MODE_HELP),
    judge_model: str = typer.Option(None, help="Judge whose file to read (default: the default model)."),
    input_file: Path = typer.Option(
        None, help="Judgment file (default: model_judgment/<judge>_<kind>.jsonl)."
    ),
    baseline_model: str = typer.Option(
        None,
        help="pairwise-baseline: the baseline (default: the one model that every judgment of the file "
        f"plays against, as the dashboard's leaderboard finds it, else {DEFAULT_BASELINE} if it plays).",
    ),
    model_list: list[str] = typer.Option(None, help="Only these models (repeat or comma-separate)."),
    stats: bool = typer.Option(
        False,
        "--stats",
        help="After FastChat's tables: consistency and first-position rates, win rates and mean scores (per "
        "category, from question.jsonl) with bootstrap 95 % intervals, and Bradley-Terry ratings "
        "(pairwise-all) or the length-controlled win rate (pairwise-baseline; lengths from model_answer/), "
        "as `judge jobs summary` computes them.",
    ),
    rounds: int | None = typer.Option(
        None, min=0, help="--stats: bootstrap resamples (default JUDGE_SUMMARY_BOOTSTRAP_ROUNDS)."
    ),
    seed: int = typer.Option(0, help="--stats: the bootstrap's seed."),
) -> None:
    """Print FastChat's show_result tables: mean scores per turn, or win / loss / tie rates; with
    --stats, the run's statistics with confidence intervals too."""
    run_mode = _mode(mode)
    settings = get_settings()
    judge = judge_model or settings.default_model
    path = input_file or formats.judgment_path(bench_dir, judge, _kind(run_mode))
    models = _models(model_list)
    typer.echo(f"Mode: {run_mode}\nInput file: {path}")
    baseline = None
    try:
        if run_mode == "single":
            singles = formats.read_single_judgments(path)
            typer.echo(tables.format_single(tables.single_tables(singles, models)))
            shown: list[formats.Judgment] = [j for j in singles if models is None or j.model in models]
        else:
            judgments = formats.read_pair_judgments(path)
            present = tables.pair_models(judgments)
            baseline = None
            if run_mode == "pairwise-baseline":
                baseline = baseline_model or _found_baseline(judgments, path)
            if baseline is not None and baseline not in present:
                typer.echo(
                    f"warning: the baseline model {baseline!r} plays in no judgment of {path} (models there: "
                    f"{', '.join(sorted(present)) or 'none'}); give --baseline-model one of them, or "
                    "--mode pairwise-all",
                    err=True,
                )
                raise typer.Exit(ExitCode.USAGE)
            typer.echo(tables.format_pairwise(tables.pairwise_table(judgments, baseline, models)))
            shown = [
                j
                for j in judgments
                if (models is None or j.model_1 in models)
                and (baseline is None or baseline in (j.model_1, j.model_2))
            ]
        if stats:
            typer.echo("")
            typer.echo(
                _stats(
                    bench_dir,
                    shown,
                    baseline,
                    settings.summary_bootstrap_rounds if rounds is None else rounds,
                    seed,
                )
            )
    except FormatError as exc:
        raise _fail(str(exc)) from None


def _stats(
    bench_dir: Path, judgments: list[formats.Judgment], baseline: str | None, rounds: int, seed: int
) -> str:
    """``show --stats``: the judgments' summary, as `judge jobs summary` prints one."""
    from app.commands.summaries import summary_text
    from app.mtbench.summary import file_observations
    from app.summaries.compose import summarize
    from judge_client.summaries import Summary

    questions = bench_dir / formats.QUESTION_FILE
    categories = (
        {q.question_id: q.category for q in formats.read_questions(questions)} if questions.is_file() else {}
    )
    answer_dir = bench_dir / formats.ANSWER_DIR
    answers = formats.read_answer_dir(answer_dir) if answer_dir.is_dir() else {}
    if baseline is not None and not answers:
        typer.echo(
            f"warning: no answers in {answer_dir}: the length-controlled win rate counts every answer as "
            "empty (give --bench-dir)",
            err=True,
        )
    summary = summarize([], file_observations(judgments, categories, answers), rounds, seed, baseline)
    return summary_text(Summary.model_validate(summary.model_dump(mode="json")))


def _found_baseline(judgments: list[formats.PairJudgment], path: Path) -> str:
    """The baseline of a pairwise-baseline file: the one ``model_2`` of every judgment, never a
    ``model_1`` (as the dashboard's leaderboard finds a run's baseline), else FastChat's default baseline
    where it plays; a usage error otherwise."""
    found = baseline_of((j.model_1, j.model_2) for j in judgments)
    if found is None and DEFAULT_BASELINE in tables.pair_models(judgments):
        found = DEFAULT_BASELINE
    if found is None:
        raise _fail(
            f"cannot tell the baseline of {path}: no one model plays second in every judgment and first in "
            "none; give --baseline-model, or --mode pairwise-all"
        )
    typer.echo(f"Baseline: {found}")
    return found


@mtbench_cli.command("agreement")
def agreement_command(
    first: Path = typer.Argument(..., help="Pairwise judgments (a _pair.jsonl) or human-judgment votes."),
    second: Path = typer.Argument(
        None, help="The other source; without it, agreement among FIRST's own votes."
    ),
    include_authors: bool = typer.Option(
        False,
        help="Count the votes of author_* judges as human ones (FastChat, and the default, keep them apart "
        "and compare only expert_* votes as human).",
    ),
) -> None:
    """Agreement between two judges' pairwise votes per turn, with and without ties (MT-Bench Table 5)."""
    try:
        votes_a = agreement_mod.read_votes(first)
        votes_b = agreement_mod.read_votes(second) if second is not None else None
    except FormatError as exc:
        raise _fail(str(exc)) from None
    typer.echo(agreement_mod.describe_voters(first.name, votes_a, include_authors))
    if second is not None and votes_b is not None:
        typer.echo(agreement_mod.describe_voters(second.name, votes_b, include_authors))
    report = agreement_mod.agreement_report(votes_a, votes_b, include_authors)
    typer.echo(agreement_mod.format_report(report))


@mtbench_cli.command("import-prompts")
def import_prompts_command(
    judge_prompts: Path = typer.Argument(..., help="FastChat judge_prompts.jsonl."),
    url: str = typer.Option(
        None, "--url", envvar="JUDGE_URL", show_default=DEFAULT_URL, help="The service's base URL."
    ),
    service: str = _SERVICE,
    key: str | None = KEY,
) -> None:
    """Register FastChat's judge prompts as templates of your tenant (``mtbench-<name>``), so any request
    can name them."""
    from app.mtbench.remote import ensure_templates

    try:
        templates = prompts.from_fastchat(formats.read_judge_prompts(judge_prompts))
    except (FormatError, PromptError) as exc:
        raise _fail(str(exc)) from None
    target = _service_url(url, service) or DEFAULT_URL
    with client_errors():
        refs = ensure_templates(target, resolve_key(key), templates.custom)
    for role, spec in templates.specs.items():
        typer.echo(f"{refs[spec.name]}\t(FastChat '{templates.names[role]}')")
