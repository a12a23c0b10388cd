"""A local model's context window: its length and how many tokens a chat prompt takes in it, counted
the way the worker's engine counts them (the tokenizer's chat template, then its tokens).

Loading a tokenizer costs seconds (transformers' import, then the files), so :class:`ContextWindows`
loads each model folder's once, on first use, and keeps the few most recently used.

Most prompts are far from the limit, so :meth:`ContextWindow.tokens_within` first compares a cheap
upper bound of the token count with the limit and tokenizes only when the bound could exceed it. The
bound, for a rendered prompt of ``b`` UTF-8 bytes in which the tokenizer can find at most ``m`` special
(added) tokens:

- no normalizer: ``b + m + 1``. The tokenizer first cuts the special tokens out (one token each, and
  each has at least one byte, counted in ``b``), leaving at most ``m + 1`` sections of plain text.
  Every token of a plain section covers at least one of its bytes: byte-level BPE (GPT-2, Llama 3,
  Qwen, SmolLM) and BPE/Unigram with byte fallback split at worst into single bytes, WordPiece and
  Unigram pieces hold at least one character. The only token that covers nothing is a word marker a
  pre-tokenizer may prepend (SentencePiece's ``▁``), at most one per section: the ``m + 1``. So a
  character is *not* a safe unit (an emoji can be four byte tokens); a UTF-8 byte is.
- with a normalizer (NFC, NFKC, lowercasing, ``" "`` → ``"▁"``, a prepended ``"▁"`` ...): ``b`` is
  counted on the normalized text, which is what gets tokenized, and each section may gain a prepended
  marker both from the normalizer and from the pre-tokenizer: ``b + 8 (m + 1)`` (``▁`` is 3 bytes).

``m`` is bounded by how often the first characters of the special tokens occur in the prompt (their
matches never overlap, and each starts with one of those characters): the chat template's own markers
plus any ``<`` in the text, for most models. A tokenizer without a Rust backend gets no bound: every
prompt is counted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from app.engine.base import Conversation
from app.engine.chat import render_with_tokenizer

log = logging.getLogger(__name__)

# Bytes a normalizer and a pre-tokenizer may add to one section of plain text (two prepended markers).
_SECTION_SLACK_NORMALIZED = 8


class ContextWindow:
    """One model's context length and tokenizer. Thread-safe: calls into the tokenizer are serialised
    (a Rust tokenizer shared between threads can fail with "Already borrowed")."""

    def __init__(self, tokenizer: Any, context: int) -> None:
        self.context = context
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._normalizer = backend.normalizer if backend is not None else None
        self._bounded = backend is not None
        specials = [str(t) for t in getattr(tokenizer, "get_added_vocab", dict)() if t]
        self._special_starts = sorted({t[0] for t in specials})

    def render(self, conversation: Conversation) -> str:
        """The prompt text the engine would tokenize (see :func:`app.engine.chat.render_with_tokenizer`)."""
        with self._lock:
            return render_with_tokenizer(self._tokenizer, conversation)

    def count(self, text: str) -> int:
        """Tokens of ``text`` as the engine encodes a rendered prompt (no special tokens added)."""
        with self._lock:
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def upper_bound(self, text: str) -> int | None:
        """At least :meth:`count` (see the module's docstring); None when this tokenizer has no bound."""
        if not self._bounded:
            return None
        sections = 1 + sum(text.count(c) for c in self._special_starts)
        if self._normalizer is None:
            return len(text.encode("utf-8")) + sections
        with self._lock:
            normalized = str(self._normalizer.normalize_str(text))
        return len(normalized.encode("utf-8")) + _SECTION_SLACK_NORMALIZED * sections

    def tokens_within(self, text: str, limit: int) -> int | None:
        """None when ``text`` surely has at most ``limit`` tokens (often known without tokenizing it);
        else its token count, which may still be within the limit."""
        bound = self.upper_bound(text)
        if bound is not None and bound <= limit:
            return None
        return self.count(text)


def context_length(model_path: Path) -> int | None:
    """The model's context length from its ``config.json`` (``max_position_embeddings``, as the
    transformers engine reads it; a multimodal config's ``text_config``); None when it has none."""
    try:
        config = json.loads((model_path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    for section in (config, config.get("text_config")):
        value = section.get("max_position_embeddings") if isinstance(section, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def load_window(model_path: Path) -> ContextWindow | None:
    """The model folder's context window; None when the folder lacks a context length, a tokenizer or
    a chat template (the worker fails such a model's prompts itself)."""
    context = context_length(model_path)
    if context is None:
        return None
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    except Exception as exc:  # transformers raises many types for a broken folder
        log.warning("cannot load the tokenizer of %s (%s): prompts to it are not measured", model_path, exc)
        return None
    if getattr(tokenizer, "chat_template", None) is None:
        return None
    return ContextWindow(tokenizer, context)


class ContextWindows:
    """Context windows by model folder, loaded on first use and kept for the ``max_entries`` most
    recently used folders. Folders that are not on this machine (an API apart from its workers) get
    None, looked at again each time; a folder that failed to load is not tried again."""

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._windows: OrderedDict[str, ContextWindow | None] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, artifact_path: str) -> ContextWindow | None:
        with self._lock:
            if artifact_path in self._windows:
                self._windows.move_to_end(artifact_path)
                return self._windows[artifact_path]
        path = Path(artifact_path)
        if not (path / "config.json").is_file():
            return None
        with self._lock:
            loading = self._loading.setdefault(artifact_path, threading.Lock())
        # One thread loads a folder; others asking for it wait for that load, not for other folders'.
        with loading:
            with self._lock:
                if artifact_path in self._windows:
                    self._windows.move_to_end(artifact_path)
                    return self._windows[artifact_path]
            window = load_window(path)
            with self._lock:
                self._windows[artifact_path] = window
                while len(self._windows) > self.max_entries:
                    self._windows.popitem(last=False)
                self._loading.pop(artifact_path, None)
        return window
