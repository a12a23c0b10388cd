"""vLLM's exceptions, recognised by class name so that this service never imports vllm to read them
(vllm >= 0.27: ``vllm.exceptions`` and ``vllm.v1.engine.exceptions``)."""

from __future__ import annotations

from app.engine.base import EngineError

# VLLMValidationError (an over-long prompt, a parameter the model refuses) is a VLLMClientError, which
# is not a ValueError: the request itself is at fault.
_CLIENT_ERRORS = frozenset({"VLLMClientError", "VLLMValidationError", "VLLMNotFoundError"})
# EngineCore died: every request fails until the engine is built again.
_DEAD_ERRORS = frozenset({"EngineDeadError"})


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def is_request_error(exc: BaseException) -> bool:
    """vLLM refused the request (its input or parameters); the engine is fine."""
    return bool(_names(exc) & _CLIENT_ERRORS)


def is_engine_dead(exc: BaseException) -> bool:
    """vLLM's engine core is gone: it must be built again before it serves anything."""
    return bool(_names(exc) & _DEAD_ERRORS)


def needs_v2_runner(exc: BaseException) -> bool:
    """The refusal vLLM gives targeted prompt log-probs on its V1 model runner."""
    return is_request_error(exc) and "prompt_logprob_token_ids" in str(exc) and "runner" in str(exc)


def engine_error(exc: BaseException, model: str) -> EngineError:
    """One EngineError for whatever vLLM raised, saying whose fault it was."""
    if isinstance(exc, EngineError):
        return exc
    if is_request_error(exc):
        return EngineError(f"vllm refused the request for {model!r}: {exc}")
    if is_engine_dead(exc):
        return EngineError(f"the vllm engine of {model!r} died; it is being restarted: {exc}")
    return EngineError(f"vllm failed on a request for {model!r}: {type(exc).__name__}: {exc}")
