"""Direct preference optimisation (the paper's iterations M1 -> M2 -> M3) with TRL's DPOTrainer."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import set_seed
from trl import DPOConfig, DPOTrainer

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
from app.training.specs import DPOSpec, TrainResult

log = logging.getLogger(__name__)


def run_dpo(spec: DPOSpec) -> TrainResult:
    """Train ``spec.base_path`` on ``spec.pairs`` with DPO against ``spec.base_path`` itself as the
    frozen reference, and save a full model folder (LoRA merged) at ``spec.output_path``, which
    appears only once complete.

    Each pair is a user prompt and two assistant responses rendered with the model's chat template.
    Raises FileExistsError when the output exists, FileNotFoundError when the base folder does not.
    """
    started = time.perf_counter()
    set_seed(spec.seed)
    with staging_for(spec.output_path) as staging:
        tokenizer = load_tokenizer(spec.base_path)
        model = load_model(spec.base_path, dropout=resolve_dropout(spec.dropout))
        peft_config = lora_config(spec.lora)
        # The reference is the parent checkpoint on disk. With LoRA the policy with its adapter
        # disabled is that same checkpoint, so TRL uses it and no second copy is loaded.
        ref_model = load_model(spec.base_path) if peft_config is None else None
        trainer = DPOTrainer(
            model=model,
            ref_model=ref_model,
            args=dpo_config(spec, staging.work),
            train_dataset=preference_pairs(spec.pairs),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        log.info(
            "DPO of %s on %d pairs (lora=%s, bf16 autocast=%s)",
            spec.base_path,
            len(spec.pairs),
            spec.lora is not None,
            trainer.args.bf16,
        )
        log_to_logger(trainer)
        trainer.train()
        publish_trained(trainer, tokenizer, staging, spec.output_path, merge_lora=spec.lora is not None)
        metrics = training_metrics(trainer.state.log_history, steps=trainer.state.global_step, dpo=True)
    metrics["total_seconds"] = time.perf_counter() - started
    return TrainResult(output_path=spec.output_path, metrics=metrics)


def dpo_config(spec: DPOSpec, work_dir: Path) -> DPOConfig:
    """TRL's configuration of ``spec``'s run, writing its scratch files under ``work_dir``."""
    return DPOConfig(
        **trainer_arguments(work_dir, spec),
        beta=spec.beta,
        loss_type=[spec.loss_type],
        # TRL zeroes every dropout module by default: keep the policy's when the spec asks for dropout.
        # A separate reference model runs in eval mode, without dropout; with LoRA the reference is the
        # policy with its adapter off, in training mode, so it drops out too.
        disable_dropout=resolve_dropout(spec.dropout) == 0,
    )


def preference_pairs(pairs: list[dict[str, str]]) -> Dataset:
    """A conversational preference dataset: a user turn and a chosen and a rejected assistant turn."""
    rows: list[dict[str, Any]] = [
        {
            "prompt": [{"role": "user", "content": pair["prompt"]}],
            "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}],
        }
        for pair in pairs
    ]
    return Dataset.from_list(rows)
