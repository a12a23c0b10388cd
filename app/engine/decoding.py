"""Batched prefill and decoding for the transformers engine, with a shared prompt prefix kept once.

Judge prompts of one batch share their template's fixed part (system prompt, instructions); what
differs is the item. ``generate()`` of transformers would copy that prefix's key/value cache into
every row and grow each layer's cache by concatenation at every step. Here:

- the shared prefix runs once and its keys/values stay a single ``[kv_heads, P, head_dim]`` copy per
  layer; an attention function registered with transformers (:func:`install`) attends each row's
  queries to that copy and to the row's own keys in one softmax, without materialising the prefix
  per row;
- a batch may hold several prefixes (several templates' prompts, a jury's judges): each runs once,
  their keys/values sit side by side, and each row sees only its own prefix's columns, so the rows of
  every template decode in the same steps instead of one sub-batch per template;
- each row's own tokens (its part of the prompt, then what it generates) live in a key/value store
  allocated once per batch for its prompt and every token it may generate (what the scheduler's token
  budget counts), written in place; rows that finish are compacted in place, never copied;
- prompts are prefilled in chunks of similar length (bounded padded tokens per chunk), and only the
  last positions go through the LM head;
- rows that finish (end of turn, a stop string, their token budget) leave the batch, so the rest
  decode without them.

Only models whose layers all attend to the whole context through transformers' SDPA path qualify
(:func:`install` says); the engine keeps ``generate()`` for others.

In bfloat16 (or float16) the matrix products run in the model's dtype, but what needs the precision is
done in float32: the attention softmax and the sum of a row's prefix and own contributions, and, for
scored tails (:meth:`Decoder.tail_logprobs`), the LM head and the log-softmax. Logits rounded to bf16
are 0.125 apart near 16: a label's log-probability would move by that much.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AttentionInterface, DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION = "judge_shared_prefix"

# Attention scores are computed for at most this many queries of a row at once, and fewer when the
# keys are many: a block's scores (rows x heads x block x keys) stay within _SCORES elements (32 MB in
# float32), so a long prompt's prefill holds a few such blocks beside the batch's keys and values,
# which the scheduler's token budget bounds.
_QUERY_BLOCK = 256
_SCORES = 1 << 23
# Padded prompt tokens per prefill chunk. Chunks are the preemption points of a prefill: on two CPU
# cores 2048 tokens of the default model take about 4 s, 512 about 1 s, at a few percent of throughput.
PREFILL_TOKENS = 512


@dataclass
class _Pass:
    """What the attention function needs during one forward pass of ours.

    Columns are a row's positions in the batch's key/value store. The pass's queries sit at columns
    ``queries_at``, ``queries_at + 1``, ...; its keys are the store's columns from ``keys_at`` on. Row
    ``r``'s own tokens start at column ``first[r]`` (left of it: padding). A query at column ``i`` may
    see key ``j`` when ``j <= i`` and ``j`` is a real token, or ``j == i`` (a padding query sees only
    itself, so no softmax row is empty). The mask is built per block of queries when a layer asks
    for it and shared by every layer of the pass: never queries x keys at once for a long prompt.
    """

    prefix: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer: keys, values [kv_heads, P, dim]
    first: torch.Tensor  # [rows] column of each row's first own token
    queries_at: int
    keys_at: int
    # [rows, 1, 1, P]: True at the prefix columns a row may not see (another prefix's); None: every
    # row sees every prefix column (one prefix, shared by all).
    hidden: torch.Tensor | None = None
    _blocked: dict[tuple[int, int, int], torch.Tensor] = field(default_factory=dict)

    def blocked(self, start: int, stop: int, keys: int) -> torch.Tensor:
        """True where query ``start..stop-1`` of the pass may not see key ``0..keys-1``, grouped as the
        scores are: ``[rows, 1, 1, stop - start, keys]``."""
        found = self._blocked.get((start, stop, keys))
        if found is None:
            device = self.first.device
            query = torch.arange(self.queries_at + start, self.queries_at + stop, device=device)[:, None]
            key = torch.arange(self.keys_at, self.keys_at + keys, device=device)[None, :]
            padding = key[None] < self.first[:, None, None]  # [rows, 1, keys]
            found = ((key > query)[None] | (padding & (key != query)[None]))[:, None, None]
            self._blocked[(start, stop, keys)] = found
        return found


# A prepared 4D attention mask is passed through transformers untouched (``create_causal_mask`` returns
# it as is); the attention function builds the real one from its ``_Pass``. This placeholder keeps
# transformers from building a queries x keys mask of its own.
_PREPARED_MASK = torch.ones(1, 1, 1, 1, dtype=torch.bool)


_ACTIVE: ContextVar[_Pass | None] = ContextVar("judge_shared_prefix_pass", default=None)
# During a scored pass of a model not in float32: the LM head's weight in float32, so the kept
# positions' logits are computed (from the same hidden states) in float32.
_FLOAT_HEAD: ContextVar[torch.Tensor | None] = ContextVar("judge_float_head", default=None)


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension computed in float32, returned in the scores' dtype (a no-op
    cast in float32)."""
    return torch.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)


def _head_in_float32(module: torch.nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> Any:
    """Forward hook of the LM head: inside a scored pass, the logits again in float32."""
    weight = _FLOAT_HEAD.get()
    if weight is None:
        return None
    bias = getattr(module, "bias", None)
    return torch.nn.functional.linear(args[0].float(), weight, None if bias is None else bias.float())


def _attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention over [shared prefix] + [the row's own keys]; plain SDPA outside our passes."""
    active = _ACTIVE.get()
    if active is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    rows, heads, queries, dim = query.shape
    scale = scaling if scaling is not None else dim**-0.5
    prefix = None if active.prefix is None else active.prefix[int(getattr(module, "layer_idx", 0))]
    keys = key.shape[2]
    # A long prompt's queries in blocks: the scores of one block (block x keys per head) are what is
    # held at once, not queries x keys, so a long prompt's prefill stays within its key/value memory
    # rather than its square.
    shared = 0 if prefix is None else prefix[0].shape[1]
    block = max(1, min(_QUERY_BLOCK, _SCORES // (rows * heads * (shared + keys))))
    blocks = [
        _attend(
            query[:, :, start : start + block],
            key,
            value,
            active.blocked(start, min(start + block, queries), keys),
            prefix,
            active.hidden,
            scale,
        )
        for start in range(0, queries, block)
    ]
    out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=2)
    # Back to transformers' layout: [rows, queries, heads, dim].
    return out.transpose(1, 2).contiguous(), None


def _attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    blocked: torch.Tensor,
    prefix: tuple[torch.Tensor, torch.Tensor] | None,
    hidden: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """Attention of ``query`` [rows, heads, queries, dim] over [shared prefix] + [the row's own keys];
    ``blocked`` [rows, 1, 1, queries, own keys] marks what a query may not see, ``hidden`` [rows, 1, 1,
    prefix columns] the prefix columns it may not see (None: all visible). Returns [rows, heads,
    queries, dim]."""
    rows, heads, queries, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    # Query head h reads key/value head h // groups: group the query heads under their kv head.
    q = query.reshape(rows, kv_heads, groups * queries, dim)
    own = torch.matmul(q, key.transpose(-1, -2)).mul_(scale)  # [rows, kv, g*q, S]
    own.view(rows, kv_heads, groups, queries, -1).masked_fill_(blocked, torch.finfo(own.dtype).min)
    if prefix is None:
        out = torch.matmul(_softmax(own), value)
    else:
        prefix_keys, prefix_values = prefix
        shared = prefix_keys.shape[1]
        # One GEMM per kv head over every row's queries: the prefix is read once, never repeated.
        flat = q.transpose(0, 1).reshape(kv_heads, rows * groups * queries, dim)
        scores = torch.bmm(flat, prefix_keys.transpose(1, 2)).mul_(scale)
        scores = scores.view(kv_heads, rows, groups * queries, shared).transpose(0, 1)
        if hidden is not None:
            scores.masked_fill_(hidden, torch.finfo(scores.dtype).min)
        probs = _softmax(torch.cat([scores, own], dim=-1))
        out = torch.matmul(probs[..., shared:], value)
        to_prefix = probs[..., :shared].transpose(0, 1).reshape(kv_heads, rows * groups * queries, shared)
        from_prefix = torch.bmm(to_prefix, prefix_values).view(kv_heads, rows, groups * queries, dim)
        # Two partial sums of one weighted average: added in float32, rounded once.
        out = out.float().add_(from_prefix.transpose(0, 1)).to(query.dtype)
    return out.view(rows, heads, queries, dim)


AttentionInterface.register(ATTENTION, _attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def install(model: Any) -> bool:
    """Switch ``model`` to the shared-prefix attention (plain SDPA outside :class:`Decoder` passes);
    False, and the model untouched, when it does not qualify."""
    config = model.config
    if getattr(config, "_attn_implementation", None) not in ("sdpa", ATTENTION):
        return False
    try:
        layers = DynamicCache(config=config).layers
    except (TypeError, ValueError, AttributeError):
        return False
    if any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return False
    model.set_attn_implementation(ATTENTION)
    head = model.get_output_embeddings()
    hooked = isinstance(head, torch.nn.Module) and _head_in_float32 in head._forward_hooks.values()
    if isinstance(head, torch.nn.Linear) and not hooked:
        head.register_forward_hook(_head_in_float32)
    return True


class _RowStore:
    """Every row's own keys/values, per layer ``[rows, kv_heads, capacity, dim]``, written in place.

    Before each forward pass the caller sets which rows and columns the pass writes
    (:meth:`window`); transformers' attention layers call :meth:`update` with the new keys/values
    and attend to what it returns.
    """

    def __init__(self, model: Any, rows: int, capacity: int, zeroed: int) -> None:
        config = model.config
        heads = config.num_attention_heads
        self._kv_heads = getattr(config, "num_key_value_heads", None) or heads
        self._dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        self._layers = config.num_hidden_layers
        self._dtype = model.dtype
        self._device = model.device
        self.keys = [self._empty(rows, capacity, zeroed) for _ in range(self._layers)]
        self.values = [self._empty(rows, capacity, zeroed) for _ in range(self._layers)]
        self._rows = slice(0, rows)
        self._write = 0
        self._read = 0

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def _empty(self, rows: int, capacity: int, zeroed: int) -> torch.Tensor:
        # The first ``zeroed`` columns (the prompts' region) are zeros, not uninitialised memory: a
        # query multiplies the values of the columns it may not see by a probability of 0, and 0 x NaN
        # (stale bits in a column no pass wrote, such as the left edge of a shorter prefill chunk)
        # would still be NaN. The columns after it are written before they are read; left
        # uninitialised, their pages are only touched as decoding reaches them.
        store = torch.empty(rows, self._kv_heads, capacity, self._dim, dtype=self._dtype, device=self._device)
        store[:, :, :zeroed].zero_()
        return store

    def window(self, rows: slice, write_at: int, read_from: int) -> None:
        self._rows, self._write, self._read = rows, write_at, read_from

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._write + key_states.shape[2]
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[self._rows, :, self._write : end] = key_states
        values[self._rows, :, self._write : end] = value_states
        return keys[self._rows, :, self._read : end], values[self._rows, :, self._read : end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._write

    def keep_rows(self, keep: Sequence[int], used: int) -> list[int]:
        """Keep only the rows ``keep``, in place: each kept row past the new length moves into a hole
        below it (one copy of its first ``used`` columns per row that left), and no second copy of
        the store is ever held, so a batch's key/value memory stays what its token budget allowed.
        Returns, for each row of the new layout, its index before (what the caller's per-row state
        must follow)."""
        n = len(keep)
        kept = set(keep)
        holes = [row for row in range(n) if row not in kept]
        movers = [row for row in keep if row >= n]
        order = list(range(n))
        for hole, src in zip(holes, movers, strict=True):
            for store in (self.keys, self.values):
                for tensor in store:
                    tensor[hole, :, :used].copy_(tensor[src, :, :used])
            order[hole] = src
        for store in (self.keys, self.values):
            for layer, tensor in enumerate(store):
                store[layer] = tensor[:n]
        return order


@dataclass(frozen=True)
class _Prefixes:
    """The prefixes of a batch's rows, each computed once.

    ``kv``: per layer, the keys/values of every distinct prefix side by side ``[kv_heads, P, dim]``
    (None: no row has one); ``lengths`` [rows]: each row's prefix length (where its own positions
    start); ``owner`` [rows] and ``columns`` [P]: which prefix a row reads and which prefix each column
    holds (-1 for a row without one), None when one prefix is every row's."""

    kv: list[tuple[torch.Tensor, torch.Tensor]] | None
    lengths: torch.Tensor
    owner: torch.Tensor | None = None
    columns: torch.Tensor | None = None

    def hidden(self, rows: torch.Tensor | slice) -> torch.Tensor | None:
        """For the rows ``rows`` (original indices or a slice of them): ``[rows, 1, 1, P]``, True at the
        prefix columns the row may not see; None when every row sees every column."""
        if self.owner is None or self.columns is None:
            return None
        return (self.columns[None, :] != self.owner[rows][:, None])[:, None, None, :]


@dataclass(frozen=True)
class Decoded:
    """One row's generated tokens, and how many there were when a stop string showed (if one did)."""

    tokens: list[int]
    stopped_at: int | None


class Decoder:
    """Runs batches of token sequences through a model prepared by :func:`install`."""

    def __init__(self, model: Any, pad_id: int, prefill_tokens: int = PREFILL_TOKENS) -> None:
        self._model = model
        self._pad_id = pad_id
        self._prefill_tokens = prefill_tokens

    # -- prompts ---------------------------------------------------------------------------------

    def prefix_kv(self, prefix: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """The prefix's keys/values per layer, batch dimension dropped; None without one."""
        if not prefix:
            return None
        ids = torch.tensor([list(prefix)], dtype=torch.long, device=self._model.device)
        cache = self._model(input_ids=ids, use_cache=True, logits_to_keep=1).cache
        return [(layer.keys[0], layer.values[0]) for layer in cache.layers]

    def _prefixes(self, sequences: Sequence[Sequence[int]], shared: Sequence[int]) -> _Prefixes:
        """Row ``r``'s first ``shared[r]`` tokens are its prefix (0: none); rows whose prefixes are the
        same tokens share one, computed once."""
        device = self._model.device
        lengths = torch.tensor(list(shared), dtype=torch.long, device=device)
        distinct: dict[tuple[int, ...], int] = {}
        owner = [
            distinct.setdefault(tuple(seq[:n]), len(distinct)) if n > 0 else -1
            for seq, n in zip(sequences, shared, strict=True)
        ]
        if not distinct:
            return _Prefixes(None, lengths)
        computed = [self.prefix_kv(prefix) for prefix in distinct]
        if len(computed) == 1 and -1 not in owner:
            return _Prefixes(computed[0], lengths)
        layers = len(computed[0] or [])
        kv = [
            (
                torch.cat([c[layer][0] for c in computed if c is not None], dim=1),
                torch.cat([c[layer][1] for c in computed if c is not None], dim=1),
            )
            for layer in range(layers)
        ]
        columns = torch.tensor(
            [k for k, prefix in enumerate(distinct) for _ in prefix], dtype=torch.long, device=device
        )
        return _Prefixes(kv, lengths, torch.tensor(owner, dtype=torch.long, device=device), columns)

    def tail_logprobs(
        self,
        sequences: Sequence[Sequence[int]],
        shared: Sequence[int],
        keep: int,
        between: Callable[[], object] | None = None,
    ) -> torch.Tensor:
        """Next-token log-probs ``[rows, keep, vocab]`` at each sequence's last ``keep`` positions;
        row ``r``'s first ``shared[r]`` tokens are its prefix, computed once for every row with the
        same one. ``between`` runs between prefill chunks."""
        prefixes = self._prefixes(sequences, shared)
        suffixes = [list(s[n:]) for s, n in zip(sequences, shared, strict=True)]
        width = max(len(s) for s in suffixes)
        store = _RowStore(self._model, len(sequences), width, zeroed=width)
        weight = self._model.get_output_embeddings().weight
        head = weight.float() if weight.dtype != torch.float32 else None
        logits = self._prefill(store, prefixes, suffixes, keep, between, head)
        return torch.log_softmax(logits.float(), dim=-1)

    def _prefill(
        self,
        store: _RowStore,
        prefixes: _Prefixes,
        suffixes: list[list[int]],
        keep: int,
        between: Callable[[], object] | None = None,
        head: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run every row's own prompt tokens into ``store`` (right-aligned at the longest suffix's
        end), chunk by chunk; returns the logits of each row's last ``keep`` positions. ``between``
        runs between chunks (a scheduler's preemption point). ``head``: the LM head's weight in
        float32, to compute those logits in float32.

        A chunk is rows of similar length within the prefill budget; a single row longer than the
        budget goes in pieces of the budget's width, each attending to the pieces before it, so a
        long prompt's prefill holds one piece's activations at a time and can be preempted between
        pieces."""
        end = max(len(s) for s in suffixes)
        device = self._model.device
        out: list[torch.Tensor] = []
        passes = 0
        for rows in self._chunks(suffixes):
            chunk = suffixes[rows]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), self._pad_id, dtype=torch.long)
            for row, tokens in enumerate(chunk):
                ids[row, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
            ids = ids.to(device)
            first = torch.tensor([end - len(s) for s in chunk], device=device)
            start = end - width
            columns = torch.arange(start, end, device=device)
            # Padding columns take the position of the row's first token; they are never attended to.
            offset = prefixes.lengths[rows][:, None]
            positions = torch.maximum(offset + columns[None, :] - first[:, None], offset)
            hidden = prefixes.hidden(rows)
            for low, high in self._pieces(start, end, len(chunk), keep):
                if passes and between is not None:
                    between()
                passes += 1
                store.window(rows, write_at=low, read_from=start)
                logits = self._forward(
                    ids[:, low - start : high - start],
                    positions[:, low - start : high - start],
                    _Pass(prefixes.kv, first, queries_at=low, keys_at=start, hidden=hidden),
                    store,
                    keep if high == end else 1,
                    head if high == end else None,
                )
                if high == end:
                    out.append(logits)
        return torch.cat(out)

    def _chunks(self, suffixes: list[list[int]]) -> Iterator[slice]:
        """Consecutive rows whose padded size stays within the prefill budget (at least one row)."""
        start = 0
        while start < len(suffixes):
            stop, width = start, 0
            while stop < len(suffixes):
                width = max(width, len(suffixes[stop]))
                if stop > start and width * (stop + 1 - start) > self._prefill_tokens:
                    break
                stop += 1
            yield slice(start, stop)
            start = stop

    def _pieces(self, start: int, end: int, rows: int, keep: int) -> list[tuple[int, int]]:
        """Column ranges, left to right, that prefill columns ``start..end-1`` of ``rows`` rows within
        the budget; cut from the right, so the last piece holds the ``keep`` positions whose logits
        are wanted."""
        width = max(self._prefill_tokens // rows, keep, 1)
        cuts = list(range(end, start, -width)) + [start]
        return [(low, high) for high, low in zip(cuts, cuts[1:], strict=False)][::-1]

    def _forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        active: _Pass,
        store: _RowStore,
        keep: int,
        head: torch.Tensor | None = None,
    ) -> torch.Tensor:
        token = _ACTIVE.set(active)
        float_head = _FLOAT_HEAD.set(head)
        try:
            out = self._model(
                input_ids=ids,
                position_ids=positions,
                attention_mask=_PREPARED_MASK,
                cache=store,
                use_cache=True,
                logits_to_keep=keep,
            )
        finally:
            _FLOAT_HEAD.reset(float_head)
            _ACTIVE.reset(token)
        logits: torch.Tensor = out.logits[:, -keep:]
        return logits

    # -- generation ------------------------------------------------------------------------------

    def generate(
        self,
        sequences: Sequence[Sequence[int]],
        shared: Sequence[int],
        max_new_tokens: int,
        pick: Callable[[torch.Tensor], torch.Tensor],
        stop_ids: set[int],
        stopped: Callable[[list[int]], bool] | None = None,
        between: Callable[[], Collection[int]] | None = None,
        row_done: Callable[[int, Decoded], None] | None = None,
    ) -> list[Decoded]:
        """Decode every sequence until an id in ``stop_ids`` (kept), ``stopped(tokens)`` says a stop
        string showed, or ``max_new_tokens``. ``pick`` turns ``[rows, vocab]`` logits into the next
        token ids. Row ``r``'s first ``shared[r]`` tokens are its prefix, computed once for every row
        with the same one. Sequences should have own parts (after their prefix) of similar length
        (padding costs compute).

        ``between`` runs between prefill chunks and decode steps and returns the rows (indices into
        ``sequences``) to stop now: they leave the batch with what they have. ``row_done`` hears of
        each row that finished (not of rows stopped that way) as soon as it finishes."""
        prefixes = self._prefixes(sequences, shared)
        suffixes = [list(s[n:]) for s, n in zip(sequences, shared, strict=True)]
        end = max(len(s) for s in suffixes)
        # Room for every token a row may generate, allocated once: the scheduler's token budget counts
        # prompt + max new tokens, and a store grown by copying would hold two copies at once.
        store = _RowStore(self._model, len(sequences), end + max_new_tokens, zeroed=end)
        dropped: set[int] = set()

        def pause() -> None:
            if between is not None:
                dropped.update(between())

        first = self._prefill(store, prefixes, suffixes, keep=1, between=pause)[:, -1]
        device = self._model.device
        lengths = torch.tensor([len(s) for s in suffixes], device=device)
        tokens: list[list[int]] = [[] for _ in sequences]
        stopped_at: list[int | None] = [None] * len(sequences)
        rows = torch.arange(len(sequences), device=device)  # original index of each row still decoding
        positions = prefixes.lengths + lengths  # next position of each row
        hidden = prefixes.hidden(rows)
        stop_tensor = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)
        picked = pick(first)

        def finish(index: int) -> None:
            if row_done is not None:
                row_done(index, Decoded(tokens[index], stopped_at[index]))

        for step in range(max_new_tokens):
            new = picked.tolist()
            ended = torch.isin(picked, stop_tensor).tolist()
            keep = []
            last = step == max_new_tokens - 1
            for row, index in enumerate(rows.tolist()):
                if index in dropped:
                    continue
                tokens[index].append(new[row])
                if stopped is not None and stopped(tokens[index]):
                    stopped_at[index] = len(tokens[index])
                    finish(index)
                elif ended[row] or last:
                    finish(index)
                else:
                    keep.append(row)
            if keep:
                pause()
                keep = [row for row in keep if int(rows[row]) not in dropped]
            if not keep:
                break
            column = end + step
            if len(keep) < len(new):
                kept = torch.tensor(store.keep_rows(keep, used=column), device=device)
                rows, picked, positions = rows[kept], picked[kept], positions[kept]
                hidden = prefixes.hidden(rows)
            # A row's own tokens: its right-aligned prompt, then all it generates. Skip the columns
            # that are padding for every remaining row.
            first = end - lengths[rows]
            first_real = int(first.min())
            store.window(slice(0, len(keep)), write_at=column, read_from=first_real)
            active = _Pass(prefixes.kv, first, queries_at=column, keys_at=first_real, hidden=hidden)
            logits = self._forward(picked[:, None], positions[:, None], active, store, keep=1)
            picked = pick(logits[:, -1])
            positions = positions + 1
        return [Decoded(t, s) for t, s in zip(tokens, stopped_at, strict=True)]
