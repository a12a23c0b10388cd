"""Throughput benchmark: a naive one-prompt-at-a-time judge loop against the service.

Run from the repository root with Postgres and Redis up (see README):

    .venv/bin/python bench/judge_bench.py [--items 64] [--naive-calls 16] [--max-tokens 64]

Prints judgments per second (one judgment = one judge call = one order of one item) for:
  1. the naive baseline: transformers `generate`, one prompt at a time (the FastChat way);
  2. the service, generation mode: one request of N pairwise items, conservative swap (2N calls);
  3. the service, logprob mode: the same request with `verdict_mode: "logprobs"`;
  4. the service, N concurrent single-item requests (conservative swap) vs one N-item request;
and the API's added latency of `?wait=` requests (client latency minus the worker's time on the job,
p50/p99), and the worker's peak memory (VmHWM). It also checks that the service's greedy outputs
equal the naive loop's for the prompts both judged.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.auth.service import create_key  # noqa: E402
from app.core.config import DEFAULT_MODEL, Settings  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.core.migrate import upgrade  # noqa: E402
from app.judging.domain import JudgeItem, Scale  # noqa: E402
from app.judging.templates import builtin_templates, render  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from app.models.registry import register  # noqa: E402

DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

TOPICS = [
    (
        "Explain why the sky is blue.",
        "Rayleigh scattering: shorter blue wavelengths scatter more.",
        "Because it reflects the ocean.",
    ),
    ("What is 17 * 23?", "17 * 23 = 391.", "17 * 23 = 401."),
    ("Give a synonym for 'happy'.", "Joyful.", "Sad."),
    ("Name the capital of Japan.", "Tokyo is the capital of Japan.", "Kyoto is the capital of Japan."),
    ("How many legs does a spider have?", "Eight.", "Six."),
    ("Translate 'thank you' into French.", "Merci.", "Gracias."),
    ("What gas do plants absorb for photosynthesis?", "Carbon dioxide.", "Oxygen."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci.", "Vincent van Gogh."),
]


def items(n: int) -> list[dict[str, str]]:
    out = []
    for i in range(n):
        q, good, bad = TOPICS[i % len(TOPICS)]
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        out.append({"id": f"item-{i}", "question": f"{q} (case {i})", "answer_a": a, "answer_b": b})
    return out


def fmt(x: float) -> str:
    return f"{x:8.3f}"


# -- 1. the naive baseline -------------------------------------------------------------------------


def naive_loop(
    model_dir: Path, prompts: list[Any], max_tokens: int, stop: str | None
) -> tuple[float, list[str]]:
    """One prompt at a time with transformers generate; returns (seconds per judgment, texts)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    texts = []
    started = time.perf_counter()
    for conversation in prompts:
        open_reply = conversation[-1]["role"] == "assistant"
        prompt = tok.apply_chat_template(
            conversation,
            tokenize=False,
            add_generation_prompt=not open_reply,
            continue_final_message=open_reply,
        )
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            extra = {"stop_strings": [stop], "tokenizer": tok} if stop else {}
            out = model.generate(
                **ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.eos_token_id, **extra
            )
        text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        if stop and stop in text:
            text = text[: text.index(stop) + len(stop)]
        texts.append(conversation[-1]["content"] + text)
    return (time.perf_counter() - started) / len(prompts), texts


# -- the service -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, models_dir: Path, batch_size: int) -> None:
        engine = create_engine(make_url(DATABASE_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text('DROP DATABASE IF EXISTS "judge_bench" WITH (FORCE)'))
            conn.execute(text('CREATE DATABASE "judge_bench"'))
        engine.dispose()
        self.db_url = make_url(DATABASE_URL).set(database="judge_bench").render_as_string(hide_password=False)
        upgrade(self.db_url)
        Redis.from_url(REDIS_URL).flushdb()
        settings = Settings(database_url=self.db_url, redis_url=REDIS_URL, data_dir=models_dir.parent)
        db = Database(settings.sqlalchemy_url)
        with db.unit_of_work() as session:
            register(session, settings, DEFAULT_MODEL, models_dir / DEFAULT_MODEL)
            _, self.key = create_key(session, "default", ["judge", "jobs"], "bench")
        db.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUDGE_")}
        env.update(
            DATABASE_URL=self.db_url,
            REDIS_URL=REDIS_URL,
            JUDGE_DATA_DIR=str(models_dir.parent),
            JUDGE_BATCH_SIZE=str(batch_size),
            JUDGE_MAX_ITEMS="10000",
        )
        self.port = free_port()
        self.logdir = Path(tempfile.mkdtemp(prefix="judge-bench-"))
        self.worker = self._spawn(["worker"], env, "worker.log")
        self.api = self._spawn(["serve", "--port", str(self.port)], env, "api.log")
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _spawn(self, args: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        fh = open(self.logdir / log, "wb")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT, stdout=fh, stderr=fh
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(self.url + "/readyz", timeout=2).status_code == 200
                # The worker is ready once it listens on its queue.
                if ready and "Listening on" in (self.logdir / "worker.log").read_text(errors="replace"):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"service did not start; logs in {self.logdir}")

    def worker_memory_mb(self, field: str = "VmHWM") -> float:
        """The worker's peak (VmHWM) or current (VmRSS) resident memory."""
        for line in Path(f"/proc/{self.worker.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        for p in (self.api, self.worker):
            p.terminate()
        for p in (self.api, self.worker):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def post(client: httpx.Client, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    r = client.post("/v1/judgments/pairwise", params={"wait": 3600}, json=body)
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise SystemExit(f"request failed: {r.status_code} {r.text[:500]}")
    return elapsed, r.json()


def worker_seconds(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return (finished - started).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--naive-calls", type=int, default=16, help="judge calls the naive loop runs")
    parser.add_argument("--naive-free-calls", type=int, default=4, help="naive calls run to EOS (context)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="the worker's JUDGE_BATCH_SIZE")
    parser.add_argument("--latency-requests", type=int, default=30)
    parser.add_argument("--skip-logprobs", action="store_true")
    args = parser.parse_args()

    models_dir = pull_default_model(Settings().models_dir).parent
    model_dir = models_dir / DEFAULT_MODEL
    template = builtin_templates()["pairwise"]
    work = items(args.items)
    prompts = []
    for item in work:
        judge_item = JudgeItem(
            turns=(item["question"],), answers_a=(item["answer_a"],), answers_b=(item["answer_b"],)
        )
        prompts += [render(template, judge_item, order, Scale()) for order in ("AB", "BA")]

    print(
        f"# workload: {args.items} pairwise items, conservative swap ({2 * args.items} judge calls), "
        f"greedy, max_tokens={args.max_tokens}, worker batch size {args.batch_size}"
    )
    # The baseline decodes exactly as the service does: verdict-only templates stop at the marker's
    # closing "]]" (see workers/judging.py). The FastChat-style run to EOS is shown for context.
    naive_s, naive_texts = naive_loop(model_dir, prompts[: args.naive_calls], args.max_tokens, stop="]]")
    naive_rate = 1 / naive_s
    print(
        f"naive loop ({args.naive_calls} calls):      {fmt(naive_rate)} judgments/s  "
        f"({naive_s:.2f} s per judgment, same decoding as the service: stop at ']]')"
    )
    if args.naive_free_calls:
        free_s, _ = naive_loop(model_dir, prompts[: args.naive_free_calls], args.max_tokens, stop=None)
        print(
            f"naive loop to EOS ({args.naive_free_calls} calls):  {fmt(1 / free_s)} judgments/s  "
            f"({free_s:.2f} s per judgment, FastChat-style: up to max_tokens={args.max_tokens})"
        )

    service = Service(models_dir, args.batch_size)
    try:
        headers = {"Authorization": f"Bearer {service.key}"}
        with httpx.Client(base_url=service.url, timeout=3600, headers=headers) as client:
            base = {"swap": "conservative", "max_tokens": args.max_tokens}
            post(client, {**base, "items": work[:2]})  # warm-up

            elapsed, job = post(client, {**base, "items": work})
            rss_early = service.worker_memory_mb("VmRSS")
            gen_rate = 2 * args.items / elapsed
            raws = [o["raw"] for r in job["results"] for o in r["orders"]]
            same = sum(a == b for a, b in zip(raws, naive_texts, strict=False))
            print(
                f"service, generate mode:       {fmt(gen_rate)} judgments/s  "
                f"x{gen_rate / naive_rate:.1f} vs naive; same outputs as naive: {same}/{len(naive_texts)}"
            )

            if not args.skip_logprobs:
                elapsed, job = post(client, {**base, "verdict_mode": "logprobs", "items": work})
                lp_rate = 2 * args.items / elapsed
                print(
                    f"service, logprob mode:        {fmt(lp_rate)} judgments/s  "
                    f"x{lp_rate / naive_rate:.1f} vs naive"
                )

            # N concurrent single-item requests against one N-item request.
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.items) as pool:
                list(pool.map(lambda it: post(client, {**base, "items": [it]}), work))
            conc_rate = 2 * args.items / (time.perf_counter() - started)
            print(
                f"service, {args.items} concurrent requests: {fmt(conc_rate)} judgments/s  "
                f"{100 * conc_rate / gen_rate:.0f}% of one {args.items}-item request"
            )

            added = []
            for i in range(args.latency_requests):
                elapsed, job = post(
                    client, {**base, "swap": "none", "max_tokens": 1, "items": [work[i % len(work)]]}
                )
                added.append(1000 * (elapsed - worker_seconds(job)))
            added.sort()
            p99 = added[min(len(added) - 1, int(0.99 * len(added)))]
            print(
                f"API added latency of wait requests: p50 {statistics.median(added):.1f} ms, "
                f"p99 {p99:.1f} ms "
                f"({len(added)} sequential one-call requests)"
            )
        print(
            f"worker memory: peak (VmHWM) {service.worker_memory_mb():.0f} MiB; resident after 2 jobs "
            f"{rss_early:.0f} MiB, after {args.items + args.latency_requests + 3} jobs "
            f"{service.worker_memory_mb('VmRSS'):.0f} MiB"
        )
    finally:
        service.stop()


if __name__ == "__main__":
    main()
