"""Failure drills at full size, for docs/RELIABILITY.md (the tests run the same scenarios small).

Run from the repository root with Postgres and Redis up (see README):

    .venv/bin/python bench/reliability.py kill-loop [--kills 20 --jobs 8 --items 32]
    .venv/bin/python bench/reliability.py redis-flush [--jobs 100]
    .venv/bin/python bench/reliability.py postgres-outage [--clients 8 --down 10] [--real-stop]
    .venv/bin/python bench/reliability.py all

Each drill starts real processes (`judge serve`, `judge worker`, `judge reconcile`) on a scratch
database, with the real default model, and prints what it measured; it exits 1 if anything was lost,
duplicated or answered wrongly. `postgres-outage` cuts the API's connections with a TCP proxy;
`--real-stop` stops the local cluster itself with pg_ctlcluster instead (root; nothing else may be using
that Postgres meanwhile).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import make_url  # noqa: E402

from app.core.config import Settings  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from tests.conftest import TEST_DATABASE_URL  # noqa: E402
from tests.e2e import reliability  # noqa: E402
from tests.e2e.services import Stack, make_stack  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"


def stack(name: str) -> Stack:
    model_dir = pull_default_model(Settings().models_dir).parent
    logs = Path(tempfile.mkdtemp(prefix=f"judge-{name}-"))
    print(f"logs: {logs}")
    return make_stack(f"judge_drill_{name}", REDIS_URL, model_dir, logs, reliability.FAST_RECOVERY)


def show(report: Any) -> bool:
    for key, value in asdict(report).items():
        print(f"  {key}: {value}")
    ok = not report.problems
    print("  => OK" if ok else "  => FAILED")
    return ok


def kill_loop(args: argparse.Namespace) -> bool:
    print(f"== kill-loop: {args.kills} SIGKILLs, {args.jobs} jobs x {args.items} items, conservative swap")
    return show(reliability.kill_loop(stack("kill"), args.kills, args.jobs, args.items))


def redis_flush(args: argparse.Namespace) -> bool:
    print(f"== redis-flush: {args.flush_jobs} queued jobs, FLUSHDB, judge reconcile --once")
    return show(reliability.redis_flush(stack("flush"), args.flush_jobs))


def postgres_outage(args: argparse.Namespace) -> bool:
    url = make_url(TEST_DATABASE_URL)
    outage: reliability.Outage
    if args.real_stop:
        version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout.split()[0]
        outage, port = reliability.ClusterOutage(version), None
        print(f"== postgres-outage: cluster {version}/main stopped for {args.down:.0f} s")
    else:
        proxy = reliability.TcpProxy((url.host or "127.0.0.1", url.port or 5432))
        proxy.up()
        outage, port = proxy, proxy.port
        print(f"== postgres-outage: the API's Postgres connections cut for {args.down:.0f} s (TCP proxy)")
    report = reliability.postgres_outage(stack("outage"), outage, port, args.clients, 3.0, args.down, 5.0)
    if isinstance(outage, reliability.TcpProxy):
        outage.down()
    return show(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("drill", choices=["kill-loop", "redis-flush", "postgres-outage", "all"])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=8, help="kill-loop: jobs submitted.")
    parser.add_argument("--items", type=int, default=32, help="kill-loop: items per job.")
    parser.add_argument("--flush-jobs", type=int, default=100, help="redis-flush: jobs queued.")
    parser.add_argument("--clients", type=int, default=8, help="postgres-outage: submitting clients.")
    parser.add_argument("--down", type=float, default=10.0, help="postgres-outage: seconds down.")
    parser.add_argument("--real-stop", action="store_true", help="postgres-outage: stop the cluster.")
    args = parser.parse_args()
    drills = {"kill-loop": kill_loop, "redis-flush": redis_flush, "postgres-outage": postgres_outage}
    chosen = list(drills) if args.drill == "all" else [args.drill]
    results = [drills[name](args) for name in chosen]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
