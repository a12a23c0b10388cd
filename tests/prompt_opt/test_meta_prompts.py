import pytest

from app.engine.base import Conversation
from app.prompt_opt.meta_prompts import (
    edit_conversation,
    format_errors,
    gradient_conversation,
    paraphrase_conversation,
    parse_delimited,
    parse_gradients,
    parse_prompts,
)

ERRORS = [("Text: great film", "positive", "negative"), ("Text: meh\n", "negative", None)]


def test_format_errors_numbers_each_example_with_its_labels() -> None:
    block = format_errors(ERRORS)
    assert block == (
        "[Example 1]\nInput:\nText: great film\nCorrect label: positive\nModel's label: negative\n\n"
        "[Example 2]\nInput:\nText: meh\nCorrect label: negative\nModel's label: (no recognisable label)"
    )
    assert format_errors([]) == ""


def _user(conversation: Conversation) -> str:
    assert [m["role"] for m in conversation] == ["system", "user"]
    return str(conversation[-1]["content"])


def test_gradient_conversation_shows_the_task_and_errors_and_asks_for_delimited_reasons() -> None:
    user = _user(gradient_conversation("Classify the review.", "ERRORS-BLOCK", 3))
    assert "Classify the review." in user and "ERRORS-BLOCK" in user
    assert "3 distinct reasons" in user and "<START>" in user and "<END>" in user
    assert "1 distinct reason " in _user(gradient_conversation("t", "e", 1))


def test_edit_conversation_asks_for_instructions_only() -> None:
    user = _user(edit_conversation("Classify the review.", "ERRORS-BLOCK", "It ignores sarcasm.", 2))
    assert "Classify the review." in user and "ERRORS-BLOCK" in user and "It ignores sarcasm." in user
    assert "2 improved versions" in user and "<START>" in user
    for rule in ("no examples", "no placeholders", "no section headers"):
        assert rule in user


def test_paraphrase_conversation() -> None:
    user = _user(paraphrase_conversation("Classify the review."))
    assert "Classify the review." in user and "<START>" in user and "<END>" in user


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("<START>one<END>\n<START>two<END>", ["one", "two"]),
        ("< start >one< End >  <START>  two  <END>", ["one", "two"]),
        ("<START>one<END><START>two", ["one", "two"]),  # missing final END takes the rest
        ("<START>one\n<START>two<END>", ["one", "two"]),  # missing END before the next START
        (
            '<START>"quoted"<END><START>\u201ccurly\u201d<END><START>"""triple"""<END>',
            ["quoted", "curly", "triple"],
        ),
        ('<START>Say "yes" or "no"<END>', ['Say "yes" or "no"']),
        ("<START> <END><START>a<END><START>a<END><START>b<END>", ["a", "b"]),
        ("Sure! Here you go:\n<START>\nmulti\nline\n<END>\nHope it helps.", ["multi\nline"]),
        ("no markers at all", []),
        ("", []),
    ],
)
def test_parse_delimited(reply: str, expected: list[str]) -> None:
    assert parse_delimited(reply) == expected


def test_parse_gradients_prefers_delimited_and_respects_the_limit() -> None:
    assert parse_gradients("<START>r1<END><START>r2<END><START>r3<END>", 2) == ["r1", "r2"]
    assert parse_gradients("<START>r1<END>", 0) == []


def test_parse_gradients_falls_back_to_list_items() -> None:
    reply = (
        "Here are the reasons:\n"
        "1. The instruction does not mention sarcasm,\n"
        "   which misleads the model.\n"
        "2) It never defines neutral.\n"
        "- **Too vague** about mixed reviews.\n"
        "\n"
        "I hope this helps!"
    )
    assert parse_gradients(reply, 5) == [
        "The instruction does not mention sarcasm, which misleads the model.",
        "It never defines neutral.",
        "Too vague about mixed reviews.",
    ]
    assert parse_gradients("Reason 1: vague.\nReason 2: short.", 5) == ["vague.", "short."]


def test_parse_gradients_falls_back_to_the_whole_reply() -> None:
    assert parse_gradients("  The instruction is too vague about sarcasm.  ", 3) == [
        "The instruction is too vague about sarcasm."
    ]
    assert parse_gradients("   ", 3) == []


def test_parse_prompts_prefers_delimited() -> None:
    assert parse_prompts("<START>p1<END> junk <START>p2<END>", 1) == ["p1"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Improved instruction: Decide if the review is positive.", "Decide if the review is positive."),
        ("**New prompt 2:** Decide carefully.", "Decide carefully."),
        ('Output: "Decide carefully."', "Decide carefully."),
        ("Here is the improved instruction:\nDecide carefully.\n", "Decide carefully."),
        ("Decide carefully. Note: sarcasm is negative.", "Decide carefully. Note: sarcasm is negative."),
        ("<START>Decide carefully.", "Decide carefully."),
    ],
)
def test_parse_prompts_falls_back_to_the_whole_reply_without_its_label(reply: str, expected: str) -> None:
    assert parse_prompts(reply, 3) == [expected]


def test_parse_prompts_of_an_empty_reply() -> None:
    assert parse_prompts("  ", 3) == []
    assert parse_prompts("Output:", 3) == []
    assert parse_prompts("anything", 0) == []


def test_an_echo_of_the_format_example_is_not_an_answer() -> None:
    from app.prompt_opt.meta_prompts import parse_delimited, parse_prompts

    assert parse_delimited("<START>Improved instruction<END>\n<START>Say yes or no.<END>") == [
        "Say yes or no."
    ]
    assert parse_delimited("<START>first reason<END><START>second reason<END>") == []
    assert parse_prompts("<START>improved instruction<END>", 1) == []
