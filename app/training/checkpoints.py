"""Publishing a trained model folder atomically: it is written in a hidden sibling of its final path
and renamed into place, so a crash mid-save never leaves a folder that looks complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer


@dataclass(frozen=True)
class Staging:
    """A scratch folder next to the output: ``work`` for the trainer, ``model`` for the final save."""

    root: Path
    work: Path
    model: Path


@contextlib.contextmanager
def staging_for(output_path: str) -> Iterator[Staging]:
    """A fresh staging folder on the same filesystem as ``output_path``, removed on exit.

    Raises FileExistsError up front when ``output_path`` already exists, before any training time
    is spent.
    """
    output = Path(output_path)
    if output.exists():
        raise FileExistsError(f"training output already exists: {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    root = output.parent / f".{output.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    try:
        yield Staging(root=root, work=root / "trainer", model=root / "model")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def publish(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, staging: Staging, output_path: str
) -> None:
    """Save ``model`` (safetensors, config, generation config) and ``tokenizer`` into the staging
    folder, then rename it to ``output_path``.

    Raises FileExistsError when ``output_path`` appeared meanwhile (a concurrent run won).
    """
    model.config.use_cache = True  # turned off for training; the saved model is for inference
    model.save_pretrained(staging.model)
    tokenizer.save_pretrained(staging.model)
    output = Path(output_path)
    if output.exists():
        raise FileExistsError(f"training output already exists: {output}")
    os.replace(staging.model, output)


def publish_trained(
    trainer: Trainer,
    tokenizer: PreTrainedTokenizerBase,
    staging: Staging,
    output_path: str,
    *,
    merge_lora: bool,
) -> None:
    """:func:`publish` ``trainer``'s model (its LoRA adapter merged when ``merge_lora``) from the main
    process; under several training processes (``accelerate launch``, DDP) the others wait for it.

    The model is taken whole from the main process, which suits DDP (every process holds all the
    weights), not sharded training (FSDP, DeepSpeed ZeRO-3).
    """
    accelerator = trainer.accelerator
    if accelerator.is_main_process:
        trained = accelerator.unwrap_model(trainer.model)
        if merge_lora:
            trained = trained.merge_and_unload()
        publish(trained, tokenizer, staging, output_path)
    accelerator.wait_for_everyone()
