"""The batched decoder on the real default model: what transformers' generate() would say, token for
token, whatever the batch, the chunking, the rows that leave early or the store's growth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from app.engine import decoding
from app.engine.decoding import ATTENTION, Decoder, install
from app.engine.transformers_backend import TransformersEngine

pytestmark = pytest.mark.model

SYSTEM = (
    "You are an impartial judge. You will see a question and two answers from AI assistants. Explain "
    "briefly which answer is better, then give your verdict as [[A]] or [[B]]."
)
QUESTIONS = [
    ("2+2?", "4", "5"),
    ("What is the capital of France?", "Paris.", "Lyon, the largest city of France by far."),
    ("Name a primary colour.", "Red", "Green, or maybe purple; it depends on who you ask and why."),
    ("Is the sun a star?", "Yes.", "No."),
    ("What is the boiling point of water at sea level, in degrees Celsius?", "100", "About 90"),
]


@pytest.fixture(scope="module")
def prompts(wide: TransformersEngine) -> list[list[int]]:
    return [
        wide._encode(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Question: {q}\nAnswer A: {a}\nAnswer B: {b}"},
            ]
        )
        for q, a, b in QUESTIONS
    ]


def reference(engine: TransformersEngine, prompt: list[int], max_new_tokens: int) -> list[int]:
    """transformers' greedy generate() for one unpadded prompt, through plain SDPA attention."""
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = engine._model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=sorted(engine._stop_ids),
            pad_token_id=engine._pad_id,
        )
    return [int(t) for t in out[0, len(prompt) :]]


def greedy(
    decoder: Decoder, engine: TransformersEngine, prompts: list[list[int]], **kwargs: Any
) -> list[Any]:
    with torch.inference_mode():
        shared = engine._shared_prefixes(prompts, keep=1)
        return decoder.generate(
            prompts,
            shared=shared,
            pick=lambda logits: logits.argmax(dim=-1),
            stop_ids=engine._stop_ids,
            **kwargs,
        )


def test_the_model_runs_on_the_shared_prefix_attention(wide: TransformersEngine) -> None:
    assert wide._model.config._attn_implementation == ATTENTION
    assert wide._decoder is not None


def test_rows_that_leave_are_compacted_in_place_without_a_second_store(wide: TransformersEngine) -> None:
    store = decoding._RowStore(wide._model, rows=4, capacity=5, zeroed=2)
    for layer in range(len(store.keys)):
        for row in range(4):
            store.keys[layer][row].fill_(row)
            store.values[layer][row].fill_(10 + row)
    before = [t.data_ptr() for t in store.keys + store.values]
    order = store.keep_rows([0, 2, 3], used=5)
    assert order == [0, 3, 2]  # row 3 moved into the hole row 1 left
    assert [t.data_ptr() for t in store.keys + store.values] == before  # the same memory, no copy
    for layer in range(len(store.keys)):
        assert [int(store.keys[layer][r, 0, 0, 0]) for r in range(3)] == [0, 3, 2]
        assert [int(store.values[layer][r, 0, 0, 0]) for r in range(3)] == [10, 13, 12]
        assert store.keys[layer].shape[0] == 3


def test_greedy_equals_generate_one_by_one_with_rows_leaving(
    wide: TransformersEngine, prompts: list[list[int]]
) -> None:
    decoder = Decoder(wide._model, wide._pad_id)
    rows = greedy(decoder, wide, prompts, max_new_tokens=30)
    expected = [reference(wide, p, 30) for p in prompts]
    assert [r.tokens for r in rows] == expected
    lengths = {len(t) for t in expected}
    assert len(lengths) > 1, "some rows should end (end of turn) before others"
    assert all(r.stopped_at is None for r in rows)


def test_chunked_prefill_equals_one_chunk(wide: TransformersEngine, prompts: list[list[int]]) -> None:
    whole = greedy(Decoder(wide._model, wide._pad_id), wide, prompts, max_new_tokens=6)
    # A budget smaller than one prompt still takes one row per chunk.
    tiny = greedy(Decoder(wide._model, wide._pad_id, prefill_tokens=1), wide, prompts, max_new_tokens=6)
    assert [r.tokens for r in tiny] == [r.tokens for r in whole]
    with torch.inference_mode():
        shared = wide._shared_prefixes(prompts, keep=2)
        one = Decoder(wide._model, wide._pad_id).tail_logprobs(prompts, shared, keep=2)
        chunked = Decoder(wide._model, wide._pad_id, prefill_tokens=64)
        many = chunked.tail_logprobs(prompts, shared, keep=2)
    assert torch.allclose(one, many, atol=1e-4)


def test_a_row_longer_than_the_prefill_budget_goes_in_preemptible_pieces(
    wide: TransformersEngine, prompts: list[list[int]]
) -> None:
    longest = max(prompts, key=len)
    with torch.inference_mode():
        one = Decoder(wide._model, wide._pad_id).tail_logprobs([longest], [0], keep=3)
        pauses: list[int] = []
        budget = len(longest) // 4
        pieces = Decoder(wide._model, wide._pad_id, prefill_tokens=budget)
        many = pieces.tail_logprobs([longest], [0], keep=3, between=lambda: pauses.append(1))
    assert torch.allclose(one, many, atol=1e-4)
    # A preemption point between every two pieces of the one row, not only between rows.
    assert len(pauses) == -(-len(longest) // budget) - 1 >= 3
    whole = greedy(Decoder(wide._model, wide._pad_id), wide, [longest], max_new_tokens=6)
    cut = greedy(Decoder(wide._model, wide._pad_id, prefill_tokens=budget), wide, [longest], max_new_tokens=6)
    assert [r.tokens for r in cut] == [r.tokens for r in whole]


def test_long_prompts_attend_in_query_blocks_with_the_same_result(
    wide: TransformersEngine, prompts: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = greedy(Decoder(wide._model, wide._pad_id), wide, prompts, max_new_tokens=6)
    with torch.inference_mode():
        shared = wide._shared_prefixes(prompts, keep=2)
        one = Decoder(wide._model, wide._pad_id).tail_logprobs(prompts, shared, keep=2)
    monkeypatch.setattr(decoding, "_QUERY_BLOCK", 5)  # every prompt's queries in several blocks
    blocked = greedy(Decoder(wide._model, wide._pad_id), wide, prompts, max_new_tokens=6)
    assert [r.tokens for r in blocked] == [r.tokens for r in whole]
    with torch.inference_mode():
        many = Decoder(wide._model, wide._pad_id).tail_logprobs(prompts, shared, keep=2)
    assert torch.allclose(one, many, atol=1e-4)


def test_without_a_shared_prefix(wide: TransformersEngine, prompts: list[list[int]]) -> None:
    decoder = Decoder(wide._model, wide._pad_id)
    with torch.inference_mode():
        rows = decoder.generate(
            prompts[:3],
            shared=[0, 0, 0],
            max_new_tokens=8,
            pick=lambda logits: logits.argmax(dim=-1),
            stop_ids=wide._stop_ids,
        )
    assert [r.tokens for r in rows] == [reference(wide, p, 8) for p in prompts[:3]]


def test_rows_of_several_prefixes_decode_together_as_one_by_one(
    wide: TransformersEngine, prompts: list[list[int]]
) -> None:
    """Two templates' prompts and one of none in one batch, each row reading only its own prefix's
    keys, rows leaving at different steps (compaction keeps each row's prefix): what transformers
    gives each prompt alone."""
    terse = [
        wide._encode(
            [
                {"role": "system", "content": "Pick the better answer; reply [[A]] or [[B]] only."},
                {"role": "user", "content": f"Q: {q}\nA: {a}\nB: {b}"},
            ]
        )
        for q, a, b in QUESTIONS[:3]
    ]
    plain = wide._encode([{"role": "user", "content": "Name three colours."}])
    batch = [prompts[0], terse[0], prompts[1], plain, terse[1], prompts[2], terse[2]]
    # Each template's prefix: what its first two prompts share (their questions differ).
    first = next(i for i, (x, y) in enumerate(zip(prompts[0], prompts[1], strict=False)) if x != y)
    second = next(i for i, (x, y) in enumerate(zip(terse[0], terse[1], strict=False)) if x != y)
    assert first > 16 and second > 16 and first != second
    shared = [first, second, first, 0, second, first, second]
    decoder = Decoder(wide._model, wide._pad_id)
    computed: list[int] = []
    compute = decoder.prefix_kv

    def recording(prefix: list[int]) -> Any:
        computed.append(len(prefix))
        return compute(prefix)

    decoder.prefix_kv = recording  # type: ignore[method-assign]
    with torch.inference_mode():
        rows = decoder.generate(
            batch,
            shared=shared,
            max_new_tokens=30,
            pick=lambda logits: logits.argmax(dim=-1),
            stop_ids=wide._stop_ids,
        )
    assert sorted(computed) == sorted([first, second])
    expected = [reference(wide, p, 30) for p in batch]
    assert [r.tokens for r in rows] == expected
    assert len({len(t) for t in expected}) > 1, "some rows should end before others"
    with torch.inference_mode():
        scored = decoder.tail_logprobs(batch, shared, keep=2)
        alone = torch.cat([decoder.tail_logprobs([p], [0], keep=2) for p in batch])
    assert torch.allclose(scored, alone, atol=1e-4)


def test_a_stop_check_ends_only_its_row(wide: TransformersEngine, prompts: list[list[int]]) -> None:
    decoder = Decoder(wide._model, wide._pad_id)
    free = greedy(decoder, wide, prompts, max_new_tokens=10)
    # Stop one row after its third token (one whose first three are its own); the others run on.
    starts = [tuple(r.tokens[:3]) for r in free]
    row = next(i for i, start in enumerate(starts) if starts.count(start) == 1)
    stopped = greedy(
        decoder, wide, prompts, max_new_tokens=10, stopped=lambda tokens: tuple(tokens) == starts[row]
    )
    assert stopped[row].tokens == list(starts[row]) and stopped[row].stopped_at == 3
    assert [r.tokens for i, r in enumerate(stopped) if i != row] == [
        r.tokens for i, r in enumerate(free) if i != row
    ]


def test_outside_a_decoder_pass_attention_is_plain_sdpa(
    wide: TransformersEngine, prompts: list[list[int]]
) -> None:
    with torch.inference_mode():
        ids = torch.tensor([prompts[0]])
        ours = wide._model(input_ids=ids).logits
        wide._model.set_attn_implementation("sdpa")
        try:
            plain = wide._model(input_ids=ids).logits
        finally:
            wide._model.set_attn_implementation(ATTENTION)
    assert torch.equal(ours, plain)


def test_models_that_do_not_qualify_are_left_alone(default_model_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(default_model_path), attn_implementation="eager")
    assert not install(model)
    assert model.config._attn_implementation == "eager"
