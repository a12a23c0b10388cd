"""Mixed-load benchmark (issue 14): serve judgments while long jobs run.

Run from the repository root (no Postgres or Redis needed: it runs the embedded service):

    .venv/bin/python bench/mixed_load.py [--requests 20] [--tries 5] [--only idle|mixed|fairness|cancel]

It starts `judge serve` in embedded mode on a fresh temporary data directory (its own SQLite file and
in-process Redis), with the default model linked in from the normal models folder (pulled once if it
is missing there), and passes every JUDGE_* engine setting of this environment through (JUDGE_DTYPE,
JUDGE_BATCH_SIZE, JUDGE_BATCH_TOKENS, ...; DATABASE_URL / REDIS_URL are dropped: embedded mode needs
them unset). Then, in one run:

  1. idle: N sequential one-item pairwise judgments (`?wait=120`, conservative swap, max_tokens 32):
     client-side p50 / p95;
  2. mixed: the same N judgments while a default self-reward job (README defaults, SFT on, seed data
     uploaded as datasets) and a modest prompt-optimization job run; ratios to idle (targets:
     p50 <= 3x, p95 <= 6x); the long jobs' stages seen meanwhile are recorded; then both are cancelled;
  3. fairness: tenant B keeps K 20-item pairwise jobs active without pause while tenant A sends the N
     judgments; A's ratio to idle (target: p95 <= 3x);
  4. cancel: from `POST /v1/jobs/{id}/cancel` to the job showing `cancelled` (polled every 100 ms),
     worst of T tries, for a judging job mid-batch, a prompt-optimization job mid-round and a
     self-reward job in each of the stages sft train, prompts, candidates, judgments, dpo train
     (target: <= 10 s each; a stage not reached within --stage-timeout is reported "not reached").

Progress goes to stderr; stdout gets the figures, each with its target and MET / MISSED, then one JSON
line. `judge serve` is stopped (SIGTERM, then SIGKILL) on the way out, also on Ctrl-C or an error, and
any process it started that outlives it is reported (and killed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import DEFAULT_MODEL, Settings  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402

SEED_DIR = ROOT / "app" / "data" / "self_reward"
REVIEWS_DIR = ROOT / "app" / "data" / "datasets" / "reviews"
TERMINAL = ("succeeded", "failed", "cancelled")
# Connection settings that would take `judge serve` out of embedded mode.
NOT_PASSED = ("DATABASE_URL", "REDIS_URL", "JUDGE_DATABASE_URL", "JUDGE_REDIS_URL", "JUDGE_DATA_DIR")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the workload ----------------------------------------------------------------------------------

# A realistic one-item judgment: a short question, two short answers, one of them wrong.
PAIRS = [
    (
        "What is the capital of Australia?",
        "Canberra is the capital; Sydney is the largest city.",
        "Sydney is the capital of Australia.",
    ),
    ("What is 17 multiplied by 23?", "17 x 23 = 401.", "17 x 23 = 391 (340 + 51)."),
    (
        "Which gas do plants take in for photosynthesis?",
        "Carbon dioxide, and they give off oxygen.",
        "Oxygen, and they give off carbon dioxide.",
    ),
    (
        "Who painted the Mona Lisa?",
        "Vincent van Gogh, in 1889.",
        "Leonardo da Vinci, in the early sixteenth century.",
    ),
    (
        "How do I convert 5 kilometres to miles?",
        "Multiply by 0.62: about 3.1 miles.",
        "Multiply by 1.6: 8 miles.",
    ),
    (
        "What causes the seasons on Earth?",
        "The Earth is closer to the Sun in summer.",
        "The tilt of the Earth's axis changes how directly sunlight falls on each hemisphere.",
    ),
    ("Translate 'Thank you very much' into French.", "Merci beaucoup.", "Muchas gracias."),
    (
        "What is a prime number?",
        "Any odd number, such as 9 or 15.",
        "A whole number above 1 divisible only by 1 and itself, like 7.",
    ),
]

# (Engine work is measured: the verdict cache would answer repeated items without it.)
JUDGE_OPTIONS = {"swap": "conservative", "max_tokens": 32, "cache": "off"}


def item(i: int, tag: str) -> dict[str, str]:
    question, a, b = PAIRS[i % len(PAIRS)]
    return {"id": f"{tag}-{i}", "question": question, "answer_a": a, "answer_b": b}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


PO_PROMPT = (
    "# Task\nIs the sentiment of this review positive or negative?\n\n"
    "# Output format\nAnswer with one word: positive or negative.\n\n"
    "# Prediction\nReview: {text}\nAnswer:"
)


def prompt_optimization_body(train_id: str, dev_id: str, rounds: int) -> dict[str, Any]:
    """A modest ProTeGi job over the shipped `reviews` set (the README's example, scaled down)."""
    return {
        "task_description": "Classify the sentiment of a product or service review.",
        "labels": ["negative", "positive"],
        "initial_prompt": PO_PROMPT,
        "data": {"train": {"dataset_id": train_id}, "dev": {"dataset_id": dev_id, "count": 16}},
        "hyperparameters": {
            "rounds": rounds,
            "beam_size": 2,
            "minibatch_size": 16,
            "n_gradients": 2,
            "errors_per_gradient": 4,
            "mc_samples": 1,
            "selector": {"eval_rounds": 2, "prompts_per_round": 4, "samples_per_eval": 8},
        },
        "metric": {"name": "accuracy"},
        "task_decoding": {"mode": "logprobs"},
        "optimizer_decoding": {"max_tokens": 160},
        "metadata": {"bench": "mixed_load"},
    }


# A self-reward job whose stages pass quickly, except the one the cancel test waits for, which the
# overrides below make long enough to be cancelled in the middle of.
SR_TINY: dict[str, Any] = {
    "iterations": 1,
    "prompts_per_iteration": 2,
    # At most 4 generation attempts (2 prompts x 2) with 4-shot prompts: the prompts stage otherwise
    # generates a whole engine batch of long few-shot prompts.
    "instruct": {"max_tokens": 64, "shots": 4, "seed_shots": 3, "max_attempts_factor": 2},
    # Unfinished answers are excluded from judging: give them room to end.
    "candidates": {"n": 2, "max_tokens": 192},
    "judge": {"samples": 1, "max_tokens": 64},
    "evaluation": {"heldout_prompts": 0, "max_tokens": 16},
    "guards": {"min_pairs": 1, "max_parse_failure_rate": 1.0, "max_tie_rate": 1.0},
    "sft": {"enabled": False},
}
SR_STAGES: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (the job's `stage` while in it, overrides of SR_TINY)
    "prompts": (
        "iteration 1/1: prompts",
        {"prompts_per_iteration": 32, "instruct": {"max_tokens": 128, "max_attempts_factor": 4}},
    ),
    "candidates": ("iteration 1/1: candidates", {"candidates": {"n": 8, "max_tokens": 256}}),
    "judgments": ("iteration 1/1: judgments", {"judge": {"samples": 8, "max_tokens": 256}}),
    "dpo train": (
        "iteration 1/1: train",
        {
            # The recipe of tests/e2e/test_self_reward.py, which reaches DPO with pairs: the base
            # model's rubric judgments rarely parse, and a short SFT on the EFT examples (~800 tokens
            # each with the rubric prompt: a shorter max_length drops them all) teaches it to end
            # with a `Score: N` line, at a rate that moves a 135M model in one epoch.
            "prompts_per_iteration": 4,
            "instruct": {"max_tokens": 96},
            "candidates": {"n": 4, "max_tokens": 192},
            "judge": {"samples": 2, "max_tokens": 160},
            "sft": {"enabled": True, "epochs": 1, "max_length": 896, "learning_rate": 2e-4, "batch_size": 8},
            "dpo": {"epochs": 4, "batch_size": 2, "max_length": 512, "learning_rate": 5e-5},
            "seed": 3,
        },
    ),
    # The shipped seed data, cut to 16 IFT + 8 EFT examples: 12 SFT steps (batch 4, 2 epochs).
    "sft train": ("sft: train", {"sft": {"enabled": True, "epochs": 2, "max_length": 512, "batch_size": 4}}),
}


# Cases whose SFT trains on every shipped EFT example (the job's default), not a cut of 8: what teaches
# the model to end its judgments with a score, so that the DPO stage has pairs.
FULL_EFT = frozenset({"dpo train"})

# Self-reward's SFT stage comes last: where a cancel does not stop training, the job keeps the worker
# until training ends, and the cases after it would wait for that.
CANCEL_CASES = ("judging", "prompt-optimization", *(name.replace(" ", "-") for name in SR_STAGES))


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# -- the service -----------------------------------------------------------------------------------


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (tells a live process from a reused pid); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


class EmbeddedService:
    """`judge serve` (embedded mode) on a fresh data directory; every process it starts is watched so
    that one outliving it can be reported."""

    def __init__(self, port: int, data_dir: Path, source_models: Path, passed_env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = data_dir
        models = data_dir / "models"
        models.mkdir(parents=True)
        # The converted default model is reused, not pulled again; models that self-reward jobs train
        # go into this data directory's own models folder and leave with it.
        (models / DEFAULT_MODEL).symlink_to(source_models / DEFAULT_MODEL, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
        env.update(passed_env)
        env["JUDGE_DATA_DIR"] = str(data_dir)
        env["JUDGE_AUTO_PULL_DEFAULT_MODEL"] = "false"
        self.env = env
        self.log_path = data_dir / "serve.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches this script only; it stops the service itself
        )
        self.seen: dict[int, tuple[int, str]] = {}  # pid -> (start time, command line)
        self._stop_watch = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="process-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop_watch.is_set():
            self._record_children()
            self._stop_watch.wait(0.5)

    def _record_children(self) -> None:
        for pid in descendants(self.proc.pid):
            if pid not in self.seen:
                start = proc_start_time(pid)
                if start is not None:
                    self.seen[pid] = (start, cmdline(pid))

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`judge serve` exited with {self.proc.returncode}; log: {self.log_path}")
            with suppress(httpx.HTTPError):
                ready = httpx.get(self.url + "/readyz", timeout=2).status_code == 200
                if ready and (self.data_dir / "dev-api-key").exists():
                    return
            time.sleep(0.5)
        raise RuntimeError(f"`judge serve` not ready after {timeout:.0f} s; log: {self.log_path}")

    @property
    def dev_key(self) -> str:
        return (self.data_dir / "dev-api-key").read_text().strip()

    def create_key(self, tenant: str, scopes: str) -> str:
        """`judge keys create` against the service's own database (the data directory's SQLite)."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "keys",
                "create",
                "--tenant",
                tenant,
                "--scopes",
                scopes,
                "--name",
                "mixed-load",
            ],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1].strip()

    def stop(self, timeout: float, grace: float) -> list[str]:
        """SIGTERM, then SIGKILL after ``timeout``; returns the processes it started that are still
        alive ``grace`` seconds after it ended (each is then killed)."""
        self._record_children()
        self._stop_watch.set()
        if self.proc.poll() is None:
            log(f"stopping judge serve (pid {self.proc.pid}): SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"judge serve still running after {timeout:.0f} s: SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        # Children die with their parent (the worker asks for SIGTERM on its parent's death); give them
        # the time a warm worker shutdown takes before calling them leftovers.
        deadline = time.monotonic() + grace
        alive = self._alive()
        while alive and time.monotonic() < deadline:
            time.sleep(0.5)
            alive = self._alive()
        leftovers = [f"{pid} ({self.seen[pid][1]})" for pid in alive]
        for pid in alive:
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return leftovers

    def _alive(self) -> list[int]:
        return [pid for pid, (start, _) in self.seen.items() if proc_start_time(pid) == start]


# -- talking to it ---------------------------------------------------------------------------------


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=180)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call; a 429 (rate limit or the tenant's job cap) is retried after its Retry-After."""
        for _ in range(100):
            r = self.client.request(method, path, **kwargs)
            if r.status_code != 429:
                return r
            time.sleep(float(r.headers.get("Retry-After", "1")))
        return r

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        r = self.request(method, path, **kwargs)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return dict(r.json())

    def job(self, job_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> None:
        r = self.request("POST", f"/v1/jobs/{job_id}/cancel")
        if r.status_code not in (200, 409):  # 409: it had already ended
            raise RuntimeError(f"cancel {job_id}: {r.status_code} {r.text[:300]}")

    def dataset(self, name: str, rows: list[dict[str, Any]]) -> str:
        return str(self.ok("POST", "/v1/datasets", json={"name": name, "rows": rows})["id"])

    def wait_for(
        self, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float, poll: float = 0.1
    ) -> dict[str, Any] | None:
        """The job once ``until(job)`` holds or it ended; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job) or job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                return None
            time.sleep(poll)


@dataclass
class Latencies:
    """Client-side latencies of one phase's judgments; a request that did not end within the timeout
    counts as infinitely slow (and stops the phase)."""

    seconds: list[float] = field(default_factory=list)
    timed_out: int = 0
    not_sent: int = 0
    failed: int = 0

    def pct(self, q: float) -> float:
        values = sorted(self.seconds + [math.inf] * self.timed_out)
        if not values:
            return math.nan
        return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]

    def summary(self) -> dict[str, Any]:
        return {
            "n": len(self.seconds),
            "p50_s": _num(self.pct(50)),
            "p95_s": _num(self.pct(95)),
            "max_s": _num(max(self.seconds + [math.inf] * self.timed_out, default=math.nan)),
            "timed_out": self.timed_out,
            "not_sent": self.not_sent,
            "failed": self.failed,
        }


def _num(x: float) -> float | str | None:
    if math.isnan(x):
        return None
    return "inf" if math.isinf(x) else round(x, 4)


def breakdown(job: dict[str, Any]) -> str:
    """Where a judgment's time went, from the job's own record: queued (created → started), the worker's
    time (started → finished), and its calls' engine time and queue wait (ms)."""
    stamps = [job.get(k) for k in ("created_at", "started_at", "finished_at")]
    if not all(stamps):
        return ""
    created, started, finished = (datetime.fromisoformat(str(s)) for s in stamps)
    calls = [o for r in job.get("results") or [] for o in r.get("orders") or []]
    engine = "/".join(f"{o.get('latency_ms', 0):.0f}" for o in calls)
    queue = "/".join(f"{o.get('queue_ms', 0):.0f}" for o in calls)
    queued, worker = (started - created).total_seconds(), (finished - started).total_seconds()
    return f" [queued {queued:.2f} s, worker {worker:.2f} s, calls engine {engine} ms, queue {queue} ms]"


def judge_sequentially(api: Api, n: int, tag: str, request_timeout: float) -> Latencies:
    """N one-item pairwise judgments, one after the other, each with `?wait=120` (polled after a 202)."""
    out = Latencies()
    for i in range(n):
        body = {**JUDGE_OPTIONS, "items": [item(i, tag)], "metadata": {"bench": "mixed_load", "phase": tag}}
        started = time.perf_counter()
        r = api.request("POST", "/v1/judgments/pairwise", params={"wait": 120}, json=body)
        if r.status_code not in (200, 202):
            raise RuntimeError(f"judgment: {r.status_code} {r.text[:300]}")
        job = r.json()
        if job["status"] not in TERMINAL:
            left = request_timeout - (time.perf_counter() - started)
            job = api.wait_for(job["id"], lambda _: False, max(0.0, left), poll=0.2) or job
        elapsed = time.perf_counter() - started
        if job["status"] not in TERMINAL:
            out.timed_out += 1
            out.not_sent = n - i - 1
            log(f"  {tag} {i + 1}/{n}: not done after {request_timeout:.0f} s; cancelling it, phase stops")
            api.cancel(job["id"])
            break
        if job["status"] != "succeeded":
            out.failed += 1
        out.seconds.append(elapsed)
        log(f"  {tag} {i + 1}/{n}: {elapsed:.2f} s ({job['status']}){breakdown(job)}")
    return out


@contextmanager
def watching(api: Api, job_ids: dict[str, str], seen: dict[str, list[str]]) -> Iterator[None]:
    """Records, every 0.5 s, each job's `status: stage` while the block runs (in first-seen order)."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for name, job_id in job_ids.items():
                with suppress(Exception):
                    job = api.job(job_id)
                    state = f"{job['status']}: {job.get('stage') or '-'}"
                    if state not in seen.setdefault(name, []):
                        seen[name].append(state)
            stop.wait(0.5)

    thread = threading.Thread(target=watch, name="stage-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def cancel_and_settle(api: Api, job_ids: list[str], timeout: float) -> dict[str, str]:
    """Cancel the jobs and wait until each ended; their final status (or what it still was)."""
    for job_id in job_ids:
        api.cancel(job_id)
    out = {}
    for job_id in job_ids:
        job = api.wait_for(job_id, lambda _: False, timeout, poll=0.5)
        out[job_id] = job["status"] if job else f"not ended {timeout:.0f} s after cancel"
    return out


# -- the phases ------------------------------------------------------------------------------------


def phase_idle(api: Api, args: argparse.Namespace) -> Latencies:
    log(f"idle: {args.requests} sequential one-item judgments")
    return judge_sequentially(api, args.requests, "idle", args.request_timeout)


def phase_mixed(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    log("mixed: uploading seed data and starting a self-reward and a prompt-optimization job")
    ift = [{**r, "label": "seed"} for r in read_jsonl(SEED_DIR / "ift.jsonl")]
    eft = [
        {**{k: r[k] for k in ("prompt", "response", "judgment")}, "label": r["score"]}
        for r in read_jsonl(SEED_DIR / "eft_train.jsonl")
    ]
    heldout = [
        {**{k: r[k] for k in ("prompt", "response", "judgment")}, "label": r["score"]}
        for r in read_jsonl(SEED_DIR / "eft_heldout.jsonl")
    ]
    sr_body = {
        # The README's defaults (2 iterations, 16 prompts, SFT on ...) with the shipped seed data,
        # uploaded the way a client would.
        "ift": {"dataset_id": api.dataset("sr-ift", ift)},
        "eft": {"dataset_id": api.dataset("sr-eft", eft)},
        "eft_heldout": {"dataset_id": api.dataset("sr-eft-heldout", heldout)},
        "metadata": {"bench": "mixed_load"},
    }
    train = api.dataset("reviews-train", read_jsonl(REVIEWS_DIR / "train.jsonl"))
    dev = api.dataset("reviews-dev", read_jsonl(REVIEWS_DIR / "dev.jsonl"))
    sr = api.ok("POST", "/v1/jobs/self-reward", json=sr_body)["id"]
    po = api.ok("POST", "/v1/jobs/prompt-optimization", json=prompt_optimization_body(train, dev, 6))["id"]
    jobs = {"self_reward": sr, "prompt_optimization": po}
    log(
        f"  self-reward {sr}, prompt optimization {po}; waiting up to {args.start_timeout:.0f} s for both "
        "to run (self-reward in `sft: train`)"
    )
    deadline = time.monotonic() + args.start_timeout
    before: dict[str, dict[str, Any]] = {}
    while True:
        before = {name: api.job(job_id) for name, job_id in jobs.items()}
        both = all(j["status"] == "running" for j in before.values())
        if both and (before["self_reward"].get("stage") or "").startswith("sft: train"):
            break
        if any(j["status"] in TERMINAL for j in before.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    start_states = {name: f"{j['status']}: {j.get('stage') or '-'}" for name, j in before.items()}
    log(f"  at the start of the measurement: {start_states}")
    seen: dict[str, list[str]] = {}
    with watching(api, jobs, seen):
        lat = judge_sequentially(api, args.requests, "mixed", args.request_timeout)
    log(f"  stages seen: {seen}; cancelling the long jobs")
    ended = cancel_and_settle(api, list(jobs.values()), args.settle_timeout)
    return {
        "latencies": lat,
        "jobs": jobs,
        "both_running_at_start": all(j["status"] == "running" for j in before.values()),
        "states_at_start": start_states,
        "stages_seen": seen,
        "after_cancel": {name: ended[job_id] for name, job_id in jobs.items()},
    }


class TenantStream:
    """Tenant B: keeps ``active`` 20-item pairwise jobs queued or running, submitting a new one as soon
    as one ends (a 429 from the tenant's job cap or the rate limit waits for its Retry-After)."""

    def __init__(self, api: Api, active: int, items: int) -> None:
        self.api, self.active, self.items = api, active, items
        self.ids: list[str] = []
        self.live: set[str] = set()
        self.items_done = 0
        self.capped = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tenant-b", daemon=True)

    def _run(self) -> None:
        n = 0
        try:
            while not self._stop.is_set():
                for job_id in list(self.live):
                    job = self.api.job(job_id)
                    if job["status"] in TERMINAL:
                        self.live.discard(job_id)
                        self.items_done += job["progress"]["done"]
                while len(self.live) < self.active and not self._stop.is_set():
                    body = {
                        **JUDGE_OPTIONS,
                        "items": [item(n * self.items + k, f"b{n}") for k in range(self.items)],
                        "metadata": {"bench": "mixed_load", "phase": "tenant-b"},
                    }
                    r = self.api.client.post("/v1/judgments/pairwise", json=body)
                    if r.status_code == 429:
                        self.capped += 1
                        self._stop.wait(float(r.headers.get("Retry-After", "1")))
                        break
                    if r.status_code != 202:
                        raise RuntimeError(f"tenant B submit: {r.status_code} {r.text[:300]}")
                    n += 1
                    self.ids.append(r.json()["id"])
                    self.live.add(r.json()["id"])
                self._stop.wait(0.25)
        except Exception as exc:  # reported with the figures; the phase goes on without B's load
            self.error = f"{type(exc).__name__}: {exc}"
            log(f"  tenant B stream stopped: {self.error}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def phase_fairness(api: Api, api_b: Api, args: argparse.Namespace) -> dict[str, Any]:
    log(f"fairness: tenant B keeps {args.b_active} jobs of {args.b_items} items active; tenant A judges")
    stream = TenantStream(api_b, args.b_active, args.b_items)
    stream.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and stream.error is None:
        if len(stream.live) >= args.b_active and any(
            api_b.job(j)["status"] == "running" for j in list(stream.live)
        ):
            break
        time.sleep(0.5)
    started = time.monotonic()
    try:
        lat = judge_sequentially(api, args.requests, "fair", args.request_timeout)
    finally:
        window = time.monotonic() - started
        stream.stop()
        done_before_cancel = stream.items_done
        cancel_and_settle(api_b, list(stream.live), args.settle_timeout)
    return {
        "latencies": lat,
        "b_jobs_submitted": len(stream.ids),
        "b_items_judged_in_window": done_before_cancel,
        "b_items_per_s": round(done_before_cancel / window, 3) if window > 0 else None,
        "b_cap_429s": stream.capped,
        "b_error": stream.error,
    }


@dataclass
class CancelTry:
    seconds: float | None  # None: not measured (see note)
    note: str
    cancelled: bool = True  # False: the job ended otherwise (e.g. succeeded) after the cancel


def measure_cancel(api: Api, job_id: str, timeout: float) -> CancelTry:
    """Seconds from the cancel request to the job showing `cancelled` (polled every 100 ms)."""
    before = api.job(job_id)
    if before["status"] in TERMINAL:
        error = f": {before['error']}" if before.get("error") else ""
        return CancelTry(
            None, f"ended {before['status']} before the cancel (at {before.get('stage')}){error}"
        )
    stage = before.get("stage") or "-"
    started = time.perf_counter()
    api.cancel(job_id)
    job = api.wait_for(job_id, lambda _: False, timeout, poll=0.1)
    elapsed = time.perf_counter() - started
    if job is None:
        api.cancel(job_id)
        return CancelTry(
            math.inf, f"still {api.job(job_id)['status']} {timeout:.0f} s after the cancel (at {stage})"
        )
    if job["status"] != "cancelled":
        # The cancel did not take: the job ran on to its end. That time is the figure, and a miss.
        error = f": {job['error']}" if job.get("error") else ""
        return CancelTry(elapsed, f"ended {job['status']} instead of cancelled (at {stage}){error}", False)
    return CancelTry(elapsed, f"at {stage}")


def cancel_case(
    api: Api,
    name: str,
    tries: int,
    submit: Callable[[], str],
    reached: Callable[[dict[str, Any]], bool],
    delay: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """T tries of: submit a job, wait until ``reached(job)``, wait ``delay`` s, cancel, time it."""
    results: list[CancelTry] = []
    for t in range(tries):
        job_id = submit()
        job = api.wait_for(job_id, reached, args.stage_timeout, poll=0.1)
        if job is None or not reached(job):
            what = f"job {job['status']}: {job.get('error')}" if job else f"{args.stage_timeout:.0f} s"
            log(f"  cancel {name} try {t + 1}: not reached ({what})")
            cancel_and_settle(api, [job_id], args.settle_timeout)
            results.append(CancelTry(None, f"not reached ({what})"))
            break  # the next tries would not reach it either
        time.sleep(delay)
        res = measure_cancel(api, job_id, args.cancel_timeout)
        log(
            f"  cancel {name} try {t + 1}: "
            + (f"{fmt(res.seconds)} " if res.seconds is not None else "")
            + res.note
        )
        results.append(res)
        if res.seconds is not None and math.isinf(res.seconds):
            cancel_and_settle(api, [job_id], args.settle_timeout)
    measured = [r.seconds for r in results if r.seconds is not None]
    return {
        "worst_s": _num(max(measured)) if measured else None,
        "all_cancelled": all(r.cancelled for r in results if r.seconds is not None),
        "reached": any(not r.note.startswith("not reached") for r in results),
        "tries": [
            {
                "seconds": _num(r.seconds) if r.seconds is not None else None,
                "cancelled": r.cancelled if r.seconds is not None else None,
                "note": r.note,
            }
            for r in results
        ],
    }


def phase_cancel(api: Api, args: argparse.Namespace, out: dict[str, dict[str, Any]]) -> None:
    """Fills ``out`` case by case (so an interrupted run still reports the cases it finished)."""
    log(f"cancel: worst of {args.tries} tries per case")

    def running(job: dict[str, Any]) -> bool:
        return bool(job["status"] == "running")

    def judging_job() -> str:
        body = {
            **JUDGE_OPTIONS,
            "cot": True,
            "max_tokens": 128,
            "items": [item(i, "cancel") for i in range(32)],
            "metadata": {"bench": "mixed_load"},
        }
        return str(api.ok("POST", "/v1/judgments/pairwise", json=body)["id"])

    if "judging" in args.cancel_cases:
        out["judging (32 CoT items, mid-batch)"] = cancel_case(
            api, "judging", args.tries, judging_job, running, 3.0, args
        )

    train = api.dataset("reviews-train", read_jsonl(REVIEWS_DIR / "train.jsonl"))
    dev = api.dataset("reviews-dev", read_jsonl(REVIEWS_DIR / "dev.jsonl"))

    def po_job() -> str:
        return str(
            api.ok("POST", "/v1/jobs/prompt-optimization", json=prompt_optimization_body(train, dev, 4))["id"]
        )

    def mid_round(job: dict[str, Any]) -> bool:
        return running(job) and (job.get("stage") or "").startswith("round")

    if "prompt-optimization" in args.cancel_cases:
        out["prompt optimization (mid-round)"] = cancel_case(
            api, "prompt optimization", args.tries, po_job, mid_round, 2.0, args
        )
    for name, (stage, overrides) in SR_STAGES.items():
        if name.replace(" ", "-") not in args.cancel_cases:
            continue
        body = {**merged(SR_TINY, overrides), "metadata": {"bench": "mixed_load"}}
        if body["sft"]["enabled"]:
            # Every EFT score, so the seed sets' spread survives the cut; a small held-out set keeps
            # the evaluation after SFT short.
            eft = sorted(read_jsonl(SEED_DIR / "eft_train.jsonl"), key=lambda r: int(r["score"]))[::6]
            body["ift"] = {"rows": read_jsonl(SEED_DIR / "ift.jsonl")[:16]}
            if name not in FULL_EFT:
                body["eft"] = {"rows": eft[:8]}
            heldout = sorted(read_jsonl(SEED_DIR / "eft_heldout.jsonl"), key=lambda r: int(r["score"]))
            body["eft_heldout"] = {"rows": heldout[::6]}

        def sr_job(body: dict[str, Any] = body) -> str:
            return str(api.ok("POST", "/v1/jobs/self-reward", json=body)["id"])

        def in_stage(job: dict[str, Any], stage: str = stage) -> bool:
            return running(job) and job.get("stage") == stage

        out[f"self-reward: {name}"] = cancel_case(
            api, f"self-reward {name}", args.tries, sr_job, in_stage, 0.2, args
        )


# -- the report ------------------------------------------------------------------------------------


def fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return ">timeout" if math.isinf(x) else f"{x:.2f} s"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("MET" if ok else "MISSED")


def ratio_row(name: str, value: float, base: float, limit: float) -> tuple[str, str, str, str]:
    if math.isnan(value) or math.isnan(base) or base <= 0:
        return (name, "-", f"<= {limit:g}x", "-")
    r = value / base
    shown = ">timeout" if math.isinf(r) else f"{r:.2f}x ({fmt(value)})"
    return (name, shown, f"<= {limit:g}x", verdict(r <= limit))


def report(args: argparse.Namespace, res: dict[str, Any], passed: dict[str, str]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    idle: Latencies | None = res.get("idle")
    base50 = idle.pct(50) if idle else math.nan
    base95 = idle.pct(95) if idle else math.nan
    if idle:
        rows.append(("idle p50", fmt(base50), "-", "(baseline)"))
        rows.append(("idle p95", fmt(base95), "-", "(baseline)"))
    if "mixed" in res:
        m: Latencies = res["mixed"]["latencies"]
        rows.append(ratio_row("mixed p50 / idle p50", m.pct(50), base50, 3))
        rows.append(ratio_row("mixed p95 / idle p95", m.pct(95), base95, 6))
    if "fairness" in res:
        f: Latencies = res["fairness"]["latencies"]
        rows.append(("fairness: tenant A p50", fmt(f.pct(50)), "-", "(context)"))
        rows.append(ratio_row("fairness: tenant A p95 / idle p95", f.pct(95), base95, 3))
    for name, case in res.get("cancel", {}).items():
        worst = case["worst_s"]
        if worst is None:
            shown = "not measured" if case["reached"] else "not reached"
            rows.append((f"cancel: {name}", shown, "<= 10 s", "-"))
        else:
            value = math.inf if worst == "inf" else float(worst)
            # A cancel that did not take (the job ran on to succeed) is a miss whatever its time.
            met = value <= 10 and case["all_cancelled"]
            shown = fmt(value) + ("" if case["all_cancelled"] else " (not cancelled)")
            rows.append((f"cancel: {name}", shown, "<= 10 s", verdict(met)))
    rows.append(
        (
            f"leftover processes after stop (of {res.get('children_seen', 0)} it started)",
            str(len(res.get("leftovers", []))),
            "0",
            verdict(not res.get("leftovers")),
        )
    )

    print(
        f"\n# issue 14: serve judgments while long jobs run ({args.requests} requests per phase, "
        f"{args.tries} cancel tries; engine settings: {passed or 'defaults'})"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>20}  {'target':>9}  result")
    for name, measured, target, result in rows:
        print(f"{name:<{width}}  {measured:>20}  {target:>9}  {result}")
    if "mixed" in res:
        mx = res["mixed"]
        print(
            f"mixed: long jobs at the start: {mx['states_at_start']}; stages seen while measuring: "
            f"{mx['stages_seen']}; after cancel: {mx['after_cancel']}"
        )
    if "fairness" in res:
        fr = res["fairness"]
        print(
            f"fairness: tenant B submitted {fr['b_jobs_submitted']} jobs, {fr['b_items_judged_in_window']} "
            f"items judged while A measured ({fr['b_items_per_s']} items/s); 429s {fr['b_cap_429s']}"
            + (f"; stream error: {fr['b_error']}" if fr["b_error"] else "")
        )
    for name, case in res.get("cancel", {}).items():
        notes = "; ".join(
            (f"{t['seconds']} s " if t["seconds"] is not None else "") + t["note"] for t in case["tries"]
        )
        print(f"cancel {name}: {notes}")
    if res.get("leftovers"):
        print(f"leftover processes (killed): {res['leftovers']}")

    out: dict[str, Any] = {
        "bench": "mixed_load",
        "requests": args.requests,
        "tries": args.tries,
        "env": passed,
    }
    for key in ("idle",):
        if key in res:
            out[key] = res[key].summary()
    if "mixed" in res:
        out["mixed"] = {**res["mixed"], "latencies": res["mixed"]["latencies"].summary()}
    if "fairness" in res:
        out["fairness"] = {**res["fairness"], "latencies": res["fairness"]["latencies"].summary()}
    if "cancel" in res:
        out["cancel"] = res["cancel"]
    out["leftover_processes"] = res.get("leftovers", [])
    out["processes_started_by_serve"] = res.get("children_seen", 0)
    out["wall_s"] = round(res["wall_s"], 1)
    out["interrupted"] = bool(res.get("interrupted"))
    print(json.dumps(out))


# -- the run ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", "--items", type=int, default=20, help="judgments per phase (N)")
    parser.add_argument("--tries", type=int, default=5, help="cancel tries per case (T)")
    parser.add_argument(
        "--only",
        choices=("idle", "mixed", "fairness", "cancel"),
        action="append",
        help="run only this phase (repeatable); mixed and fairness also run idle, their baseline",
    )
    parser.add_argument("--skip-cancel", action="store_true")
    parser.add_argument(
        "--cancel-cases",
        default=",".join(CANCEL_CASES),
        help=f"comma-separated cancel cases to run (default all: {','.join(CANCEL_CASES)})",
    )
    parser.add_argument("--skip-fairness", action="store_true")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--keep-dir", action="store_true", help="keep the temporary data directory and logs")
    parser.add_argument("--b-active", type=int, default=4, help="tenant B's jobs kept active (K)")
    parser.add_argument("--b-items", type=int, default=20, help="items per tenant B job")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=300.0,
        help="a judgment not done by then counts as a timeout and ends its phase",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=180.0,
        help="mixed: how long to wait for both long jobs to run before measuring anyway",
    )
    parser.add_argument(
        "--stage-timeout",
        type=float,
        default=600.0,
        help="cancel: how long to wait for a job to reach the stage to cancel in",
    )
    parser.add_argument(
        "--cancel-timeout", type=float, default=300.0, help="cancel: longest wait for `cancelled`"
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=600.0,
        help="how long to wait for cancelled long jobs to end before the next phase",
    )
    parser.add_argument("--stop-timeout", type=float, default=60.0, help="SIGTERM to SIGKILL")
    parser.add_argument(
        "--orphan-grace",
        type=float,
        default=30.0,
        help="a process of the service still alive this long after `judge serve` ended is a leftover",
    )
    args = parser.parse_args()
    if args.requests < 1 or args.tries < 1:
        parser.error("--requests and --tries must be at least 1")
    args.cancel_cases = [c.strip() for c in args.cancel_cases.split(",") if c.strip()]
    if unknown := set(args.cancel_cases) - set(CANCEL_CASES):
        parser.error(f"unknown cancel case(s) {sorted(unknown)}; choose from {','.join(CANCEL_CASES)}")
    phases = set(args.only or ("idle", "mixed", "fairness", "cancel"))
    if args.skip_cancel:
        phases.discard("cancel")
    if args.skip_fairness:
        phases.discard("fairness")
    if phases & {"mixed", "fairness"}:
        phases.add("idle")

    passed = {k: v for k, v in os.environ.items() if k.startswith("JUDGE_") and k not in NOT_PASSED}
    source_models = Settings().models_dir
    log(f"default model from {source_models} (pulled there once if missing)")
    pull_default_model(source_models)
    data_dir = Path(tempfile.mkdtemp(prefix="judge-mixed-"))
    # Ctrl-C and SIGTERM both end the run through `finally` (SIGINT's handler is set explicitly: a
    # shell's background job starts with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    res: dict[str, Any] = {}
    service: EmbeddedService | None = None
    apis: list[Api] = []
    ok = False
    try:
        log(
            f"starting judge serve on port {args.port}, data dir {data_dir}, "
            f"engine settings {passed or 'defaults'}"
        )
        service = EmbeddedService(args.port, data_dir, source_models, passed)
        service.wait_ready(timeout=300)
        api = Api(service.url, service.dev_key)
        apis.append(api)
        log("warming up (the worker loads the model)")
        judge_sequentially(api, 2, "warm-up", request_timeout=600)
        if "idle" in phases:
            res["idle"] = phase_idle(api, args)
        if "mixed" in phases:
            res["mixed"] = phase_mixed(api, args)
        if "fairness" in phases:
            api_b = Api(service.url, service.create_key("B", "judge,jobs"))
            apis.append(api_b)
            res["fairness"] = phase_fairness(api, api_b, args)
        if "cancel" in phases:
            phase_cancel(api, args, res.setdefault("cancel", {}))
        ok = True
    except KeyboardInterrupt:
        log("interrupted; what was measured so far follows")
        res["interrupted"] = True
    finally:
        for a in apis:
            a.close()
        if service is not None:
            res["leftovers"] = service.stop(args.stop_timeout, args.orphan_grace)
            res["children_seen"] = len(service.seen)
            if res["leftovers"]:
                log(f"processes of judge serve left after it stopped (killed): {res['leftovers']}")
        res["wall_s"] = time.monotonic() - started
        if args.keep_dir or not ok or res.get("interrupted"):
            # Trained models are large; the logs and the database are what a failed run needs.
            for p in (data_dir / "models").glob("*"):
                if not args.keep_dir and p.name != DEFAULT_MODEL and p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
            log(f"data directory and serve.log kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)  # the model link goes, not the model
    if ok or res.get("interrupted"):
        report(args, res, passed)
    log(f"done in {res['wall_s']:.0f} s")
    return 130 if res.get("interrupted") else 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
