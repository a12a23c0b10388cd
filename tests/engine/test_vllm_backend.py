"""The vllm backend. Without vllm (CPU machines, CI) the stand-in of ``tests/engine/fake_vllm.py`` checks
how the backend drives vLLM's AsyncLLM and reads V1's outputs; with vllm installed (``make test-vllm``)
the request parameters are built as real ``vllm.SamplingParams``; with a GPU the real engine runs too."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from app.core.config import Settings
from app.engine import vllm_memory
from app.engine.base import Conversation, Engine, EngineError, NotServing, SamplingParams, SelfBatchingEngine
from app.engine.factory import build_engine, vllm_memory_share
from app.engine.precision import Precision, precision_of
from app.engine.vllm_backend import VLLMEngine
from tests.engine import fake_vllm
from tests.engine.fake_vllm import FakeAsyncLLM, fake_logprob


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


def test_memory_share_is_split_over_the_engines_a_worker_may_hold(tmp_path: Path) -> None:
    assert vllm_memory_share(Settings(data_dir=tmp_path, gpu_memory_utilization=0.8)) == pytest.approx(0.4)
    alone = Settings(data_dir=tmp_path, gpu_memory_utilization=0.8, max_extra_engines=0)
    assert vllm_memory_share(alone) == pytest.approx(0.8)


# -- the stand-in ------------------------------------------------------------------------------


@pytest.fixture
def tokenizer(default_model_path: Path) -> Any:
    return AutoTokenizer.from_pretrained(str(default_model_path))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    vllm = fake_vllm.module()
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", vllm.sampling_params)
    yield FakeAsyncLLM


@pytest.fixture
def engine(fake: Any, default_model_path: Path) -> Iterator[VLLMEngine]:
    eng = VLLMEngine(default_model_path, "smol", gpu_memory_utilization=0.4, on_fatal=fatal.append)
    yield eng
    eng.close()


fatal: list[str] = []


def llm(engine: VLLMEngine) -> FakeAsyncLLM:
    return engine._llm  # type: ignore[no-any-return]


def token(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def expected_probs(scores: dict[str, float]) -> dict[str, float]:
    total = sum(math.exp(s) for s in scores.values())
    return {k: math.exp(s) / total for k, s in scores.items()}


def test_starts_asyncllm_with_prefix_caching_and_priorities(
    engine: VLLMEngine, default_model_path: Path
) -> None:
    args = llm(engine).args
    assert isinstance(engine, Engine) and isinstance(engine, SelfBatchingEngine)
    assert args["enable_prefix_caching"] is True and args["scheduling_policy"] == "priority"
    assert (args["model"], args["gpu_memory_utilization"]) == (str(default_model_path), 0.4)
    assert engine.context_length == 2048
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.generate([user("hi")], SamplingParams())


def test_reports_the_dtype_vllm_resolved(fake: Any, default_model_path: Path) -> None:
    """GET /v1/models and the worker's log show what vLLM serves in (model_config.dtype)."""
    auto = VLLMEngine(default_model_path, "smol", gpu_memory_utilization=0.2, on_fatal=fatal.append)
    named = VLLMEngine(
        default_model_path, "smol2", gpu_memory_utilization=0.2, dtype="float16", on_fatal=fatal.append
    )
    try:
        assert precision_of(auto) == Precision("bfloat16", "auto: vLLM's choice for this checkpoint")
        assert precision_of(named) == Precision("float16", "JUDGE_DTYPE=float16")
    finally:
        auto.close()
        named.close()


def test_a_second_engine_that_does_not_fit_is_refused(engine: VLLMEngine, default_model_path: Path) -> None:
    with pytest.raises(EngineError, match="JUDGE_MAX_EXTRA_ENGINES"):
        VLLMEngine(default_model_path, "other", gpu_memory_utilization=0.85)
    second = VLLMEngine(default_model_path, "other", gpu_memory_utilization=0.4)
    assert vllm_memory.held() == pytest.approx(0.8)
    second.close()
    assert vllm_memory.held() == pytest.approx(0.4)


def test_a_failed_start_is_an_engine_error_and_frees_its_share(fake: Any, default_model_path: Path) -> None:
    fake.fail_builds = 1
    with pytest.raises(EngineError, match="could not start.*CUDA out of memory"):
        VLLMEngine(default_model_path, "smol", gpu_memory_utilization=0.9)
    assert vllm_memory.held() == 0


def test_generate_sends_token_ids_and_maps_outputs(engine: VLLMEngine, tokenizer: Any) -> None:
    prompts = [user("hi"), user("a longer question here")]
    outputs = engine.generate(prompts, SamplingParams(max_tokens=3, stop=("\n",), top_p=0.5))
    sent = llm(engine).requests
    # The chat template holds the special tokens: no second BOS may be added.
    assert sorted(r[0] for r in sent) == sorted(token(tokenizer, engine.render_chat(p)) for p in prompts)
    params = sent[0][1]
    assert (params.temperature, params.top_p, params.max_tokens, params.stop) == (0.0, 1.0, 3, ["\n"])
    assert [o.tokens_in for o in outputs] == [len(token(tokenizer, engine.render_chat(p))) for p in prompts]
    assert [(o.tokens_out, o.finish_reason) for o in outputs] == [(3, "length"), (3, "length")]

    llm(engine).reply = ("A", "stop", "\n")
    (sampled,) = engine.generate(
        prompts[:1], SamplingParams(temperature=0.8, top_p=0.9, seed=5, stop=("\n",))
    )
    params = llm(engine).requests[-1][1]
    assert (params.temperature, params.top_p, params.seed) == (0.8, 0.9, 5)
    assert (sampled.text, sampled.finish_reason, sampled.stop_string) == ("A", "stop", "\n")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (("", "error", None), "'error'"),
        (("la la la", "repetition", "repetition_detected"), "repetition"),
        (("x", "stop", "</think>"), "not at a stop string"),
        (("", "abort", None), "aborted"),
    ],
)
def test_endings_the_model_did_not_choose_are_errors(
    engine: VLLMEngine, reply: tuple[str, str, str | None], message: str
) -> None:
    llm(engine).reply = reply
    with pytest.raises(EngineError, match=message):
        engine.generate([user("hi")], SamplingParams(max_tokens=50))


def test_prompt_and_max_tokens_over_the_context_are_refused_up_front(engine: VLLMEngine) -> None:
    llm(engine).model_config.max_model_len = 40
    long, short = user("word " * 40), user("hi")
    assert engine.count_tokens(long) > 40
    futures = [
        engine.submit_generate(str(i), "smol", p, SamplingParams(max_tokens=8), 1)
        for i, p in enumerate([long, short])
    ]
    with pytest.raises(EngineError, match="exceeds the model's context of 40"):
        futures[0].result()
    assert futures[1].result().text == "a reply"  # the other request is not touched
    # Within the context on its own, but not with max_tokens: refused, not cut short.
    fits = 40 - engine.count_tokens(short)
    with pytest.raises(EngineError, match="exceeds"):
        engine.generate([short], SamplingParams(max_tokens=fits + 1))
    assert len(llm(engine).requests) == 1


def test_vllm_validation_error_becomes_an_engine_error(engine: VLLMEngine) -> None:
    # vLLM's own refusal (a VLLMClientError, not a ValueError), when our check does not see it coming.
    llm(engine).model_config.max_model_len = 5
    engine_context = type(engine).context_length
    try:
        type(engine).context_length = property(lambda self: None)  # type: ignore[method-assign,assignment]
        with pytest.raises(EngineError, match="vllm refused the request.*maximum model length"):
            engine.generate([user("hi")], SamplingParams())
    finally:
        type(engine).context_length = engine_context  # type: ignore[method-assign]


def test_single_token_labels_are_scored_with_targeted_logprobs(engine: VLLMEngine, tokenizer: Any) -> None:
    a, b = token(tokenizer, "A")[0], token(tokenizer, "B")[0]
    (dist,) = engine.label_logprobs([JUDGE], ["A", "B"])
    ids = token(tokenizer, engine.render_chat(JUDGE))
    ((sent, params, _, _),) = llm(engine).requests
    assert sent == ids and params.logprob_token_ids == sorted([a, b]) and params.max_tokens == 1
    assert params.logprobs is None and params.prompt_logprobs is None
    assert dist.probs == pytest.approx(expected_probs({"A": fake_logprob(ids, a), "B": fake_logprob(ids, b)}))
    assert dist.mass == pytest.approx(math.exp(fake_logprob(ids, a)) + math.exp(fake_logprob(ids, b)))
    assert dist.tokens_in == len(ids)


def ten_score(ids: list[int], ten: list[int]) -> float:
    return fake_logprob(ids, ten[0]) + fake_logprob(ids + ten[:1], ten[1])


def test_multi_token_labels_are_scored_from_targeted_prompt_rows(engine: VLLMEngine, tokenizer: Any) -> None:
    a, ten = token(tokenizer, "A"), token(tokenizer, "10")
    assert len(ten) == 2
    prompts = [JUDGE, user("Score it from 1 to 10.")]
    dists = engine.label_logprobs(prompts, ["A", "10"])
    requests = llm(engine).requests
    assert len(requests) == 4  # one per prompt and label
    for sent, params, _, _ in requests:
        assert params.prompt_logprobs is None and params.skip_reading_prefix_cache is False
        label = a if sent[-1:] == a else ten
        assert params.prompt_logprob_token_ids == [[t] for t in label]
        assert params.prompt_logprob_start == len(sent) - len(label) - 1
    for prompt, dist in zip(prompts, dists, strict=True):
        ids = token(tokenizer, engine.render_chat(prompt))
        want = expected_probs({"A": fake_logprob(ids, a[0]), "10": ten_score(ids, ten)})
        assert dist.probs == pytest.approx(want)


def test_rows_dropped_by_a_cache_hit_are_scored_again_without_the_cache(
    engine: VLLMEngine, tokenizer: Any
) -> None:
    llm(engine).cache_hit = True
    (dist,) = engine.label_logprobs([JUDGE], ["A", "10"])
    reads = [params.skip_reading_prefix_cache for _, params, _, _ in llm(engine).requests]
    assert sorted(reads) == [False, False, True, True]
    ids = token(tokenizer, engine.render_chat(JUDGE))
    want = {"A": fake_logprob(ids, token(tokenizer, "A")[0]), "10": ten_score(ids, token(tokenizer, "10"))}
    assert dist.probs == pytest.approx(expected_probs(want))


def test_v1_runner_falls_back_to_shortened_prompt_logprobs(engine: VLLMEngine, tokenizer: Any) -> None:
    llm(engine).v1_runner = True
    (dist,) = engine.label_logprobs([JUDGE], ["A", "10"])
    assert engine._targeted_rows is False
    fallback = [params for _, params, _, _ in llm(engine).requests]
    assert fallback and all(p.prompt_logprobs == 0 for p in fallback)
    ids = token(tokenizer, engine.render_chat(JUDGE))
    want = {"A": fake_logprob(ids, token(tokenizer, "A")[0]), "10": ten_score(ids, token(tokenizer, "10"))}
    assert dist.probs == pytest.approx(expected_probs(want))


def test_requests_carry_priority_and_abort_cancels(engine: VLLMEngine) -> None:
    fake_llm = llm(engine)
    fake_llm.gate = asyncio.Event()
    running = engine.submit_generate("r1", "smol", user("hi"), SamplingParams(max_tokens=50), 2)
    other = engine.submit_generate("r2", "smol", user("hello"), SamplingParams(max_tokens=50), 0)
    while len(fake_llm.requests) < 2:
        pass
    assert sorted((r[2], r[3]) for r in fake_llm.requests) == [("r1", 2), ("r2", 0)]
    engine.abort(["r1", "unknown"])
    while "abort" not in fake_llm.calls:
        pass
    engine._loop.loop.call_soon_threadsafe(fake_llm.gate.set)
    assert running.result(5).finish_reason == "cancelled"
    assert other.result(5).finish_reason == "stop"


def test_engine_death_fails_requests_and_rebuilds_the_engine(engine: VLLMEngine) -> None:
    first = llm(engine)
    first.dead = True
    with pytest.raises(EngineError, match="died; it is being restarted"):
        engine.generate([user("hi")], SamplingParams(max_tokens=5))
    (again,) = engine.generate([user("hi")], SamplingParams(max_tokens=5))
    assert again.text == "a reply"
    assert llm(engine) is not first and "shutdown" in first.calls
    assert llm(engine).args == first.args


def test_a_failed_rebuild_stops_the_worker(engine: VLLMEngine, fake: Any) -> None:
    fatal.clear()
    llm(engine).dead = True
    fake.fail_builds = 1
    with pytest.raises(EngineError, match="died"):
        engine.generate([user("hi")], SamplingParams(max_tokens=5))
    with pytest.raises(EngineError, match="could not restart"):
        engine.generate([user("hi")], SamplingParams(max_tokens=5))
    assert fatal and "could not restart" in fatal[0]


def test_load_weights_reloads_in_place(engine: VLLMEngine, default_model_path: Path) -> None:
    fake_llm = llm(engine)
    engine.load_weights(default_model_path, "smol-child")
    assert llm(engine) is fake_llm  # no new engine: weights reloaded in place
    assert fake_llm.calls == ["pause:wait", f"reload:{default_model_path}", "reset_prefix_cache", "resume"]
    assert engine.model_name == "smol-child"
    with pytest.raises(NotServing):
        engine.submit_generate("x", "smol", user("hi"), SamplingParams(), 0)
    assert engine.submit_generate("y", "smol-child", user("hi"), SamplingParams(), 0).result(5).text


def test_failed_load_weights_restores_the_old_weights(
    engine: VLLMEngine, default_model_path: Path, tmp_path: Path
) -> None:
    child = tmp_path / "child"
    child.symlink_to(default_model_path, target_is_directory=True)
    fake_llm = llm(engine)
    fake_llm.fail_reload = {str(child)}
    with pytest.raises(EngineError, match="could not load the weights of 'smol-child'.*still serves 'smol'"):
        engine.load_weights(child, "smol-child")
    assert fake_llm.calls == ["pause:wait", f"reload:{child}", f"reload:{default_model_path}", "resume"]
    assert fake_llm.weights == str(default_model_path) and engine.model_name == "smol"
    assert engine.generate([user("hi")], SamplingParams(max_tokens=5))[0].text


def test_weights_that_cannot_be_restored_stop_the_worker(
    engine: VLLMEngine, default_model_path: Path, tmp_path: Path
) -> None:
    fatal.clear()
    child = tmp_path / "child"
    child.symlink_to(default_model_path, target_is_directory=True)
    llm(engine).fail_reload = {str(child), str(default_model_path)}
    with pytest.raises(EngineError, match="nor reload"):
        engine.load_weights(child, "smol-child")
    assert fatal and "undefined" in fatal[0]
    with pytest.raises(EngineError, match="nor reload"):
        engine.generate([user("hi")], SamplingParams())


# -- real vllm (make test-vllm): the parameters we build are ones vLLM accepts --------------------


def test_real_sampling_params_accept_every_request_we_build() -> None:
    vllm = pytest.importorskip("vllm")
    from vllm.sampling_params import RequestOutputKind

    from app.engine import vllm_requests as req

    final = RequestOutputKind.FINAL_ONLY
    greedy = vllm.SamplingParams(
        **req.generation_params(SamplingParams(max_tokens=7, stop=("\n", "]]"))), output_kind=final
    )
    assert (greedy.temperature, greedy.max_tokens, greedy.stop, greedy.skip_special_tokens) == (
        0.0,
        7,
        ["\n", "]]"],
        True,
    )
    sampled = vllm.SamplingParams(
        **req.generation_params(SamplingParams(temperature=0.7, top_p=0.9, seed=3)), output_kind=final
    )
    assert (sampled.temperature, sampled.top_p, sampled.seed, sampled.stop) == (0.7, 0.9, 3, [])
    first = vllm.SamplingParams(**req.first_token_params([5, 3, 5]), output_kind=final)
    assert first.logprob_token_ids == [3, 5] and first.num_logprobs == 2 and first.max_tokens == 1
    rows = vllm.SamplingParams(**req.label_rows_params(10, [4, 9], read_cache=True), output_kind=final)
    assert rows.prompt_logprob_start == 9 and rows.skip_reading_prefix_cache is False
    assert [list(r) for r in rows.prompt_logprob_token_ids] == [[4], [9]]
    uncached = vllm.SamplingParams(**req.label_rows_params(10, [4], read_cache=False), output_kind=final)
    assert uncached.skip_reading_prefix_cache is True
    fallback = vllm.SamplingParams(**req.prompt_logprobs_params(), output_kind=final)
    assert fallback.prompt_logprobs == 0 and fallback.skip_reading_prefix_cache is True
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.engine.exceptions import EngineDeadError

    from app.engine.vllm_errors import engine_error, is_engine_dead, is_request_error

    assert is_request_error(VLLMValidationError("too long")) and not isinstance(
        VLLMValidationError("x"), ValueError
    )
    assert is_engine_dead(EngineDeadError())
    assert "died" in str(engine_error(EngineDeadError(), "smol"))
    with pytest.raises(VLLMValidationError):
        vllm.SamplingParams(temperature=-1.0)


def test_real_engine_api_takes_the_calls_we_make(default_model_path: Path) -> None:
    """vLLM's AsyncLLM, read without a GPU: the engine arguments and the methods and keywords the
    backend calls exist as used."""
    vllm = pytest.importorskip("vllm")
    import inspect

    from app.engine.vllm_requests import engine_args

    args = vllm.AsyncEngineArgs(**engine_args(default_model_path, 2, 0.4, "auto", 4096, 0))
    assert (args.enable_prefix_caching, args.scheduling_policy, args.max_model_len) == (
        True,
        "priority",
        4096,
    )
    engine = vllm.AsyncLLMEngine
    assert "engine_args" in inspect.signature(engine.from_engine_args).parameters
    assert {"prompt", "sampling_params", "request_id", "priority"} <= set(
        inspect.signature(engine.generate).parameters
    )
    assert {"mode", "clear_cache"} <= set(inspect.signature(engine.pause_generation).parameters)
    assert {"method", "kwargs"} <= set(inspect.signature(engine.collective_rpc).parameters)
    for name in ("abort", "resume_generation", "reset_prefix_cache", "shutdown", "errored"):
        assert hasattr(engine, name), name
    # The GPU worker's method that collective_rpc("reload_weights") reaches (its module needs CUDA
    # packages to import, so it is read as text).
    worker = Path(vllm.__file__).parent / "v1" / "worker" / "gpu_worker.py"
    assert "def reload_weights(self, *args, **kwargs)" in worker.read_text()


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
