"""The README's client examples run as written against the live service."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

from tests.client.live import LiveService

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [block] = [b for b in blocks if containing in b]
    return str(block)


def test_three_line_example(service: LiveService) -> None:
    code = _python_block("judge = Judge(").replace("http://127.0.0.1:8000", service.url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {"key": service.key})
    assert out.getvalue().strip() == "B"  # "five" is longer than "4"


def test_dpo_preference_pairs_example(service: LiveService) -> None:
    from judge_client import Judge

    namespace: dict[str, Any] = {}
    exec(_python_block("def preference_pairs"), namespace)
    prompts = ["What is 2+2?", "Name a colour.", "Capital of France?", "Say hi."]
    completions = [("It is four.", "5"), ("red", "tan"), ("Rome", "It is Paris."), ("hi", "hey")]
    with Judge(service.url, service.key) as judge:
        pairs = namespace["preference_pairs"](judge, prompts, completions)
    # The scripted judge prefers the longer answer; equal lengths flip with the order and are skipped.
    assert pairs == [
        {"prompt": "What is 2+2?", "chosen": "It is four.", "rejected": "5"},
        {"prompt": "Capital of France?", "chosen": "It is Paris.", "rejected": "Rome"},
        {"prompt": "Say hi.", "chosen": "hey", "rejected": "hi"},
    ]
