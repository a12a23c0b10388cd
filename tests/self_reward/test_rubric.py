import pytest

from app.engine.base import Generation
from app.self_reward.domain import EvalExample, Score
from app.self_reward.rubric import STOP, eft_judgment_ok, judge_conversation, judgment_text, parse_score


def test_judge_conversation_holds_the_rubric_the_item_and_the_score_format() -> None:
    conversation = judge_conversation("What is 2+2?", "It is 4.")
    assert len(conversation) == 1 and conversation[0]["role"] == "user"
    content = conversation[0]["content"]
    for criterion in (
        "relevant",
        "substantial portion",
        "basic elements",
        "AI Assistant's perspective",
        "expert",
    ):
        assert criterion in content
    assert content.count("Add ") == 5
    assert '"Score: <points>"' in content


def test_judge_conversation_follows_the_papers_figure_2() -> None:
    """Figure 2 of the paper: the additive rubric, then the user's turn as "User: ..." and the response
    in <response> tags, then the instructions (justify in up to 100 words, end with the score), and
    last the reminder to assess from the AI Assistant's perspective with web-search knowledge."""
    content = judge_conversation("What is 2+2?", "It is 4.")[0]["content"]
    rubric = content.index("Add 1 point")
    user = content.index("User: What is 2+2?\n")
    response = content.index("<response>It is 4.</response>")
    justify = content.index("100 words")
    score = content.index('"Score: <points>"')
    reminder = content.index("AI Assistant's perspective, drawing on web-search knowledge")
    assert rubric < user < response < justify < score < reminder
    assert "<question>" not in content


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
        ("SCORE:4", 4.0),
        ("**Score:** 4", 4.0),
        ("**Score: 4**", 4.0),
        ("Score: **4**.", 4.0),
        ("### Score: 3", 3.0),
        ("Score: `2`", 2.0),
        ("Total score: 3 points", 3.0),
        ("Final Score: 4", 4.0),
        ("Score: four", 4.0),
        ("Score: Zero", 0.0),
        ("Score: 4.", 4.0),
        ("Score: 4!!", 4.0),
        ("Score: 4 points)", 4.0),
        ("Score: 3.5", 3.5),
    ],
)
def test_parse_score_spellings(raw: str, value: float) -> None:
    assert parse_score(raw) == Score(value)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # The cases: the last score-like phrase used to win (5 in both).
        ("Relevant and correct.\nScore: 4\nI would not award 5 points: it lacks examples.", 4.0),
        ("Score: 3. To earn 5/5 it would need a worked example.", 3.0),
        # Like the references (a regex search for "Score: <number>"), the first Score line counts.
        ("Score: 2\nOn reflection it deserves more.\nScore: 4", 2.0),
        ("It would score 5 if it were complete.\n\nScore: 3", 3.0),
        ("I award 1 point for relevance and 1 for coverage.\nScore: 2\nI award 5 points.", 2.0),
        ("Score: 4\nCorrection: Score: 6", 4.0),
        # The instruction's placeholder echoed back is not a score line.
        ('The format is "Score: <points>".\nScore: 1', 1.0),
    ],
)
def test_the_score_line_wins_over_what_follows(raw: str, value: float) -> None:
    assert parse_score(raw).value == value


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("Score: 7", "score 7 is outside 0-5"),
        ("Score: -1", "score -1 is outside 0-5"),
        ("Score: 8/10", "score 8 is outside 0-5"),
        ("Score: 5.5", "score 5.5 is outside 0-5"),
        ("Score: six", "score 6 is outside 0-5"),
    ],
)
def test_out_of_range(raw: str, error: str) -> None:
    assert parse_score(raw) == Score(None, error)


def test_max_score_sets_the_range() -> None:
    assert parse_score("Score: 7", max_score=10) == Score(7.0)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "The response is good.",
        "Score: <points>",
        "It meets 2 out of 3 criteria.",
        # Score-like phrases without a Score line are not read (the references read none of them).
        "I award 4 points.",
        "4 out of 5",
        "[[4]]",
        "score = 4",
        # The number belongs on the Score line.
        "Score:\n\n5",
        "Scoreboard: 4",
    ],
)
def test_no_score_found(raw: str) -> None:
    assert parse_score(raw) == Score(None, "no 'Score:' line found")


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


def test_generation_stops_after_the_score_line_and_the_line_is_read_back() -> None:
    # One stop string per score: the judge's text ends with its score line.
    assert tuple(f"Score: {n}\n" for n in range(6)) == STOP
    stopped = Generation(
        text="Relevant and correct.\n",
        tokens_in=9,
        tokens_out=5,
        finish_reason="stop",
        stop_string="Score: 4\n",
    )
    assert judgment_text(stopped) == "Relevant and correct.\nScore: 4\n"
    assert parse_score(judgment_text(stopped)) == Score(4.0)
    ended = Generation(text="Fine.\nScore: 2", tokens_in=9, tokens_out=5, finish_reason="stop")
    assert parse_score(judgment_text(ended)) == Score(2.0)


def eft(judgment: str, score: int = 4, prompt: str = "Q?", response: str = "A.") -> EvalExample:
    return EvalExample(prompt=prompt, response=response, judgment=judgment, score=score)


def test_eft_judgment_ok() -> None:
    assert eft_judgment_ok(eft("Complete and well organized.\nScore: 4")) is None
    assert eft_judgment_ok(eft("Fine.\nScore: 3")) == "the judgment's score is 3 but the example states 4"
    assert eft_judgment_ok(eft("Fine.")) == "the judgment has no usable score: no 'Score:' line found"
    assert eft_judgment_ok(eft("Score: 9", score=9)) == "the stated score 9 is outside 0-5"
    assert eft_judgment_ok(eft("Score: 4", prompt=" ")) == "the prompt is empty"
    assert eft_judgment_ok(eft("Score: 4", response="")) == "the response is empty"
