"""Failure scenarios against real processes (API, workers, Postgres, Redis, the real model).

Each scenario returns a report of what it measured; the tests (tests/e2e/test_reliability.py) run them
small, `bench/reliability.py` runs them at the sizes docs/RELIABILITY.md quotes.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.e2e.services import Service, Stack, free_port, wait_ready

Log = Callable[[str], None]

# Short leases so a killed worker's jobs come back within seconds; attempts high enough that a job
# killed many times still finishes (the limit itself is tested in tests/workers/test_sweeper.py).
FAST_RECOVERY = {
    "JUDGE_JOB_LEASE_SECONDS": "4",
    "JUDGE_JOB_MAX_ATTEMPTS": "100",
    "JUDGE_BATCH_SIZE": "8",
    "JUDGE_RATE_LIMIT_PER_SECOND": "0",
}


def judge_body(n: int, tag: str) -> dict[str, Any]:
    """``n`` pairwise items, both orders judged, verdicts from label probabilities (one forward pass per
    call: fast on a CPU, and the same delivery path as generation)."""
    return {
        "swap": "conservative",
        "verdict_mode": "logprobs",
        # Jobs of one content differ only in their ids: each must be work for a worker (and a 202), not
        # an answer from the verdict cache.
        "cache": "off",
        "items": [
            {
                "id": f"{tag}-{i}",
                "question": f"Which answer names the number {i} correctly?",
                "answer_a": f"The number is {i}.",
                "answer_b": f"The number is {i + 1}.",
            }
            for i in range(n)
        ],
    }


class Ledger:
    """Reads the truth straight from Postgres: job states and the stored judge calls."""

    def __init__(self, db_url: str) -> None:
        self.engine = create_engine(make_url(db_url))

    def states(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status"))
            return {str(s): int(c) for s, c in rows}

    def progress(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(sum(progress_done), 0) FROM jobs")).scalar_one())

    def calls_per_item(self) -> Counter[int]:
        """How many judgment items have 0, 1, 2, ... stored calls."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT count(c.id) FROM judgment_items i LEFT JOIN judge_calls c ON c.item_id = i.id "
                    "GROUP BY i.id"
                )
            )
            return Counter(int(n) for (n,) in rows)

    def attempts(self) -> list[int]:
        with self.engine.connect() as conn:
            return [int(a) for (a,) in conn.execute(text("SELECT attempts FROM jobs"))]

    def dispose(self) -> None:
        self.engine.dispose()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - start


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    r = client.post("/v1/judgments/pairwise", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def check_results(client: httpx.Client, job_ids: list[str], items: int) -> list[str]:
    """Every job succeeded with every item judged in both orders; returns the problems found."""
    problems = []
    for job_id in job_ids:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] != "succeeded":
            problems.append(f"job {job_id} is {job['status']}: {job.get('error')}")
            continue
        results = client.get(f"/v1/jobs/{job_id}/results", params={"limit": 1000}).json()["results"]
        if len(results) != items:
            problems.append(f"job {job_id}: {len(results)} results for {items} items")
        for r in results:
            orders = [o["order"] for o in r["orders"]]
            if r["status"] != "ok" or orders != ["AB", "BA"]:
                problems.append(f"job {job_id} item {r['index']}: {r['status']} orders {orders}")
    return problems


# -- 1. SIGKILL a worker in the middle of a job, again and again ------------------------------------


@dataclass
class KillLoopReport:
    kills: int
    jobs: int
    items: int
    seconds: float
    calls_per_item: dict[int, int]
    max_attempts_seen: int
    problems: list[str] = field(default_factory=list)


def kill_loop(stack: Stack, kills: int, jobs: int, items: int, log: Log = print) -> KillLoopReport:
    """Submit ``jobs`` jobs of ``items`` items, then ``kills`` times: start a worker, let it make
    progress (at least one more batch committed), SIGKILL it. Then one worker finishes everything."""
    ledger = Ledger(stack.db_url)
    api = stack.serve(free_port())
    wait_ready(api)
    start = time.monotonic()
    try:
        with api.client() as client:
            job_ids = [submit(client, judge_body(items, f"k{j}")) for j in range(jobs)]
            total = jobs * items
            for k in range(kills):
                before = ledger.progress()
                if before >= total:
                    raise AssertionError(f"all work finished after {k} kills; submit more work")
                worker = stack.worker(f"worker-{k}")
                waited = wait_until(
                    lambda w=worker, b=before: ledger.progress() > b or w.poll() is not None,  # type: ignore[misc]
                    300,
                    "progress",
                )
                if worker.poll() is not None:
                    raise AssertionError(f"worker {k} exited with {worker.returncode}")
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                done = ledger.progress()
                log(f"kill {k + 1}/{kills}: items done {done}/{total} ({waited:.1f} s to progress)")
            final = stack.worker("worker-final")
            wait_until(
                lambda: ledger.states().get("succeeded", 0) + ledger.states().get("failed", 0) == jobs,
                900,
                "every job to end",
                poll=1.0,
            )
            final.send_signal(signal.SIGTERM)
            final.wait(timeout=60)
            report = KillLoopReport(
                kills=kills,
                jobs=jobs,
                items=total,
                seconds=time.monotonic() - start,
                calls_per_item=dict(ledger.calls_per_item()),
                max_attempts_seen=max(ledger.attempts()),
                problems=check_results(client, job_ids, items),
            )
    finally:
        ledger.dispose()
        stack.close()
    if report.calls_per_item != {2: total}:
        report.problems.append(f"stored calls per item {report.calls_per_item}, expected exactly 2 each")
    return report


# -- 2. Redis loses every queued delivery ------------------------------------------------------------


@dataclass
class RedisFlushReport:
    jobs: int
    queued_in_redis_after_flush: int
    reconciled: str
    seconds_to_complete: float
    problems: list[str] = field(default_factory=list)


def redis_flush(stack: Stack, jobs: int, log: Log = print) -> RedisFlushReport:
    """With no worker running, submit ``jobs`` jobs, FLUSHALL Redis, run `judge reconcile --once`, then
    start a worker: every job must complete."""
    from app.core.config import DEFAULT_MODEL
    from app.jobs.queue import queue_name

    ledger = Ledger(stack.db_url)
    api = stack.serve(free_port())
    wait_ready(api)
    redis = Redis.from_url(stack.redis_url)
    try:
        with api.client() as client:
            job_ids = [submit(client, judge_body(1, f"r{j}")) for j in range(jobs)]
            rq_key = f"rq:queue:{queue_name(DEFAULT_MODEL)}"
            log(f"submitted {jobs} jobs; deliveries in Redis: {redis.llen(rq_key)}")
            redis.flushdb()
            lost = int(redis.llen(rq_key))
            log(f"Redis flushed; deliveries in Redis: {lost}; jobs queued in Postgres: {ledger.states()}")
            # The reconciler re-delivers queued jobs untouched for REDELIVERY_AFTER (a fresh job may
            # still be on its way to Redis).
            from workers.sweeper import REDELIVERY_AFTER

            time.sleep(REDELIVERY_AFTER.total_seconds() + 1)
            done = stack.cli("reconcile", "--once")
            assert done.returncode == 0, done.stderr
            reconciled = done.stdout.strip()
            log(f"judge reconcile --once: {reconciled}; deliveries in Redis: {redis.llen(rq_key)}")
            start = time.monotonic()
            worker = stack.worker("worker")
            wait_until(
                lambda: ledger.states().get("succeeded", 0) == jobs or worker.poll() is not None,
                900,
                "every job to succeed",
                poll=1.0,
            )
            report = RedisFlushReport(
                jobs=jobs,
                queued_in_redis_after_flush=lost,
                reconciled=reconciled,
                seconds_to_complete=time.monotonic() - start,
                problems=check_results(client, job_ids, 1),
            )
    finally:
        ledger.dispose()
        stack.close()
    return report


# -- 3. Postgres goes away while clients submit --------------------------------------------------------


class Outage(Protocol):
    def down(self) -> None: ...
    def up(self) -> None: ...


class TcpProxy:
    """A loopback TCP proxy in front of Postgres that can be cut: ``down()`` drops every open
    connection and refuses new ones (what clients see when the server stops), ``up()`` serves again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            socks, self._socks = self._socks, set()
        for s in [listener, *socks]:
            if s is not None:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._socks.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


class ClusterOutage:
    """Really stops and starts the local PostgreSQL cluster (pg_ctlcluster; root only). Every client
    of that server sees the outage, so run it on a machine with nothing else using Postgres."""

    def __init__(self, version: str, cluster: str = "main") -> None:
        self.args = [version, cluster]

    def down(self) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", *self.args, "stop", "-m", "fast"], check=True
        )

    def up(self) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *self.args, "start"], check=True)


@dataclass
class OutageReport:
    clients: int
    requests: int
    statuses: dict[str, int]
    accepted: int
    accepted_lost: int
    worst_latency_ms: float
    first_success_after_up_ms: float | None
    problems: list[str] = field(default_factory=list)


def postgres_outage(
    stack: Stack,
    outage: Outage,
    api_db_port: int | None,
    clients: int,
    before: float,
    down_for: float,
    after: float,
    pause: float = 0.0,
    log: Log = print,
) -> OutageReport:
    """``clients`` threads submit one-item jobs in a loop (each with its own Idempotency-Key, retried
    after a 503 as a client should; ``pause`` seconds between jobs); Postgres is down for ``down_for``
    seconds in the middle. Every answer must be 202 or 503 (never a 500 or a hang), and every accepted
    job must exist and finish."""
    env = {}
    if api_db_port is not None:  # the API reaches Postgres through the proxy
        url = make_url(stack.env["DATABASE_URL"]).set(port=api_db_port)
        env["DATABASE_URL"] = url.render_as_string(hide_password=False)
    api: Service = stack.serve(free_port(), env)
    wait_ready(api)
    statuses: Counter[str] = Counter()
    accepted: list[str] = []
    worst = [0.0]
    up_at: list[float] = []
    first_ok_after_up: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + before + down_for + after

    def client_loop(n: int) -> None:
        with httpx.Client(base_url=api.url, timeout=30, headers={"Authorization": f"Bearer {api.key}"}) as c:
            i = 0
            while time.monotonic() < stop_at:
                key = uuid.uuid4().hex
                body = judge_body(1, f"c{n}-{i}")
                i += 1
                while time.monotonic() < stop_at:
                    t0 = time.monotonic()
                    try:
                        r = c.post("/v1/judgments/pairwise", json=body, headers={"Idempotency-Key": key})
                        status = str(r.status_code)
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                        r = None
                    elapsed = (time.monotonic() - t0) * 1000
                    with lock:
                        statuses[status] += 1
                        worst[0] = max(worst[0], elapsed)
                        if r is not None and r.status_code == 202:
                            accepted.append(str(r.json()["id"]))
                            if up_at and not first_ok_after_up:
                                first_ok_after_up.append((time.monotonic() - up_at[0]) * 1000)
                    if status == "503":
                        time.sleep(0.5)  # a client would honour Retry-After; shorter keeps the test short
                        continue
                    break
                time.sleep(pause)

    threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    try:
        time.sleep(before)
        log(f"Postgres down (statuses so far {dict(statuses)})")
        outage.down()
        time.sleep(down_for)
        outage.up()
        up_at.append(time.monotonic())
        log(f"Postgres up (statuses so far {dict(statuses)})")
        for t in threads:
            t.join(timeout=after + 60)
        worker = stack.worker("worker")
        ledger = Ledger(stack.db_url)
        try:
            wait_until(
                lambda: (
                    ledger.states().get("succeeded", 0) >= len(set(accepted)) or worker.poll() is not None
                ),
                900,
                "accepted jobs to finish",
                poll=1.0,
            )
        finally:
            ledger.dispose()
        with api.client() as c:
            lost = [j for j in set(accepted) if c.get(f"/v1/jobs/{j}").status_code != 200]
            problems = check_results(c, sorted(set(accepted)), 1)
    finally:
        stack.close()
    unexpected = {s: n for s, n in statuses.items() if s not in ("202", "503")}
    if unexpected:
        problems.append(f"answers other than 202/503: {unexpected}")
    if not statuses.get("503"):
        problems.append("no 503 seen: the outage did not reach the API")
    return OutageReport(
        clients=clients,
        requests=sum(statuses.values()),
        statuses=dict(statuses),
        accepted=len(set(accepted)),
        accepted_lost=len(lost),
        worst_latency_ms=worst[0],
        first_success_after_up_ms=first_ok_after_up[0] if first_ok_after_up else None,
        problems=problems + [f"accepted job {j} missing" for j in lost],
    )
