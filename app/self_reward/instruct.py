"""Self-instruct: the model writes new prompts from a few-shot list of earlier ones.

Each call shows the model a numbered list of tasks (mostly human-written seeds, a few it wrote itself)
and asks for the next one. Its reply is parsed back to the bare task text and filtered: too short or
too long, a near-duplicate of an earlier prompt (ROUGE-L), a task about inputs a text model cannot see,
or junk.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence

from app.engine.base import Conversation
from app.self_reward.domain import InstructSettings

# "Task 9:", "**Task 9.**", "task #9 -", an unnumbered "Task:" or "New task:", or a bare "9." / "9)"
# (at most three digits and a space after, so "1984: ..." or "3.5 ..." stay whole).
_LEADING_LABEL = re.compile(
    r"^[\s*_#]*(?:(?:new\s+)?task\s*(?:#?\s*\d+\s*[:.)\-]|:)|\d{1,3}[.):](?=\s))[\s*_]*",
    re.IGNORECASE,
)
# A line that starts the following item of the list: the model went on past its one task.
_NEXT_TASK_LINE = re.compile(r"^[\s*_#]*task\s*#?\s*\d+\s*[:.)\-]", re.IGNORECASE)
_QUOTES = "\"'“”‘’`"
_WORD = re.compile(r"[^\W_]+")
# Tasks that need an input a text-only model cannot take or produce: the filter from Self-Instruct
# (Wang et al. 2022), as whole words so "paragraph" or "profile" are kept.
_UNSEEABLE = re.compile(
    r"\b(images?|pictures?|photos?|photographs?|graphs?|diagrams?|videos?|audio|files?|attachments?|"
    r"urls?|https?|www)\b",
    re.IGNORECASE,
)
_QUOTE_LIMIT = 60


def few_shot_conversation(
    seed_prompts: Sequence[str],
    generated: Sequence[str],
    settings: InstructSettings,
    rng: random.Random,
) -> Conversation:
    """A one-message chat asking the model for one new task after a numbered list of examples.

    The list holds ``settings.seed_shots`` seed prompts and ``shots - seed_shots`` generated ones, in
    shuffled order; when there are too few generated prompts, seeds fill their places, and when there
    are too few of both the list is shorter. The reply is meant to be the text of the new task alone
    (read it with :func:`parse_new_prompt`). Raises ``ValueError`` when there is no prompt to show.
    """
    seeds = list(seed_prompts)
    n_seeds = min(max(settings.seed_shots, 0), settings.shots, len(seeds))
    n_generated = min(max(settings.shots - n_seeds, 0), len(generated))
    shown_seeds = rng.sample(seeds, n_seeds)
    shown_generated = rng.sample(list(generated), n_generated)
    # Seeds fill the places no generated prompt could take, up to ``shots`` in all.
    unused = [seed for seed in seeds if seed not in shown_seeds]
    fill = rng.sample(unused, min(settings.shots - n_seeds - n_generated, len(unused)))
    tasks = shown_seeds + fill + shown_generated
    if not tasks:
        raise ValueError("there is no example prompt to show")
    rng.shuffle(tasks)
    listed = "\n\n".join(f"Task {i}: {task.strip()}" for i, task in enumerate(tasks, start=1))
    next_number = len(tasks) + 1
    content = (
        "Here is a list of tasks that users have given to an AI assistant.\n\n"
        f"{listed}\n\n"
        f"Write Task {next_number}: one new task that a user might give the assistant. Make it different "
        "from every task above in topic and in wording, self-contained, and answerable in text alone. "
        f"Reply with the text of Task {next_number} only: no label, no answer to it, no commentary."
    )
    return [{"role": "user", "content": content}]


def parse_new_prompt(reply: str) -> str | None:
    """The new task in a model's reply to :func:`few_shot_conversation`, or None when it is empty.

    Drops a short preamble ending in a colon before a labelled task ("Here is one:\\nTask 9: ..."), a
    leading label ("Task 9:", "9."), everything from the next "Task N:" line on, and surrounding quotes
    and whitespace.
    """
    lines = reply.strip().splitlines()
    labelled = [i for i, line in enumerate(lines) if _NEXT_TASK_LINE.match(line)]
    if labelled and labelled[0] > 0 and "\n".join(lines[: labelled[0]]).rstrip().endswith(":"):
        lines = lines[labelled[0] :]
    if not lines:
        return None
    lines[0] = _LEADING_LABEL.sub("", lines[0], count=1)
    kept: list[str] = [lines[0]]
    for line in lines[1:]:
        if _NEXT_TASK_LINE.match(line):
            break
        kept.append(line)
    text = _strip_quotes("\n".join(kept).strip())
    return text or None


def task_complete(reply: str, hit_token_limit: bool) -> bool:
    """Whether the reply's first task is whole: the model stopped by itself, or went on to write the
    next task (a reply cut off inside its first task would give a truncated prompt)."""
    if not hit_token_limit:
        return True
    lines = reply.strip().splitlines()
    return any(_NEXT_TASK_LINE.match(line) for line in lines[1:])


def _strip_quotes(text: str) -> str:
    # Only quotes that wrap the whole task: in '"a" or "b"' the outer marks are not a pair.
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        inner = text[1:-1]
        if text[0] in inner or text[-1] in inner:
            break
        text = inner.strip()
    return text


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _f_measure(overlap: int, len_a: int, len_b: int) -> float:
    # F1 of precision overlap/len_b and recall overlap/len_a, simplified.
    return 2 * overlap / (len_a + len_b) if overlap else 0.0


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure (F1 of the longest common subsequence) of two texts' lowercased word tokens;
    0.0 when either has no word. Symmetric."""
    ta, tb = _tokens(a), _tokens(b)
    if not ta or not tb:
        return 0.0
    return _f_measure(_lcs_length(ta, tb), len(ta), len(tb))


def _closest_duplicate(candidate: str, existing: Sequence[str], threshold: float) -> tuple[str, float] | None:
    tokens = _tokens(candidate)
    if not tokens:
        return None
    bag = Counter(tokens)
    best: tuple[str, float] | None = None
    for prompt in existing:
        other = _tokens(prompt)
        if not other:
            continue
        # The shared-word count bounds the LCS from above; it rules most prompts out without the
        # quadratic LCS, which matters once thousands of prompts have been generated.
        if _f_measure(sum((bag & Counter(other)).values()), len(tokens), len(other)) < threshold:
            continue
        score = _f_measure(_lcs_length(tokens, other), len(tokens), len(other))
        if score >= threshold and (best is None or score > best[1]):
            best = (prompt, score)
    return best


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _QUOTE_LIMIT else flat[: _QUOTE_LIMIT - 3] + "...")


def filter_prompt(candidate: str, existing: Sequence[str], settings: InstructSettings) -> str | None:
    """Why a generated prompt should be dropped, or None to keep it.

    ``existing`` holds the seeds and every prompt kept so far. Checks, in order: empty, starts with
    punctuation, mostly symbols, fewer than ``min_words`` or more than ``max_words`` words, asks
    about images, files or links, and ROUGE-L against an existing prompt at or above ``max_rouge_l``
    (the reason names the closest one).
    """
    text = candidate.strip()
    if not text:
        return "empty prompt"
    if not text[0].isalnum():
        return f"starts with punctuation {text[0]!r}"
    visible = [ch for ch in text if not ch.isspace()]
    # Digits count with letters, or "Compute 12345 * 67890 + 111213" would look like junk.
    alnum = sum(ch.isalnum() for ch in visible)
    if alnum * 2 < len(visible):
        return f"mostly symbols ({alnum} of {len(visible)} characters are letters or digits)"
    words = len(text.split())
    if words < settings.min_words:
        return f"too short: {words} words (minimum {settings.min_words})"
    if words > settings.max_words:
        return f"too long: {words} words (maximum {settings.max_words})"
    unseeable = _UNSEEABLE.search(text)
    if unseeable:
        return f"mentions {unseeable.group(0).lower()!r}, which a text-only model cannot see or produce"
    duplicate = _closest_duplicate(text, existing, settings.max_rouge_l)
    if duplicate is not None:
        prompt, score = duplicate
        return f"near-duplicate of {_quote(prompt)} (ROUGE-L {score:.2f} >= {settings.max_rouge_l:.2f})"
    return None
