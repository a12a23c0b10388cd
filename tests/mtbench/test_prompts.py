"""FastChat judge prompts turned into service templates (placeholders mapped, verdict formats kept)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.judging.domain import JudgeItem, Scale
from app.judging.templates import render
from app.judging.verdicts import parse_pairwise, parse_score
from app.mtbench import formats, prompts
from app.mtbench.formats import JudgePrompt
from app.mtbench.prompts import PromptError, Role
from tests.mtbench.conftest import JUDGE_PROMPTS

ITEM_2 = JudgeItem(
    turns=("Q one", "Q two"),
    answers_a=("A one", "A two"),
    answers_b=("B one", "B two"),
    references=("R one", "R two"),
    turn=1,
)


@pytest.fixture
def loaded() -> dict[str, JudgePrompt]:
    return formats.read_judge_prompts(JUDGE_PROMPTS)


def test_every_role_gets_fastchats_prompt(loaded: dict[str, JudgePrompt]) -> None:
    templates = prompts.from_fastchat(loaded)
    assert dict(templates.names) == {role: name for role, name in prompts.FASTCHAT_PROMPT_NAMES.items()}
    # The older two-score prompt of the file cannot be used and is not needed: it is left out.
    assert all(spec.name != "mtbench-pair-v1" for spec in templates.specs.values())
    spec = templates.spec(Role("pairwise", False, True))
    assert spec.name == "mtbench-pair-math-v1" and spec.reference and not spec.multi_turn
    assert "{reference}" in spec.user and "{ref_answer_1}" not in spec.user


def test_multi_turn_blocks_become_conversations(loaded: dict[str, JudgePrompt]) -> None:
    spec = prompts.template_from_prompt(loaded["pair-math-v1-multi-turn"])
    assert spec.multi_turn and spec.reference and spec.mode == "pairwise"
    # Each turn-by-turn block (with its first role line) is one placeholder; the text around stays.
    assert spec.user == (
        "<<Key begins>>\n\n{reference}\n\n<<Key ends>>\n\n"
        "<<Helper A begins>>\n\n{conversation_a}\n\n<<Helper A ends>>\n\n"
        "<<Helper B begins>>\n\n{conversation_b}\n\n<<Helper B ends>>"
    )
    messages = render(spec, ITEM_2, "BA", Scale())
    user = messages[-1]["content"]
    # Swapped order: B's conversation is shown as assistant A's; both turns and references are there.
    assert user.index("B two") < user.index("A two")
    assert all(text in user for text in ("Q one", "Q two", "R one", "R two"))
    assert messages[0] == {"role": "system", "content": loaded["pair-math-v1-multi-turn"].system_prompt}


def test_single_turn_prompt_renders_like_fastchat(loaded: dict[str, JudgePrompt]) -> None:
    prompt = loaded["single-math-v1"]
    spec = prompts.template_from_prompt(prompt)
    item = JudgeItem(turns=("Q one",), answers_a=("A one",), references=("R one",), turn=0)
    user = render(spec, item, "single", Scale())[-1]["content"]
    # Exactly what FastChat's str.format gives for the same values.
    assert user == prompt.prompt_template.format(question="Q one", answer="A one", ref_answer_1="R one")
    # And the verdict formats FastChat asks for are the ones the service parses.
    assert parse_score("I think so. Rating: [[7]]", Scale()) == 7
    assert parse_pairwise("Both fine, but [[B]]") == "B"


def test_unsupported_prompts_are_refused_with_the_reason(loaded: dict[str, JudgePrompt]) -> None:
    two_scores = replace(loaded["pair-v2"], output_format="[[rating_a,rating_b]]")
    with pytest.raises(
        PromptError, match="judge prompt 'pair-v2': output format '\\[\\[rating_a,rating_b\\]\\]'"
    ):
        prompts.from_fastchat({**loaded, "pair-v2": two_scores})
    odd = replace(loaded["single-v1"], prompt_template="{question} {answer} {model_name}")
    with pytest.raises(PromptError, match=r"placeholder \{model_name\} is not supported"):
        prompts.template_from_prompt(odd)
    broken = replace(loaded["single-v1-multi-turn"], prompt_template="{question_1} {question_2} {answer_2}")
    with pytest.raises(PromptError, match=r"\{question_1\} must start a conversation"):
        prompts.template_from_prompt(broken)
    literal = replace(loaded["single-v1"], prompt_template="Use JSON {{like this}}: {question} {answer}")
    assert "{{like this}}" in prompts.template_from_prompt(literal).user


def test_a_missing_role_names_the_prompt_fastchat_uses(loaded: dict[str, JudgePrompt]) -> None:
    only_single = {k: v for k, v in loaded.items() if k.startswith("single")}
    templates = prompts.from_fastchat(only_single)
    with pytest.raises(PromptError, match="'pair-v2-multi-turn' in judge_prompts.jsonl"):
        templates.spec(Role("pairwise", True, False))


def test_builtin_templates_cover_every_role() -> None:
    templates = prompts.builtin()
    assert templates.spec(Role("pairwise", True, True)).name == "pairwise-multi-ref"
    assert templates.name(Role("single", False, False)) == "single"
    assert prompts.builtin(cot=True).spec(Role("single", False, True)).name == "single-ref-cot"
    assert templates.custom == ()
