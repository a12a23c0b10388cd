"""The dtype ``auto`` picks, from the CPU's flags (fake /proc/cpuinfo texts) and what torch reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.hardware import cpu_facts
from app.engine.precision import CpuFacts, choose, cpuinfo_flags, native_bf16

# Trimmed /proc/cpuinfo of an AVX2 EPYC (no bf16), a Sapphire Rapids Xeon (AMX) and a Graviton 3.
EPYC = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\nbogomips\t: 4890.86\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


def facts(text: str | None, onednn: bool = True) -> CpuFacts:
    return CpuFacts(None if text is None else cpuinfo_flags(text), onednn, "AVX512")


def test_flags_are_read_from_x86_and_arm_lines() -> None:
    assert {"avx2", "fma"} <= cpuinfo_flags(EPYC)
    assert "4890.86" not in cpuinfo_flags(EPYC)
    assert {"amx_bf16", "avx512_bf16"} <= cpuinfo_flags(SAPPHIRE)
    assert "bf16" in cpuinfo_flags(GRAVITON)


@pytest.mark.parametrize("text", [SAPPHIRE, GRAVITON])
def test_auto_picks_bfloat16_on_cpus_with_native_bf16(text: str) -> None:
    chosen = choose("auto", "cpu", cuda_bf16=False, cpu=facts(text))
    assert chosen.dtype == "bfloat16"
    assert "native bf16" in chosen.reason


def test_auto_keeps_float32_without_bf16_instructions_and_says_why() -> None:
    chosen = choose("auto", "cpu", cuda_bf16=False, cpu=facts(EPYC))
    assert chosen.dtype == "float32"
    assert "no native bf16" in chosen.reason and "avx512_bf16" in chosen.reason


def test_auto_keeps_float32_without_cpuinfo_or_onednn() -> None:
    assert choose("auto", "cpu", False, facts(None)).dtype == "float32"
    unusable = choose("auto", "cpu", False, facts(SAPPHIRE, onednn=False))
    assert unusable.dtype == "float32" and "oneDNN" in unusable.reason
    assert native_bf16(facts(None))[0] is False


def test_cuda_keeps_its_choice_and_a_named_dtype_is_taken_as_is() -> None:
    assert choose("auto", "cuda", cuda_bf16=True, cpu=None).dtype == "bfloat16"
    assert choose("auto", "cuda", cuda_bf16=False, cpu=None).dtype == "float16"
    named = choose("float32", "cpu", cuda_bf16=False, cpu=facts(SAPPHIRE))
    assert named.dtype == "float32" and named.reason == "JUDGE_DTYPE=float32"


def test_cpu_facts_read_the_given_cpuinfo_file(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(SAPPHIRE)
    assert native_bf16(cpu_facts(info))[0] is True
    assert cpu_facts(tmp_path / "missing").flags is None
