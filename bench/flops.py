"""What the machine can do and what a model run did, in floating-point operations (issue 20).

- :func:`matmul_peak`: the best GFLOP/s of square matrix products in a dtype, on every core torch uses.
- :class:`ModelFlops`: the FLOPs a decoder-only transformer spends on a judge call, counted from the
  model's config: 2 x (parameters of the layers) per token that goes through them, 2 x vocabulary x
  hidden per position that goes through the LM head (the last prompt position and every generated
  token: prefill keeps only the last position's logits), and attention's two products, 4 x layers x
  heads x head_dim x (keys seen) per token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch


def matmul_peak(dtype: torch.dtype, seconds: float = 1.0, sizes: tuple[int, ...] = (1024, 2048)) -> float:
    """The best GFLOP/s of ``n x n`` products in ``dtype`` over ``sizes``, each timed for about
    ``seconds`` after a warm-up. A size whose one product already takes longer than ``seconds`` ends
    the search (emulated bf16 on a CPU without bf16 instructions is that slow)."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        started = time.perf_counter()
        torch.mm(a, b)
        if time.perf_counter() - started > seconds:
            best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
            break
        runs = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            torch.mm(a, b)
            runs += 1
        best = max(best, 2 * n**3 * runs / (time.perf_counter() - started) / 1e9)
    return best


@dataclass(frozen=True)
class ModelFlops:
    """FLOP counts of one model (see the module's docstring)."""

    layer_params: int
    head_params: int
    layers: int
    attention_width: int  # heads x head_dim: the width of one token's queries

    @classmethod
    def of(cls, model: Any) -> ModelFlops:
        """From a loaded transformers causal LM."""
        config = model.config
        head = model.get_output_embeddings()
        layers = model.get_decoder().layers
        heads = config.num_attention_heads
        dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(
            layer_params=sum(p.numel() for p in layers.parameters()),
            head_params=head.weight.numel(),
            layers=config.num_hidden_layers,
            attention_width=heads * dim,
        )

    def tokens(self, start: int, count: int) -> float:
        """Layers and attention of ``count`` tokens at positions ``start .. start + count - 1`` (a
        token at position p attends to p + 1 keys)."""
        keys = count * start + count * (count + 1) / 2
        return 2.0 * self.layer_params * count + 4.0 * self.layers * self.attention_width * keys

    def call(self, prompt: int, generated: int, shared: int = 0) -> float:
        """One judge call of ``prompt`` tokens whose first ``shared`` were computed once for its batch
        (not counted here: see :meth:`prefix`), then ``generated`` new tokens (0: scoring, one LM-head
        position)."""
        heads = max(1, generated)
        return (
            self.tokens(shared, prompt - shared)
            + self.tokens(prompt, max(0, generated - 1))
            + (2.0 * self.head_params * heads)
        )

    def prefix(self, shared: int) -> float:
        """A shared prefix computed once (no LM head)."""
        return self.tokens(0, shared)
