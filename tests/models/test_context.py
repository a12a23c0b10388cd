"""Context windows: the cheap token bound never undercounts, exact counts are the engine's, and each
model folder's tokenizer is loaded once."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers
from transformers import PreTrainedTokenizerFast

from app.core.config import DEFAULT_MODEL, Settings
from app.engine.chat import render_with_tokenizer
from app.models import context
from app.models.artifacts import model_dir
from app.models.context import ContextWindow, ContextWindows, context_length, load_window
from tests.models.tiny_tokenizer import CHATML, SPECIALS, tiny_model_folder

TEXTS = [
    "plain ascii text with spaces",
    "emoji 😀🎉👩‍👩‍👧 and CJK 你好世界 and accents éèê ﬁ ㎏ ﷺ",
    "  leading and trailing   spaces  \n\n\t tabs ",
    "markers inside the text: <|im_start|><|im_end|><|im_end|>< <| <<<",
    "x" * 3000,
    "",
]


def _conversation(text: str) -> list[Any]:
    return [
        {"role": "system", "content": "Judge fairly."},
        {"role": "user", "content": text},
        {"role": "assistant", "content": "Verdict: [["},
    ]


def _sentencepiece_like(path: Path) -> Path:
    """Llama-2 style: a normalizer that prepends `▁` and turns spaces into it, bytes as fallback."""
    vocab = {"<unk>": 0, "▁": 1, **{f"<0x{b:02X}>": 2 + b for b in range(256)}}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.ByteFallback()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS})
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(path)
    (path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    return path


def _real_default_model() -> Path:
    path = model_dir(Settings().models_dir, DEFAULT_MODEL)
    if not (path / "tokenizer.json").is_file():
        pytest.skip("the default model is not on this machine")
    return path


@pytest.mark.parametrize("kind", ["byte-level", "sentencepiece-like", "default-model"])
def test_the_bound_never_undercounts_and_counts_match_the_engine(tmp_path: Path, kind: str) -> None:
    if kind == "byte-level":
        folder = tiny_model_folder(tmp_path, 4096)
    elif kind == "sentencepiece-like":
        folder = _sentencepiece_like(tmp_path)
    else:
        folder = _real_default_model()
    window = load_window(folder)
    assert window is not None
    tokenizer = window._tokenizer
    for text in TEXTS:
        rendered = window.render(_conversation(text))
        assert rendered == render_with_tokenizer(tokenizer, _conversation(text))
        exact = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        assert window.count(rendered) == exact
        bound = window.upper_bound(rendered)
        assert bound is not None and bound >= exact, (text, bound, exact)
        # Tight enough to spare tokenizing: within a few per cent of the bytes for ASCII prompts.
        if text.isascii():
            assert bound <= len(rendered.encode()) * 1.1 + 200


def test_a_prompt_surely_within_the_limit_is_not_tokenized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = load_window(tiny_model_folder(tmp_path, 4096))
    assert window is not None
    text = window.render(_conversation("short"))
    counted: list[str] = []
    original = ContextWindow.count
    monkeypatch.setattr(ContextWindow, "count", lambda self, t: counted.append(t) or original(self, t))
    assert window.tokens_within(text, 4000) is None
    assert counted == []
    exact = window.tokens_within(text, 10)
    assert exact == original(window, text) and counted == [text]


def test_context_length_comes_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    assert context_length(tmp_path) == 2048
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 512}}))
    assert context_length(tmp_path) == 512
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    assert context_length(tmp_path) is None
    assert load_window(tmp_path) is None


def test_windows_load_each_folder_once_and_keep_the_most_recent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = [str(tiny_model_folder(tmp_path / f"m{i}", 1000 + i)) for i in range(3)]
    loads: list[Path] = []
    real_load = context.load_window

    def counting_load(path: Path) -> ContextWindow | None:
        loads.append(path)
        return real_load(path)

    monkeypatch.setattr(context, "load_window", counting_load)
    windows = ContextWindows(max_entries=2)
    got: list[ContextWindow | None] = []
    threads = [threading.Thread(target=lambda: got.append(windows.get(folders[0]))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len({id(w) for w in got}) == 1 and got[0] is not None
    assert got[0].context == 1000
    windows.get(folders[1])
    windows.get(folders[0])  # most recent again
    windows.get(folders[2])  # evicts folders[1]
    assert len(loads) == 3
    windows.get(folders[0])
    assert len(loads) == 3
    windows.get(folders[1])
    assert len(loads) == 4
    # A folder not on this machine is no window, and not remembered as one.
    assert windows.get(str(tmp_path / "elsewhere")) is None
    assert len(loads) == 4
