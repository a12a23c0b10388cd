"""The transformers backend: a Hugging Face causal LM in this process, on CPU or one GPU."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, StoppingCriteria
from transformers.generation.stopping_criteria import StoppingCriteriaList

from app.engine.base import (
    BatchControl,
    Conversation,
    EngineError,
    Generation,
    LabelDistribution,
    SamplingParams,
)
from app.engine.chat import label_distribution, label_token_ids, render_with_tokenizer
from app.engine.decoding import Decoder, install
from app.engine.encodings import EncodingCache
from app.engine.hardware import precision_for
from app.engine.precision import Precision

log = logging.getLogger(__name__)

# End-of-turn markers of common chat templates; generation stops at whichever the tokenizer knows.
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")

# A shared prefix shorter than this is not worth an extra forward pass and a cache copy.
_MIN_SHARED_PREFIX = 16
# A run of prompts sharing a prefix gets a prefix of its own only with at least this many rows (fewer:
# they join the rest): every row of a batch scores against every prefix's columns (masked where not
# its own), so a prefix pays off only when it saves the prefill of several rows.
_MIN_GROUP_ROWS = 8


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    limit = min(len(a), len(b))
    return next((i for i in range(limit) if a[i] != b[i]), limit)


def prefix_groups(
    sequences: Sequence[Sequence[int]], min_shared: int = _MIN_SHARED_PREFIX, min_rows: int = _MIN_GROUP_ROWS
) -> list[list[int]]:
    """Indices of ``sequences`` split into groups that share a prefix of at least ``min_shared``
    tokens (one template's instructions), each of at least ``min_rows``; the rest, if any, is one
    group more. One group (everything) when nothing splits: a prefix shared by every sequence is the
    batch's own. Groups come in the order of their first sequence."""
    if len(sequences) < 2 * min_rows:
        return [list(range(len(sequences)))]
    order = sorted(range(len(sequences)), key=lambda i: list(sequences[i]))  # prefix-sharing runs adjacent
    runs: list[list[int]] = [[order[0]]]
    for prev, cur in zip(order, order[1:], strict=False):
        if _common_length(sequences[prev], sequences[cur]) >= min_shared:
            runs[-1].append(cur)
        else:
            runs.append([cur])
    kept = [sorted(run) for run in runs if len(run) >= min_rows]
    rest = sorted(i for run in runs if len(run) < min_rows for i in run)
    groups = kept + ([rest] if rest else [])
    return sorted(groups, key=lambda g: g[0]) if len(groups) > 1 else [list(range(len(sequences)))]


def shared_prefixes(
    sequences: Sequence[Sequence[int]],
    keep: int,
    min_shared: int = _MIN_SHARED_PREFIX,
    min_rows: int = _MIN_GROUP_ROWS,
    groups: Sequence[Sequence[int]] | None = None,
) -> list[int]:
    """Each sequence's prefix length when they decode as one batch: the tokens its group
    (:func:`prefix_groups`, or ``groups`` already found) shares, leaving each sequence at least ``keep``
    of its own; 0 where that is under ``min_shared`` tokens (not worth a forward pass of its own) or the
    group is one sequence."""
    lengths = [0] * len(sequences)
    if len(sequences) < 2:
        return lengths
    for group in groups if groups is not None else prefix_groups(sequences, min_shared, min_rows):
        if len(group) < 2:
            continue
        members = [list(sequences[i]) for i in group]
        # The longest prefix common to a group is the one common to its lexicographic extremes.
        limit = min(len(s) for s in members) - keep
        shared = min(_common_length(min(members), max(members)), max(limit, 0))
        if shared >= min_shared:
            for i in group:
                lengths[i] = shared
    return lengths


class TransformersEngine:
    """A causal LM loaded once with transformers; batched, order-preserving generation and scoring.

    ``device`` is ``auto`` (CUDA when available, else CPU) or a torch device string; ``dtype`` is
    ``auto`` (on a CPU bfloat16 where it has native bf16 instructions, else float32; bfloat16 or
    float16 on a GPU: see :mod:`app.engine.precision`) or a torch dtype name. ``batch_size`` bounds
    the sequences decoded together (prompts are grouped by length). On models whose layers all
    attend to the whole context, batches run through :mod:`app.engine.decoding`: with
    ``prefix_cache`` the longest token prefix that the prompts of a batch share (a judge template's
    system prompt, say) is computed once per batch and its keys/values kept once for every row; a
    batch of several templates' prompts computes each template's prefix once and decodes them all
    together (:func:`shared_prefixes`).
    Other models use transformers' ``generate()``.
    """

    def __init__(
        self,
        model_path: Path,
        model_name: str,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,
        prefix_cache: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._model_name = model_name
        self._batch_size = batch_size
        self._device = _resolve_device(device)
        self._precision = precision_for(dtype, self._device)
        self._dtype = _resolve_dtype(self._precision.dtype)
        # Re-entrant: a scheduler may run a more urgent call between the decode steps of another
        # (same thread, see BatchControl).
        self._lock = threading.RLock()
        self._prefix_cache_wanted = prefix_cache
        self._load(model_path, model_name)

    def _load(self, model_path: Path, model_name: str) -> None:
        started = time.perf_counter()
        try:
            tokenizer: Any = AutoTokenizer.from_pretrained(str(model_path))
            model: Any = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=self._dtype)
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load model {model_name!r} from {model_path}: {exc}") from exc
        if tokenizer.chat_template is None:
            raise EngineError(f"model {model_name!r} at {model_path} has no chat template")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        # Counted when a request arrives, encoded again when its batch runs: tokenized once.
        self._encodings = EncodingCache(self._tokenize)
        self._model: Any = model.to(self._device).eval()
        self._model_name = model_name
        self._pad_id: int = int(self._tokenizer.pad_token_id)
        self._stop_ids = self._collect_stop_ids()
        self._max_positions: int | None = getattr(self._model.config, "max_position_embeddings", None)
        self._decoder = Decoder(self._model, self._pad_id) if install(self._model) else None
        self._prefix_cache = self._prefix_cache_wanted and self._decoder is not None
        log.info(
            "loaded %s on %s in %s (%s) in %.1f s",
            model_name,
            self._device,
            self._precision.dtype,
            self._precision.reason,
            time.perf_counter() - started,
        )

    def load_weights(self, model_path: Path, model_name: str) -> None:
        """Serve another checkpoint (e.g. a fine-tuned child of this model) in this engine: the old
        weights are dropped before the new ones load, so memory holds one model at a time."""
        with self._lock:
            self._model = None
            gc.collect()
            if self._device.type == "cuda":
                torch.cuda.empty_cache()
            self._load(model_path, model_name)

    # This backend honours BatchControl (preemption between steps, rows stopped, early results).
    supports_control = True

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def precision(self) -> Precision:
        """The dtype the model is served in, and why (what ``auto`` chose on this machine)."""
        return self._precision

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt + generated) the model can attend to, when its config says."""
        return self._max_positions

    @property
    def kv_bytes_per_token(self) -> int:
        """Key/value memory one token of one row holds, over all layers."""
        config = self._require_model().config
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        element = torch.tensor([], dtype=self._dtype).element_size()
        return int(2 * config.num_hidden_layers * kv_heads * dim * element)

    @property
    def device_memory_bytes(self) -> int:
        """Memory of the device the model runs on (the GPU's, else the machine's)."""
        if self._device.type == "cuda":
            return int(torch.cuda.get_device_properties(self._device).total_memory)
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))

    def count_tokens(self, conversation: Conversation) -> int:
        """The prompt's length in tokens, chat template included (what generate() would feed)."""
        return len(self._encode(conversation))

    @property
    def device(self) -> str:
        return str(self._device)

    def render_chat(self, conversation: Conversation) -> str:
        """The prompt text: the tokenizer's chat template (see app.engine.chat)."""
        return render_with_tokenizer(self._tokenizer, conversation)

    def generate(
        self, prompts: Sequence[Conversation], sampling: SamplingParams, control: BatchControl | None = None
    ) -> list[Generation]:
        """Complete each conversation. Greedy output is what one-at-a-time decoding gives, up to float
        rounding: batches of other shapes round matrix products differently, which can flip a near-tie.

        With ``control`` (see BatchControl), rows it stops come back empty with finish reason
        ``cancelled``. Each row's ``latency_ms`` is its own time in the engine: from its batch's start to
        its last token, less the time spent in ``control.between_steps``."""
        if not prompts:
            return []
        if sampling.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        encoded = [self._encode(p) for p in prompts]
        self._check_lengths(encoded, sampling.max_tokens)
        results: list[Generation | None] = [None] * len(prompts)
        control = control or BatchControl()
        with self._lock, torch.inference_mode(), self._seeded(sampling.seed):
            self._require_model()
            for batch in self._length_sorted_batches(encoded):
                self._generate_batch(batch, encoded, sampling, control, results)
        # Rows that control stopped: nothing of theirs is returned.
        return [r or Generation("", len(encoded[i]), 0, "cancelled") for i, r in enumerate(results)]

    def _generate_batch(
        self,
        batch: list[int],
        encoded: list[list[int]],
        sampling: SamplingParams,
        control: BatchControl,
        results: list[Generation | None],
    ) -> None:
        """Decode the prompts ``batch`` (indices into ``encoded``) together, into ``results``."""
        clock = _Clock()

        def done(row: int, tokens: list[int], stopped_at: int | None) -> None:
            index = batch[row]
            gen = self._finish(tokens, stopped_at, len(encoded[index]), sampling, clock.elapsed_ms())
            results[index] = gen
            if control.row_done is not None:
                control.row_done(index, gen)

        def between() -> set[int]:
            if control.between_steps is None:
                return set()
            with clock.paused():
                stop = set(control.between_steps())
            return {row for row, index in enumerate(batch) if index in stop}

        self._decode([encoded[i] for i in batch], sampling, done, between)

    def _decode(
        self,
        sequences: list[list[int]],
        sampling: SamplingParams,
        done: Callable[[int, list[int], int | None], None],
        between: Callable[[], set[int]],
    ) -> None:
        """Decode the sequences; ``done(row, new tokens, tokens when a stop string showed)`` hears of
        each finished row."""
        if self._decoder is not None:
            stop = _StopCheck(self._tokenizer, sampling.stop)
            self._decoder.generate(
                sequences,
                shared=self._shared_prefixes(sequences, keep=1),
                max_new_tokens=sampling.max_tokens,
                pick=_picker(sampling),
                stop_ids=self._stop_ids,
                stopped=stop if stop.strings else None,
                between=between,
                row_done=lambda row, decoded: done(row, decoded.tokens, decoded.stopped_at),
            )
            return
        between()
        ids, mask = self._pad(sequences)
        criteria = _StopStrings(self._tokenizer, sampling.stop, ids.shape[1], len(sequences))
        out = self._require_model().generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=self._generation_config(sampling),
            stopping_criteria=StoppingCriteriaList([criteria]),
        )
        for row, (tokens, stopped_at) in enumerate(
            zip(out[:, ids.shape[1] :].tolist(), criteria.stopped_at, strict=True)
        ):
            done(row, tokens, stopped_at)

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str], control: BatchControl | None = None
    ) -> list[LabelDistribution]:
        """Each label's probability as the assistant's whole reply, normalised over ``labels``.

        A label's score is the summed log-probability of its tokens after the prompt, so
        multi-token labels compete fairly with single-token ones. ``control.between_steps`` runs
        between prefill chunks (its stopped rows are scored anyway: scoring is one pass).
        """
        if not prompts:
            return []
        label_ids = self._label_token_ids(labels)
        encoded = [self._encode(p) for p in prompts]
        self._check_lengths(encoded, max(len(t) for t in label_ids))
        hook = control.between_steps if control is not None else None
        between = (lambda: hook()) if hook is not None else None
        with self._lock, torch.inference_mode():
            self._require_model()
            if all(len(t) == 1 for t in label_ids):
                scores, latencies = self._score_next_token(encoded, [t[0] for t in label_ids], between)
            else:
                scores, latencies = self._score_continuations(encoded, label_ids, between)
        return [
            label_distribution(list(labels), scores[i], len(encoded[i]), latencies[i])
            for i in range(len(prompts))
        ]

    def close(self) -> None:
        """Drop the model and return its memory (GPU included)."""
        with self._lock:
            if self._model is None:
                return
            self._model = None
        gc.collect()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    # -- scoring -------------------------------------------------------------------------------

    def _score_next_token(
        self, encoded: list[list[int]], label_ids: list[int], between: Callable[[], object] | None = None
    ) -> tuple[list[list[float]], list[float]]:
        """Single-token labels: one forward pass over the prompts, read the next-token log-probs."""
        scores: list[list[float]] = [[] for _ in encoded]
        latencies = [0.0] * len(encoded)
        index = torch.tensor(label_ids, device=self._device)
        for batch in self._length_sorted_batches(encoded):
            started = time.perf_counter()
            logprobs = self._tail_logprobs([encoded[i] for i in batch], keep=1, between=between)
            picked = logprobs[:, -1, index].tolist()
            latency = (time.perf_counter() - started) * 1000 / len(batch)
            for row, i in enumerate(batch):
                scores[i] = picked[row]
                latencies[i] = latency
        return scores, latencies

    def _score_continuations(
        self,
        encoded: list[list[int]],
        label_ids: list[list[int]],
        between: Callable[[], object] | None = None,
    ) -> tuple[list[list[float]], list[float]]:
        """Any labels: score every prompt + label sequence and sum the label tokens' log-probs."""
        pairs = [(p, lab) for p in range(len(encoded)) for lab in range(len(label_ids))]
        sequences = [encoded[p] + label_ids[lab] for p, lab in pairs]
        scores = [[0.0] * len(label_ids) for _ in encoded]
        latencies = [0.0] * len(encoded)
        width = max(len(t) for t in label_ids)
        # Label tokens right-aligned in a (labels, width) grid; -1 marks unused slots.
        targets = torch.full((len(label_ids), width), -1, dtype=torch.long)
        for lab, ids in enumerate(label_ids):
            targets[lab, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        targets = targets.to(self._device)
        for batch in self._length_sorted_batches(sequences):
            started = time.perf_counter()
            keep = 1 + max(len(label_ids[pairs[i][1]]) for i in batch)
            grid = targets[torch.tensor([pairs[i][1] for i in batch], device=self._device)]
            logprobs = self._tail_logprobs([sequences[i] for i in batch], keep=keep, between=between)
            # Left padding aligns every sequence's end: the label is its last n tokens, and the kept
            # logits at tail index keep - 1 - width + k predict grid slot k.
            rows = torch.arange(len(batch), device=self._device)[:, None]
            slots = torch.arange(keep - 1 - width, keep - 1, device=self._device)[None, :]
            picked = logprobs[rows, slots.clamp(min=0), grid.clamp(min=0)]
            summed = picked.masked_fill(grid < 0, 0.0).sum(dim=1).tolist()
            share = (time.perf_counter() - started) * 1000 / len(batch)
            for row, i in enumerate(batch):
                p, lab = pairs[i]
                scores[p][lab] = summed[row]
                latencies[p] += share
        return scores, latencies

    def _tail_logprobs(
        self, sequences: list[list[int]], keep: int, between: Callable[[], object] | None = None
    ) -> torch.Tensor:
        """Next-token log-probs at the last ``keep`` positions of each (left-padded) sequence.

        Only the tail goes through the LM head: full-sequence logits of a long prompt batch would
        take gigabytes (vocabulary x tokens x batch).
        """
        if self._decoder is not None:
            return self._decoder.tail_logprobs(
                sequences, self._shared_prefixes(sequences, keep), keep, between
            )
        ids, mask = self._pad(sequences)
        # Positions count real tokens only, as generate() does, so padding never shifts them.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = self._require_model()(
            input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep, use_cache=False
        )
        return torch.log_softmax(out.logits[:, -keep:].float(), dim=-1)

    # -- shared prefixes -----------------------------------------------------------------------

    def _shared_prefixes(self, sequences: list[list[int]], keep: int) -> list[int]:
        """Each sequence's prefix length in its batch (:func:`shared_prefixes`); all 0 when prefix
        caching is off."""
        if not self._prefix_cache:
            return [0] * len(sequences)
        return shared_prefixes(sequences, keep)

    def _label_token_ids(self, labels: Sequence[str]) -> list[list[int]]:
        return label_token_ids(self._tokenizer, labels)

    # -- generation helpers --------------------------------------------------------------------

    def _generation_config(self, sampling: SamplingParams) -> GenerationConfig:
        common: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "eos_token_id": sorted(self._stop_ids),
            "pad_token_id": self._pad_id,
            "num_beams": 1,
            "repetition_penalty": 1.0,
        }
        if sampling.temperature <= 0:
            return GenerationConfig(do_sample=False, **common)
        # top_k=0 switches off transformers' default top-k of 50: only temperature and top_p apply.
        return GenerationConfig(
            do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0, **common
        )

    def _finish(
        self,
        tokens: list[int],
        stopped_at: int | None,
        tokens_in: int,
        sampling: SamplingParams,
        latency_ms: float,
    ) -> Generation:
        eos_at = next((i for i, t in enumerate(tokens) if t in self._stop_ids), None)
        if eos_at is not None and (stopped_at is None or eos_at < stopped_at):
            tokens, ended = tokens[: eos_at + 1], True
        elif stopped_at is not None:
            tokens, ended = tokens[:stopped_at], True
        else:
            ended = False
        text = self._tokenizer.decode(tokens, skip_special_tokens=True)
        hit = _first_stop(text, sampling.stop)
        matched = None
        if hit is not None:
            cut, matched = hit
            text, ended = text[:cut], True
        return Generation(
            text=text,
            tokens_in=tokens_in,
            tokens_out=len(tokens),
            finish_reason="stop" if ended else "length",
            latency_ms=latency_ms,
            stop_string=matched,
        )

    def _collect_stop_ids(self) -> set[int]:
        ids: set[int] = set()
        configured = getattr(self._model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(int(i) for i in configured)
        if self._tokenizer.eos_token_id is not None:
            ids.add(int(self._tokenizer.eos_token_id))
        special = set(self._tokenizer.all_special_tokens) | set(self._tokenizer.get_added_vocab())
        for token in _END_OF_TURN_TOKENS:
            if token in special:
                ids.add(int(self._tokenizer.convert_tokens_to_ids(token)))
        return ids

    # -- shared helpers ------------------------------------------------------------------------

    def _encode(self, conversation: Conversation) -> list[int]:
        return self._encodings(self.render_chat(conversation))

    def _tokenize(self, text: str) -> list[int]:
        # The template already holds the special tokens the model expects.
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _check_lengths(self, encoded: list[list[int]], extra: int) -> None:
        if self._max_positions is None:
            return
        for i, ids in enumerate(encoded):
            if len(ids) + extra > self._max_positions:
                raise EngineError(
                    f"prompt {i} has {len(ids)} tokens; with {extra} more it exceeds the model's "
                    f"context of {self._max_positions}"
                )

    def _length_sorted_batches(self, sequences: list[list[int]]) -> Iterator[list[int]]:
        """Indices of ``sequences`` in batches of at most ``batch_size``, in order of the length that
        each sequence computes itself, to keep padding small: with prefix caching, what follows its
        template's prefix (:func:`shared_prefixes`), and more than a batch's worth go by prefix group
        first, so that each batch holds few prefixes, each with many rows."""
        if not self._prefix_cache:
            order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        else:
            groups = prefix_groups(sequences)
            shared = shared_prefixes(sequences, keep=1, groups=groups)
            own = [len(s) - n for s, n in zip(sequences, shared, strict=True)]
            if len(sequences) <= self._batch_size:
                groups = [list(range(len(sequences)))]  # one batch: by own length alone
            order = [i for group in groups for i in sorted(group, key=lambda i: own[i])]
        for start in range(0, len(order), self._batch_size):
            yield order[start : start + self._batch_size]

    def _pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, left-padded (for transformers' own generate/forward)."""
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
        return ids.to(self._device), mask.to(self._device)

    @contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        """Seed torch's generators for one call without disturbing the process-wide RNG state."""
        if seed is None:
            yield
            return
        devices: list[int] = []
        if self._device.type == "cuda":
            devices = [self._device.index if self._device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _require_model(self) -> Any:
        if self._model is None:
            raise EngineError(f"engine for {self._model_name!r} is closed")
        return self._model


class _Clock:
    """A row's own time in the engine: wall time since the batch started, less pauses (time the
    scheduler spent on more urgent calls between steps)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._paused = 0.0

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started - self._paused) * 1000

    @contextmanager
    def paused(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - began


class _StopCheck:
    """Whether a row's generated tokens end in text that contains one of the stop strings."""

    def __init__(self, tokenizer: Any, stop: Sequence[str]) -> None:
        self._tokenizer = tokenizer
        self.strings = [s for s in stop if s]
        # A stop string spans at most len(s) tokens; the margin covers tokens that decode to nothing.
        self.window = max((len(s) for s in self.strings), default=0) + 8

    def __call__(self, tokens: Sequence[int]) -> bool:
        text = self._tokenizer.decode(tokens[-self.window :], skip_special_tokens=True)
        return any(s in text for s in self.strings)


class _StopStrings(StoppingCriteria):
    """transformers' generate(): marks each row done once its text shows a stop string; records where."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_len: int, batch: int) -> None:
        self._check = _StopCheck(tokenizer, stop)
        self._prompt_len = prompt_len
        self.stopped_at: list[int | None] = [None] * batch

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        if self._check.strings:
            generated = input_ids.shape[1] - self._prompt_len
            # One device-to-host copy per step for the whole batch, not one per row.
            start = max(self._prompt_len, input_ids.shape[1] - self._check.window)
            for row, tail in enumerate(input_ids[:, start:].tolist()):
                if self.stopped_at[row] is None and self._check(tail):
                    self.stopped_at[row] = generated
        done = [at is not None for at in self.stopped_at]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


def _picker(sampling: SamplingParams) -> Callable[[torch.Tensor], torch.Tensor]:
    """Next-token choice from ``[rows, vocab]`` logits: greedy, or temperature and nucleus sampling."""
    if sampling.temperature <= 0:
        # In float32: the same choice (bf16 widens exactly), and torch's argmax over a bf16 vocabulary
        # row is about 3x slower than the cast and a float32 argmax together.
        return lambda logits: logits.float().argmax(dim=-1)

    def sample(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:
            ordered, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest head of the distribution whose mass reaches top_p (at least one token).
            ordered = ordered.masked_fill(ordered.cumsum(dim=-1) - ordered > sampling.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, order, ordered)
        return torch.multinomial(probs, 1)[:, 0]

    return sample


def _first_stop(text: str, stop: Sequence[str]) -> tuple[int, str] | None:
    """Where the first stop string starts in ``text``, and which one it is."""
    hits = [(text.find(s), s) for s in stop if s and s in text]
    return min(hits) if hits else None


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise EngineError(f"unknown device {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} requested but CUDA is not available")
    return resolved


def _resolve_dtype(dtype: str) -> torch.dtype:
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise EngineError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return resolved
