"""What one training run needs and what it returns, as plain JSON-serialisable values.

A spec crosses a process boundary (``python -m app.training``), so every field is a JSON value and
``dataclasses.asdict(spec)`` round-trips through :func:`spec_from_json`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TrainingKind = Literal["sft", "dpo"]
TRAINING_KINDS: tuple[TrainingKind, ...] = ("sft", "dpo")

# TRL's DPO losses that need nothing beyond (prompt, chosen, rejected) and beta ("exo_pair" also needs
# label smoothing, which a spec does not carry).
DPO_LOSS_TYPES = (
    "sigmoid",
    "sigmoid_norm",
    "hinge",
    "ipo",
    "robust",
    "bco_pair",
    "sppo_hard",
    "nca_pair",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
)


@dataclass
class LoraSpec:
    """A LoRA adapter to train instead of the full weights; it is merged into the saved model.

    ``target_modules`` None lets PEFT pick the usual projections for the architecture.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ValueError("lora r and alpha must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("lora dropout must lie in [0, 1)")


@dataclass
class SFTSpec:
    """Supervised fine-tuning of ``base_path`` on ``examples`` ({"prompt", "completion"}), saved as a
    full model folder at ``output_path``. The prompt is one user message; the loss covers the
    completion (the assistant turn) only.

    The learning rate decays along a cosine from ``learning_rate`` to ``min_learning_rate`` at the last
    step (equal values: a constant rate); ``dropout`` is set on every dropout probability the model's
    config has, for the training only (None: :func:`app.training.loading.resolve_dropout` decides by
    device). ``bf16``: train under bfloat16 autocast, the weights and optimizer state in float32 (None:
    where the device runs bf16 natively, see :func:`app.training.loading.bf16_autocast`)."""

    base_path: str
    output_path: str
    examples: list[dict[str, str]]
    learning_rate: float = 2e-5
    min_learning_rate: float = 0.0
    dropout: float | None = 0.0
    epochs: int = 1
    batch_size: int = 4
    max_length: int = 512
    seed: int = 0
    lora: LoraSpec | None = None
    bf16: bool | None = None

    def __post_init__(self) -> None:
        _check_rows(self.examples, ("prompt", "completion"), "examples")
        _check_common(self)


@dataclass
class DPOSpec:
    """Direct preference optimisation of ``base_path`` on ``pairs`` ({"prompt", "chosen", "rejected"}),
    against ``base_path`` itself as the frozen reference, saved as a full model folder at
    ``output_path``. ``loss_type`` is a TRL DPO loss ("sigmoid" is the paper's). The learning rate,
    ``dropout`` and ``bf16`` work as in :class:`SFTSpec`; the reference model never drops out."""

    base_path: str
    output_path: str
    pairs: list[dict[str, str]]
    beta: float = 0.1
    learning_rate: float = 5e-6
    min_learning_rate: float = 0.0
    dropout: float | None = 0.0
    epochs: int = 1
    batch_size: int = 2
    loss_type: str = "sigmoid"
    max_length: int = 512
    seed: int = 0
    lora: LoraSpec | None = None
    bf16: bool | None = None

    def __post_init__(self) -> None:
        _check_rows(self.pairs, ("prompt", "chosen", "rejected"), "pairs")
        _check_common(self)
        if self.beta <= 0:
            raise ValueError("beta must be > 0")
        if self.loss_type not in DPO_LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(DPO_LOSS_TYPES)}; got {self.loss_type!r}")


@dataclass
class TrainResult:
    """Where the trained model folder is, and the run's metrics (losses, steps, runtime, rewards)."""

    output_path: str
    metrics: dict[str, Any] = field(default_factory=dict)


def spec_from_json(kind: str, data: dict[str, Any]) -> SFTSpec | DPOSpec:
    """Rebuild the spec of a ``kind`` ("sft" or "dpo") run from ``asdict(spec)``.

    Raises ValueError for an unknown kind, a missing or unknown field, or a field out of range.
    """
    values = dict(data)
    lora = values.pop("lora", None)
    try:
        lora_spec = LoraSpec(**lora) if lora is not None else None
        if kind == "sft":
            return SFTSpec(**values, lora=lora_spec)
        if kind == "dpo":
            return DPOSpec(**values, lora=lora_spec)
    except TypeError as exc:  # a missing or unexpected keyword
        raise ValueError(f"invalid {kind} spec: {exc}") from exc
    raise ValueError(f"unknown training kind {kind!r}; expected one of {', '.join(TRAINING_KINDS)}")


def result_from_json(data: dict[str, Any]) -> TrainResult:
    """Rebuild a :class:`TrainResult` from ``asdict(result)``."""
    return TrainResult(output_path=str(data["output_path"]), metrics=dict(data.get("metrics") or {}))


def spec_to_json(spec: SFTSpec | DPOSpec) -> dict[str, Any]:
    """The JSON form of ``spec`` (``dataclasses.asdict``)."""
    return asdict(spec)


def _check_rows(rows: list[dict[str, str]], keys: tuple[str, ...], name: str) -> None:
    if not rows:
        raise ValueError(f"{name} must not be empty")
    for i, row in enumerate(rows):
        for key in keys:
            value = row.get(key) if isinstance(row, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}[{i}].{key} must be a non-empty string")


def _check_common(spec: SFTSpec | DPOSpec) -> None:
    if spec.learning_rate <= 0:
        raise ValueError("learning_rate must be > 0")
    if not 0.0 <= spec.min_learning_rate <= spec.learning_rate:
        raise ValueError("min_learning_rate must lie in [0, learning_rate]")
    if spec.dropout is not None and not 0.0 <= spec.dropout < 1.0:
        raise ValueError("dropout must lie in [0, 1)")
    if spec.epochs < 1 or spec.batch_size < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    if spec.max_length < 16:
        raise ValueError("max_length must be >= 16")
