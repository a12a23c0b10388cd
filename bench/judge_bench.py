"""Throughput benchmark (issues 3 and 20): a naive FastChat-style judge loop against the service, side
by side, and both against the machine's own matrix-product peak.

Run from the repository root with Postgres and Redis up (see bench/README.md):

    .venv/bin/python bench/judge_bench.py [--items 64] [--naive-calls 16] [--max-tokens 96] [--profile]

The worker gets this environment's engine settings (JUDGE_DTYPE, JUDGE_DEVICE, ...); only the
connections and the data directory are the bench's own.

Workload: N MT-Bench-like pairwise items judged with an "explain, then give the verdict" template of
our own (registered through the templates API; no reply prefix, so the judge writes to EOS or
max_tokens), conservative swap: 2N judge calls, greedy. One judgment = one judge call.

  0. The machine's matmul peak in float32 and in bfloat16 (square products on every core torch uses).
  1. Naive baseline: transformers `generate`, one prompt at a time, to EOS (the FastChat way), on the
     very conversations the service renders, in float32 (what a user gets by default) and in bfloat16.
     Each runs `--naive-calls` calls spread over the items and both orders, and its judgments/s is
     extrapolated to the whole workload; the two dtypes' texts and parsed verdicts are compared.
  2. The service (`judge serve` + `judge worker`, Postgres, Redis, HTTP `?wait=`):
     a. generation mode, one N-item request; its raw outputs are compared with the naive loop's;
     b. logprob mode, one N-item request, with the verdict-only twin of the template;
     c. N concurrent single-item requests against the one N-item request of (a);
     d. the added latency of `wait` requests: client latency minus the worker's time on the job;
     e. the worker's peak memory (VmHWM) and its resident memory after all jobs;
     the GFLOP/s of (a) and (b) (the FLOPs of what the service computed, bench/flops.py) as a share of
     the peaks, and the dtype the service ran in (GET /v1/models).
  3. Verdict agreement between the dtypes on the logprob-mode workload: every call scored by the
     engine in float32 and in bfloat16 (same verdict share, mean |dP(A)|; and the share among the calls
     that are not near-ties in float32).
  4. With --profile: a torch.profiler table of one batch of each mode in the service's dtype.
It ends with a table of the issues' targets, the measured values and MET / MISSED.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import torch
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.auth.service import create_key  # noqa: E402
from app.core.config import DEFAULT_MODEL, Settings  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.core.migrate import upgrade  # noqa: E402
from app.engine.base import Conversation, SamplingParams  # noqa: E402
from app.engine.chat import render_with_tokenizer  # noqa: E402
from app.engine.hardware import cpu_bf16  # noqa: E402
from app.engine.transformers_backend import TransformersEngine  # noqa: E402
from app.judging.domain import Order, Scale, TemplateSpec  # noqa: E402
from app.judging.probabilities import verdict_labels  # noqa: E402
from app.judging.schemas import PairwiseItem, TemplateIn  # noqa: E402
from app.judging.templates import render  # noqa: E402
from app.judging.verdicts import VerdictParseError, parse_pairwise  # noqa: E402
from app.models.artifacts import pull_default_model  # noqa: E402
from app.models.registry import register  # noqa: E402
from bench.flops import ModelFlops, matmul_peak  # noqa: E402

DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# Derived from the test database's name, so runs against different test databases never collide.
BENCH_DB = f"{make_url(DATABASE_URL).database}_judge_bench"

ORDERS: tuple[Order, Order] = ("AB", "BA")
DTYPES = ("float32", "bfloat16")
# Settings the bench must own for its isolation (its scratch database, its Redis db, its model folder);
# every other JUDGE_* variable (the engine's dtype, device, batch budget ...) reaches the worker.
OWN_SETTINGS = ("JUDGE_DATABASE_URL", "JUDGE_REDIS_URL", "DATABASE_URL", "REDIS_URL", "JUDGE_DATA_DIR")

# -- the workload ----------------------------------------------------------------------------------

# The judge's system prompt and instructions (our own wording) are the shared prefix of every prompt;
# the item follows. With these the default model writes about 55 tokens per judgment (max_tokens 96).
JUDGE_SYSTEM = (
    "You are a fair referee. Given a user's question and the replies of two AI assistants, A and B, "
    "decide which reply serves the user better. Check correctness first, then relevance, helpfulness "
    "and clarity. Do not let the order of the replies or their length sway you."
)
EXPLAIN_THEN_VERDICT = (
    "First compare the replies in a few sentences, then end with your decision on its own line: [[A]] "
    "if A is better, [[B]] if B is better, [[C]] for a tie."
)
VERDICT_ONLY = (
    "Give no explanation, only your decision: [[A]] if A is better, [[B]] if B is better, [[C]] for a tie."
)
JUDGE_ITEM = "### Question\n{question}\n\n### Reply A\n{answer_a}\n\n### Reply B\n{answer_b}"
GENERATE_TEMPLATE = "bench-pairwise-explain"
LOGPROBS_TEMPLATE = "bench-pairwise-verdict"

# (question, good answer, two weaker answers): 16 topics x 2 weaker answers x 2 sides = 64 items.
TOPICS = [
    (
        "Why is the sky blue on a clear day?",
        "Air scatters the short blue wavelengths of sunlight more than red ones.",
        "Because the sky reflects the colour of the oceans, which cover most of the planet.",
        "Blue light is the hottest part of sunlight, so it rises to the top of the atmosphere.",
    ),
    (
        "What is 17 multiplied by 23?",
        "17 x 23 = 391 (340 + 51).",
        "17 x 23 = 401.",
        "It is roughly 400; the exact figure hardly matters.",
    ),
    (
        "How many legs does a spider have, compared with an insect?",
        "A spider has eight legs and an insect six; spiders also lack antennae.",
        "A spider has six legs, just like an insect.",
        "Spiders have eight legs.",
    ),
    (
        "Translate 'Thank you very much' into French.",
        "Merci beaucoup.",
        "Muchas gracias.",
        "Merci.",
    ),
    (
        "Which gas do plants take in for photosynthesis, and which do they give off?",
        "They take in carbon dioxide and give off oxygen, using the energy of light to make sugars.",
        "They take in oxygen and give off carbon dioxide.",
        "Plants breathe nitrogen and give off helium.",
    ),
    (
        "Who painted the Mona Lisa?",
        "Leonardo da Vinci, in the early sixteenth century; it hangs in the Louvre in Paris.",
        "Vincent van Gogh painted it in 1889.",
        "Michelangelo, while he was also painting the Sistine Chapel.",
    ),
    (
        "Write a Python expression that reverses a string s.",
        "s[::-1] returns a new string with the characters of s in reverse order.",
        "s.reverse() reverses the string in place.",
        "reversed(s) returns the reversed string.",
    ),
    (
        "At what temperature does water boil at sea level, in Celsius and in Fahrenheit?",
        "At 100 degrees Celsius, which is 212 degrees Fahrenheit.",
        "At 90 degrees Celsius, which is 194 degrees Fahrenheit.",
        "At 100 degrees, in both Celsius and Fahrenheit.",
    ),
    (
        "Which is the largest planet in the solar system?",
        "Jupiter, a gas giant more than eleven times as wide as the Earth.",
        "Saturn, because of its large rings.",
        "The Sun is the largest planet.",
    ),
    (
        "Suggest a healthy breakfast for a busy weekday.",
        "Oatmeal with fruit and nuts: quick to make, filling, and rich in fibre.",
        "Skip breakfast and drink two energy drinks instead.",
        "A large slice of chocolate cake with a very sweet coffee.",
    ),
    (
        "What causes the seasons on Earth?",
        "The Earth's axis is tilted, so each hemisphere gets more direct sunlight for part of the year.",
        "The Earth is closer to the Sun in summer and farther away in winter.",
        "The Moon blocks part of the sunlight during winter.",
    ),
    (
        "How do I convert 5 kilometres to miles?",
        "Multiply by 0.62: 5 kilometres is about 3.1 miles.",
        "Multiply by 1.6: 5 kilometres is 8 miles.",
        "They are nearly the same unit, so 5 kilometres is 5 miles.",
    ),
    (
        "Give me one tip for writing a clear email.",
        "Put your main request in the first sentence and make the subject line specific.",
        "Write everything in capital letters so that it stands out.",
        "Make it as long as you can so that every detail is covered.",
    ),
    (
        "What is the capital of Australia?",
        "Canberra is the capital; Sydney is the largest city.",
        "Sydney is the capital of Australia.",
        "Melbourne, because the federal parliament sits there.",
    ),
    (
        "What is a prime number?",
        "A whole number above 1 divisible only by 1 and itself, like 7.",
        "Any odd number, such as 9 or 15.",
        "A number that can be divided by 2.",
    ),
    (
        "Why should you wash your hands before eating?",
        "Soap and water remove germs picked up from surfaces, so you get sick less often.",
        "Washing your hands only matters for doctors.",
        "It makes the food taste better.",
    ),
]


def template_body(name: str, verdict_only: bool) -> dict[str, Any]:
    """The template to register (the body of POST /v1/templates). The verdict-only twin has the same
    wording but asks for the verdict alone and opens the reply with the marker, as logprob mode needs."""
    body = TemplateIn(
        name=name,
        mode="pairwise",
        system=JUDGE_SYSTEM,
        user=(VERDICT_ONLY if verdict_only else EXPLAIN_THEN_VERDICT) + "\n\n" + JUDGE_ITEM,
        response_prefix="Verdict: [[" if verdict_only else "",
        description="judge_bench: MT-Bench-like pairwise judge"
        + (", verdict only" if verdict_only else ", explanation then verdict"),
    )
    return body.model_dump()


def template_spec(body: dict[str, Any]) -> TemplateSpec:
    """The spec the service builds from a registered template body."""
    fields = ("name", "mode", "system", "user", "multi_turn", "reference", "cot", "description")
    return TemplateSpec(**{k: body[k] for k in fields}, response_prefix=body["response_prefix"])


# Each round of len(TOPICS) items pairs every topic's good answer with one weaker answer, on one side.
ROUNDS = ((2, True), (3, False), (3, True), (2, False))


def items(n: int) -> list[dict[str, str]]:
    """N distinct pairwise items. Item i shows topic (i + round) mod T in round i // T, so any evenly
    spaced subset of items (the naive loop's sample) spans the topics."""
    out = []
    for i in range(n):
        rnd, k = divmod(i, len(TOPICS))
        weaker, good_first = ROUNDS[rnd % len(ROUNDS)]
        topic = TOPICS[(k + rnd) % len(TOPICS)]
        question, good, bad = topic[0], topic[1], topic[weaker]
        if rnd >= len(ROUNDS):  # more items than combinations: keep them distinct
            question += f" (again, {rnd // len(ROUNDS) + 1})"
        a, b = (good, bad) if good_first else (bad, good)
        out.append({"id": f"item-{i}", "question": question, "answer_a": a, "answer_b": b})
    return out


@dataclass(frozen=True)
class Call:
    """One judge call: one item in one order, rendered as the service renders it."""

    item_id: str
    order: Order
    conversation: Conversation


def judge_calls(spec: TemplateSpec, work: list[dict[str, str]]) -> list[Call]:
    calls = []
    for item in work:
        judge_item = PairwiseItem.model_validate(item).to_domain()
        calls += [Call(item["id"], o, render(spec, judge_item, o, Scale())) for o in ORDERS]
    return calls


def naive_sample(calls: list[Call], n: int) -> list[Call]:
    """N calls spread evenly over the items, alternating the two orders."""
    n_items = len(calls) // 2
    return [calls[2 * (j * n_items // n) + j % 2] for j in range(n)]


# -- 1. the naive baseline -------------------------------------------------------------------------


@dataclass(frozen=True)
class NaiveRun:
    seconds: float
    texts: list[str]
    tokens_out: list[int]


def load_model(model_dir: Path, dtype: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    return tok, model


def encode(tok: Any, conversation: Conversation) -> list[int]:
    """The prompt's tokens: the chat template applied as the engine applies it."""
    return list(tok(render_with_tokenizer(tok, conversation), add_special_tokens=False)["input_ids"])


def naive_loop(tok: Any, model: Any, calls: list[Call], max_tokens: int) -> NaiveRun:
    """One prompt at a time with transformers `generate`, greedy, until EOS or max_tokens (FastChat)."""

    def generate(ids: list[int], max_new: int) -> list[int]:
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
        return [int(t) for t in out[0, len(ids) :]]

    generate(encode(tok, calls[0].conversation), 2)  # warm-up, not timed
    texts, tokens_out = [], []
    started = time.perf_counter()
    for call in calls:
        ids = encode(tok, call.conversation)
        new = generate(ids, max_tokens)
        texts.append(tok.decode(new, skip_special_tokens=True))
        tokens_out.append(len(new))
    return NaiveRun(time.perf_counter() - started, texts, tokens_out)


def shared_prefix_len(sequences: list[list[int]]) -> int:
    first = sequences[0]
    n = len(first)
    for seq in sequences[1:]:
        n = next(
            (i for i, (a, b) in enumerate(zip(first[:n], seq, strict=False)) if a != b), min(n, len(seq))
        )
    return n


# -- 2. the service --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """`judge serve` and `judge worker` on a fresh, migrated scratch database and an emptied Redis db."""

    def __init__(self, models_dir: Path, batch_size: int) -> None:
        engine = create_engine(make_url(DATABASE_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
        engine.dispose()
        self.db_url = make_url(DATABASE_URL).set(database=BENCH_DB).render_as_string(hide_password=False)
        upgrade(self.db_url)
        Redis.from_url(REDIS_URL).flushdb()
        settings = Settings(database_url=self.db_url, redis_url=REDIS_URL, data_dir=models_dir.parent)
        db = Database(settings.sqlalchemy_url)
        with db.unit_of_work() as session:
            register(session, settings, DEFAULT_MODEL, models_dir / DEFAULT_MODEL)
            _, self.key = create_key(session, "default", ["judge", "jobs"], "bench")
        db.dispose()
        env = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS}
        env.update(
            DATABASE_URL=self.db_url,
            REDIS_URL=REDIS_URL,
            JUDGE_DATA_DIR=str(models_dir.parent),
            JUDGE_BATCH_SIZE=str(batch_size),
            JUDGE_MAX_ITEMS="10000",
            JUDGE_MAX_WAIT_SECONDS="3600",
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


def register_template(client: httpx.Client, body: dict[str, Any]) -> None:
    r = client.post("/v1/templates", json=body)
    if r.status_code != 201:
        raise SystemExit(f"template registration failed: {r.status_code} {r.text[:500]}")
    stored = r.json()
    if any(stored[k] != body[k] for k in ("system", "user", "response_prefix")):
        raise SystemExit(f"the service stored template {body['name']!r} differently: {stored}")


def post(client: httpx.Client, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """One judging request with `?wait=`: (client latency in seconds, the ended job with results)."""
    started = time.perf_counter()
    r = client.post("/v1/judgments/pairwise", params={"wait": 3600}, json=body)
    elapsed = time.perf_counter() - started
    # A job whose every item failed (no verdict marker in a short generation) still did its work.
    ended = r.status_code == 200 and r.json()["status"] in ("succeeded", "failed")
    if not ended or r.json()["progress"]["done"] != r.json()["progress"]["total"]:
        raise SystemExit(f"request failed: {r.status_code} {r.text[:500]}")
    return elapsed, r.json()


def worker_seconds(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return (finished - started).total_seconds()


def raw_outputs(job: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each judge call's result by (item id, order)."""
    return {(r["id"], o["order"]): o for r in job["results"] for o in r["orders"]}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# -- the run ---------------------------------------------------------------------------------------


def parsed_verdict(raw: str) -> str | None:
    """The verdict a generated judgment states ([[A]], [[B]], [[C]]), None when it states none."""
    try:
        return str(parse_pairwise(raw))
    except VerdictParseError:
        return None


def service_flops(flops: ModelFlops, job: dict[str, Any], shared: int, batch_size: int) -> float:
    """The FLOPs the service computed for an ended job: every call's own prompt tokens and generated
    tokens, and the shared prefix once per batch (batches of at most ``batch_size`` calls)."""
    outputs = list(raw_outputs(job).values())
    total = sum(flops.call(o["tokens_in"] or 0, o["tokens_out"] or 0, shared) for o in outputs)
    batches = -(-len(outputs) // batch_size)
    return total + batches * flops.prefix(shared)


# A float32 verdict whose top two labels are closer than this is a near-tie: any rounding may flip it.
NEAR_TIE = 0.03


@dataclass(frozen=True)
class Agreement:
    """How often two dtypes' label distributions pick the same verdict, and their mean |dP(A)|; the
    same counts over the calls that are not near-ties in float32 (top two labels ``NEAR_TIE`` apart or
    more)."""

    same: int
    total: int
    mean_abs_dp: float
    same_clear: int
    clear: int


def dtype_agreement(model_dir: Path, conversations: list[Conversation], batch_size: int) -> Agreement:
    """The engine's label distributions of ``conversations`` in float32 and in bfloat16, compared."""
    labels = verdict_labels("pairwise", Scale())
    dists = {}
    for dtype in DTYPES:
        engine = TransformersEngine(
            model_dir, DEFAULT_MODEL, device="cpu", dtype=dtype, batch_size=batch_size
        )
        dists[dtype] = engine.label_logprobs(conversations, labels)
        engine.close()
    pairs = list(zip(dists["float32"], dists["bfloat16"], strict=True))
    agrees = [_verdict(a.probs) == _verdict(b.probs) for a, b in pairs]
    clear = [_margin(a.probs) >= NEAR_TIE for a, _ in pairs]
    mean_dp = statistics.mean(abs(a.probs["A"] - b.probs["A"]) for a, b in pairs)
    same_clear = sum(agree for agree, is_clear in zip(agrees, clear, strict=True) if is_clear)
    return Agreement(sum(agrees), len(pairs), mean_dp, same_clear, sum(clear))


def _verdict(probs: dict[str, float]) -> str:
    return max(probs, key=probs.__getitem__)


def _margin(probs: dict[str, float]) -> float:
    """The gap between the two most probable labels."""
    first, second = sorted(probs.values(), reverse=True)[:2]
    return first - second


def profile_batches(
    model_dir: Path, dtype: str, gen_calls: list[Call], lp_calls: list[Call], max_tokens: int, rows: int
) -> None:
    """Print torch.profiler's top operators of one batch of each mode, as the worker's engine runs it."""
    from torch.profiler import ProfilerActivity, profile

    engine = TransformersEngine(model_dir, DEFAULT_MODEL, device="cpu", dtype=dtype, batch_size=rows)
    labels = verdict_labels("pairwise", Scale())
    engine.label_logprobs([c.conversation for c in lp_calls[:2]], labels)  # warm-up
    runs = {
        "generation": lambda: engine.generate(
            [c.conversation for c in gen_calls[:rows]], SamplingParams(max_tokens=max_tokens)
        ),
        "logprobs": lambda: engine.label_logprobs([c.conversation for c in lp_calls[:rows]], labels),
    }
    for name, run in runs.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            started = time.perf_counter()
            run()
            seconds = time.perf_counter() - started
        print(
            f"\n# profile: one {name} batch of {min(rows, len(gen_calls))} calls in {dtype}, {seconds:.2f} s"
        )
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=64, help="pairwise items (2 judge calls each)")
    parser.add_argument("--naive-calls", type=int, default=16, help="judge calls each naive loop runs")
    parser.add_argument("--max-tokens", type=int, default=96, help="most new tokens per judge call")
    parser.add_argument("--batch-size", type=int, default=128, help="the worker's JUDGE_BATCH_SIZE")
    parser.add_argument("--latency-requests", type=int, default=30, help="sequential `wait` requests")
    parser.add_argument("--skip-logprobs", action="store_true", help="skip the logprob-mode run")
    parser.add_argument(
        "--profile", action="store_true", help="print a torch.profiler table of one batch of each mode"
    )
    args = parser.parse_args()
    if not 1 <= args.naive_calls <= 2 * args.items:
        parser.error("--naive-calls must be between 1 and twice --items")

    models_dir = pull_default_model(Settings().models_dir).parent
    model_dir = models_dir / DEFAULT_MODEL
    gen_body = template_body(GENERATE_TEMPLATE, verdict_only=False)
    lp_body = template_body(LOGPROBS_TEMPLATE, verdict_only=True)
    work = items(args.items)
    calls = judge_calls(template_spec(gen_body), work)
    lp_calls = judge_calls(template_spec(lp_body), work)
    n_calls = len(calls)

    # 0. the machine's peak, before anything else loads it.
    peaks = {dtype: matmul_peak(getattr(torch, dtype)) for dtype in DTYPES}
    print(
        f"# machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"matmul peak float32 {peaks['float32']:.1f} GFLOP/s, bfloat16 {peaks['bfloat16']:.1f} GFLOP/s; "
        f"JUDGE_DTYPE=auto here: {cpu_bf16().dtype} ({cpu_bf16().reason})"
    )

    naive: dict[str, NaiveRun] = {}
    sample = naive_sample(calls, args.naive_calls)
    for dtype in DTYPES:
        tok, model = load_model(model_dir, dtype)
        if dtype == DTYPES[0]:
            flops = ModelFlops.of(model)
            encoded = [encode(tok, c.conversation) for c in calls]
            lp_encoded = [encode(tok, c.conversation) for c in lp_calls]
            print(
                f"# workload: {args.items} pairwise items, conservative swap ({n_calls} judge calls), "
                f"greedy, max_tokens={args.max_tokens}, worker batch size {args.batch_size}, "
                f"{DEFAULT_MODEL}\n"
                f"# explain-then-verdict template: {statistics.mean(map(len, encoded)):.0f} prompt tokens "
                f"on average (chat template applied), {shared_prefix_len(encoded)} of them a shared prefix; "
                f"verdict-only twin: {statistics.mean(map(len, lp_encoded)):.0f} "
                f"({shared_prefix_len(lp_encoded)} shared)"
            )
        naive[dtype] = naive_loop(tok, model, sample, args.max_tokens)
        del model
        gc.collect()
        run = naive[dtype]
        per_call = run.seconds / len(sample)
        print(
            f"naive loop, {dtype:<8} ({len(sample)} of {n_calls} calls): {1 / per_call:8.3f} judgments/s "
            f"({per_call:.2f} s per judgment, {statistics.mean(run.tokens_out):.0f} new tokens on average; "
            f"all {n_calls} calls would take ~{n_calls * per_call:.0f} s)"
        )
    naive_rate = {dtype: len(sample) / naive[dtype].seconds for dtype in DTYPES}
    same_text = sum(a == b for a, b in zip(naive["float32"].texts, naive["bfloat16"].texts, strict=True))
    verdicts = {dtype: [parsed_verdict(t) for t in naive[dtype].texts] for dtype in DTYPES}
    same_verdict = sum(a == b for a, b in zip(verdicts["float32"], verdicts["bfloat16"], strict=True))
    print(
        f"naive loops, bfloat16 vs float32: same text {same_text}/{len(sample)}, same parsed verdict "
        f"{same_verdict}/{len(sample)} (parsed: float32 {sum(v is not None for v in verdicts['float32'])}, "
        f"bfloat16 {sum(v is not None for v in verdicts['bfloat16'])})"
    )

    service = Service(models_dir, args.batch_size)
    try:
        headers = {"Authorization": f"Bearer {service.key}"}
        limits = httpx.Limits(max_connections=args.items + 8)
        with httpx.Client(base_url=service.url, timeout=3600, headers=headers, limits=limits) as client:
            register_template(client, gen_body)
            register_template(client, lp_body)
            # (Engine work is measured: the verdict cache would answer repeated items without it.)
            gen = {
                "template": GENERATE_TEMPLATE,
                "swap": "conservative",
                "max_tokens": args.max_tokens,
                "cache": "off",
            }
            lp = {
                "template": LOGPROBS_TEMPLATE,
                "swap": "conservative",
                "verdict_mode": "logprobs",
                "cache": "off",
            }
            post(client, {**gen, "items": work[:2]})  # warm-ups, not timed
            if not args.skip_logprobs:
                post(client, {**lp, "items": work[:2]})
            served = {m["name"]: m["dtype"] for m in client.get("/v1/models").json()["models"]}
            dtype = served.get(DEFAULT_MODEL) or "float32"
            print(f"# the worker serves {DEFAULT_MODEL} in {dtype} (GET /v1/models)")
            peak = peaks.get(dtype, peaks["float32"])
            reference = naive[dtype] if dtype in naive else naive["float32"]

            # a. generation mode, one request of every item.
            elapsed, job = post(client, {**gen, "items": work})
            gen_rate = n_calls / elapsed
            gen_gflops = (
                service_flops(flops, job, shared_prefix_len(encoded), args.batch_size) / elapsed / 1e9
            )
            outputs = raw_outputs(job)
            same = sum(
                outputs[(c.item_id, c.order)]["raw"] == text
                for c, text in zip(sample, reference.texts, strict=True)
            )
            same_parsed = sum(
                parsed_verdict(outputs[(c.item_id, c.order)]["raw"]) == parsed_verdict(text)
                for c, text in zip(sample, reference.texts, strict=True)
            )
            parsed = sum(o["verdict"] is not None for o in outputs.values())
            tokens_out = statistics.mean(o["tokens_out"] or 0 for o in outputs.values())
            print(
                f"service, generation mode:      {gen_rate:8.3f} judgments/s  "
                f"x{gen_rate / naive_rate['float32']:.1f} vs naive float32, "
                f"x{gen_rate / naive_rate['bfloat16']:.1f} vs naive bfloat16; same outputs as the naive loop "
                f"in {dtype} {same}/{len(sample)}; {tokens_out:.0f} new tokens on average; verdicts parsed "
                f"{parsed}/{n_calls}; {gen_gflops:.1f} GFLOP/s = {100 * gen_gflops / peaks['bfloat16']:.0f}% "
                f"of the bf16 peak, {100 * gen_gflops / peak:.0f}% of the {dtype} peak"
            )

            # b. logprob mode, the verdict-only twin.
            lp_rate: float | None = None
            lp_gflops = 0.0
            if not args.skip_logprobs:
                elapsed, job = post(client, {**lp, "items": work})
                lp_rate = n_calls / elapsed
                lp_gflops = service_flops(flops, job, shared_prefix_len(lp_encoded), args.batch_size)
                lp_gflops /= elapsed * 1e9
                print(
                    f"service, logprob mode:         {lp_rate:8.3f} judgments/s  "
                    f"x{lp_rate / naive_rate['float32']:.1f} vs naive float32, "
                    f"x{lp_rate / naive_rate['bfloat16']:.1f} vs naive bfloat16; {lp_gflops:.1f} GFLOP/s = "
                    f"{100 * lp_gflops / peaks['bfloat16']:.0f}% of the bf16 peak, "
                    f"{100 * lp_gflops / peak:.0f}% of the {dtype} peak"
                )

            # c. N concurrent single-item requests against the one N-item request of (a).
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.items) as pool:
                list(pool.map(lambda it: post(client, {**gen, "items": [it]}), work))
            conc_rate = n_calls / (time.perf_counter() - started)
            conc_share = conc_rate / gen_rate
            print(
                f"service, {args.items} concurrent requests: {conc_rate:8.3f} judgments/s  "
                f"{100 * conc_share:.0f}% of one {args.items}-item request"
            )

            # d. added latency of `wait` requests: what the API adds to the worker's time on the job.
            added = []
            for i in range(args.latency_requests):
                body = {**gen, "swap": "none", "max_tokens": 1, "items": [work[i % len(work)]]}
                elapsed, job = post(client, body)
                added.append(1000 * (elapsed - worker_seconds(job)))
            p50, p99 = statistics.median(added), percentile(added, 99)
            print(
                f"API added latency of wait requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                f"({len(added)} sequential one-call requests)"
            )

        # e. the worker's memory.
        jobs = 2 + (0 if args.skip_logprobs else 2) + args.items + args.latency_requests
        mem_peak, resident = service.worker_memory_mb("VmHWM"), service.worker_memory_mb("VmRSS")
        print(
            f"worker memory: peak (VmHWM) {mem_peak:.0f} MiB; resident after {jobs} jobs {resident:.0f} MiB"
        )
    finally:
        service.stop()

    # 3. the two dtypes' verdicts on the logprob-mode workload (the service's engine, in process).
    agreement = dtype_agreement(model_dir, [c.conversation for c in lp_calls], args.batch_size)
    print(
        f"logprob mode, bfloat16 vs float32 engine: same verdict {agreement.same}/{agreement.total}, "
        f"mean |dP(A)| {agreement.mean_abs_dp:.3f}; not near-ties in float32 (top two labels >= {NEAR_TIE} "
        f"apart): same {agreement.same_clear}/{agreement.clear}"
    )
    if args.profile:
        profile_batches(model_dir, dtype, calls, lp_calls, args.max_tokens, args.batch_size)

    gen_x = gen_rate / naive_rate["float32"]
    rows = [("generation mode vs naive loop (float32)", f"x{gen_x:.1f}", ">= x8", gen_x >= 8)]
    outputs_row = (f"  same outputs as the naive loop ({dtype})", f"{same}/{len(sample)}")
    parsed_row = (f"  same parsed verdicts as the naive loop ({dtype})", f"{same_parsed}/{len(sample)}")
    # Greedy text is batch-independent up to rounding: exact in float32, while bf16's coarser rounding
    # flips near-ties between batch shapes (then the verdict is what should agree).
    if dtype == "float32":
        rows.append((*outputs_row, "all", same == len(sample)))
    else:
        rows.append((*parsed_row, "all", same_parsed == len(sample)))
    if lp_rate is not None:
        lp_x = lp_rate / naive_rate["float32"]
        rows.append(("logprob mode vs naive loop (float32)", f"x{lp_x:.1f}", ">= x20", lp_x >= 20))
    rows += [
        (
            f"{args.items} concurrent requests vs one request",
            f"{100 * conc_share:.0f} %",
            ">= 70 %",
            conc_share >= 0.7,
        ),
        ("wait added latency, p50", f"{p50:.1f} ms", "<= 20 ms", p50 <= 20),
    ]
    print_targets(
        "issue 3",
        rows,
        [
            *([] if dtype == "float32" else [outputs_row]),
            ("wait added latency, p99", f"{p99:.1f} ms"),
            ("worker peak memory", f"{mem_peak:.0f} MiB"),
        ],
    )
    gen_bf = gen_rate / naive_rate["bfloat16"]
    gen_share = gen_gflops / peaks["bfloat16"]
    rows = [
        ("generation mode vs naive loop (float32)", f"x{gen_x:.1f}", ">= x30", gen_x >= 30),
        ("generation mode vs naive loop (bfloat16)", f"x{gen_bf:.1f}", ">= x8", gen_bf >= 8),
        ("generation mode, share of the bf16 peak", f"{100 * gen_share:.0f} %", ">= 35 %", gen_share >= 0.35),
    ]
    if lp_rate is not None:
        lp_share = lp_gflops / peaks["bfloat16"]
        rows += [
            ("logprob mode vs naive loop (float32)", f"x{lp_x:.1f}", ">= x100", lp_x >= 100),
            ("logprob mode, share of the bf16 peak", f"{100 * lp_share:.0f} %", ">= 50 %", lp_share >= 0.5),
        ]
    agree = agreement.same / agreement.total
    rows.append(
        ("logprob verdicts, bf16 agrees with float32", f"{100 * agree:.1f} %", ">= 97 %", agree >= 0.97)
    )
    print_targets(
        f"issue 20 (the service ran in {dtype})",
        rows,
        [
            ("matmul peak float32 / bfloat16", f"{peaks['float32']:.1f} / {peaks['bfloat16']:.1f}"),
            ("logprob mean |dP(A)| bf16 vs float32", f"{agreement.mean_abs_dp:.3f}"),
            ("  same verdict where float32 is no near-tie", f"{agreement.same_clear}/{agreement.clear}"),
            ("naive loops: same text bf16 vs float32", f"{same_text}/{len(sample)}"),
            ("naive loops: same verdict bf16 vs float32", f"{same_verdict}/{len(sample)}"),
        ],
    )


def print_targets(title: str, rows: list[tuple[str, str, str, bool]], context: list[tuple[str, str]]) -> None:
    print(f"\n# {title} targets (ratios within this run)")
    print(f"{'target':<44} {'measured':>10} {'wanted':>10}  result")
    for name, measured, wanted, met in rows:
        print(f"{name:<44} {measured:>10} {wanted:>10}  {'MET' if met else 'MISSED'}")
    for name, measured in context:
        print(f"{name:<44} {measured:>10} {'-':>10}  (context)")


if __name__ == "__main__":
    main()
