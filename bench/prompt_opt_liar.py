"""ProTeGi prompt optimization on LIAR with the real default model, through the service's job path.

Run from the repository root with Postgres and Redis up (see README):

    .venv/bin/python bench/prompt_opt_liar.py [--rounds 2] [--beam 2] [--paper] [--skip-brute-force]

As in the ProTeGi paper, dev (50) and test (150) examples are drawn, disjoint and seeded, from LIAR's
test.jsonl and the search trains on train.jsonl (label 1 = a lie = "Yes"). The run is the service's
own: a fresh Postgres database migrated with Alembic, the splits uploaded as datasets, jobs submitted
with ``app.prompt_opt.service.submit`` and run in this process by ``workers.tasks.run_job`` with the
real engine installed as the worker's (the worker code, its prediction cache and its budget meter).
The engine is wrapped only to count and time the calls that reach the model.

Prints, for three jobs:
  1. the search (UCB bandit selection): initial vs best prompt on dev and test (accuracy, macro F1),
     task and optimizer model calls, cache hits, wall time, how the optimizer's replies parsed and why
     candidates were rejected;
  2. the identical job again: every output comes from the prediction cache (0 model calls);
  3. the same search with ``selector.method: "brute-force"`` on an emptied cache: the calls bandit
     selection saves, and whether the final test accuracy differs beyond noise.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import DEFAULT_MODEL, Settings  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.core.migrate import upgrade  # noqa: E402
from app.datasets import service as datasets_service  # noqa: E402
from app.datasets.upload import parse_upload  # noqa: E402
from app.db.tables import Job  # noqa: E402
from app.engine.base import Conversation, Engine, Generation, LabelDistribution, SamplingParams  # noqa: E402
from app.engine.factory import build_engine  # noqa: E402
from app.jobs import repository as jobs_repo  # noqa: E402
from app.jobs.queue import JobQueue, queue_name  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from app.prompt_opt import bandits, meta_prompts, sections  # noqa: E402
from app.prompt_opt import service as po_service  # noqa: E402
from app.prompt_opt.schemas import HyperparamsIn, PromptOptimizationRequest, PromptOptimizationResults  # noqa: E402
from workers import context  # noqa: E402
from workers.main import resolve_model_path  # noqa: E402
from workers.tasks import run_job  # noqa: E402

DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_po"
REDIS_URL = "redis://127.0.0.1:6379/12"
DATA_DIR = ROOT.parent / "shared" / "anchors" / "protegi" / "liar"

INITIAL_PROMPT = """# Task
Decide whether the statement below is a lie. Along with the statement you see who made it (their job, \
state and party) and the occasion on which it was made.

# Output format
Answer with one word: Yes if the statement is a lie, No if it is not.

# Prediction
{text}

Is this statement a lie?"""

TASK_DESCRIPTION = (
    "Fact-checking: given a political statement with its speaker's job, state, party and the context it "
    "was made in, answer Yes if the statement is a lie and No if it is not."
)

# Our modest defaults (about 10-15 minutes on 2 CPU cores); --paper takes the reference's instead.
MODEST = {
    "rounds": 2,
    "beam_size": 2,
    "minibatch_size": 32,
    "n_gradients": 2,
    "errors_per_gradient": 4,
    "mc_samples": 1,
    "max_expansion": 8,
    "selector": {"samples_per_eval": 16, "eval_rounds": 4, "prompts_per_round": 4},
}
PAPER = HyperparamsIn().model_dump()  # the API's defaults are the reference implementation's


# -- counting the calls that reach the model ----------------------------------------------------------


def _is_optimizer(conv: Conversation) -> bool:
    return bool(conv) and conv[0]["role"] == "system" and "expert prompt engineer" in conv[0]["content"]


def _request_kind(conv: Conversation) -> str:
    user = conv[-1]["content"]
    if user.startswith("Rewrite the following instruction"):
        return "paraphrase"
    return "edit" if "A likely cause of these mistakes" in user else "gradient"


@dataclass
class Reply:
    kind: str
    text: str
    tokens_out: int
    truncated: bool


@dataclass
class Counts:
    task_calls: int = 0
    optimizer_calls: int = 0
    selection_calls: int = 0  # task calls made while a selector ranked the candidates
    task_seconds: float = 0.0
    optimizer_seconds: float = 0.0
    replies: list[Reply] = field(default_factory=list)


class CountingEngine:
    """The real engine, with every call that reaches it counted and timed (cache hits never do)."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.counts = Counts()
        self.selecting = False

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    def _task(self, n: int, seconds: float) -> None:
        self.counts.task_calls += n
        self.counts.task_seconds += seconds
        if self.selecting:
            self.counts.selection_calls += n

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        started = time.perf_counter()
        out = self.inner.generate(prompts, sampling)
        seconds = time.perf_counter() - started
        optimizer = [i for i, conv in enumerate(prompts) if _is_optimizer(conv)]
        if not optimizer:
            self._task(len(prompts), seconds)
            return out
        self.counts.optimizer_calls += len(optimizer)
        self.counts.optimizer_seconds += seconds
        self._task(len(prompts) - len(optimizer), 0.0)
        for i in optimizer:
            g = out[i]
            self.counts.replies.append(
                Reply(_request_kind(prompts[i]), g.text, g.tokens_out, g.finish_reason == "length")
            )
        return out

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        started = time.perf_counter()
        out = self.inner.label_logprobs(prompts, labels)
        self._task(len(prompts), time.perf_counter() - started)
        return out

    def render_chat(self, conversation: Conversation) -> str:
        return self.inner.render_chat(conversation)

    def load_weights(self, model_path: Path, model_name: str) -> None:
        self.inner.load_weights(model_path, model_name)

    def close(self) -> None:
        self.inner.close()

    def take(self) -> Counts:
        counts, self.counts = self.counts, Counts()
        return counts


def count_selection_calls(engine: CountingEngine) -> None:
    """Mark the task calls a selector makes (the search calls ``bandits.select`` by module attribute)."""
    select = bandits.select

    def counted(*args: Any, **kwargs: Any) -> bandits.Selection:
        engine.selecting = True
        try:
            return select(*args, **kwargs)
        finally:
            engine.selecting = False

    bandits.select = counted


# -- the service, in this process ----------------------------------------------------------------------


def fresh_database(url: str) -> str:
    """Drop and recreate the bench database, migrate it, and return its URL."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    rendered = target.render_as_string(hide_password=False)
    upgrade(rendered)
    return rendered


def upload(db: Database, settings: Settings, name: str, rows: list[dict[str, Any]]) -> uuid.UUID:
    body = "\n".join(json.dumps(r) for r in rows).encode()
    with db.unit_of_work() as session:
        dataset = datasets_service.create_dataset(
            session,
            "default",
            parse_upload("application/x-ndjson", body, name, None),
            settings.max_dataset_rows,
        )
        return dataset.id


@dataclass
class JobRun:
    label: str
    out: PromptOptimizationResults
    counts: Counts
    seconds: float


def run_one(
    label: str, db: Database, settings: Settings, engine: CountingEngine, request: PromptOptimizationRequest
) -> JobRun:
    ctx = context.current()
    with db.unit_of_work() as session:
        job = po_service.submit(session, settings, ctx.queue, request, "default")
        assert isinstance(job, Job)
        job_id = job.id
    started = time.perf_counter()
    outcome = run_job(str(job_id))
    seconds = time.perf_counter() - started
    with db.unit_of_work() as session:
        row = jobs_repo.get_job(session, job_id)
        assert row is not None
        out = po_service.results(session, row)
        error = row.error
    if out.status != "succeeded":
        raise SystemExit(f"{label}: job {job_id} ended {outcome!r} ({out.status}): {error}")
    return JobRun(label, out, engine.take(), seconds)


# -- reporting -----------------------------------------------------------------------------------------


def figure(run: JobRun, split: str, which: str, metric: str) -> float | None:
    report = run.out.evaluation.get(split, {}).get(which)
    return None if report is None else float(report[metric])


def pct(x: float | None) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


def shift(run: JobRun, split: str, metric: str) -> str:
    return f"{pct(figure(run, split, 'initial', metric))} -> {pct(figure(run, split, 'best', metric))}"


def task_text(prompt: str | None) -> str:
    return " ".join(sections.task_section(prompt).split()) if prompt else "-"


def print_run(run: JobRun) -> None:
    out, c = run.out, run.counts
    print(f"\n## {run.label}")
    print(f"stop: {out.stop_reason}; best candidate {out.best_key}; wall {run.seconds:.0f} s")
    for split in ("dev", "test"):
        report = out.evaluation.get(split, {})
        if not report:
            continue
        n = report["initial"]["n"]
        unparsed = f"{report['initial']['unparsed']} -> {report['best']['unparsed']}"
        print(
            f"  {split:4} (n={n:3}): accuracy {shift(run, split, 'accuracy')}  "
            f"macro F1 {shift(run, split, 'macro_f1')}  unparsed {unparsed}"
        )
    print(
        f"  model calls: task {c.task_calls} ({c.task_seconds:.0f} s, of which selection "
        f"{c.selection_calls}), optimizer {c.optimizer_calls} ({c.optimizer_seconds:.0f} s); "
        f"job usage: calls {out.usage.get('calls')}, tokens {out.usage.get('tokens')}, "
        f"cache hits {out.usage.get('cache_hits')}"
    )
    if c.replies:
        print("  optimizer replies (delimited = <START>..<END> found; else a parser fallback was used):")
        for kind in ("gradient", "edit", "paraphrase"):
            replies = [r for r in c.replies if r.kind == kind]
            if not replies:
                continue
            delimited = sum(1 for r in replies if meta_prompts.parse_delimited(r.text))
            empty = sum(1 for r in replies if not r.text.strip())
            truncated = sum(1 for r in replies if r.truncated)
            mean_tokens = sum(r.tokens_out for r in replies) / len(replies)
            fallback = len(replies) - delimited - empty
            print(
                f"    {kind:10} {len(replies):3}: delimited {delimited}, fallback {fallback}, "
                f"empty {empty}; hit the token limit {truncated}; mean {mean_tokens:.0f} tokens"
            )
    produced = [c for c in out.candidates if c.origin != "initial"]
    if produced:
        rejected = Counter(_reason(c.rejected) for c in produced if c.rejected)
        print(
            f"  candidates: {len(produced)} produced, {len(produced) - sum(rejected.values())} valid, "
            f"{sum(rejected.values())} rejected"
        )
        for reason, n in rejected.most_common():
            print(f"    rejected {n:3}: {reason}")
    print(f"  initial task: {task_text(out.initial_prompt)[:300]}")
    print(f"  best task:    {task_text(out.best_prompt)[:300]}")


def _reason(rejected: str | None) -> str:
    # "lost placeholder(s) {text}" and the like: the reason without its particulars.
    reason = (rejected or "").split(":")[0]
    return reason[:90]


def se(p: float | None, n: int) -> float:
    return 0.0 if p is None else math.sqrt(p * (1 - p) / n)


# -- main ----------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    base = json.loads(json.dumps(PAPER if args.paper else MODEST))
    for name in (
        "rounds",
        "beam_size",
        "minibatch_size",
        "n_gradients",
        "errors_per_gradient",
        "mc_samples",
        "max_expansion",
    ):
        if getattr(args, name) is not None:
            base[name] = getattr(args, name)
    for name in ("samples_per_eval", "eval_rounds", "prompts_per_round"):
        if getattr(args, name) is not None:
            base["selector"][name] = getattr(args, name)
    return base


def build_request(args: argparse.Namespace, train_id: uuid.UUID, test_id: uuid.UUID) -> dict[str, Any]:
    return {
        "task_type": "classification",
        "task_description": TASK_DESCRIPTION,
        "labels": ["No", "Yes"],
        "label_values": ["0", "1"],
        "initial_prompt": INITIAL_PROMPT,
        "data": {
            "train": {"dataset_id": str(train_id)},
            # test.jsonl was shuffled with the seed before upload: dev and test are disjoint slices.
            "dev": {"dataset_id": str(test_id), "start": 0, "count": args.dev},
            "test": {"dataset_id": str(test_id), "start": args.dev, "count": args.test},
        },
        "hyperparameters": hyperparameters(args),
        "metric": {"name": args.metric},
        "task_decoding": {"mode": args.decoding, "max_tokens": args.task_max_tokens},
        "optimizer_decoding": {
            "temperature": args.optimizer_temperature,
            "max_tokens": args.optimizer_max_tokens,
        },
        "seed": args.seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="LIAR train.jsonl and test.jsonl")
    parser.add_argument("--database-url", default=DATABASE_URL, help="bench database (dropped and recreated)")
    parser.add_argument("--redis-url", default=REDIS_URL, help="bench Redis database (flushed)")
    parser.add_argument("--dev", type=int, default=50, help="dev examples, from test.jsonl")
    parser.add_argument("--test", type=int, default=150, help="test examples, from test.jsonl")
    parser.add_argument("--seed", type=int, default=0, help="draws dev/test and seeds the search")
    parser.add_argument("--paper", action="store_true", help="the reference's hyperparameters as defaults")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--beam-size", type=int)
    parser.add_argument("--minibatch-size", type=int)
    parser.add_argument("--n-gradients", type=int)
    parser.add_argument("--errors-per-gradient", type=int)
    parser.add_argument("--mc-samples", type=int)
    parser.add_argument("--max-expansion", type=int)
    parser.add_argument("--samples-per-eval", type=int, help="selector: examples per pull")
    parser.add_argument("--eval-rounds", type=int, help="selector: bandit rounds")
    parser.add_argument("--prompts-per-round", type=int, help="selector: arms pulled per round")
    parser.add_argument("--metric", choices=["accuracy", "macro_f1"], default="accuracy")
    parser.add_argument(
        "--decoding", choices=["logprobs", "generate"], default="logprobs", help="task decoding"
    )
    parser.add_argument("--task-max-tokens", type=int, default=8, help="task completion limit (generate)")
    parser.add_argument(
        "--optimizer-max-tokens", type=int, default=160, help="optimizer completion limit (API default 400)"
    )
    parser.add_argument("--optimizer-temperature", type=float, default=0.8)
    parser.add_argument("--batch-size", type=int, default=32, help="engine batch size")
    parser.add_argument("--skip-brute-force", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    wall = time.perf_counter()

    train = read_jsonl(args.data_dir / "train.jsonl")
    test_pool = read_jsonl(args.data_dir / "test.jsonl")
    if args.dev + args.test > len(test_pool):
        raise SystemExit(f"--dev + --test must not exceed the {len(test_pool)} rows of test.jsonl")
    random.Random(args.seed).shuffle(test_pool)

    db_url = fresh_database(args.database_url)
    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    data_dir = pull_default_model(Settings().models_dir).parents[1]
    settings = Settings(
        database_url=db_url, redis_url=args.redis_url, data_dir=data_dir, batch_size=args.batch_size
    )
    db = Database(settings.sqlalchemy_url)
    train_id = upload(db, settings, "liar-train", train)
    test_id = upload(
        db, settings, f"liar-test (shuffled, seed {args.seed})", test_pool[: args.dev + args.test]
    )

    started = time.perf_counter()
    engine = CountingEngine(
        build_engine(settings, DEFAULT_MODEL, resolve_model_path(settings, db, DEFAULT_MODEL))
    )
    load_seconds = time.perf_counter() - started
    count_selection_calls(engine)
    context.install(
        context.WorkerContext(
            settings=settings,
            db=db,
            queue=JobQueue(redis, settings.job_timeout_seconds),
            engine=engine,
            model=DEFAULT_MODEL,
            queue_name=queue_name(DEFAULT_MODEL),
            worker_id="bench-prompt-opt",
        )
    )
    payload = build_request(args, train_id, test_id)
    request = PromptOptimizationRequest.model_validate(payload)
    with db.unit_of_work() as session:
        projection = po_service.submit(
            session,
            settings,
            context.current().queue,
            request.model_copy(update={"dry_run": True}),
            "default",
        )
    hp = payload["hyperparameters"]
    print(
        f"# LIAR: train {len(train)}, dev {args.dev}, test {args.test} (seed {args.seed}); "
        f"{DEFAULT_MODEL} ({settings.backend}, batch {args.batch_size}) as task and optimizer model, "
        f"task decoding {args.decoding}; model loaded in {load_seconds:.1f} s"
    )
    print(f"# hyperparameters{' (paper)' if args.paper else ''}: {json.dumps(hp)}")
    if not isinstance(projection, Job):
        p = projection.projection
        print(f"# projected at most: {p.task_calls} task calls, {p.optimizer_calls} optimizer calls")

    runs = [run_one("search, UCB selection", db, settings, engine, request)]
    print_run(runs[0])
    runs.append(run_one("the identical job again (same cache)", db, settings, engine, request))
    print_run(runs[1])
    if not args.skip_brute_force:
        with db.unit_of_work() as session:
            session.execute(text("TRUNCATE prediction_cache"))
        brute = json.loads(json.dumps(payload))
        brute["hyperparameters"]["selector"]["method"] = "brute-force"
        runs.append(
            run_one(
                "search, brute-force selection (emptied cache)",
                db,
                settings,
                engine,
                PromptOptimizationRequest.model_validate(brute),
            )
        )
        print_run(runs[2])

    print("\n## Summary")
    first, again = runs[0], runs[1]
    spent = first.counts.task_calls + first.counts.optimizer_calls
    saved = spent - again.counts.task_calls - again.counts.optimizer_calls
    print(
        f"cache: the identical job made {again.counts.task_calls + again.counts.optimizer_calls} model calls "
        f"({again.out.usage.get('cache_hits')} cache hits) against {spent}: {saved} calls saved, "
        f"{again.seconds:.1f} s instead of {first.seconds:.0f} s; same best prompt: "
        f"{again.out.best_prompt == first.out.best_prompt}"
    )
    if len(runs) > 2:
        bf = runs[2]
        ucb_acc, bf_acc = figure(first, "test", "best", "accuracy"), figure(bf, "test", "best", "accuracy")
        noise = 2 * math.hypot(se(ucb_acc, args.test), se(bf_acc, args.test))
        diff = (bf_acc or 0.0) - (ucb_acc or 0.0)
        verdict = "equal" if diff == 0 else ("within noise" if abs(diff) <= noise else "beyond noise")
        selection_saved = bf.counts.selection_calls - first.counts.selection_calls
        bf_spent = bf.counts.task_calls + bf.counts.optimizer_calls
        print(
            f"bandit: selection took {first.counts.selection_calls} task calls with UCB vs "
            f"{bf.counts.selection_calls} brute force ({selection_saved} saved); "
            f"whole job {spent} vs {bf_spent} calls, "
            f"{first.seconds:.0f} s vs {bf.seconds:.0f} s"
        )
        print(
            f"        best prompt's test accuracy {pct(ucb_acc)} (UCB) vs {pct(bf_acc)} (brute force): "
            f"difference {100 * diff:+.1f} points, {verdict} "
            f"(2 SE = {100 * noise:.1f} points at n={args.test})"
        )

    print(
        "\n| job | task calls | of which selection | optimizer calls | cache hits | wall s "
        "| test acc initial -> best | test macro F1 | dev acc |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for run in runs:
        c = run.counts
        print(
            f"| {run.label} | {c.task_calls} | {c.selection_calls} | {c.optimizer_calls} "
            f"| {run.out.usage.get('cache_hits')} | {run.seconds:.0f} "
            f"| {shift(run, 'test', 'accuracy')} | {shift(run, 'test', 'macro_f1')} "
            f"| {shift(run, 'dev', 'accuracy')} |"
        )
    print(f"\ntotal wall time {time.perf_counter() - wall:.0f} s")
    redis.flushdb()
    engine.close()
    db.dispose()


if __name__ == "__main__":
    main()
