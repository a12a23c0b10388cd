"""Juries (issue 18, item 3): a 3-judge jury's throughput against three single-judge jobs on the same
items, and the consistency rate of one judge, of `samples: 5` and of a 3-judge jury.

Run from the repository root with Postgres and Redis up (see bench/README.md):

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/jury_bench.py [--items 64] [--max-tokens 32] [--samples 5]

It starts the real `judge serve` and one `judge worker` on a scratch database (``judge_jury``) and a
flushed Redis database. The judges are the default model registered under three names for the same
folder, each with its own template (the built-in `pairwise` and two registered wordings), so the
three disagree where the wording matters. Names registered for the same weights share the engine
that holds them (one queue, one worker, their calls in the same batches), as an operator running
three templates of one model would want: the weights are loaded once. Every job judges the same N
MT-Bench-like pairwise items (judge_bench's) with conservative swap and `cache: "off"` (every call
reaches an engine):

  (a) throughput: the jury job (`judges`: all three, `?wait=`) and the three single-judge jobs one
      after another (each `?wait=`): the jury must not take longer than the three in a row
      (2N calls per judge either way; the jury's calls of the three judges share batches). Whatever
      runs second finds the engine's caches warm (the prompts' token ids, allocator pages), so
      `--rounds` alternate the order (jury first in odd rounds, singles first in even ones) after an
      untimed jury pass that warms them for both, and the figure is the sum over rounds;
  (b) consistency rate (the summary's: items judged in both orders whose orders agreed; a jury's item
      is consistent when the jury's majority over every judge's first order equals its majority over
      their swapped order): judge 1 alone (greedy), judge 1 with `samples: k` (temperature 0.7, each
      order's own majority), and the jury's (from run (a)).

Figures are what this machine measured; nothing here measures accuracy.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import DEFAULT_MODEL, Settings  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from app.models.registry import register  # noqa: E402
from bench.judge_bench import items  # noqa: E402
from tests.e2e.services import free_port, make_stack, spawn, wait_ready  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/10"
URL = "/v1/judgments/pairwise"
JUDGES = (DEFAULT_MODEL, "jury-bench-2", "jury-bench-3")
TEMPLATES: dict[str, dict[str, Any]] = {
    "jury-bench-2": {
        "name": "jury-bench-terse",
        "mode": "pairwise",
        "system": "Pick the better answer to the question.",
        "user": "Question: {question}\n\nAnswer A: {answer_a}\n\nAnswer B: {answer_b}\n\n"
        "Which answer is better? Reply [[A]], [[B]], or [[C]] for a tie.",
        "response_prefix": "Verdict: [[",
    },
    "jury-bench-3": {
        "name": "jury-bench-strict",
        "mode": "pairwise",
        "system": "You are a demanding reviewer. Correctness counts above all; style counts little.",
        "user": "=== Question ===\n{question}\n\n=== Answer A ===\n{answer_a}\n\n"
        "=== Answer B ===\n{answer_b}\n\n"
        "Decide which answer is more correct. Give [[A]] or [[B]], or [[C]] if neither is better.",
        "response_prefix": "Verdict: [[",
    },
}


def judged(client: httpx.Client, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """One `?wait=` request: (seconds, the ended job with its results)."""
    started = time.perf_counter()
    r = client.post(URL, params={"wait": 3600}, json=body, timeout=3700)
    elapsed = time.perf_counter() - started
    job: dict[str, Any] = r.json()
    # (A job whose every item failed, e.g. with a tiny --max-tokens, ended "failed" but was judged.)
    if r.status_code != 200 or job.get("status") not in ("succeeded", "failed") or not job.get("results"):
        raise SystemExit(f"request failed: {r.status_code} {r.text[:500]}")
    return elapsed, job


def consistency(client: httpx.Client, job: dict[str, Any]) -> tuple[float | None, int]:
    """The job's consistency rate and the items it counts (judged in both orders)."""
    figures = client.get(f"/v1/jobs/{job['id']}/summary", params={"rounds": 0}).raise_for_status().json()
    return figures["figures"]["consistency_rate"], figures["figures"]["swapped"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--items", type=int, default=64, help="pairwise items (2 judge calls each per judge)")
    parser.add_argument("--max-tokens", type=int, default=32, help="most new tokens per judge call")
    parser.add_argument(
        "--samples", type=int, default=5, help="samples per order of the self-consistent run (0: no such run)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="timed rounds of (a), alternating which runs first"
    )
    parser.add_argument("--redis-url", default=REDIS_URL, help="flushed first")
    parser.add_argument("--db-name", default="judge_jury", help="scratch database (dropped and re-created)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="the worker's JUDGE_TORCH_THREADS (default: torch's own, every core)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    model_dir = pull_default_model(Settings().models_dir).parent
    stack = make_stack(args.db_name, args.redis_url, model_dir, Path(tempfile.mkdtemp(prefix="judge-jury-")))
    if args.torch_threads is not None:
        stack.env["JUDGE_TORCH_THREADS"] = str(args.torch_threads)
    db = Database(Settings(database_url=stack.db_url).sqlalchemy_url)
    with db.unit_of_work() as session:
        for name in JUDGES[1:]:
            register(session, Settings(), name, model_dir / DEFAULT_MODEL)
    db.dispose()
    base = {"swap": "conservative", "max_tokens": args.max_tokens, "cache": "off", "items": items(args.items)}
    try:
        service = stack.serve(free_port())
        # One worker: the other two names have the default model's weights, served by its engine.
        stack.procs.append(spawn(["worker", "--model", JUDGES[0]], stack.env, stack.logs / "worker.log"))
        wait_ready(service)
        with service.client() as client:
            for template in TEMPLATES.values():
                client.post("/v1/templates", json=template).raise_for_status()
            judges = [JUDGES[0]] + [{"model": m, "template": TEMPLATES[m]["name"]} for m in JUDGES[1:]]
            # Not timed: a whole jury pass, so that every timed run finds what the first run of a
            # fresh worker would build (each prompt's token ids, the allocator's pages for full
            # batches); without it the first timed run, jury or singles, is 10-20 % slower.
            judged(client, {**base, "judges": judges})

            def run_singles() -> list[tuple[float, dict[str, Any]]]:
                done = []
                for judge in judges:
                    one = judge if isinstance(judge, dict) else {"model": judge}
                    done.append(
                        judged(client, {**base, "model": one["model"], "template": one.get("template")})
                    )
                return done

            rounds: list[tuple[float, list[tuple[float, dict[str, Any]]]]] = []
            for r in range(args.rounds):
                if r % 2 == 0:
                    jury_s, jury = judged(client, {**base, "judges": judges})
                    singles = run_singles()
                else:
                    singles = run_singles()
                    jury_s, jury = judged(client, {**base, "judges": judges})
                rounds.append((jury_s, singles))
            jury_s = sum(j for j, _ in rounds)
            sequential_s = sum(s for _, singles in rounds for s, _ in singles)
            rates = {"judge 1 alone (greedy)": consistency(client, singles[0][1])}
            sampled_s = None
            if args.samples:
                sampled_s, sampled = judged(
                    client,
                    {**base, "model": JUDGES[0], "samples": args.samples, "temperature": 0.7, "seed": 7},
                )
                rates[f"judge 1, samples: {args.samples} (t=0.7)"] = consistency(client, sampled)
            rates["3-judge jury (majority)"] = consistency(client, jury)
            agreement = client.get(f"/v1/jobs/{jury['id']}/summary", params={"rounds": 0}).json()["jury"]
    finally:
        stack.close()

    calls = 2 * args.items
    print(
        f"# {args.items} pairwise items, conservative swap, greedy, max_tokens={args.max_tokens}, cache off; "
        f"judges: the default model under 3 names and templates, served by one worker's engine "
        f"({args.torch_threads or 'default'} torch thread(s), {os.cpu_count()} cores)"
    )
    print(f"(a) throughput, {args.rounds} round(s)")
    for r, (one_jury, singles) in enumerate(rounds, 1):
        first = "jury first" if r % 2 else "singles first"
        row = sum(s for s, _ in singles)
        print(f"  round {r} ({first}): jury {one_jury:.2f} s; three single jobs in a row {row:.2f} s", end="")
        print(" (" + " + ".join(f"{s:.2f}" for s, _ in singles) + f"); jury / singles {one_jury / row:.3f}")
    n = args.rounds
    print(f"  jury (3 judges, one job)       {jury_s:8.2f} s  {3 * calls * n / jury_s:6.2f} judge calls/s")
    print(
        f"  three single jobs in a row     {sequential_s:8.2f} s  "
        f"{3 * calls * n / sequential_s:6.2f} judge calls/s"
    )
    if sampled_s is not None:
        print(f"  samples: {args.samples} run (for (b))          {sampled_s:8.2f} s")
    print("(b) consistency rate (items judged in both orders whose orders agreed)")
    for name, (rate, counted) in rates.items():
        shown = f"{rate:.3f}" if rate is not None else "n/a"
        print(f"  {name:<32} {shown:>6}  over {counted} items")
    kappas = ", ".join(
        f"{k['judge_a']}~{k['judge_b']}: " + (f"{k['kappa']:.2f}" if k["kappa"] is not None else "undefined")
        for k in agreement["cohen_kappa"]
    )
    fleiss = agreement["fleiss_kappa"]
    print(
        f"  jury agreement: Fleiss' kappa {fleiss if fleiss is None else round(fleiss, 3)}; Cohen's {kappas}"
    )
    print("\n# issue 18 item 3 target")
    met = jury_s <= sequential_s
    print(
        f"jury {jury_s:.2f} s vs three single jobs in a row {sequential_s:.2f} s over {args.rounds} "
        f"round(s) (ratio {jury_s / sequential_s:.3f}): {'MET' if met else 'MISSED'}"
    )
    print(f"logs: {stack.logs}")


if __name__ == "__main__":
    main()
