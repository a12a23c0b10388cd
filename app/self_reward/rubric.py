"""The additive 5-point judge of Self-Rewarding Language Models (Yuan et al. 2024, Figure 2): the model
grades its own answers, one point per criterion met, and ends with ``Score: <points>``.

The score is read where the references read it: on the first ``Score:`` line (their parsers search for
``Score: <number>`` and take the first match). What a judge writes after that line does not count, so
"Score: 4. A 5 would need examples" is a 4, and generation stops after the score line (:data:`STOP`).
"""

from __future__ import annotations

import re

from app.engine.base import Conversation, Generation
from app.self_reward.domain import EvalExample, Score

MAX_SCORE = 5

# Generation stops once the score line is written (the stop string is reported back and re-attached
# by :func:`judgment_text`). A line with more after the number ("Score: 4 points") does not stop
# generation, but is still read first.
STOP: tuple[str, ...] = tuple(f"Score: {n}\n" for n in range(MAX_SCORE + 1))

_NUMBER_WORDS = {
    "zero": 0.0,
    "one": 1.0,
    "two": 2.0,
    "three": 3.0,
    "four": 4.0,
    "five": 5.0,
    "six": 6.0,
    "seven": 7.0,
    "eight": 8.0,
    "nine": 9.0,
    "ten": 10.0,
}
# Markdown a judge puts around its score line ("**Score:** 4", "### Score: 3", "Score: `2`"), on the
# same line only: the number belongs on the Score line.
_MD = r"[ \t*_`#]*"
_SCORE_LINE = re.compile(
    rf"\bscore{_MD}:{_MD}(?P<value>-?\d+(?:\.\d+)?|(?:{'|'.join(_NUMBER_WORDS)})\b)",
    re.IGNORECASE,
)


def judge_conversation(prompt: str, response: str) -> Conversation:
    """A one-message chat asking a judge to grade ``response`` to ``prompt`` on the additive 0-5
    rubric, justify briefly, and end with the line ``Score: <points>`` (read it with
    :func:`parse_score`). The structure is the paper's (Figure 2): the rubric, the user's turn and the
    response, what to write, then the reminder to judge as the AI Assistant with web-search knowledge."""
    content = (
        "Read the user's question and the response that follows, and grade the response with the "
        "additive 5-point scale described here. Points accumulate: each criterion the response meets "
        "earns one point.\n\n"
        "- Add 1 point if the response is relevant and gives some information related to the user's "
        "request, even if it is incomplete or includes some irrelevant content.\n"
        "- Add a 2nd point if the response addresses a substantial portion of the user's question, but "
        "does not completely resolve it or give a direct answer.\n"
        "- Add a 3rd point if the response answers the basic elements of the user's question in a useful "
        "way, whether or not it reads like an AI Assistant's answer or like a blog post or search result.\n"
        "- Add a 4th point if the response is clearly written from an AI Assistant's perspective, "
        "addresses the user's question directly and completely, and is well organized and helpful, even "
        "if there is slight room for improvement in clarity, concision or focus.\n"
        "- Add a 5th point if the response is impeccably tailored to the user's question by an AI "
        "Assistant, with no extraneous content, and shows expert knowledge in a high-quality, engaging "
        "and insightful answer.\n\n"
        f"User: {prompt}\n"
        f"<response>{response}</response>\n\n"
        "Once you have examined the user's question and the response:\n\n"
        "- Justify your total briefly, in up to 100 words.\n"
        f'- Finish with the score in the form: "Score: <points>" (a total from 0 to {MAX_SCORE}).\n\n'
        "Keep in mind to judge from the AI Assistant's perspective, drawing on web-search knowledge "
        "where needed. To follow this additive scale, award the points one criterion at a time, as "
        "listed above."
    )
    return [{"role": "user", "content": content}]


def judgment_text(generation: Generation) -> str:
    """The whole judgment a generation holds: its text and the score line that stopped it, if one did."""
    return generation.text + (generation.stop_string or "")


def _format(value: float) -> str:
    return f"{value:g}"


def parse_score(raw: str, max_score: int = MAX_SCORE) -> Score:
    """The score on the first ``Score:`` line of ``raw`` (case and markdown around it do not matter; a
    number word such as "four" is read; "4/5" is a 4).

    A value outside ``0..max_score`` gives ``Score(None, "score 7 is outside 0-5")``, no ``Score:``
    line with a number ``Score(None, "no 'Score:' line found")``; a fraction such as 3.5 is kept as it
    is. Never raises.
    """
    match = _SCORE_LINE.search(raw)
    if match is None:
        return Score(None, "no 'Score:' line found")
    token = match["value"]
    word = _NUMBER_WORDS.get(token.lower())
    value = word if word is not None else float(token)
    if not 0 <= value <= max_score:
        return Score(None, f"score {_format(value)} is outside 0-{max_score}")
    return Score(value)


def eft_judgment_ok(example: EvalExample) -> str | None:
    """Why an evaluation-fine-tuning example is unusable, or None when it is sound: its judgment's
    ``Score:`` line must hold a readable score equal to the example's stated ``score``, within 0-5."""
    if not example.prompt.strip():
        return "the prompt is empty"
    if not example.response.strip():
        return "the response is empty"
    if not 0 <= example.score <= MAX_SCORE:
        return f"the stated score {example.score} is outside 0-{MAX_SCORE}"
    parsed = parse_score(example.judgment)
    if parsed.value is None:
        return f"the judgment has no usable score: {parsed.error}"
    if parsed.value != example.score:
        return f"the judgment's score is {_format(parsed.value)} but the example states {example.score}"
    return None
