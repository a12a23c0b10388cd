"""The API's added latency of `?wait=` judging requests, and where it goes.

Run from the repository root with Postgres and Redis up (see README):

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/wait_latency.py [--requests 50] [--warmup 5] [--redis-url URL]
        [--baseline DIR --baseline-redis-url URL]

It starts the real `judge serve` and `judge worker` processes (default model) on a scratch database
(``judge_wait`` on the test server, as the end-to-end tests make theirs) and a Redis database (flushed),
then sends sequential one-call requests (pairwise, swap "none", max_tokens 1) with `?wait=`.

Added latency = the client's time for the request minus the worker's time on the job
(``finished_at - started_at``). The breakdown splits the client's time with the job's timestamps (one
machine, one clock): the API's submit path (request sent → job row created), delivery (created →
claimed by the worker), the worker's time, and the end (worker's end → response received).

``--baseline DIR`` also runs the code of another checkout (e.g. ``git archive HEAD | tar -x -C DIR``)
on its own database and Redis database, both stacks up at once, and alternates the requests between
them (ABBA): on a shared machine only an interleaved comparison sees both under the same load.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import DEFAULT_MODEL, Settings  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from tests.e2e.services import Service, Stack, free_port, make_stack, wait_ready  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"
BASELINE_REDIS_URL = "redis://127.0.0.1:6379/12"
PHASES = ("submit", "delivery", "worker", "end")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def one_request(client: httpx.Client, n: int) -> dict[str, float]:
    """One sequential `?wait=` request; its phases in milliseconds."""
    body = {
        "swap": "none",
        "max_tokens": 1,
        "items": [{"question": f"What is {n} + 1? (case {n})", "answer_a": f"{n + 1}.", "answer_b": f"{n}."}],
    }
    sent = time.time()
    started = time.perf_counter()
    r = client.post("/v1/judgments/pairwise", params={"wait": 600}, json=body)
    elapsed = time.perf_counter() - started
    received = sent + elapsed
    if r.status_code != 200:
        raise SystemExit(f"request failed: {r.status_code} {r.text[:500]}")
    job: dict[str, Any] = r.json()
    if len(job["results"]) != 1:
        raise SystemExit(f"expected one result, got {job['results']}")
    created, claimed, finished = (seconds(job[k]) for k in ("created_at", "started_at", "finished_at"))
    phases = {
        "submit": created - sent,
        "delivery": claimed - created,
        "worker": finished - claimed,
        "end": received - finished,
    }
    out = {name: 1000 * value for name, value in phases.items()}
    out["added"] = 1000 * elapsed - out["worker"]
    return out


def start(stack: Stack, root: Path) -> Service:
    """`judge worker` and `judge serve` of the checkout at ``root`` on ``stack``."""
    port = free_port()
    logs = [stack.logs / "worker.log", stack.logs / "api.log"]
    commands = [["worker", "--model", DEFAULT_MODEL], ["serve", "--port", str(port)]]
    procs = []
    for args, log in zip(commands, logs, strict=True):
        with open(log, "ab") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app.cli", *args], env=stack.env, cwd=root, stdout=out, stderr=out
                )
            )
    stack.procs.extend(procs)
    return Service(f"http://127.0.0.1:{port}", procs, logs, stack.key)


def report(title: str, rows: list[dict[str, float]]) -> None:
    print(title)
    print(f"{'':>8} {'p50':>7} {'p99':>7} {'mean':>7}")
    for name in ("added", *PHASES):
        values = [row[name] for row in rows]
        print(f"{name:>8} {pct(values, 0.5):7.1f} {pct(values, 0.99):7.1f} {statistics.fmean(values):7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=50, help="Measured requests (per checkout).")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--redis-url", default=REDIS_URL, help="Flushed first.")
    parser.add_argument("--baseline", type=Path, help="Another checkout to compare with, interleaved.")
    parser.add_argument("--baseline-redis-url", default=BASELINE_REDIS_URL, help="Flushed first.")
    args = parser.parse_args()
    # A `timeout` or Ctrl-C still stops the service processes (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    model_dir = pull_default_model(Settings().models_dir).parent
    sides = {"this checkout": (ROOT, "judge_wait", args.redis_url)}
    if args.baseline is not None:
        sides["baseline"] = (args.baseline.resolve(), "judge_wait_baseline", args.baseline_redis_url)
    stacks: list[Stack] = []
    rows: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    try:
        services = {}
        for side, (root, db_name, redis_url) in sides.items():
            stacks.append(
                make_stack(db_name, redis_url, model_dir, Path(tempfile.mkdtemp(prefix="judge-wait-")))
            )
            services[side] = start(stacks[-1], root)
        for service in services.values():
            wait_ready(service)
        clients = {side: service.client() for side, service in services.items()}
        for n in range(args.warmup):
            for client in clients.values():
                one_request(client, n)
        for n in range(args.requests):
            order = list(clients) if n % 2 == 0 else list(reversed(clients))
            for side in order:
                rows[side].append(one_request(clients[side], args.warmup + n))
        for client in clients.values():
            client.close()
    finally:
        for stack in stacks:
            stack.close()

    interleaved = ", interleaved with the baseline's" if args.baseline is not None else ""
    print(f"{args.requests} sequential one-call `?wait=` requests{interleaved}, {args.warmup} warm-up (ms)")
    for side, side_rows in rows.items():
        report(side, side_rows)
    print("added = client time - worker; submit: sent → created_at; delivery: created_at → started_at;")
    print("worker: started_at → finished_at; end: finished_at → response received")
    print(f"logs: {', '.join(str(stack.logs) for stack in stacks)}")


if __name__ == "__main__":
    main()
