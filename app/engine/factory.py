"""Build the configured inference engine (once per process: workers keep it for their whole life)."""

from __future__ import annotations

from pathlib import Path

from app.core.config import Settings
from app.engine.base import Engine, EngineError


def build_engine(settings: Settings, model_name: str, model_path: Path | None) -> Engine:
    """The engine ``settings.backend`` selects, serving ``model_name``.

    ``model_path`` is the model's folder, required by the in-process backends (transformers, vllm);
    the openai backend talks to ``settings.openai_base_url`` instead and ignores it. Backends are
    imported here, on demand, so a process that never runs a model never imports torch or vllm.
    Raises EngineError when the configuration cannot give an engine.
    """
    if settings.backend == "openai":
        from app.engine.openai_backend import OpenAIEngine

        if not settings.openai_base_url:
            raise EngineError("backend=openai needs JUDGE_OPENAI_BASE_URL")
        return OpenAIEngine(
            base_url=settings.openai_base_url,
            model=settings.openai_model or model_name,
            api_key=settings.openai_api_key,
            max_concurrency=settings.openai_max_concurrency,
            model_name=model_name,
        )

    if model_path is None:
        raise EngineError(f"backend={settings.backend} needs a local folder for model {model_name!r}")
    if settings.backend == "vllm":
        from app.engine.vllm_backend import VLLMEngine

        return VLLMEngine(
            model_path,
            model_name,
            tensor_parallel_size=settings.tensor_parallel_size,
            gpu_memory_utilization=vllm_memory_share(settings),
            dtype=settings.dtype,
        )
    if settings.backend == "transformers":
        from app.engine.transformers_backend import TransformersEngine

        return TransformersEngine(
            model_path,
            model_name,
            device=settings.device,
            dtype=settings.dtype,
            batch_size=settings.batch_size,
        )
    raise EngineError(f"unknown backend {settings.backend!r}")


def vllm_memory_share(settings: Settings) -> float:
    """The GPU memory share of each vllm engine of a process: ``gpu_memory_utilization`` split evenly
    over the worker's own engine and the ``max_extra_engines`` it may load beside it (vLLM reserves
    an engine's whole share when it starts, so two engines asking for the whole budget cannot both run)."""
    return settings.gpu_memory_utilization / (1 + settings.max_extra_engines)
