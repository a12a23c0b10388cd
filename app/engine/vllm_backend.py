"""The vllm backend: vLLM's asynchronous engine (``AsyncLLM``, V1) in this process, on one or more GPUs.

vLLM batches continuously by itself, so this engine takes requests one at a time
(:class:`app.engine.base.SelfBatchingEngine`): the worker's scheduler hands each request over as it
comes, with its priority class as vLLM's request priority, and aborts the requests of a cancelled job.
The engine runs on an event loop in a thread of its own; the synchronous batch methods of the Engine
interface are the same requests, waited for together.

vllm is an optional dependency (``pip install 'judge-service[vllm]'``, tested range in pyproject.toml):
this module imports it only when an engine is built, so the rest of the service never needs it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from app.engine import vllm_memory
from app.engine.base import (
    Conversation,
    EngineError,
    Generation,
    LabelDistribution,
    NotServing,
    SamplingParams,
)
from app.engine.chat import label_distribution, label_token_ids, render_with_tokenizer
from app.engine.event_loop import LoopThread
from app.engine.precision import Precision
from app.engine.vllm_errors import engine_error, is_engine_dead, needs_v2_runner
from app.engine.vllm_requests import (
    MAX_LOGPROB_TOKEN_IDS,
    engine_args,
    first_token_params,
    first_token_scores,
    generation_params,
    label_rows_params,
    label_rows_score,
    prompt_logprobs_params,
    prompt_tail_score,
    to_generation,
)

log = logging.getLogger(__name__)


def stop_worker(reason: str) -> None:
    """The engine cannot serve any more (a failed restart, weights it can neither load nor restore):
    ask this process to stop (the worker hands its jobs back) so that its supervisor restarts it."""
    log.critical("vllm engine unusable, stopping the worker: %s", reason)
    os.kill(os.getpid(), signal.SIGTERM)


class VLLMEngine:
    """vLLM with automatic prefix caching (judge prompts share long templates) and priority scheduling.

    Raises EngineError when vllm is not installed, the engine cannot start, or its GPU memory share
    does not fit beside the vllm engines already in this process. ``on_fatal`` hears when the engine
    can serve no more (default: stop the worker, see :func:`stop_worker`).
    """

    def __init__(
        self,
        model_path: Path,
        model_name: str,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        dtype: str = "auto",
        *,
        max_model_len: int | None = None,
        seed: int = 0,
        on_fatal: Callable[[str], None] = stop_worker,
    ) -> None:
        try:
            import vllm
            from vllm.sampling_params import RequestOutputKind
        except ImportError as exc:
            raise EngineError(
                "the vllm backend needs the vllm package (pip install 'judge-service[vllm]'), "
                "which is not installed; use backend=transformers or openai instead"
            ) from exc
        self._vllm: Any = vllm
        # Only the finished output of each request crosses into Python (no per-token outputs).
        self._final_only: Any = RequestOutputKind.FINAL_ONLY
        self._model_name = model_name
        self._model_path = Path(model_path)
        self._on_fatal = on_fatal
        self._args = engine_args(
            model_path, tensor_parallel_size, gpu_memory_utilization, dtype, max_model_len, seed
        )
        # Guards the fields below; never held while waiting on the loop.
        self._lock = threading.Lock()
        self._swapping = False
        self._closed = False
        self._broken: str | None = None  # why the engine can serve no more
        self._cancelled: set[str] = set()
        self._live: set[str] = set()
        # Targeted prompt log-probs need vLLM's V2 model runner; on V1 the engine falls back for good.
        self._targeted_rows = True
        self._llm: Any = None
        self._tokenizer: Any = self._load_tokenizer(self._model_path, model_name)
        vllm_memory.claim(self, gpu_memory_utilization, model_name)
        self._loop = LoopThread(f"vllm-{model_name}")
        self._ready: asyncio.Event | None = None
        started = time.perf_counter()
        try:
            self._loop.run(self._start())
        except BaseException as exc:
            self._loop.stop()
            vllm_memory.release(self)
            if isinstance(exc, Exception):
                raise EngineError(
                    f"vllm could not start model {model_name!r} from {model_path}: {exc}"
                ) from exc
            raise
        log.info("vllm loaded %s in %.1f s", model_name, time.perf_counter() - started)

    # -- the engine's life ---------------------------------------------------------------------

    async def _start(self) -> None:
        self._ready = asyncio.Event()
        self._llm = self._build()
        self._ready.set()

    def _build(self) -> Any:
        """A new AsyncLLM from the engine's arguments (blocks its loop while vLLM starts: 30-100 s)."""
        args = self._vllm.AsyncEngineArgs(**self._args)
        return self._vllm.AsyncLLMEngine.from_engine_args(args)

    def _engine_died(self, llm: Any) -> None:
        """On the loop: EngineDeadError from ``llm``. Build a new engine once; requests wait for it."""
        assert self._ready is not None
        if llm is not self._llm or not self._ready.is_set():
            return  # already being rebuilt
        log.error("vllm engine of %s died; starting it again", self._model_name)
        self._ready.clear()
        asyncio.get_running_loop().create_task(self._rebuild(llm))

    async def _rebuild(self, dead: Any) -> None:
        assert self._ready is not None
        try:
            dead.shutdown()
        except Exception:  # noqa: BLE001 - a dead engine may not shut down cleanly
            log.debug("shutting down the dead vllm engine failed", exc_info=True)
        try:
            self._llm = self._build()
            log.info("vllm engine of %s started again", self._model_name)
        except Exception as exc:  # noqa: BLE001 - anything here leaves the engine unusable
            self._fail_for_good(f"vllm could not restart {self._model_name!r} after it died: {exc}")
        finally:
            self._ready.set()

    def _fail_for_good(self, reason: str) -> None:
        with self._lock:
            self._broken = reason
        try:
            self._on_fatal(reason)
        except Exception:  # noqa: BLE001 - the caller's hook must not hide the failure
            log.exception("on_fatal hook failed")

    def load_weights(self, model_path: Path, model_name: str) -> None:
        """Serve another checkpoint of the same architecture, in place: requests in flight finish on
        the old weights, then every worker reloads from ``model_path`` and the prefix cache is reset
        (its entries were computed with the old weights). If the new weights cannot load, the old
        ones are loaded back and EngineError says so; if even that fails the engine is broken for
        good and ``on_fatal`` stops the worker."""
        tokenizer = self._load_tokenizer(Path(model_path), model_name)
        with self._lock:
            self._require_open()
            self._swapping = True
        try:
            self._loop.run(self._reload(Path(model_path), model_name))
        finally:
            with self._lock:
                self._swapping = False
        with self._lock:
            self._tokenizer = tokenizer
            self._model_name = model_name
            self._model_path = Path(model_path)
            self._args = {**self._args, "model": str(model_path), "tokenizer": str(model_path)}
        log.info("vllm now serves %s from %s", model_name, model_path)

    async def _reload(self, path: Path, name: str) -> None:
        llm = await self._engine()
        # Requests already admitted finish on the weights they started with; new ones wait.
        await llm.pause_generation(mode="wait", clear_cache=True)
        try:
            try:
                await llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
            except Exception as exc:  # noqa: BLE001 - whatever failed, put the old weights back
                if is_engine_dead(exc):
                    self._engine_died(llm)
                    raise engine_error(exc, name) from exc
                await self._restore(llm, name, exc)
            await llm.reset_prefix_cache()
        finally:
            if not _errored(llm):
                await llm.resume_generation()

    async def _restore(self, llm: Any, name: str, cause: Exception) -> None:
        try:
            await llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self._model_path)})
        except Exception as again:  # noqa: BLE001
            reason = (
                f"vllm could not load {name!r} ({cause}) nor reload {self._model_name!r} ({again}): "
                "its weights are undefined"
            )
            self._fail_for_good(reason)
            raise EngineError(reason) from again
        raise EngineError(
            f"vllm could not load the weights of {name!r}: {cause}; it still serves {self._model_name!r}"
        ) from cause

    def close(self) -> None:
        """Shut the engine down and release GPU memory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._loop.run(self._shutdown(), timeout=120)
        except Exception:  # noqa: BLE001 - closing must not fail the caller
            log.warning("vllm engine of %s did not shut down cleanly", self._model_name, exc_info=True)
        self._loop.stop()
        self._llm = None
        vllm_memory.release(self)
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    async def _shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()

    # -- what the scheduler asks -----------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def context_length(self) -> int | None:
        """vLLM's ``max_model_len``: prompt and generated tokens together never exceed it."""
        llm = self._llm
        config = getattr(llm, "model_config", None)
        value = getattr(config, "max_model_len", None)
        return int(value) if isinstance(value, int) else None

    @property
    def precision(self) -> Precision | None:
        """The dtype vLLM resolved for the model (``model_config.dtype``; with ``auto``, the
        checkpoint's own, or for a float32 checkpoint the platform's first supported dtype: bfloat16
        on GPUs that have it), None before it started."""
        config = getattr(self._llm, "model_config", None)
        dtype = getattr(config, "dtype", None)
        if dtype is None:
            return None
        name = str(dtype).removeprefix("torch.")
        requested = self._args.get("dtype", "auto")
        why = f"JUDGE_DTYPE={requested}" if requested != "auto" else "auto: vLLM's choice for this checkpoint"
        return Precision(name, why)

    def count_tokens(self, conversation: Conversation) -> int:
        """The prompt's length in tokens, chat template included (what vLLM is sent)."""
        return len(self._encode(conversation))

    def render_chat(self, conversation: Conversation) -> str:
        """The prompt text: the tokenizer's chat template (see app.engine.chat)."""
        return render_with_tokenizer(self._tokenizer, conversation)

    def submit_generate(
        self, request_id: str, model: str, prompt: Conversation, sampling: SamplingParams, priority: int
    ) -> Future[Generation]:
        """One completion as a request of its own (see SelfBatchingEngine)."""
        self._admit(request_id, model)
        return self._loop.submit(
            self._guarded(request_id, model, self._generate(request_id, prompt, sampling, priority))
        )

    def submit_scores(
        self, request_id: str, model: str, prompt: Conversation, labels: Sequence[str], priority: int
    ) -> Future[LabelDistribution]:
        """One prompt's label distribution as a request of its own (see SelfBatchingEngine)."""
        self._admit(request_id, model)
        return self._loop.submit(
            self._guarded(request_id, model, self._score(request_id, prompt, labels, priority))
        )

    def abort(self, request_ids: Collection[str]) -> None:
        """Stop these requests: generations resolve as ``cancelled``, scores fail."""
        with self._lock:
            live = [r for r in request_ids if r in self._live]
            self._cancelled.update(live)
            llm = self._llm
        if live and llm is not None and not self._closed:
            self._loop.submit(llm.abort(live))

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        """Complete each conversation; vLLM batches them with whatever else it is running."""
        model = self._model_name
        return _gather([self.submit_generate(uuid.uuid4().hex, model, p, sampling, 0) for p in prompts])

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        """Each label's probability as the assistant's whole reply (its tokens' summed log-probs),
        normalised over ``labels``."""
        model = self._model_name
        return _gather([self.submit_scores(uuid.uuid4().hex, model, p, labels, 0) for p in prompts])

    # -- requests, on the loop -------------------------------------------------------------------

    def _admit(self, request_id: str, model: str) -> None:
        with self._lock:
            self._require_open()
            if self._swapping or model != self._model_name:
                raise NotServing(f"the vllm engine serves {self._model_name!r}, not {model!r}, now")
            self._live.add(request_id)

    async def _guarded(self, request_id: str, model: str, work: Any) -> Any:
        """Run ``work``; every failure arrives as EngineError, and the request is forgotten after."""
        try:
            return await work
        except Exception as exc:  # noqa: BLE001 - mapped to one error type for the caller
            raise engine_error(exc, model) from exc
        finally:
            with self._lock:
                self._live.discard(request_id)
                self._cancelled.discard(request_id)

    async def _generate(
        self, request_id: str, prompt: Conversation, sampling: SamplingParams, priority: int
    ) -> Generation:
        if sampling.max_tokens < 1:
            raise EngineError("max_tokens must be at least 1")
        ids = self._encode(prompt)
        self._check_length(ids, sampling.max_tokens)
        started = time.perf_counter()
        output = await self._request(request_id, ids, generation_params(sampling), priority)
        latency_ms = (time.perf_counter() - started) * 1000
        return to_generation(output, sampling, len(ids), latency_ms, self._was_cancelled(request_id))

    async def _score(
        self, request_id: str, prompt: Conversation, labels: Sequence[str], priority: int
    ) -> LabelDistribution:
        label_ids = label_token_ids(self._tokenizer, labels)
        ids = self._encode(prompt)
        # Prompt + label is what vLLM is sent, and it must leave room for the one token it generates.
        self._check_length(ids, max(len(t) for t in label_ids) + 1)
        started = time.perf_counter()
        firsts = [t[0] for t in label_ids]
        if all(len(t) == 1 for t in label_ids) and len(set(firsts)) <= MAX_LOGPROB_TOKEN_IDS:
            output = await self._request(request_id, ids, first_token_params(firsts), priority)
            scores = first_token_scores(output, firsts)
        else:
            scores = list(
                await asyncio.gather(
                    *(self._label_score(request_id, ids, label, priority) for label in label_ids)
                )
            )
        latency_ms = (time.perf_counter() - started) * 1000
        return label_distribution(list(labels), scores, len(ids), latency_ms)

    async def _label_score(self, request_id: str, ids: list[int], label: list[int], priority: int) -> float:
        """One label's summed log-prob after the prompt, from the prompt log-probs of prompt + label."""
        sequence = ids + label
        if self._targeted_rows:
            try:
                for read_cache in (True, False):
                    params = label_rows_params(len(ids), label, read_cache)
                    score = label_rows_score(
                        await self._request(request_id, sequence, params, priority), label
                    )
                    if score is not None:
                        return score
                raise EngineError("vllm returned no prompt log-probs for a label")
            except Exception as exc:
                if not needs_v2_runner(exc):
                    raise
                log.warning("vllm refuses targeted prompt log-probs (%s); using prompt_logprobs=0", exc)
                self._targeted_rows = False
        output = await self._request(request_id, sequence, prompt_logprobs_params(), priority)
        score = prompt_tail_score(output, label)
        if score is None:
            raise EngineError("vllm returned fewer prompt log-probs than the label has tokens")
        return score

    async def _request(self, request_id: str, ids: list[int], params: dict[str, Any], priority: int) -> Any:
        """One vLLM request under our id (a score's label requests share it, so one abort stops all);
        its final output."""
        if self._was_cancelled(request_id):
            raise EngineError("the request was cancelled")
        llm = await self._engine()
        if self._was_cancelled(request_id):  # cancelled while a restart was awaited
            raise EngineError("the request was cancelled")
        sampling = self._vllm.SamplingParams(**params, output_kind=self._final_only)
        final = None
        try:
            async for output in llm.generate(
                {"prompt_token_ids": ids}, sampling, request_id, priority=priority
            ):
                final = output
        except Exception as exc:
            if is_engine_dead(exc):
                self._engine_died(llm)
            raise
        if final is None:
            raise EngineError("vllm returned no output")
        return final

    async def _engine(self) -> Any:
        """The live AsyncLLM, once a restart in progress is done."""
        assert self._ready is not None
        await self._ready.wait()
        with self._lock:
            broken = self._broken
        if broken is not None:
            raise EngineError(broken)
        return self._llm

    # -- helpers ---------------------------------------------------------------------------------

    def _was_cancelled(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self._cancelled

    def _require_open(self) -> None:
        if self._closed:
            raise EngineError(f"engine for {self._model_name!r} is closed")
        if self._broken is not None:
            raise EngineError(self._broken)

    def _check_length(self, ids: list[int], extra: int) -> None:
        """Refuse what vLLM would refuse (VLLMValidationError) or silently cut short: prompt plus new
        tokens over ``max_model_len``, as the transformers backend does."""
        limit = self.context_length
        if limit is not None and len(ids) + extra > limit:
            raise EngineError(
                f"the prompt has {len(ids)} tokens; with {extra} more it exceeds the model's context of "
                f"{limit}"
            )

    def _encode(self, conversation: Conversation) -> list[int]:
        # The template already holds the special tokens, so the tokenizer must not add a second BOS.
        return list(self._tokenizer(self.render_chat(conversation), add_special_tokens=False)["input_ids"])

    @staticmethod
    def _load_tokenizer(path: Path, model_name: str) -> Any:
        try:
            tokenizer: Any = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load the tokenizer of {model_name!r} from {path}: {exc}") from exc
        if tokenizer.chat_template is None:
            raise EngineError(f"model {model_name!r} at {path} has no chat template")
        return tokenizer


def _errored(llm: Any) -> bool:
    """Whether vLLM says its engine core is gone (AsyncLLM.errored)."""
    return bool(getattr(llm, "errored", False))


def _gather(futures: list[Future[Any]]) -> list[Any]:
    """Every future's result in order; the first failure is raised once all have ended."""
    for future in futures:
        future.exception()  # waits
    return [future.result() for future in futures]
