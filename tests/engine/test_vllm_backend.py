"""The vllm backend. Without vllm (CPU machines) a stand-in ``vllm`` module checks how the backend
drives vLLM's API and reads its outputs; with vllm and a GPU the real engine runs too."""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from transformers import AutoTokenizer

from app.core.config import Settings
from app.engine.base import Conversation, Engine, EngineError, SamplingParams
from app.engine.factory import build_engine
from app.engine.vllm_backend import VLLMEngine


def user(text: str) -> Conversation:
    return [{"role": "user", "content": text}]


JUDGE = [
    {"role": "system", "content": "You are a judge. Reply with A or B only."},
    {"role": "user", "content": "Question: 2+2? Answer A: 4. Answer B: 5. Which answer is correct?"},
]


# -- runs everywhere ---------------------------------------------------------------------------


def test_missing_vllm_is_a_clear_engine_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail as if not installed
    with pytest.raises(EngineError, match="needs the vllm package"):
        VLLMEngine(tmp_path, "smol")
    with pytest.raises(EngineError, match="needs the vllm package"):
        build_engine(Settings(data_dir=tmp_path, backend="vllm"), "smol", tmp_path)


# -- a stand-in vllm module --------------------------------------------------------------------


def fake_logprob(context: list[int], token: int) -> float:
    """The stand-in model: a fixed, context-dependent log-prob for every next token."""
    return -1.0 - ((token * 7 + len(context)) % 11) * 0.25


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.logprobs: int | None = None
        self.prompt_logprobs: int | None = None
        self.__dict__.update(kwargs)


class FakeLLM:
    top_tokens: list[int] = []  # what the first generated token's top log-probs hold

    def __init__(self, hf_tokenizer: Any, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.tokenizer = hf_tokenizer
        self.calls: list[tuple[list[dict[str, list[int]]], FakeSamplingParams]] = []

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def generate(
        self, prompts: list[dict[str, list[int]]], params: FakeSamplingParams, use_tqdm: bool
    ) -> list[Any]:
        self.calls.append((prompts, params))
        outputs = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            n = min(3, params.max_tokens)
            completion = SimpleNamespace(
                text=f"reply to {len(ids)} tokens",
                token_ids=[7] * n,
                finish_reason="length" if params.max_tokens <= 3 else "stop",
                logprobs=None,
            )
            if params.logprobs:
                top = {t: SimpleNamespace(logprob=fake_logprob(ids, t)) for t in self.top_tokens}
                completion.logprobs = [top]
            prompt_logprobs = None
            if params.prompt_logprobs is not None:
                prompt_logprobs = [None] + [
                    {ids[k]: SimpleNamespace(logprob=fake_logprob(ids[:k], ids[k]))}
                    for k in range(1, len(ids))
                ]
            outputs.append(
                SimpleNamespace(prompt_token_ids=ids, outputs=[completion], prompt_logprobs=prompt_logprobs)
            )
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, default_model_path: Path) -> Iterator[Any]:
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path))
    module: Any = types.ModuleType("vllm")
    module.LLM = lambda **kwargs: FakeLLM(tokenizer, **kwargs)
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    yield tokenizer


def token(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def expected_probs(scores: dict[str, float]) -> dict[str, float]:
    total = sum(math.exp(s) for s in scores.values())
    return {k: math.exp(s) / total for k, s in scores.items()}


def test_starts_vllm_with_prefix_caching(fake_vllm: Any, default_model_path: Path) -> None:
    engine = VLLMEngine(default_model_path, "smol", tensor_parallel_size=2, gpu_memory_utilization=0.5)
    llm = engine._llm
    assert isinstance(engine, Engine)
    assert llm.kwargs["enable_prefix_caching"] is True
    assert (llm.kwargs["tensor_parallel_size"], llm.kwargs["gpu_memory_utilization"]) == (2, 0.5)
    assert llm.kwargs["model"] == str(default_model_path)
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.generate([user("hi")], SamplingParams())


def test_generate_sends_token_ids_and_maps_outputs(fake_vllm: Any, default_model_path: Path) -> None:
    engine = VLLMEngine(default_model_path, "smol")
    prompts = [user("hi"), user("a longer question here")]
    outputs = engine.generate(prompts, SamplingParams(max_tokens=3, stop=("\n",), top_p=0.5))
    (sent, params) = engine._llm.calls[0]
    # The chat template holds the special tokens: no second BOS may be added.
    assert [p["prompt_token_ids"] for p in sent] == [token(fake_vllm, engine.render_chat(p)) for p in prompts]
    assert (params.temperature, params.top_p, params.max_tokens, params.stop) == (0.0, 1.0, 3, ["\n"])
    assert [o.tokens_in for o in outputs] == [len(p["prompt_token_ids"]) for p in sent]
    assert [(o.tokens_out, o.finish_reason) for o in outputs] == [(3, "length"), (3, "length")]

    sampled = engine.generate(prompts[:1], SamplingParams(temperature=0.8, top_p=0.9, seed=5, max_tokens=8))
    params = engine._llm.calls[1][1]
    assert (params.temperature, params.top_p, params.seed, params.stop) == (0.8, 0.9, 5, None)
    assert sampled[0].finish_reason == "stop"


def test_single_token_labels_come_from_top_logprobs(fake_vllm: Any, default_model_path: Path) -> None:
    engine = VLLMEngine(default_model_path, "smol")
    a, b = token(fake_vllm, "A")[0], token(fake_vllm, "B")[0]
    engine._llm.top_tokens = [a, b, 99]
    (dist,) = engine.label_logprobs([JUDGE], ["A", "B"])
    ids = token(fake_vllm, engine.render_chat(JUDGE))
    assert len(engine._llm.calls) == 1
    assert engine._llm.calls[0][1].logprobs == 20
    assert dist.probs == pytest.approx(expected_probs({"A": fake_logprob(ids, a), "B": fake_logprob(ids, b)}))
    assert dist.mass == pytest.approx(math.exp(fake_logprob(ids, a)) + math.exp(fake_logprob(ids, b)))
    assert dist.tokens_in == len(ids)


def test_labels_missing_from_top_logprobs_are_scored_exactly(
    fake_vllm: Any, default_model_path: Path
) -> None:
    engine = VLLMEngine(default_model_path, "smol")
    a, b = token(fake_vllm, "A")[0], token(fake_vllm, "B")[0]
    engine._llm.top_tokens = [a, 99]  # B is not among the top tokens
    (dist,) = engine.label_logprobs([JUDGE], ["A", "B"])
    ids = token(fake_vllm, engine.render_chat(JUDGE))
    assert len(engine._llm.calls) == 2
    fallback_prompts, params = engine._llm.calls[1]
    assert params.prompt_logprobs is not None
    assert [p["prompt_token_ids"] for p in fallback_prompts] == [ids + [a], ids + [b]]
    assert dist.probs == pytest.approx(expected_probs({"A": fake_logprob(ids, a), "B": fake_logprob(ids, b)}))


def test_multi_token_labels_sum_their_tokens(fake_vllm: Any, default_model_path: Path) -> None:
    engine = VLLMEngine(default_model_path, "smol")
    a, ten = token(fake_vllm, "A"), token(fake_vllm, "10")
    assert len(ten) == 2
    prompts = [JUDGE, user("Score it from 1 to 10.")]
    dists = engine.label_logprobs(prompts, ["A", "10"])
    assert len(engine._llm.calls) == 1  # straight to prompt log-probs: no top-logprobs pass
    for prompt, dist in zip(prompts, dists, strict=True):
        ids = token(fake_vllm, engine.render_chat(prompt))
        ten_score = fake_logprob(ids, ten[0]) + fake_logprob(ids + ten[:1], ten[1])
        assert dist.probs == pytest.approx(expected_probs({"A": fake_logprob(ids, a[0]), "10": ten_score}))


# -- the real engine (vllm installed and a GPU present) -----------------------------------------


@pytest.fixture(scope="module")
def real_engine(default_model_path: Path) -> Iterator[VLLMEngine]:
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vllm needs a GPU")
    engine = VLLMEngine(default_model_path, "smol", gpu_memory_utilization=0.3)
    yield engine
    engine.close()


@pytest.mark.model
def test_real_vllm_generates_and_scores(real_engine: VLLMEngine) -> None:
    sampling = SamplingParams(max_tokens=16)
    first = real_engine.generate([user("What is the capital of France?"), JUDGE], sampling)
    again = real_engine.generate([user("What is the capital of France?"), JUDGE], sampling)
    assert [g.text for g in first] == [g.text for g in again]
    assert "Paris" in first[0].text
    assert all(0 < g.tokens_out <= 16 and g.tokens_in > 0 for g in first)
    (tiny,) = real_engine.generate([user("Write a poem.")], SamplingParams(max_tokens=2))
    assert (tiny.tokens_out, tiny.finish_reason) == (2, "length")

    (single,) = real_engine.label_logprobs([JUDGE], ["A", "B"])
    (multi,) = real_engine.label_logprobs([JUDGE], ["A", "B", "10"])
    assert math.isclose(sum(single.probs.values()), 1.0, abs_tol=1e-6)
    assert multi.probs["A"] / multi.probs["B"] == pytest.approx(
        single.probs["A"] / single.probs["B"], rel=0.05
    )
