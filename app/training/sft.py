"""Supervised fine-tuning (the paper's SFT on seed IFT/EFT data) with TRL's SFTTrainer."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import set_seed
from trl import SFTConfig, SFTTrainer

from app.training.checkpoints import publish_trained, staging_for
from app.training.loading import (
    load_model,
    load_tokenizer,
    log_to_logger,
    lora_config,
    resolve_dropout,
    trainer_arguments,
)
from app.training.metrics import training_metrics
from app.training.specs import SFTSpec, TrainResult

log = logging.getLogger(__name__)


def run_sft(spec: SFTSpec) -> TrainResult:
    """Fine-tune ``spec.base_path`` on ``spec.examples`` and save a full model folder (LoRA merged) at
    ``spec.output_path``, which appears only once complete.

    Each example is a conversation, a user prompt and an assistant completion rendered with the
    model's chat template; the loss covers the completion tokens only. Raises FileExistsError when
    the output exists, FileNotFoundError when the base folder does not.
    """
    started = time.perf_counter()
    set_seed(spec.seed)
    with staging_for(spec.output_path) as staging:
        tokenizer = load_tokenizer(spec.base_path)
        model = load_model(spec.base_path, dropout=resolve_dropout(spec.dropout))
        trainer = SFTTrainer(
            model=model,
            args=sft_config(spec, staging.work),
            train_dataset=conversations(spec.examples),
            processing_class=tokenizer,
            peft_config=lora_config(spec.lora),
        )
        log.info(
            "SFT of %s on %d examples (lora=%s, bf16 autocast=%s)",
            spec.base_path,
            len(spec.examples),
            spec.lora is not None,
            trainer.args.bf16,
        )
        log_to_logger(trainer)
        trainer.train()
        publish_trained(trainer, tokenizer, staging, spec.output_path, merge_lora=spec.lora is not None)
        metrics = training_metrics(trainer.state.log_history, steps=trainer.state.global_step)
    metrics["total_seconds"] = time.perf_counter() - started
    return TrainResult(output_path=spec.output_path, metrics=metrics)


def sft_config(spec: SFTSpec, work_dir: Path) -> SFTConfig:
    """TRL's configuration of ``spec``'s run, writing its scratch files under ``work_dir``."""
    return SFTConfig(**trainer_arguments(work_dir, spec), completion_only_loss=True, packing=False)


def conversations(examples: list[dict[str, str]]) -> Dataset:
    """A conversational prompt-completion dataset: a user turn and the assistant turn that answers it."""
    rows: list[dict[str, Any]] = [
        {
            "prompt": [{"role": "user", "content": ex["prompt"]}],
            "completion": [{"role": "assistant", "content": ex["completion"]}],
        }
        for ex in examples
    ]
    return Dataset.from_list(rows)
