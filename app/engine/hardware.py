"""What this machine offers a model: the facts :mod:`app.engine.precision` decides from, read here."""

from __future__ import annotations

from pathlib import Path

import torch

from app.engine.precision import CpuFacts, Precision, choose, cpuinfo_flags

CPUINFO = Path("/proc/cpuinfo")


def cpu_facts(cpuinfo: Path = CPUINFO) -> CpuFacts:
    """This machine's CPU flags (None without ``/proc/cpuinfo``), oneDNN and torch's CPU capability."""
    try:
        flags: frozenset[str] | None = cpuinfo_flags(cpuinfo.read_text())
    except OSError:
        flags = None
    return CpuFacts(
        flags=flags,
        onednn=bool(torch.backends.mkldnn.is_available()),
        capability=str(torch.backends.cpu.get_cpu_capability()),
    )


def precision_for(requested: str, device: torch.device) -> Precision:
    """The dtype ``requested`` (``auto`` or a dtype name) resolves to on ``device``, and why."""
    cuda = device.type == "cuda"
    return choose(
        requested,
        device.type,
        cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
        cpu=cpu_facts() if device.type == "cpu" else None,
    )


def cpu_bf16() -> Precision:
    """bfloat16 when this CPU runs it natively, else float32 (what ``auto`` picks on the CPU)."""
    return precision_for("auto", torch.device("cpu"))
