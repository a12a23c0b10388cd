"""The verdict cache's pure rules: its policy and the key of one judge call."""

from __future__ import annotations

import dataclasses

import pytest

from app.engine.base import Generation, LabelDistribution, SamplingParams
from app.judging.domain import JudgeItem, Scale, TemplateSpec
from app.judging.verdict_cache import (
    CachedOutput,
    CallScope,
    call_key,
    decoding_identity,
    item_identity,
    model_identity,
    reads,
    resolve_policy,
    writes,
)

GREEDY = SamplingParams(temperature=0.0, max_tokens=256)
TEMPLATE = TemplateSpec(
    name="pair", mode="pairwise", system="Judge.", user="{question} {answer_a} {answer_b}"
)
ITEM = JudgeItem(turns=("Q?",), answers_a=("a",), answers_b=("b",))
SCOPE = CallScope(
    tenant="t1",
    model=model_identity("id-1", "judge", "transformers", "/models/judge"),
    parser="strict",
    decoding=decoding_identity(GREEDY, "generate", None),
    scale=Scale(),
)
BASE = call_key(SCOPE, TEMPLATE, item_identity(ITEM), "AB")


def test_an_identical_call_has_the_same_key() -> None:
    same_scope = dataclasses.replace(SCOPE, decoding=decoding_identity(GREEDY, "generate", None))
    assert (
        call_key(
            same_scope, dataclasses.replace(TEMPLATE), item_identity(JudgeItem(("Q?",), ("a",), ("b",))), "AB"
        )
        == BASE
    )


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param(dataclasses.replace(SCOPE, tenant="t2"), id="tenant"),
        pytest.param(dataclasses.replace(SCOPE, tenant=None), id="shared-scope"),
        pytest.param(
            dataclasses.replace(
                SCOPE, model=model_identity("id-2", "judge", "transformers", "/models/judge")
            ),
            id="model-row",
        ),
        pytest.param(
            dataclasses.replace(SCOPE, model=model_identity("id-1", "judge", "transformers", "/models/v2")),
            id="model-weights",
        ),
        pytest.param(dataclasses.replace(SCOPE, parser="fastchat"), id="parser"),
        pytest.param(
            dataclasses.replace(
                SCOPE,
                decoding=decoding_identity(dataclasses.replace(GREEDY, max_tokens=64), "generate", None),
            ),
            id="max-tokens",
        ),
        pytest.param(
            dataclasses.replace(
                SCOPE, decoding=decoding_identity(dataclasses.replace(GREEDY, stop=("]]",)), "generate", None)
            ),
            id="stop",
        ),
        pytest.param(
            dataclasses.replace(
                SCOPE,
                decoding=decoding_identity(
                    SamplingParams(temperature=0.7, max_tokens=256, seed=1), "generate", None
                ),
            ),
            id="temperature",
        ),
        pytest.param(
            dataclasses.replace(SCOPE, decoding=decoding_identity(GREEDY, "logprobs", ["A", "B", "C"])),
            id="verdict-mode",
        ),
        pytest.param(dataclasses.replace(SCOPE, scale=Scale(1, 5)), id="scale"),
    ],
)
def test_each_part_of_the_scope_changes_the_key(scope: CallScope) -> None:
    assert call_key(scope, TEMPLATE, item_identity(ITEM), "AB") != BASE


@pytest.mark.parametrize(
    "template",
    [
        pytest.param(dataclasses.replace(TEMPLATE, name="other"), id="name"),
        pytest.param(dataclasses.replace(TEMPLATE, version=2), id="version"),
        pytest.param(dataclasses.replace(TEMPLATE, user=TEMPLATE.user + "!"), id="user-text"),
        pytest.param(dataclasses.replace(TEMPLATE, system="Be fair."), id="system-text"),
        pytest.param(dataclasses.replace(TEMPLATE, response_prefix="Verdict: [["), id="reply-prefix"),
    ],
)
def test_the_template_name_version_and_text_change_the_key(template: TemplateSpec) -> None:
    assert call_key(SCOPE, template, item_identity(ITEM), "AB") != BASE


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(JudgeItem(("Q!",), ("a",), ("b",)), id="question"),
        pytest.param(JudgeItem(("Q?",), ("a2",), ("b",)), id="answer-a"),
        pytest.param(JudgeItem(("Q?",), ("a",), ("b2",)), id="answer-b"),
        pytest.param(JudgeItem(("Q?",), ("a",), ("b",), references=("r",)), id="reference"),
        pytest.param(JudgeItem(("Q?", "Q2?"), ("a", "a"), ("b", "b"), turn=0), id="turns"),
    ],
)
def test_the_items_inputs_change_the_key(item: JudgeItem) -> None:
    assert call_key(SCOPE, TEMPLATE, item_identity(item), "AB") != BASE


def test_the_order_and_the_sample_change_the_key() -> None:
    assert call_key(SCOPE, TEMPLATE, item_identity(ITEM), "BA") != BASE
    assert call_key(SCOPE, TEMPLATE, item_identity(ITEM), "AB", sample=1) != BASE


def test_the_seed_counts_only_when_sampling() -> None:
    assert decoding_identity(dataclasses.replace(GREEDY, seed=7), "generate", None) == decoding_identity(
        GREEDY, "generate", None
    )
    sampled = SamplingParams(temperature=0.7, max_tokens=256, seed=1)
    other_seed = dataclasses.replace(sampled, seed=2)
    assert decoding_identity(sampled, "generate", None) != decoding_identity(other_seed, "generate", None)


def test_greedy_decoding_uses_the_cache_by_default_and_sampled_decoding_only_when_asked() -> None:
    assert resolve_policy(None, 0.0) == "use"
    assert resolve_policy(None, 0.7) == "off"
    assert resolve_policy("use", 0.7) == "use"
    assert resolve_policy("refresh", 0.0) == "refresh"
    assert resolve_policy("off", 0.0) == "off"
    assert (reads("use"), writes("use")) == (True, True)
    assert (reads("refresh"), writes("refresh")) == (False, True)
    assert (reads("off"), writes("off")) == (False, False)


def test_a_cached_output_gives_back_what_the_engine_returned_without_its_time() -> None:
    gen = Generation("B", tokens_in=40, tokens_out=2, finish_reason="stop", latency_ms=90.0, stop_string="]]")
    back = CachedOutput.of(gen).generation()
    assert (back.text, back.stop_string, back.tokens_in, back.tokens_out, back.latency_ms) == (
        "B",
        "]]",
        40,
        2,
        0.0,
    )
    dist = LabelDistribution(probs={"A": 0.7, "B": 0.3}, tokens_in=40, latency_ms=5.0, mass=0.8)
    again = CachedOutput.of(dist).distribution()
    assert (again.probs, again.mass, again.tokens_in, again.latency_ms) == (
        {"A": 0.7, "B": 0.3},
        0.8,
        40,
        0.0,
    )
