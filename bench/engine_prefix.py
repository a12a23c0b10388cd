"""Shared-prefix caching in the transformers engine: judge prompts with and without it, on CPU.

Builds 64 pairwise judge prompts from the built-in ``pairwise`` template (its system prompt and the
start of its user message are the same for every item) and times, in one process so the figures
compare: one-at-a-time generation, batched generation with the prefix cache off and on, and label
scoring off and on. Also checks that the prefix cache changes no output.

    .venv/bin/python bench/engine_prefix.py [--model PATH] [--threads N] [--prompts N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import AutoTokenizer

from app.core.config import Settings
from app.engine.base import Conversation, Generation, LabelDistribution, SamplingParams
from app.engine.transformers_backend import TransformersEngine
from app.judging.domain import JudgeItem, Scale
from app.judging.templates import builtin_templates, render
from app.models.artifacts import pull_default_model

T = TypeVar("T")

N_PROMPTS = 64
N_SINGLE = 8
MAX_TOKENS = 80
BATCH_SIZES = (16, 32, 64)
LABELS = ["A", "B", "C"]

TOPICS = [
    "photosynthesis", "the French Revolution", "binary search", "inflation", "black holes",
    "the water cycle", "vaccines", "compound interest", "plate tectonics", "recursion",
    "the Roman Empire", "climate change", "machine learning", "the immune system", "supply and demand",
    "quantum entanglement",
]  # fmt: skip
ASKS = [
    "Explain {t} to a high-school student in a short paragraph.",
    "What are the three most important facts about {t}?",
    "Write two sentences that summarise {t} for a newsletter.",
    "Give one common misconception about {t} and correct it.",
]
GOOD = "{T} is best understood step by step: first the basic idea, then an example, then why it matters."
WEAK = "{T} is complicated and many people have written about it. It is interesting."
DETAIL = [
    " For instance, a teacher might start from everyday experience.",
    " It connects to several other topics that students meet later.",
    " Experts still debate some details, but the core is settled.",
    "",
]


def judge_prompts() -> list[Conversation]:
    """64 MT-Bench-like pairwise judge prompts of varied length (~200 tokens each)."""
    spec = builtin_templates()["pairwise"]
    prompts = []
    for i in range(N_PROMPTS):
        topic = TOPICS[i % len(TOPICS)]
        ask = ASKS[(i // len(TOPICS)) % len(ASKS)]
        good = GOOD.format(T=topic.capitalize()) + DETAIL[i % len(DETAIL)]
        weak = WEAK.format(T=topic.capitalize()) + DETAIL[(i + 1) % len(DETAIL)]
        first, second = (good, weak) if i % 2 == 0 else (weak, good)
        item = JudgeItem(turns=(ask.format(t=topic),), answers_a=(first,), answers_b=(second,))
        prompts.append(render(spec, item, "AB", Scale()))
    return prompts


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float, float]:
    """``fn(*args)``, its wall-clock seconds, and the CPU cores it kept busy on average: well under
    torch's thread count means other processes took the CPUs and the seconds are inflated."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fn(*args)
    seconds = time.perf_counter() - started
    return result, seconds, (time.process_time() - cpu_started) / seconds


def outcomes(generations: list[Generation]) -> list[tuple[str, int, str]]:
    return [(g.text, g.tokens_out, g.finish_reason) for g in generations]


def max_prob_gap(a: list[LabelDistribution], b: list[LabelDistribution]) -> float:
    return max(abs(x.probs[k] - y.probs[k]) for x, y in zip(a, b, strict=True) for k in x.probs)


def shared_prefix(token_lists: list[list[int]]) -> int:
    low, high = min(token_lists), max(token_lists)
    return next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low))


def load(model_path: Path, batch_size: int, prefix_cache: bool) -> TransformersEngine:
    return TransformersEngine(
        model_path, "bench", device="cpu", dtype="float32", batch_size=batch_size, prefix_cache=prefix_cache
    )


def thread_check(model_path: Path, prompts: list[Conversation]) -> str:
    """Label scoring of a few prompts at 1 thread and at torch's default, alternated, best of two."""
    default = torch.get_num_threads()
    if default == 1:
        return "torch uses 1 thread: nothing to compare"
    engine = load(model_path, 16, True)
    best = {1: float("inf"), default: float("inf")}
    for threads in (1, default, 1, default):
        torch.set_num_threads(threads)
        best[threads] = min(best[threads], timed(engine.label_logprobs, prompts, LABELS)[1])
    torch.set_num_threads(default)
    engine.close()
    per = {t: s / len(prompts) for t, s in best.items()}
    return (
        f"label_logprobs of {len(prompts)} prompts: {per[1]:.4f} s/judgment at 1 thread, "
        f"{per[default]:.4f} at {default} ({per[1] / per[default]:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the default model)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before the runs")
    parser.add_argument("--prompts", type=int, default=N_PROMPTS, help="how many judge prompts to batch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = args.model or pull_default_model(Settings().models_dir)
    bench_started = time.perf_counter()
    prompts = judge_prompts()[: args.prompts]

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    plain = load(model_path, 1, False)
    token_lists = [tokenizer(plain.render_chat(p), add_special_tokens=False)["input_ids"] for p in prompts]
    lengths = sorted(len(t) for t in token_lists)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"(interop {torch.get_num_interop_threads()}), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}, model {model_path.name}"
    )
    print(
        f"{len(prompts)} prompts of {lengths[0]}-{lengths[-1]} tokens (median {lengths[len(lengths) // 2]}), "
        f"shared prefix {shared_prefix(token_lists)} tokens, ending {tokenizer.decode(token_lists[0][-5:])!r}"
    )
    plain.generate(prompts[:2], SamplingParams(max_tokens=4))  # warm-up: lazy initialisation

    rows: list[tuple[str, float | None, float | None, str]] = []
    sampling = SamplingParams(max_tokens=MAX_TOKENS)
    single, seconds, cores = timed(lambda: [plain.generate([p], sampling)[0] for p in prompts[:N_SINGLE]])
    plain.close()
    base = seconds / N_SINGLE
    tokens_out = sum(g.tokens_out for g in single) / N_SINGLE
    rows.append(
        (f"generate 1-by-1 ({N_SINGLE} prompts)", base, cores, f"1.00x  ({tokens_out:.0f} tokens out)")
    )

    reference: list[Generation] | None = None
    for size in BATCH_SIZES:
        per_judgment: dict[bool, float] = {}
        for on in (False, True):
            engine = load(model_path, size, on)
            generations, seconds, cores = timed(engine.generate, prompts, sampling)
            engine.close()
            per_judgment[on] = seconds / len(prompts)
            reference = reference or generations
            vs_batched = "same" if outcomes(generations) == outcomes(reference) else "DIFFERENT"
            vs_single = "same" if outcomes(generations[:N_SINGLE]) == outcomes(single) else "DIFFERENT"
            rows.append(
                (
                    f"generate batch {size}, prefix {'on' if on else 'off'}",
                    per_judgment[on],
                    cores,
                    f"{base / per_judgment[on]:.2f}x  (outputs vs batch-16-off {vs_batched}, "
                    f"vs 1-by-1 {vs_single})",
                )
            )
        rows.append(
            (
                f"  prefix on/off at batch {size}",
                None,
                None,
                f"{per_judgment[False] / per_judgment[True]:.2f}x",
            )
        )

    dists: dict[bool, list[LabelDistribution]] = {}
    per_label: dict[bool, float] = {}
    for on in (False, True):
        engine = load(model_path, 16, on)
        dists[on], seconds, cores = timed(engine.label_logprobs, prompts, LABELS)
        engine.close()
        per_label[on] = seconds / len(prompts)
        rows.append(
            (
                f"label_logprobs {'/'.join(LABELS)} batch 16, prefix {'on' if on else 'off'}",
                per_label[on],
                cores,
                "",
            )
        )
    gap = max_prob_gap(dists[True], dists[False])
    rows.append(
        (
            "  prefix on/off",
            None,
            None,
            f"{per_label[False] / per_label[True]:.2f}x  (max prob gap {gap:.1e})",
        )
    )

    threads = thread_check(model_path, prompts[:8])
    print(f"\n{'run':<42} {'s/judgment':>10} {'cores':>5}  speedup vs 1-by-1, notes")
    for name, value, busy_cores, note in rows:
        shown = f"{value:.4f}" if value is not None else ""
        busy = f"{busy_cores:.2f}" if busy_cores is not None else ""
        print(f"{name:<42} {shown:>10} {busy:>5}  {note}")
    print(f"\nthreads: {threads}")
    print(
        f"total {time.perf_counter() - bench_started:.0f} s, load average now {os.getloadavg()[0]:.2f} "
        "(other processes on these CPUs skew the figures)"
    )


if __name__ == "__main__":
    main()
