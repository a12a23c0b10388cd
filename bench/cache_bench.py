"""The verdict cache (issue 18, item 1): an identical judging job repeated costs no engine call, and its
`?wait=` request answers within the API's usual added latency.

Run from the repository root with Postgres and Redis up (see bench/README.md):

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/cache_bench.py [--items 64] [--repeats 30] [--max-tokens 32] [--off]

It starts the real `judge serve` and `judge worker` (default model) on a scratch database
(``judge_cache``) and a flushed Redis database, then:

  1. judges N MT-Bench-like pairwise items (judge_bench's), conservative swap, greedy, with `?wait=`:
     2N engine calls, which fill the cache;
  2. repeats that request identically ``--repeats`` times with `?wait=`, the worker running: the
     engine calls they cost (the worker's own count: the sum of ``judge_batch_size`` on `/metrics`, the
     prompts it gave its engine) and whether every result came back ``cached``;
  3. with ``--off``, repeats it once with `cache: "off"` (every call runs again), for contrast;
  4. stops the worker and times, interleaved, three requests of the same 64 items:
     - the repeat (`?wait=`): answered whole from the cache, no worker needed;
     - the no-work path: the same request with `cache: "off"` and no wait, which the API records and
       answers 202 (nothing judges it: the worker is gone) — the API's own work on a 64-item job;
     - a replay: the same request under an Idempotency-Key already answered, with `?wait=` (the ended
       job and its 64 results read back; nothing recorded), for context.

The figure: the repeat's p50 minus the no-work path's p50 (target: at most 20 ms).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from bench.judge_bench import items  # noqa: E402
from bench.wait_latency import pct, start  # noqa: E402
from tests.e2e.services import make_stack, wait_ready  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/11"
URL = "/v1/judgments/pairwise"


def engine_calls(client: httpx.Client) -> int:
    """Prompts the worker has given its engine so far (every operation)."""
    text = client.get("/metrics").raise_for_status().text
    return round(
        sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("judge_batch_size_sum"))
    )


def judged(
    client: httpx.Client, body: dict[str, Any], key: str | None = None
) -> tuple[float, dict[str, Any]]:
    """One `?wait=` request: (client time in ms, the ended job with its results)."""
    headers = {"Idempotency-Key": key} if key is not None else {}
    started = time.perf_counter()
    r = client.post(URL, params={"wait": 600}, json=body, headers=headers)
    elapsed = 1000 * (time.perf_counter() - started)
    job: dict[str, Any] = r.json()
    if (
        r.status_code != 200
        or job["status"] != "succeeded"
        or len(job["results"] or []) != len(body["items"])
    ):
        raise SystemExit(f"request failed: {r.status_code} {r.text[:500]}")
    return elapsed, job


def timed_request(client: httpx.Client, path: str, body: dict[str, Any], replay_key: str) -> float:
    """One request of ``path`` (see the module's docstring): its client time in ms."""
    if path == "repeat":
        elapsed, job = judged(client, body)
        if not all(r["cached"] for r in job["results"]):
            raise SystemExit("a repeat was not answered from the cache")
        return elapsed
    if path == "replay":
        return judged(client, body, replay_key)[0]
    started = time.perf_counter()
    r = client.post(URL, json={**body, "cache": "off"})
    elapsed = 1000 * (time.perf_counter() - started)
    if r.status_code != 202:
        raise SystemExit(f"request failed: {r.status_code} {r.text[:500]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--items", type=int, default=64, help="pairwise items (2 judge calls each)")
    parser.add_argument("--repeats", type=int, default=30, help="identical repeats (and no-work requests)")
    parser.add_argument("--max-tokens", type=int, default=32, help="most new tokens per judge call")
    parser.add_argument("--off", action="store_true", help='also repeat once with cache "off"')
    parser.add_argument("--redis-url", default=REDIS_URL, help="flushed first")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    model_dir = pull_default_model(Settings().models_dir).parent
    stack = make_stack(
        "judge_cache", args.redis_url, model_dir, Path(tempfile.mkdtemp(prefix="judge-cache-"))
    )
    body = {"swap": "conservative", "max_tokens": args.max_tokens, "items": items(args.items)}
    timed: dict[str, list[float]] = {"repeat": [], "no-work": [], "replay": []}
    try:
        service = start(stack, ROOT)
        wait_ready(service)
        with service.client() as client:
            judged(client, {**body, "items": body["items"][:1], "max_tokens": 1})  # warm-up, not timed

            before = engine_calls(client)
            first_ms, first = judged(client, body)
            first_calls = engine_calls(client) - before

            before = engine_calls(client)
            all_cached = True
            for _ in range(args.repeats):
                all_cached &= all(r["cached"] for r in judged(client, body)[1]["results"])
            repeat_calls = engine_calls(client) - before

            off: tuple[float, int] | None = None
            if args.off:
                before = engine_calls(client)
                off_ms, _ = judged(client, {**body, "cache": "off"})
                off = (off_ms, engine_calls(client) - before)

            worker = service.procs[0]
            worker.terminate()
            worker.wait(timeout=60)
            replay_key = str(uuid.uuid4())
            judged(client, body, replay_key)
            for n in range(args.repeats):
                paths = ["repeat", "no-work", "replay"]
                for path in paths if n % 2 == 0 else reversed(paths):  # ABBA
                    timed[path].append(timed_request(client, path, body, replay_key))
    finally:
        stack.close()

    n_calls = 2 * args.items
    p50 = {path: statistics.median(values) for path, values in timed.items()}
    added = p50["repeat"] - p50["no-work"]
    parsed = sum(o["verdict"] is not None for r in first["results"] for o in r["orders"])
    print(
        f"# {args.items} pairwise items, conservative swap ({n_calls} judge calls), greedy, "
        f"max_tokens={args.max_tokens}, default model; {args.repeats} identical repeats"
    )
    print(
        f"first run: {first_ms / 1000:.2f} s, engine calls {first_calls} (verdicts parsed {parsed}/{n_calls})"
    )
    print(f"repeats (worker running): engine calls {repeat_calls}; every result cached: {all_cached}")
    if off is not None:
        print(f'cache "off" repeat: {off[0] / 1000:.2f} s, engine calls {off[1]}')
    print("worker stopped; p50 (p99) of each path, interleaved:")
    for path, values in timed.items():
        print(f"  {path:<8} {p50[path]:6.1f} ms ({pct(values, 0.99):.1f} ms)")
    print("\n# issue 18 item 1 targets")
    print(f"{'target':<45} {'measured':>10} {'wanted':>10}  result")
    rows = [
        ("engine calls of the repeats", f"{repeat_calls}", "0", repeat_calls == 0 and all_cached),
        ("`?wait=` p50 over the no-work path", f"{added:+.1f} ms", "<= 20 ms", added <= 20),
    ]
    for name, measured, wanted, met in rows:
        print(f"{name:<45} {measured:>10} {wanted:>10}  {'MET' if met else 'MISSED'}")
    print(f"logs: {stack.logs}")


if __name__ == "__main__":
    main()
