"""Items whose prompts cannot fit the judge model's context are refused at submission, naming the item
and the limit; everything else is accepted as before."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.state import AppState
from app.models import repository as models_repo
from tests.api.helpers import PAIR, PAIRWISE, SINGLE, SINGLE_URL, assert_error, with_
from tests.models.tiny_tokenizer import tiny_model_folder

CONTEXT = 4096
MODEL = "tiny-context"
# The tiny tokenizer makes a token of every byte: an answer of this many characters cannot fit.
LONG = "word " * 1000


@pytest.fixture
def tiny_model(state: AppState, tmp_path: Path) -> str:
    folder = tiny_model_folder(tmp_path / MODEL, CONTEXT)
    with state.db.unit_of_work() as session:
        models_repo.upsert(session, MODEL, "transformers", str(folder))
        models_repo.upsert(session, "tiny-remote", "openai", str(folder))
    return MODEL


def _too_long(response: Any, index: int, max_tokens_text: str) -> int:
    error = assert_error(response, 422, "validation_error", f"items[{index}]")
    match = re.fullmatch(
        rf"items\[{index}\]: the judge prompt has (\d+) tokens; with {re.escape(max_tokens_text)} it "
        rf"exceeds the model's context of {CONTEXT} tokens",
        error["message"],
    )
    assert match, error["message"]
    return int(match.group(1))


def test_an_item_too_long_for_the_context_is_refused_by_index(client: TestClient, tiny_model: str) -> None:
    items = [PAIR, with_(PAIR, answer_b=LONG), PAIR]
    response = client.post(PAIRWISE, json={"model": tiny_model, "items": items, "max_tokens": 512})
    tokens = _too_long(response, 1, "max_tokens 512")
    assert tokens + 512 > CONTEXT

    ok = client.post(PAIRWISE, json={"model": tiny_model, "items": [PAIR] * 3, "max_tokens": 512})
    assert ok.status_code == 202, ok.text


def test_the_limit_counts_max_tokens(client: TestClient, tiny_model: str) -> None:
    """An item that fits with the default max_tokens is refused when the reply may not fit beside it."""
    item = with_(PAIR, answer_a="word " * 500)
    fits = client.post(PAIRWISE, json={"model": tiny_model, "items": [item], "swap": "none"})
    assert fits.status_code == 202, fits.text
    refused = client.post(
        PAIRWISE, json={"model": tiny_model, "items": [item], "swap": "none", "max_tokens": 2048}
    )
    _too_long(refused, 0, "max_tokens 2048")


def test_single_grading_is_checked_too(client: TestClient, tiny_model: str) -> None:
    response = client.post(SINGLE_URL, json={"model": tiny_model, "items": [with_(SINGLE, answer=LONG)]})
    _too_long(response, 0, "max_tokens 256")


def test_auto_reference_checks_the_reference_prompt_and_the_judge_prompt_without_it(
    client: TestClient, tiny_model: str
) -> None:
    auto = {"model": tiny_model, "reference": {"auto": True}}
    asked = client.post(PAIRWISE, json={**auto, "items": [PAIR, with_(PAIR, question=LONG)]})
    error = assert_error(asked, 422, "validation_error", "items[1]")
    assert re.fullmatch(
        rf"items\[1\]: the prompt asking for its reference answer has \d+ tokens; with max_tokens 256 it "
        rf"exceeds the model's context of {CONTEXT} tokens",
        error["message"],
    ), error["message"]

    judged = client.post(PAIRWISE, json={**auto, "items": [with_(PAIR, answer_a=LONG)]})
    error = assert_error(judged, 422, "validation_error", "items[0]")
    assert "the judge prompt has" in error["message"] and "before its generated reference" in error["message"]

    assert client.post(PAIRWISE, json={**auto, "items": [PAIR]}).status_code == 202


def test_probability_verdicts_count_the_labels_not_max_tokens(client: TestClient, tiny_model: str) -> None:
    item = with_(PAIR, answer_a="word " * 600)
    body = {"model": tiny_model, "items": [item], "swap": "none", "max_tokens": 1024}
    _too_long(client.post(PAIRWISE, json=body), 0, "max_tokens 1024")
    scored = client.post(PAIRWISE, json={**body, "verdict_mode": "logprobs"})
    assert scored.status_code == 202, scored.text
    huge = with_(PAIR, answer_a="word " * 900)
    response = client.post(PAIRWISE, json={**body, "items": [huge], "verdict_mode": "logprobs"})
    _too_long(response, 0, "the verdict labels' 1 token(s)")


def test_models_not_measured_here_are_not_checked(client: TestClient, tiny_model: str) -> None:
    """A remote model's context is the server's business, and a model whose folder is not on this
    machine is measured by its worker: both accept the item (the worker fails it alone)."""
    long_item = with_(PAIR, answer_b=LONG)
    remote = client.post(PAIRWISE, json={"model": "tiny-remote", "items": [long_item]})
    assert remote.status_code == 202, remote.text
    default = client.post(PAIRWISE, json={"items": [long_item]})  # registered without a folder
    assert default.status_code == 202, default.text
