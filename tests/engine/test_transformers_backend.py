"""The transformers backend on the real default model (CPU, float32: deterministic kernels)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from app.engine.base import BatchControl, Conversation, Engine, EngineError, Generation, SamplingParams
from app.engine.transformers_backend import TransformersEngine

pytestmark = pytest.mark.model


def user(text: str) -> Conversation:
    return [{"role": "user", "content": text}]


PROMPTS = [
    user("What is the capital of France?"),
    user("Write a haiku about the sea."),
    user("Name three colors."),
    [
        {"role": "system", "content": "You are a strict judge. Reply with one letter."},
        {"role": "user", "content": "Which answer is better, A or B? A: 2+2=4. B: 2+2=5."},
    ],
    user("Explain gravity in one sentence to a child who is five years old and curious."),
]
JUDGE = [
    {"role": "system", "content": "You are a judge. Reply with A or B only."},
    {"role": "user", "content": "Question: 2+2? Answer A: 4. Answer B: 5. Which answer is correct?"},
]
JUDGE_SYSTEM = (
    "You are an impartial judge. You will see one user question and two answers to it from AI assistants. "
    "Decide which answer is better and reply with the letter of the better answer only."
)


def judged(question: str, a: str, b: str) -> Conversation:
    """A judge prompt: the same system prompt and user-message opening for every question."""
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {
            "role": "user",
            "content": f"Judge this.\nQuestion: {question}\nAnswer A: {a}\nAnswer B: {b}\nWhich is better?",
        },
    ]


# A long shared prefix, suffixes of mixed lengths, and a duplicate (shared prefix = all but one token).
SHARED = [
    judged("2+2?", "4", "5"),
    judged("What is the capital of France?", "Paris.", "Lyon, the largest city of France by far."),
    judged("Name a primary colour.", "Red", "Green, or maybe purple; it depends on who you ask and why."),
    judged("What is the boiling point of water at sea level, in degrees Celsius?", "100", "About 90"),
    [*judged("Is the sun a star?", "Yes.", "No."), {"role": "assistant", "content": "Verdict: [["}],
    judged("2+2?", "4", "5"),
]
# System prompts that differ after a few tokens: nothing worth caching.
UNSHARED = [PROMPTS[3], JUDGE, PROMPTS[0]]


@pytest.fixture(scope="module")
def engine(default_model_path: Path) -> Iterator[TransformersEngine]:
    # batch_size 2 with 5 prompts: several length-sorted batches whose order must be restored.
    eng = TransformersEngine(default_model_path, "smol", device="cpu", dtype="float32", batch_size=2)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def plain(default_model_path: Path) -> Iterator[TransformersEngine]:
    """The same batches as ``wide`` without prefix caching: the reference it must match."""
    eng = TransformersEngine(
        default_model_path, "smol", device="cpu", dtype="float32", batch_size=8, prefix_cache=False
    )
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def hf(default_model_path: Path) -> Iterator[TransformersEngine]:
    """transformers' own generate() and forward (the path of models the decoder does not serve)."""
    eng = TransformersEngine(default_model_path, "smol", device="cpu", dtype="float32", batch_size=8)
    eng._decoder = None
    eng._prefix_cache = False
    yield eng
    eng.close()


def prefix_lengths(engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the length of every shared prefix the engine computes keys/values for."""
    seen: list[int] = []
    decoder = engine._decoder
    assert decoder is not None
    compute = decoder.prefix_kv

    def recording(prefix: list[int]) -> Any:
        if prefix:
            seen.append(len(prefix))
        return compute(prefix)

    monkeypatch.setattr(decoder, "prefix_kv", recording)
    return seen


def outcomes(generations: list[Generation]) -> list[tuple[str, int, int, str]]:
    return [(g.text, g.tokens_in, g.tokens_out, g.finish_reason) for g in generations]


def test_is_an_engine(engine: TransformersEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.model_name == "smol"


def test_render_chat_applies_template_and_opens_assistant_turn(engine: TransformersEngine) -> None:
    text = engine.render_chat(user("hi"))
    assert "<|im_start|>user\nhi<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_open_reply_is_continued_not_restarted(engine: TransformersEngine) -> None:
    conversation: Conversation = [
        {"role": "user", "content": "Which is better, A or B? Answer [[A]] or [[B]]."},
        {"role": "assistant", "content": "Verdict: [["},
    ]
    text = engine.render_chat(conversation)
    # The prompt ends inside the assistant's message: no end-of-turn, no new assistant header.
    assert text.endswith("<|im_start|>assistant\nVerdict: [[")
    [out] = engine.generate([conversation], SamplingParams(max_tokens=3))
    assert out.text[:1] in {"A", "B", "C"}


def test_greedy_batch_equals_one_by_one(engine: TransformersEngine) -> None:
    sampling = SamplingParams(max_tokens=12)
    alone = [engine.generate([p], sampling)[0] for p in PROMPTS]
    batched = engine.generate(PROMPTS, sampling)
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [(g.tokens_in, g.tokens_out, g.finish_reason) for g in batched] == [
        (g.tokens_in, g.tokens_out, g.finish_reason) for g in alone
    ]
    assert batched[0].text.startswith("The capital of France is Paris")


def test_token_counts_and_finish_reasons(engine: TransformersEngine) -> None:
    stopped, cut = engine.generate([PROMPTS[0], PROMPTS[1]], SamplingParams(max_tokens=24))
    prompt_ids = engine._tokenizer(engine.render_chat(PROMPTS[0]), add_special_tokens=False)["input_ids"]
    assert stopped.tokens_in == len(prompt_ids)
    # Ended by <|im_end|>: counted as generated, not shown in the text.
    assert stopped.finish_reason == "stop"
    assert 0 < stopped.tokens_out < 24
    assert "<|im_end|>" not in stopped.text
    assert cut.finish_reason == "length"
    assert cut.tokens_out == 24

    (tiny,) = engine.generate([PROMPTS[0]], SamplingParams(max_tokens=2))
    assert (tiny.tokens_out, tiny.finish_reason) == (2, "length")
    assert tiny.latency_ms > 0


def test_stop_strings_truncate_and_end_early(engine: TransformersEngine) -> None:
    (full,) = engine.generate([PROMPTS[1]], SamplingParams(max_tokens=24))
    assert "," in full.text  # "The waves of the sea, a silent beauty, ..."
    stop_sequences = engine.generate(PROMPTS[1:3], SamplingParams(max_tokens=24, stop=("\n", ",")))
    haiku = stop_sequences[0]
    assert haiku.text == full.text[: full.text.index(",")]
    assert haiku.finish_reason == "stop"
    assert haiku.tokens_out < full.tokens_out
    assert "\n" not in stop_sequences[1].text


def test_seeded_sampling_is_reproducible_and_leaves_global_rng_alone(engine: TransformersEngine) -> None:
    prompts = PROMPTS[1:3]
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=10, seed=7)
    state = torch.random.get_rng_state()
    first = engine.generate(prompts, sampling)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = engine.generate(prompts, sampling)
    other = engine.generate(prompts, SamplingParams(temperature=1.0, top_p=0.95, max_tokens=10, seed=8))
    assert [g.text for g in first] == [g.text for g in again]
    assert [g.text for g in first] != [g.text for g in other]


def test_label_logprobs_are_normalised_deterministic_and_batch_independent(
    engine: TransformersEngine,
) -> None:
    prompts = [JUDGE, PROMPTS[3], PROMPTS[0]]
    dists = engine.label_logprobs(prompts, ["A", "B"])
    again = engine.label_logprobs(prompts, ["A", "B"])
    alone = engine.label_logprobs([PROMPTS[3]], ["A", "B"])[0]
    for dist in dists:
        assert set(dist.probs) == {"A", "B"}
        assert math.isclose(sum(dist.probs.values()), 1.0, abs_tol=1e-9)
        assert 0 < dist.mass <= 1
        assert dist.tokens_in > 0
    assert [d.probs for d in dists] == [d.probs for d in again]
    assert alone.probs == pytest.approx(dists[1].probs, abs=1e-5)
    # The judge prompt puts most of its mass on the two labels.
    assert dists[0].mass > dists[2].mass


def test_multi_token_labels_score_whole_continuations(engine: TransformersEngine) -> None:
    # "10" is two tokens for this tokenizer, so this label set takes the prompt+label scoring path;
    # "A" and "B" keep the same relative odds as on the single-token path.
    single = engine.label_logprobs([JUDGE], ["A", "B"])[0]
    multi = engine.label_logprobs([JUDGE], ["A", "B", "10"])[0]
    assert math.isclose(sum(multi.probs.values()), 1.0, abs_tol=1e-9)
    assert multi.probs["A"] / multi.probs["B"] == pytest.approx(
        single.probs["A"] / single.probs["B"], rel=1e-4
    )
    assert multi.mass == pytest.approx(single.mass + multi.mass * multi.probs["10"], rel=1e-4)


def test_shared_prefix_is_capped_and_skipped_when_short(
    wide: TransformersEngine, plain: TransformersEngine
) -> None:
    shared = [wide._encode(p) for p in SHARED]
    lengths = wide._shared_prefixes(shared, keep=1)
    common = lengths[0]
    assert lengths == [common] * len(shared)
    assert 16 <= common < min(len(s) for s in shared)
    assert all(s[:common] == shared[0][:common] for s in shared)
    assert shared[0][common] != shared[1][common]
    # Identical prompts keep their last tokens (``keep``) to run past the cache.
    assert wide._shared_prefixes([shared[0], shared[0]], keep=1) == [len(shared[0]) - 1] * 2
    assert wide._shared_prefixes([shared[0], shared[0]], keep=3) == [len(shared[0]) - 3] * 2
    unshared = [wide._encode(p) for p in UNSHARED]
    assert wide._shared_prefixes(unshared, keep=1) == [0] * len(unshared)
    assert plain._shared_prefixes(shared, keep=1) == [0] * len(shared)


def test_prefix_cached_generation_equals_uncached_and_one_by_one(
    wide: TransformersEngine,
    plain: TransformersEngine,
    hf: TransformersEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    computed = prefix_lengths(wide, monkeypatch)
    sampling = SamplingParams(max_tokens=12)
    cached = wide.generate(SHARED, sampling)
    assert len(computed) == 1 and computed[0] >= 16  # one batch, one shared prefix
    assert outcomes(cached) == outcomes(plain.generate(SHARED, sampling))
    assert outcomes(cached) == outcomes([plain.generate([p], sampling)[0] for p in SHARED])
    # transformers' generate(), batched and one prompt at a time, says the same.
    assert outcomes(cached) == outcomes(hf.generate(SHARED, sampling))
    assert outcomes(cached) == outcomes([hf.generate([p], sampling)[0] for p in SHARED])
    assert len({g.text for g in cached}) > 2  # the questions, not the shared prefix, decide the output

    stopping = SamplingParams(max_tokens=12, stop=("]", "."))
    stopped = wide.generate(SHARED, stopping)
    assert outcomes(stopped) == outcomes(plain.generate(SHARED, stopping))
    assert outcomes(stopped) == outcomes(hf.generate(SHARED, stopping))
    assert [g.stop_string for g in stopped] == [g.stop_string for g in hf.generate(SHARED, stopping)]


def test_a_batch_of_two_templates_computes_each_templates_prefix_once(
    wide: TransformersEngine, plain: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two wordings' prompts interleaved in one call (a jury of one model's names): one batch whose
    rows each read their own template's prefix (computed once each), where a single shared prefix
    would be only the chat template's opening; a few prompts of no template join it without one."""
    terse = "Pick the better answer to the question. Reply with the letter of the better answer only."
    questions = [(f"What is {n} + {n}?", str(2 * n), str(2 * n + 1)) for n in range(8)]
    first = [judged(*q) for q in questions]
    second = [[{"role": "system", "content": terse}, *judged(*q)[1:]] for q in questions]
    mixed = [p for pair in zip(first, second, strict=True) for p in pair] + UNSHARED[:2]
    computed = prefix_lengths(wide, monkeypatch)
    decoder = wide._decoder
    assert decoder is not None
    batches: list[list[int]] = []
    run = decoder.generate

    def recording(sequences: Any, shared: list[int], **kwargs: Any) -> Any:
        batches.append(list(shared))
        return run(sequences, shared, **kwargs)

    monkeypatch.setattr(decoder, "generate", recording)
    monkeypatch.setattr(wide, "_batch_size", 32)  # room for every row in one batch
    sampling = SamplingParams(max_tokens=4)
    got = wide.generate(mixed, sampling)
    assert len(computed) == 2 and min(computed) >= 16, computed
    assert len(batches) == 1 and sorted(set(batches[0])) == sorted({0, *computed}), batches
    assert batches[0].count(0) == 2  # the two prompts of no template
    assert outcomes(got) == outcomes(plain.generate(mixed, sampling))
    prefixes = sorted(computed)
    for labels in (["A", "B"], ["A", "B", "10"]):
        computed.clear()
        scored = wide.label_logprobs(mixed, labels)
        # (Three labels: 54 prompt + label rows, two batches; each computes the prefixes it holds.)
        assert sorted(set(computed)) == sorted(set(prefixes)), computed
        for got_one, want in zip(scored, plain.label_logprobs(mixed, labels), strict=True):
            assert got_one.probs == pytest.approx(want.probs, abs=1e-4)


@pytest.mark.parametrize("labels", [["A", "B"], ["A", "B", "10"]], ids=["one-token", "multi-token"])
def test_prefix_cached_label_probabilities_equal_uncached(
    wide: TransformersEngine,
    plain: TransformersEngine,
    hf: TransformersEngine,
    monkeypatch: pytest.MonkeyPatch,
    labels: list[str],
) -> None:
    computed = prefix_lengths(wide, monkeypatch)
    cached = wide.label_logprobs(SHARED, labels)
    assert computed and min(computed) >= 16
    for reference in (plain.label_logprobs(SHARED, labels), hf.label_logprobs(SHARED, labels)):
        for got, want in zip(cached, reference, strict=True):
            assert got.probs == pytest.approx(want.probs, abs=1e-4)
            assert got.mass == pytest.approx(want.mass, rel=1e-4)
            assert got.tokens_in == want.tokens_in


def test_batch_without_shared_prefix_runs_as_before(
    wide: TransformersEngine, plain: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed = prefix_lengths(wide, monkeypatch)
    sampling = SamplingParams(max_tokens=8)
    assert outcomes(wide.generate(UNSHARED, sampling)) == outcomes(plain.generate(UNSHARED, sampling))
    cached = wide.label_logprobs(UNSHARED, ["A", "B"])
    reference = plain.label_logprobs(UNSHARED, ["A", "B"])
    assert [d.probs for d in cached] == [d.probs for d in reference]
    assert computed == []


def test_rejects_bad_labels(engine: TransformersEngine) -> None:
    with pytest.raises(ValueError):
        engine.label_logprobs([JUDGE], [])
    with pytest.raises(ValueError):
        engine.label_logprobs([JUDGE], ["A", "A"])
    assert engine.generate([], SamplingParams()) == []


def test_closed_engine_refuses_work(default_model_path: Path) -> None:
    eng = TransformersEngine(default_model_path, "smol", device="cpu")
    eng.close()
    eng.close()  # idempotent
    with pytest.raises(EngineError, match="closed"):
        eng.generate([PROMPTS[0]], SamplingParams(max_tokens=2))


def test_missing_model_folder_is_an_engine_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError):
        TransformersEngine(tmp_path, "nothing", device="cpu")


def test_control_preempts_between_steps_stops_rows_and_delivers_rows_early(wide: TransformersEngine) -> None:
    """What the scheduler relies on: a more urgent call runs between the decode steps of another
    (same thread, re-entrant), a stopped row leaves the batch, each row is handed over when done."""
    prompts = [user("Count from one to twenty in words."), user("Say hi."), user("Name three colours.")]
    sampling = SamplingParams(temperature=0.0, max_tokens=24)
    alone = wide.generate(prompts, sampling)
    urgent = [user("What is 2 + 2?")]
    urgent_alone = wide.generate(urgent, SamplingParams(temperature=0.0, max_tokens=8))
    steps = 0
    nested: list[str] = []
    delivered: list[int] = []

    def between() -> set[int]:
        nonlocal steps
        steps += 1
        if steps == 3:
            nested.extend(
                g.text for g in wide.generate(urgent, SamplingParams(temperature=0.0, max_tokens=8))
            )
        return {0} if steps >= 5 else set()

    out = wide.generate(
        prompts,
        sampling,
        control=BatchControl(between_steps=between, row_done=lambda i, gen: delivered.append(i)),
    )
    assert nested == [urgent_alone[0].text]  # the nested call ran whole, between two steps
    assert out[0].finish_reason == "cancelled" and out[0].text == ""
    assert [o.text for o in out[1:]] == [a.text for a in alone[1:]]  # the others were not disturbed
    assert sorted(delivered) == [1, 2]
    assert all(o.latency_ms > 0 for o in out[1:])
