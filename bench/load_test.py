"""Bounded load test on loopback: many concurrent clients submitting judging jobs and polling them.

Run from the repository root with Postgres and Redis up (see README):

    .venv/bin/python bench/load_test.py [--clients 200] [--seconds 60] [--api-workers 1] [--worker]

It starts the real API (`judge serve`, one process) on a scratch database, gives the clients API keys
spread over several tenants, and runs ``--clients`` asyncio clients for ``--seconds``: each submits a
one-item pairwise job (conservative swap, probability verdicts), polls it ``--polls`` times, and
starts over. It prints requests per second, p50/p99 latency per request kind, and the error count
(any answer that is not 2xx, or no answer within the timeout), which must be zero. With ``--worker``
a real model worker judges the jobs meanwhile (on a 2-core machine it competes with the API for the
CPU). Rate limits stay on at their defaults (each client stays well under its key's bucket).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.auth.service import create_key  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from tests.e2e.reliability import Ledger  # noqa: E402
from tests.e2e.services import free_port, make_stack, wait_ready  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"


class Stats:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.jobs: list[str] = []

    def record(self, kind: str, seconds: float) -> None:
        self.latencies[kind].append(seconds * 1000)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def client_loop(
    n: int, url: str, key: str, stop_at: float, polls: int, poll_interval: float, stats: Stats
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        i = 0
        while time.monotonic() < stop_at:
            body = {
                "swap": "conservative",
                "verdict_mode": "logprobs",
                "items": [
                    {
                        "id": f"c{n}-{i}",
                        "question": f"Client {n}, question {i}: which answer is right?",
                        "answer_a": "The right answer.",
                        "answer_b": "A wrong answer.",
                    }
                ],
            }
            i += 1
            t0 = time.monotonic()
            try:
                r = await client.post(
                    "/v1/judgments/pairwise", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
                )
            except httpx.HTTPError as exc:
                stats.errors[f"submit {type(exc).__name__}"] += 1
                continue
            stats.record("submit", time.monotonic() - t0)
            if r.status_code != 202:
                stats.errors[f"submit {r.status_code}"] += 1
                continue
            job_id = r.json()["id"]
            stats.jobs.append(job_id)
            for _ in range(polls):
                await asyncio.sleep(poll_interval)
                t0 = time.monotonic()
                try:
                    r = await client.get(f"/v1/jobs/{job_id}")
                except httpx.HTTPError as exc:
                    stats.errors[f"poll {type(exc).__name__}"] += 1
                    continue
                stats.record("poll", time.monotonic() - t0)
                if r.status_code != 200:
                    stats.errors[f"poll {r.status_code}"] += 1


async def run_clients(args: argparse.Namespace, url: str, keys: list[str]) -> tuple[Stats, float]:
    stats = Stats()
    stop_at = time.monotonic() + args.seconds
    start = time.monotonic()
    await asyncio.gather(
        *(
            client_loop(n, url, keys[n % len(keys)], stop_at, args.polls, args.poll_interval, stats)
            for n in range(args.clients)
        )
    )
    return stats, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--polls", type=int, default=2, help="Polls of each job after submitting it.")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--worker", action="store_true", help="Run a real model worker meanwhile.")
    parser.add_argument("--api-workers", type=int, default=1, help="`judge serve --workers N`.")
    args = parser.parse_args()

    model_dir = pull_default_model(Settings().models_dir).parent
    logs = Path(tempfile.mkdtemp(prefix="judge-load-"))
    stack = make_stack("judge_load", REDIS_URL, model_dir, logs)
    db = Database(Settings(database_url=stack.db_url, redis_url=REDIS_URL).sqlalchemy_url)
    keys = []
    with db.unit_of_work() as session:
        for n in range(args.clients):
            _, key = create_key(session, f"tenant-{n % args.tenants}", ["judge", "jobs"], f"load-{n}")
            keys.append(key)
    db.dispose()
    try:
        api = stack.serve(free_port(), workers=args.api_workers)
        wait_ready(api)
        if args.worker:
            stack.worker()
        print(
            f"{args.clients} clients, {args.tenants} tenants, {args.seconds:.0f} s, "
            f"API processes: {args.api_workers}, worker: {args.worker}"
        )
        stats, elapsed = asyncio.run(run_clients(args, api.url, keys))
        ledger = Ledger(stack.db_url)
        states = ledger.states()
        ledger.dispose()
    finally:
        stack.close()

    requests = sum(len(v) for v in stats.latencies.values()) + sum(stats.errors.values())
    print(f"requests: {requests} in {elapsed:.1f} s = {requests / elapsed:.1f} req/s")
    print(f"jobs submitted: {len(stats.jobs)} = {len(stats.jobs) / elapsed:.1f} jobs/s")
    for kind, values in sorted(stats.latencies.items()):
        print(
            f"{kind:>6}: n={len(values)} p50={pct(values, 0.5):.1f} ms p99={pct(values, 0.99):.1f} ms "
            f"max={max(values):.1f} ms mean={statistics.fmean(values):.1f} ms"
        )
    print(f"errors: {sum(stats.errors.values())} {dict(stats.errors) if stats.errors else ''}")
    print(f"jobs by state in Postgres: {states}")
    print(f"logs: {logs}")
    if stats.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
