import pytest

from app.self_reward.domain import EvalExample, Score
from app.self_reward.rubric import eft_judgment_ok, judge_conversation, parse_score


def test_judge_conversation_holds_the_rubric_the_item_and_the_score_format() -> None:
    conversation = judge_conversation("What is 2+2?", "It is 4.")
    assert len(conversation) == 1 and conversation[0]["role"] == "user"
    content = conversation[0]["content"]
    assert "What is 2+2?" in content and "It is 4." in content
    assert content.index("What is 2+2?") < content.index("It is 4.")
    for criterion in (
        "relevant",
        "substantial portion",
        "basic elements",
        "AI assistant's perspective",
        "expert",
    ):
        assert criterion in content
    assert content.count("Add ") == 5
    assert content.rstrip().endswith("from 0 to 5.")
    assert "Score: <points>" in content


def test_the_format_the_judge_is_asked_for_parses() -> None:
    reply = "The answer is correct, direct and well organized, though terse.\nScore: 4"
    assert parse_score(reply) == Score(4.0)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("Score: 4", 4.0),
        ("score: 0", 0.0),
        ("Score: 5", 5.0),
        ("Score: 4/5", 4.0),
        ("Score: 4 / 5", 4.0),
        ("Score: 4 out of 5", 4.0),
        ("score = 4", 4.0),
        ("SCORE=4", 4.0),
        ("**Score:** 4", 4.0),
        ("**Score: 4**", 4.0),
        ("Score: **4**.", 4.0),
        ("### Score: 3", 3.0),
        ("Score: `2`", 2.0),
        ("Score:\n\n**5**", 5.0),
        ("Total score: 3 points", 3.0),
        ("Total: 3 points.", 3.0),
        ("The response earns a total of 2 points.", 2.0),
        ("Final score is: 4", 4.0),
        ("My score would be 3.", 3.0),
        ("The response scores 3 points.", 3.0),
        ("Score - 4", 4.0),
        ("I award 4 points", 4.0),
        ("I award this response 4 points.", 4.0),
        ("I'd give it a 3 out of 5.", 3.0),
        ("Overall I give the answer four points.", 4.0),
        ("4 out of 5", 4.0),
        ("Overall: 2/5.", 2.0),
        ("Score: four", 4.0),
        ("Score: Zero", 0.0),
        ("[[4]]", 4.0),
        ("Rating: [[ 2 ]]", 2.0),
        ("Score: 4.", 4.0),
        ("Score: 4!!", 4.0),
        ("Score: 4 points)", 4.0),
        ("Score: 3.5", 3.5),
        ("score of 4.5/5", 4.5),
    ],
)
def test_parse_score_spellings(raw: str, value: float) -> None:
    assert parse_score(raw) == Score(value)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("Score: 2\nOn reflection it deserves more.\nScore: 4", 4.0),
        ("It would score 5 if it were complete.\n\nScore: 3", 3.0),
        ("I award 1 point for relevance and 1 for coverage.\nTotal score: 2", 2.0),
        ("[[5]] is what a perfect answer gets; this one gets [[1]]", 1.0),
        ("Score: 4/5 seems fair, but the example is wrong, so 3 out of 5", 3.0),
        # A score out of range at the end is not rescued by an earlier valid one.
        ("Score: 4\nCorrection: Score: 6", None),
    ],
)
def test_last_occurrence_wins(raw: str, value: float | None) -> None:
    assert parse_score(raw).value == value


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("Score: 7", "score 7 is outside 0-5"),
        ("Score: -1", "score -1 is outside 0-5"),
        ("Score: 8/10", "score 8 is outside 0-5"),
        ("Score: 5.5", "score 5.5 is outside 0-5"),
        ("[[10]]", "score 10 is outside 0-5"),
        ("Score: six", "score 6 is outside 0-5"),
    ],
)
def test_out_of_range(raw: str, error: str) -> None:
    assert parse_score(raw) == Score(None, error)


def test_max_score_sets_the_range_and_the_bare_fraction_denominator() -> None:
    assert parse_score("Score: 7", max_score=10) == Score(7.0)
    assert parse_score("7 out of 10", max_score=10) == Score(7.0)
    assert parse_score("7 out of 10") == Score(None, "no score found")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "The response is good.",
        "Score: <points>",
        "It meets 2 out of 3 criteria.",
        "The answer lists 4 items and 5 examples.",
        "This deserves a high score. 3 criteria are met.",
        "Scoreboard",
    ],
)
def test_no_score_found(raw: str) -> None:
    assert parse_score(raw) == Score(None, "no score found")


def test_parse_score_never_raises_on_odd_input() -> None:
    for raw in [
        "Score: 99999999999999999999999999",
        "[[]]",
        "Score: ::::",
        "\x00Score\x00: 4",
        "Score: 1e9",
        "🙂" * 50,
    ]:
        result = parse_score(raw)
        assert (result.value is None) != (result.error is None)


def eft(judgment: str, score: int = 4, prompt: str = "Q?", response: str = "A.") -> EvalExample:
    return EvalExample(prompt=prompt, response=response, judgment=judgment, score=score)


def test_eft_judgment_ok() -> None:
    assert eft_judgment_ok(eft("Complete and well organized.\nScore: 4")) is None
    assert (
        eft_judgment_ok(eft("Fine.\nScore: 3")) == "the judgment ends with score 3 but the example states 4"
    )
    assert eft_judgment_ok(eft("Fine.")) == "the judgment has no usable score: no score found"
    assert eft_judgment_ok(eft("Score: 9", score=9)) == "the stated score 9 is outside 0-5"
    assert eft_judgment_ok(eft("Score: 4", prompt=" ")) == "the prompt is empty"
    assert eft_judgment_ok(eft("Score: 4", response="")) == "the response is empty"
