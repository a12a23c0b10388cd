"""Which number format a model runs in when the settings say ``auto``, and why.

Pure: the caller reads the CPU's flags and what torch reports, this module decides. bfloat16 halves
the weights' and key/value memory and, on CPUs with native bf16 instructions (x86 AVX512-BF16 or AMX,
Arm's BF16 extension), runs matrix products several times faster than float32. Without them bf16
products are emulated and far slower than float32 (two orders of magnitude on an AVX2 CPU), so
``auto`` picks bf16 on a CPU only when the instructions are there.
"""

from __future__ import annotations

from dataclasses import dataclass

# /proc/cpuinfo flags of native bf16 matrix instructions: x86 (AVX512-BF16, AMX-BF16) and Arm
# (the BF16 extension, listed as ``bf16`` under ``Features``).
BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


@dataclass(frozen=True)
class Precision:
    """The dtype an engine serves a model in (``bfloat16``, ``float32``, ...) and why."""

    dtype: str
    reason: str


@dataclass(frozen=True)
class CpuFacts:
    """What the machine says about its CPU: the flags of ``/proc/cpuinfo`` (None where there is no
    such file), whether torch has oneDNN (which runs bf16 matrix products on those instructions), and
    torch's CPU capability (``AVX512``, ``AVX2``, ...; for the log)."""

    flags: frozenset[str] | None
    onednn: bool
    capability: str


def cpuinfo_flags(text: str) -> frozenset[str]:
    """The CPU flags of a ``/proc/cpuinfo`` text (x86 ``flags`` and Arm ``Features`` lines)."""
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def native_bf16(facts: CpuFacts) -> tuple[bool, str]:
    """Whether bf16 matrix products run natively on this CPU, and the evidence."""
    if facts.flags is None:
        return False, f"the CPU's flags are unknown (no /proc/cpuinfo; torch capability {facts.capability})"
    found = sorted(set(BF16_FLAGS) & facts.flags)
    if not found:
        return False, (
            f"the CPU has no native bf16 instructions (none of {', '.join(BF16_FLAGS)} in /proc/cpuinfo; "
            f"torch capability {facts.capability}): bf16 products would be emulated, slower than float32"
        )
    if not facts.onednn:
        return False, f"the CPU has {', '.join(found)} but this torch build has no oneDNN to use them"
    listed = ", ".join(found)
    return True, f"the CPU has native bf16 ({listed} in /proc/cpuinfo; torch capability {facts.capability})"


def choose(requested: str, device_type: str, cuda_bf16: bool, cpu: CpuFacts | None) -> Precision:
    """The dtype name for ``requested`` (``auto`` or a dtype name) on a ``device_type`` device.

    ``auto``: on CUDA bfloat16 where the GPU supports it, else float16; on a CPU bfloat16 when
    :func:`native_bf16` says so (``cpu`` must then be given), else float32. A named dtype is taken
    as is."""
    if requested != "auto":
        return Precision(requested, f"JUDGE_DTYPE={requested}")
    if device_type == "cuda":
        if cuda_bf16:
            return Precision("bfloat16", "auto: the GPU supports bf16")
        return Precision("float16", "auto: the GPU has no bf16 support")
    if cpu is None:
        return Precision("float32", f"auto: {device_type} device")
    native, why = native_bf16(cpu)
    return Precision("bfloat16" if native else "float32", f"auto: {why}")


def precision_of(engine: object) -> Precision | None:
    """The precision an engine reports it serves its model in; None for one that does not say (a
    remote server's)."""
    found = getattr(engine, "precision", None)
    return found if isinstance(found, Precision) else None
