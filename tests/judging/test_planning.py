import hashlib
import json
from dataclasses import replace

import pytest

from app.engine.base import Conversation
from app.judging.domain import JudgeItem, JudgeOptions, Scale, SwapMode
from app.judging.planning import plan_item, prompt_hash
from app.judging.swap import orders_for
from app.judging.templates import TemplateError, builtin_templates, render

BUILTIN = builtin_templates()
PAIR = JudgeItem(turns=("What is 2+2?",), answers_a=("4",), answers_b=("5",))
SINGLE = JudgeItem(turns=("What is 2+2?",), answers_a=("4",))


def test_prompt_hash_is_sha256_of_canonical_json() -> None:
    messages: Conversation = [{"role": "user", "content": "héllo"}]
    canonical = '[{"content":"héllo","role":"user"}]'
    assert json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == canonical
    assert prompt_hash(messages) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_prompt_hash_ignores_key_order_but_not_content() -> None:
    base: Conversation = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    reordered: Conversation = [{"content": "s", "role": "system"}, {"content": "u", "role": "user"}]
    assert prompt_hash(base) == prompt_hash(reordered)
    assert len(prompt_hash(base)) == 64
    changed: Conversation = [{"role": "system", "content": "s"}, {"role": "user", "content": "u "}]
    swapped: Conversation = [{"role": "user", "content": "u"}, {"role": "system", "content": "s"}]
    roles: Conversation = [{"role": "user", "content": "s"}, {"role": "user", "content": "u"}]
    assert len({prompt_hash(m) for m in (base, changed, swapped, roles)}) == 4


@pytest.mark.parametrize(
    ("swap", "orders"),
    [("none", ["AB"]), ("conservative", ["AB", "BA"])],
)
def test_plan_pairwise(swap: SwapMode, orders: list[str]) -> None:
    calls = plan_item(PAIR, BUILTIN["pairwise"], JudgeOptions(mode="pairwise", swap=swap), item_index=0)
    assert [call.order for call in calls] == orders
    for call in calls:
        assert call.messages == render(BUILTIN["pairwise"], PAIR, call.order, Scale())
        assert call.prompt_hash == prompt_hash(call.messages)
    assert len({call.prompt_hash for call in calls}) == len(calls)


def test_plan_random_follows_orders_for() -> None:
    options = JudgeOptions(mode="pairwise", swap="random", seed=9)
    seen = set()
    for index in range(40):
        calls = plan_item(PAIR, BUILTIN["pairwise"], options, item_index=index)
        assert tuple(call.order for call in calls) == orders_for("pairwise", "random", 9, index)
        seen.add(calls[0].order)
    assert seen == {"AB", "BA"}


def test_plan_single_uses_the_scale() -> None:
    options = JudgeOptions(mode="single", swap="conservative", scale=Scale(0, 5))
    calls = plan_item(SINGLE, BUILTIN["single"], options, item_index=3)
    assert [call.order for call in calls] == ["single"]
    assert "from 0 to 5" in calls[0].messages[1]["content"]


@pytest.mark.parametrize(
    ("item", "template", "options", "message_part"),
    [
        (PAIR, "single", JudgeOptions(mode="pairwise"), "is for single judging"),
        (PAIR, "pairwise-ref", JudgeOptions(mode="pairwise"), "request has none"),
        (replace(PAIR, references=("4",)), "pairwise", JudgeOptions(mode="pairwise"), "does not show them"),
        (
            JudgeItem(turns=("q1", "q2"), answers_a=("a1", "a2"), answers_b=("b1", "b2")),
            "pairwise",
            JudgeOptions(mode="pairwise"),
            "'pairwise-multi'",
        ),
    ],
)
def test_plan_rejects_a_template_that_does_not_fit(
    item: JudgeItem, template: str, options: JudgeOptions, message_part: str
) -> None:
    with pytest.raises(TemplateError) as info:
        plan_item(item, BUILTIN[template], options, item_index=0)
    assert info.value.field == "template"
    assert message_part in info.value.message


def test_plan_reference_template_with_references() -> None:
    item = replace(PAIR, references=("Four.",))
    calls = plan_item(
        item, BUILTIN["pairwise-ref-cot"], JudgeOptions(mode="pairwise", cot=True), item_index=0
    )
    assert "Four." in calls[0].messages[1]["content"]
