"""Does a worker's memory grow with the jobs it serves? Rounds of the same workload, memory after each.

Run from the repository root with Postgres and Redis up (see README):

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/worker_memory.py [--rounds 8] [--redis-url URL]

It starts the real `judge serve` and `judge worker` processes (default model, `JUDGE_BATCH_SIZE` as
configured) on a scratch database (``judge_memory`` on the test server) and a flushed Redis database,
then runs ``--rounds`` identical rounds. A round: 16 concurrent single-item requests and one 16-item
request in generation mode, then the same in logprob mode (items of varied lengths, conservative swap,
`?wait=`). After each round it prints the worker's peak (VmHWM) and resident (VmRSS) memory. The peak
is set by the largest batch, so it should be reached in the first round and stay put; what grows with
the number of jobs served is a leak.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from bench.wait_latency import start  # noqa: E402
from tests.e2e.services import Service, make_stack, wait_ready  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"
TOPICS = ["the water cycle", "binary search", "photosynthesis", "the French Revolution", "TCP handshakes"]


def item(n: int, round_: int) -> dict[str, str]:
    """Items whose lengths vary with ``n`` (so batches of several shapes are built) and are the same in
    every round (the round only changes a fixed-width tag)."""
    topic = TOPICS[n % len(TOPICS)]
    detail = " It matters because " + "each step depends on the one before. " * (n % 7)
    return {
        "question": f"Explain {topic} briefly. (case {round_:04d}-{n:02d})",
        "answer_a": f"{topic.capitalize()} works in stages.{detail}",
        "answer_b": f"I am not sure what {topic} is.",
    }


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of the process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmHWM"], fields["VmRSS"]


def post(client: httpx.Client, body: dict[str, Any]) -> None:
    r = client.post("/v1/judgments/pairwise", params={"wait": 3600}, json=body)
    if r.status_code != 200 or r.json()["status"] != "succeeded":
        raise SystemExit(f"request failed: {r.status_code} {r.text[:500]}")


def one_round(client: httpx.Client, round_: int) -> int:
    """One round of the workload; returns how many jobs it submitted."""
    jobs = 0
    for verdict_mode in ("generate", "logprobs"):
        # (Engine work is measured: the verdict cache would answer repeated items without it.)
        base = {"swap": "conservative", "max_tokens": 16, "verdict_mode": verdict_mode, "cache": "off"}
        singles = [{**base, "items": [item(n, round_)]} for n in range(16)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda body: post(client, body), singles))
        post(client, {**base, "items": [item(16 + n, round_) for n in range(16)]})
        jobs += 17
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--redis-url", default=REDIS_URL, help="Flushed first.")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    model_dir = pull_default_model(Settings().models_dir).parent
    stack = make_stack("judge_memory", args.redis_url, model_dir, Path(tempfile.mkdtemp(prefix="judge-mem-")))
    rows: list[tuple[int, float, float]] = []
    try:
        service: Service = start(stack, ROOT)
        wait_ready(service)
        worker_pid = service.procs[0].pid
        jobs = 0
        with service.client() as client:
            for r in range(args.rounds):
                jobs += one_round(client, r)
                peak, resident = memory_mib(worker_pid)
                rows.append((jobs, peak, resident))
                print(
                    f"round {r + 1}: {jobs:4d} jobs served; "
                    f"worker peak {peak:7.0f} MiB, resident {resident:7.0f} MiB"
                )
    finally:
        stack.close()

    first_peak, last_peak = rows[0][1], rows[-1][1]
    last_rise = max((i for i in range(1, len(rows)) if rows[i][1] > rows[i - 1][1]), default=0) + 1
    print(
        f"peak after round 1: {first_peak:.0f} MiB; after round {len(rows)} ({rows[-1][0]} jobs): "
        f"{last_peak:.0f} MiB; it last rose in round {last_rise}; resident after the last round "
        f"{rows[-1][2]:.0f} MiB (min {min(r[2] for r in rows):.0f}, max {max(r[2] for r in rows):.0f})"
    )
    print(f"logs: {stack.logs}")


if __name__ == "__main__":
    main()
