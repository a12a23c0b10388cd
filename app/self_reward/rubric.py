"""The additive 5-point judge of Self-Rewarding Language Models (Yuan et al. 2024): the model grades
its own answers, one point per criterion met, and ends with ``Score: <points>``.

Judges write their reasoning first and may mention numbers and even score-like phrases on the way, so
the score is the LAST score-like phrase in the text. Sampled judges do not always keep to the asked
format, so common spellings are accepted ("Score: 4/5", "**Score:** 4", "I award 4 points",
"4 out of 5", "[[4]]", "Score: four").
"""

from __future__ import annotations

import functools
import re

from app.engine.base import Conversation
from app.self_reward.domain import EvalExample, Score

MAX_SCORE = 5

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
_NUM = r"-?\d+(?:\.\d+)?|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b"
# Markdown a judge wraps around parts of its score line: bold, italics, code, headings.
_MD = r"[\s*_`#]*"
_SCORE_PATTERNS = re.compile(
    "|".join(
        (
            # "Score: 4", "Total score: 3 points", "score = 4", "**Score:** 4", "score of 4", "Score - 4/5"
            rf"\b(?:scored?|scores|total|rating){_MD}(?:(?:is|of|would\s+be|will\s+be|[:=–]|-(?!\d)){_MD}){{0,3}}"
            rf"(?P<keyword>{_NUM})"
            rf"(?:{_MD}(?:/|out\s+of){_MD}\d+)?",
            # "I award 4 points", "I'd give it a 4 out of 5"
            rf"\b(?:award|give|assign|grant)(?:s|ed)?\b[^.\n\d]{{0,30}}?(?P<award>{_NUM}){_MD}"
            r"(?:points?\b|/|out\s+of\b)",
            # "[[4]]", the marker of MT-Bench style judges
            rf"\[\[\s*(?P<bracket>{_NUM})\s*\]\]",
        )
    ),
    re.IGNORECASE,
)
# "4 out of 5" and "4/5" on their own, only against the scale's own maximum: "2 out of 3 criteria"
# is not a score.
_FRACTION = r"(?P<value>{num}){md}(?:/|out\s+of){md}{max}\b"


def judge_conversation(prompt: str, response: str) -> Conversation:
    """A one-message chat asking a judge to grade ``response`` to ``prompt`` on the additive 0-5
    rubric, justify briefly, and end with the line ``Score: <points>`` (read it with
    :func:`parse_score`)."""
    content = (
        "Review the user's question and the response below, and grade the response with the additive "
        "5-point scale described here. Points add up: each criterion the response meets earns one point.\n\n"
        "- Add 1 point if the response is relevant and gives some information related to the user's "
        "request, even if it is incomplete or includes some irrelevant content.\n"
        "- Add a 2nd point if the response addresses a substantial portion of the user's question, but "
        "does not completely resolve it or give a direct answer.\n"
        "- Add a 3rd point if the response answers the basic elements of the user's question in a useful "
        "way, whether or not it reads like an AI assistant's answer or like a search result.\n"
        "- Add a 4th point if the response is clearly written from an AI assistant's perspective, "
        "addresses the user's question directly and completely, and is well organized and helpful, even "
        "if there is slight room for improvement in clarity, concision or focus.\n"
        "- Add a 5th point if the response is impeccably tailored to the user's question by an AI "
        "assistant, with no extraneous content, and shows expert knowledge in a high-quality, engaging "
        "and insightful answer.\n\n"
        f"<question>\n{prompt}\n</question>\n\n"
        f"<response>\n{response}\n</response>\n\n"
        "After reviewing the question and the response:\n"
        "- Justify your total briefly, in up to 100 words.\n"
        f"- End with a line of the form `Score: <points>`, where <points> is the total from 0 to {MAX_SCORE}."
    )
    return [{"role": "user", "content": content}]


def _value(token: str) -> float:
    # The token matched _NUM, so it is a number word or a plain decimal that float() reads.
    word = _NUMBER_WORDS.get(token.lower())
    return word if word is not None else float(token)


@functools.lru_cache(maxsize=8)
def _fraction(max_score: int) -> re.Pattern[str]:
    return re.compile(_FRACTION.format(num=_NUM, md=_MD, max=max_score), re.IGNORECASE)


def _format(value: float) -> str:
    return f"{value:g}"


def parse_score(raw: str, max_score: int = MAX_SCORE) -> Score:
    """The score a rubric judgment ends with: the last score-like phrase in ``raw``.

    A value outside ``0..max_score`` gives ``Score(None, "score 7 is outside 0-5")``, no score at all
    ``Score(None, "no score found")``; a fraction such as 3.5 is kept as it is. Never raises.
    """
    last: tuple[int, str] | None = None
    for pattern in (_SCORE_PATTERNS, _fraction(max_score)):
        for match in pattern.finditer(raw):
            token = next(group for group in match.groups() if group is not None)
            # Compared by where each phrase ends: "Score: 4/5" is one phrase, and so is "4/5" inside it.
            if last is None or match.end() > last[0]:
                last = (match.end(), token)
    if last is None:
        return Score(None, "no score found")
    value = _value(last[1])
    if not 0 <= value <= max_score:
        return Score(None, f"score {_format(value)} is outside 0-{max_score}")
    return Score(value)


def eft_judgment_ok(example: EvalExample) -> str | None:
    """Why an evaluation-fine-tuning example is unusable, or None when it is sound: its judgment must
    end in a readable score equal to the example's stated ``score``, within 0-5."""
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
        return f"the judgment ends with score {_format(parsed.value)} but the example states {example.score}"
    return None
