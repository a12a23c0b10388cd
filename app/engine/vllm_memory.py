"""GPU memory shares of the vLLM engines in this process. Each engine reserves its share of the GPU
(``gpu_memory_utilization``) when it starts; two engines whose shares add up to more than the whole
GPU cannot both start, so the second is refused here, with a message, before vLLM fails obscurely."""

from __future__ import annotations

import threading

from app.engine.base import EngineError

_lock = threading.Lock()
_shares: dict[int, float] = {}


def claim(owner: object, share: float, model: str) -> None:
    """Reserve ``share`` of GPU memory for ``owner``'s engine; EngineError when it does not fit."""
    with _lock:
        held = sum(s for key, s in _shares.items() if key != id(owner))
        if held + share > 1.0 + 1e-9:
            raise EngineError(
                f"cannot start a vllm engine for {model!r} with {share:.2f} of GPU memory: vllm engines "
                f"in this process hold {held:.2f} already. JUDGE_GPU_MEMORY_UTILIZATION is split evenly "
                "over 1 + JUDGE_MAX_EXTRA_ENGINES engines; lower it, or set JUDGE_MAX_EXTRA_ENGINES=0 "
                "on workers that serve one model"
            )
        _shares[id(owner)] = share


def release(owner: object) -> None:
    with _lock:
        _shares.pop(id(owner), None)


def held() -> float:
    """The share reserved by running engines now."""
    with _lock:
        return sum(_shares.values())
