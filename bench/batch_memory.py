"""Is a worker's memory bounded by the batch token budget, whatever users send?

Run from the repository root with Postgres and Redis up (see README):

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/batch_memory.py [--items 32] [--prompt-tokens 8000] [--batch-tokens N]

It starts the real `judge serve` and `judge worker` processes (default model; `JUDGE_*` engine settings
in the environment pass through, e.g. `JUDGE_BATCH_TOKENS`) on a scratch database, submits one
pairwise job of ``--items`` items whose prompts are about ``--prompt-tokens`` tokens each (conservative
swap: two rows per item), waits for it, and compares the worker's peak memory (VmHWM) with:

- the model alone: the worker's resident memory after a one-item warm-up job (weights, tokenizer,
  Python, and what a first forward pass leaves resident: kernels, thread pools, allocator arenas);
- the batch token budget: the worker's logged budget (tokens) x the model's key/value bytes per token;
- what the job would need in one batch without a budget: rows x (prompt + new tokens) x bytes per token.

The figure to reach: peak <= model + budget (the budget's key/value memory bounds the batch's).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from bench.wait_latency import start  # noqa: E402
from bench.worker_memory import memory_mib  # noqa: E402
from tests.e2e.services import make_stack, wait_ready  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"
# Engine settings taken from this environment (the stack clears every other JUDGE_* variable).
PASSED = ("JUDGE_BATCH_TOKENS", "JUDGE_BATCH_SIZE", "JUDGE_DTYPE", "JUDGE_DEVICE")
SENTENCE = "The committee reviewed every clause of the agreement and noted its objections in detail. "


def long_answer(tokens: int, seed: int) -> str:
    """About ``tokens`` tokens of English (a sentence is ~16 tokens for the default tokenizer)."""
    return f"Case {seed}. " + SENTENCE * max(1, tokens // 16)


def logged(path: Path, pattern: str, timeout: float = 60.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.5)
    raise SystemExit(f"{path} never logged {pattern!r}")


def warm_up(client: Any) -> None:
    """One short item, waited for: the model's first forward pass allocates what stays resident after
    it (kernels, thread pools, allocator arenas), which is the model's cost, not the batch's."""
    r = client.post(
        "/v1/judgments/pairwise?wait=300",
        json={"max_tokens": 4, "items": [{"question": "Hi?", "answer_a": "Hello.", "answer_b": "Hey."}]},
        timeout=330,
    )
    if r.status_code not in (200, 202) or r.json()["status"] != "succeeded":
        raise SystemExit(f"warm-up job did not succeed: {r.status_code} {r.text[:500]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=8000)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--redis-url", default=REDIS_URL, help="Flushed first.")
    parser.add_argument(
        "--batch-tokens", type=int, default=None, help="the worker's JUDGE_BATCH_TOKENS (default: its own)"
    )
    parser.add_argument(
        "--measure-items",
        type=int,
        default=0,
        help="stop (cancel the job) once this many items are judged: every batch is bounded alike, so a "
        "few batches show the peak (0: wait for the whole job)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    model_dir = pull_default_model(Settings().models_dir).parent
    logs = Path(tempfile.mkdtemp(prefix="judge-bm-"))
    stack = make_stack("judge_batch_memory", args.redis_url, model_dir, logs)
    # The stack starts from a clean JUDGE_* environment: the engine settings given here pass through.
    stack.env.update({k: v for k, v in os.environ.items() if k in PASSED})
    if args.batch_tokens is not None:
        stack.env["JUDGE_BATCH_TOKENS"] = str(args.batch_tokens)
    try:
        service = start(stack, ROOT)
        wait_ready(service)
        worker_pid = service.procs[0].pid
        worker_log = stack.logs / "worker.log"
        limits = logged(worker_log, r"batches of at most (\d+) rows and (\d+) tokens")
        per_token = int(logged(worker_log, r"key/value memory at (\d+) bytes per token").group(1))
        budget_tokens = int(limits.group(2))
        with service.client() as client:
            warm_up(client)
        _, model_only = memory_mib(worker_pid)
        half = args.prompt_tokens // 2
        items = [
            {
                "question": f"Summarise case {i}.",
                "answer_a": long_answer(half, i),
                "answer_b": long_answer(half, i + 1000),
            }
            for i in range(args.items)
        ]
        started = time.monotonic()
        with service.client() as client:
            r = client.post(
                "/v1/judgments/pairwise",
                json={"swap": "conservative", "max_tokens": args.max_tokens, "items": items},
                timeout=600,
            )
            if r.status_code != 202:
                raise SystemExit(f"request failed: {r.status_code} {r.text[:500]}")
            job = r.json()
            wanted = args.measure_items or args.items
            ended = ("succeeded", "failed", "cancelled")
            while job["status"] not in ended and job["progress"]["done"] < wanted:
                time.sleep(2)
                job = client.get(f"/v1/jobs/{job['id']}").json()
            elapsed = time.monotonic() - started
            if job["status"] not in ended:
                client.post(f"/v1/jobs/{job['id']}/cancel")
                job = client.get(f"/v1/jobs/{job['id']}").json()
        tokens_in = [o["tokens_in"] for res in job.get("results") or [] for o in res["orders"]]
        judged = job["progress"]["done"]
        peak, resident = memory_mib(worker_pid)
    finally:
        stack.close()

    mib = 2**20
    if not judged:
        raise SystemExit(f"no item was judged in {elapsed:.0f} s")
    if not tokens_in:
        # Items that ended in error (no verdict in the judge's reply) carry no token counts here.
        tokens_in = [args.prompt_tokens]
    rows = 2 * args.items
    mean_in = sum(tokens_in) / len(tokens_in)
    unbounded = rows * (mean_in + args.max_tokens) * per_token / mib
    budget_mib = budget_tokens * per_token / mib
    shortest, longest = min(tokens_in), max(tokens_in)
    print(
        f"job: {args.items} items ({rows} rows) submitted, prompts of {shortest}-{longest} tokens; "
        f"{judged} items judged in {elapsed:.0f} s ({job['status']})"
    )
    print(f"model alone (worker resident after a warm-up item): {model_only:8.0f} MiB")
    print(f"batch token budget: {budget_tokens} tokens x {per_token} B = {budget_mib:8.0f} MiB")
    print(f"one unbounded batch of this job would hold:     {unbounded:8.0f} MiB of keys/values")
    print(f"worker peak (VmHWM): {peak:.0f} MiB; resident after: {resident:.0f} MiB")
    bound = model_only + budget_mib
    print(f"peak <= model + budget ({bound:.0f} MiB): {'met' if peak <= bound else 'missed'}")
    print(f"logs: {stack.logs}")


if __name__ == "__main__":
    main()
