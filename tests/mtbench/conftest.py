"""MT-Bench tests: fixture files in FastChat's formats (our own tiny questions and answers) and a
scripted judge engine that knows which model wrote each answer."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from app.engine.base import Conversation, Generation, LabelDistribution, SamplingParams

DATA = Path(__file__).parent / "data"
TINY_BENCH = DATA / "tiny_bench"
JUDGE_PROMPTS = DATA / "judge_prompts.jsonl"
JUDGMENTS = DATA / "judgments"

# Every fixture answer ends with its model's marker, e.g. "(alpha)". The scripted judge ranks models.
RANK = {"alpha": 3, "gpt-3.5-turbo": 2, "beta": 1}
SCORES = {"alpha": 8, "gpt-3.5-turbo": 6, "beta": 3}
_MARKER = re.compile(r"\((alpha|beta|gpt-3\.5-turbo)\)")


class OracleEngine:
    """A judge that is never fooled by position: it finds the model markers in the order the answers
    are shown and prefers the better-ranked model; it grades each model with its fixed score. With a
    reply prefix ("Verdict: [[") it continues it; without one it writes a short explanation first."""

    def __init__(self) -> None:
        self.prompts: list[Conversation] = []
        self.samplings: list[SamplingParams] = []

    @property
    def model_name(self) -> str:
        return "oracle"

    def _verdict(self, conv: Conversation) -> str:
        user = next(m["content"] for m in conv if m["role"] == "user")
        shown = list(dict.fromkeys(_MARKER.findall(user)))
        if len(shown) == 1:
            return str(SCORES[shown[0]])
        first, second = shown[0], shown[1]
        return "A" if RANK[first] > RANK[second] else "B"

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        self.prompts.extend(prompts)
        self.samplings.append(sampling)
        out = []
        for conv in prompts:
            label = self._verdict(conv)
            if conv[-1]["role"] == "assistant" and "]]" in sampling.stop:
                out.append(Generation(label, 10, 2, "stop", stop_string="]]"))
            else:
                out.append(Generation(f"Having compared them, my verdict: [[{label}]]", 10, 9, "stop"))
        return out

    def label_logprobs(
        self, prompts: Sequence[Conversation], labels: Sequence[str]
    ) -> list[LabelDistribution]:
        self.prompts.extend(prompts)
        out = []
        for conv in prompts:
            best = self._verdict(conv)
            probs = {label: (0.9 if label.removesuffix("]]") == best else 0.1) for label in labels}
            total = sum(probs.values())
            out.append(LabelDistribution({k: v / total for k, v in probs.items()}, tokens_in=10, mass=0.8))
        return out

    def render_chat(self, conversation: Conversation) -> str:
        return "\n".join(m["content"] for m in conversation)

    def load_weights(self, model_path: Any, model_name: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """A writable copy of the tiny bench folder."""
    target = tmp_path / "tiny_bench"
    shutil.copytree(TINY_BENCH, target)
    return target


@pytest.fixture
def engine() -> OracleEngine:
    return OracleEngine()
