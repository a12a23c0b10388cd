"""Loading a checkpoint for training, and the settings every TRL run shares (device, precision,
logging, no checkpoints, no reporting)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback

from app.engine.hardware import cpu_bf16
from app.training.specs import DPOSpec, LoraSpec, SFTSpec

log = logging.getLogger(__name__)

# transformers 5 renamed gradient checkpointing; the old name still works there but warns.
_CHECKPOINTING_ARG = (
    "activation_checkpointing"
    if any(f.name == "activation_checkpointing" for f in dataclasses.fields(TrainingArguments))
    else "gradient_checkpointing"
)


# Where architectures keep their dropout probabilities (Llama-style models such as SmolLM2 have only
# `attention_dropout`; GPT-2 style the `*_pdrop` ones; Falcon `hidden_dropout`; BERT style `*_prob`).
DROPOUT_ATTRIBUTES = (
    "attention_dropout",
    "hidden_dropout",
    "dropout",
    "attn_pdrop",
    "resid_pdrop",
    "embd_pdrop",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)


# The Self-Rewarding LMs paper's dropout while fine-tuning.
PAPER_DROPOUT = 0.1


def resolve_dropout(dropout: float | None) -> float:
    """A spec's dropout; None is the paper's 0.1 on a GPU and 0 on a CPU: there, attention dropout
    makes PyTorch's attention keep every layer's attention probabilities (before and after dropout)
    for the backward pass — a batch of 8 x 896 tokens of the default model peaked above 23.9 GB
    instead of 17.3 GB and was killed for memory — while CUDA's fused attention drops out in-kernel."""
    if dropout is not None:
        return dropout
    return PAPER_DROPOUT if torch.cuda.is_available() else 0.0


def bf16_autocast(wanted: bool | None) -> bool:
    """Whether a run trains under bfloat16 autocast (TRL/transformers ``bf16=True``: accelerate wraps
    the forward pass in ``torch.autocast``, on the CPU too; the weights and optimizer state stay
    float32): ``wanted`` when given, else on a GPU with bf16 or a CPU with native bf16 instructions
    (the engine's rule, :mod:`app.engine.precision`; emulated bf16 is slower than float32)."""
    if wanted is not None:
        return wanted
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return cpu_bf16().dtype == "bfloat16"


def load_model(path: str, dropout: float | None = None) -> PreTrainedModel:
    """The causal LM at ``path`` in float32 on CPU; the trainer moves it to the training device.

    ``dropout``, when given, replaces every dropout probability of the model's config (see
    :func:`dropout_attributes`); it must be set before the model is built, since modules copy it then.
    It acts in training mode only, so the saved config that keeps it changes no inference.
    Raises FileNotFoundError when ``path`` is not a folder.
    """
    _require_folder(path)
    config = AutoConfig.from_pretrained(path)
    if dropout is not None:
        names = dropout_attributes(config)
        for name in names:
            setattr(config, name, dropout)
        if dropout and not names:
            log.warning("%s: its config has no dropout probability to set; training without dropout", path)
    model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=torch.float32)
    model.config.use_cache = False  # a KV cache is only wasted memory in a training forward pass
    return model


def dropout_attributes(config: object) -> list[str]:
    """The dropout probabilities ``config`` has, of :data:`DROPOUT_ATTRIBUTES` (none: the architecture
    has no dropout a job can set)."""
    return [name for name in DROPOUT_ATTRIBUTES if isinstance(getattr(config, name, None), int | float)]


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer at ``path``, with a pad token (the EOS token when it declares none).

    Raises ValueError when it has no chat template: the examples are conversations.
    """
    _require_folder(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"the tokenizer at {path} has no chat template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def lora_config(spec: LoraSpec | None) -> LoraConfig | None:
    """The PEFT config for ``spec``, or None to train the full weights."""
    if spec is None:
        return None
    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules) if spec.target_modules else None,
        task_type="CAUSAL_LM",
    )


def trainer_arguments(output_dir: Path, spec: SFTSpec | DPOSpec) -> dict[str, Any]:
    """Keyword arguments shared by SFTConfig and DPOConfig for ``spec``'s run.

    The learning rate decays along a cosine to ``spec.min_learning_rate`` (the paper's schedule), with
    no warmup. Every optimizer step is logged (the metrics are the loss history), nothing is saved or
    reported along the way (the caller saves the final model once), and TRL's GPU-minded defaults
    (gradient checkpointing) are overridden; bf16 autocast where :func:`bf16_autocast` says.
    """
    cuda = torch.cuda.is_available()
    return {
        "output_dir": str(output_dir),
        "learning_rate": spec.learning_rate,
        "lr_scheduler_type": "cosine_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr": spec.min_learning_rate},
        "num_train_epochs": spec.epochs,
        "per_device_train_batch_size": spec.batch_size,
        "gradient_accumulation_steps": 1,
        # The default foreach AdamW is ~20x slower on CPU (denormal second moments); fused also suits CUDA.
        "optim": "adamw_torch_fused",
        "max_length": spec.max_length,
        "seed": spec.seed,
        "data_seed": spec.seed,
        "use_cpu": not cuda,
        # Mixed precision where the device runs bf16 natively; the weights themselves stay float32.
        "bf16": bf16_autocast(spec.bf16),
        "fp16": False,
        _CHECKPOINTING_ARG: False,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "remove_unused_columns": True,
    }


def _require_folder(path: str) -> None:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"base model folder not found: {path}")


class _StepLogger(TrainerCallback):
    """Per-step training logs to the logger instead of stdout."""

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs:
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
            log.info("step %d/%d: %s", state.global_step, state.max_steps, shown)


def log_to_logger(trainer: Trainer) -> None:
    """Send ``trainer``'s per-step logs to this package's logger rather than printing them."""
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_StepLogger())
