"""What the optimizer model is asked (critique, edit, paraphrase) and how its replies are read.

Every request asks for answers wrapped in ``<START>`` and ``<END>``; the parsers also cope with the
messy replies of small models (missing or spaced markers, numbered lists, a leading label).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.engine.base import Conversation

_SYSTEM = (
    "You are an expert prompt engineer. You improve the instructions given to a language model that "
    "labels text. Follow the requested answer format exactly."
)

_START = re.compile(r"<\s*start\s*>", re.IGNORECASE)
_END = re.compile(r"<\s*end\s*>", re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}
_LIST_ITEM = re.compile(
    r"^\s*(?:\d{1,2}\s*[.):]|[-*\u2022]|(?:reason|problem|issue)\s*\d{0,2}\s*[.):-])\s*(?P<text>.*)$",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^\s*(?:\*\*)?\s*(?:(?:improved|new|better|revised|rewritten|updated|final|paraphrased)\s+)?"
    r"(?:instruction|prompt|output|answer|version|variation|paraphrase)s?\s*\d{0,2}\s*(?:\*\*)?\s*"
    r"[:\-]\s*(?:\*\*)?",
    re.IGNORECASE,
)
_PREFACE = re.compile(r"^\s*(?:here|sure|okay|ok|certainly|of course)\b[^\n]*:\s*\n", re.IGNORECASE)


# The placeholder texts the requests show inside <START> ... <END> to explain the format.
_FORMAT_EXAMPLES = frozenset({"first reason", "second reason", "improved instruction"})


def _is_format_example(text: str) -> bool:
    return text.lower().rstrip(".") in _FORMAT_EXAMPLES


def _conversation(user: str) -> Conversation:
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_errors(errors: Sequence[tuple[str, str, str | None]]) -> str:
    """The task model's mistakes as a numbered block for the optimizer.

    Each error is (the example as the task model saw it, its gold label, the predicted label or None
    when the answer named no label).
    """
    blocks = []
    for i, (text, gold, pred) in enumerate(errors, start=1):
        answer = pred if pred is not None else "(no recognisable label)"
        blocks.append(
            f"[Example {i}]\nInput:\n{text.strip()}\nCorrect label: {gold}\nModel's label: {answer}"
        )
    return "\n\n".join(blocks)


def gradient_conversation(task: str, errors_block: str, n_reasons: int) -> Conversation:
    """Ask for ``n_reasons`` reasons why the instruction ``task`` got the examples in ``errors_block``
    wrong, each wrapped in ``<START>`` ... ``<END>``."""
    user = (
        "A language model was given this instruction:\n"
        f'"""\n{task.strip()}\n"""\n\n'
        "With it, the model labelled the following examples incorrectly:\n\n"
        f"{errors_block}\n\n"
        f"Study the mistakes and give {_plural(n_reasons, 'distinct reason')} why the instruction may "
        "have led the model to these wrong labels: what it leaves unclear, misleading or missing. "
        "Write each reason on its own, wrapped between <START> and <END>, like this:\n"
        "<START>first reason<END>\n<START>second reason<END>"
    )
    return _conversation(user)


def edit_conversation(task: str, errors_block: str, reason: str, n_prompts: int) -> Conversation:
    """Ask for ``n_prompts`` improved versions of ``task`` that fix ``reason``, each in ``<START>`` ...
    ``<END>``."""
    user = (
        "A language model was given this instruction:\n"
        f'"""\n{task.strip()}\n"""\n\n'
        "With it, the model labelled the following examples incorrectly:\n\n"
        f"{errors_block}\n\n"
        f"A likely cause of these mistakes:\n{reason.strip()}\n\n"
        f"Write {_plural(n_prompts, 'improved version')} of the instruction that remove this cause. "
        "Keep the same task and the same labels. Each version must be an instruction only: no examples, "
        "no placeholders in curly braces, no section headers (lines starting with '#'), and no rules "
        "about the answer's format, which is given separately. "
        "Wrap each version between <START> and <END>, like this:\n"
        "<START>improved instruction<END>"
    )
    return _conversation(user)


def paraphrase_conversation(task: str) -> Conversation:
    """Ask for one rewording of ``task`` that keeps its meaning, in ``<START>`` ... ``<END>``."""
    user = (
        "Rewrite the following instruction in different words, keeping exactly its meaning and every "
        "requirement it states:\n"
        f'"""\n{task.strip()}\n"""\n\n'
        "Write only the rewritten instruction, wrapped between <START> and <END>."
    )
    return _conversation(user)


def _clean(text: str) -> str:
    text = text.strip()
    for fence in ('"""', "```"):
        if text.startswith(fence) and text.endswith(fence) and len(text) >= 2 * len(fence):
            text = text[len(fence) : -len(fence)].strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] == _QUOTES[text[0]]:
        inner = text[1:-1]
        # '"yes" or "no"' is quoted words, not a quoted whole.
        if text[0] in inner or text[-1] in inner:
            break
        text = inner.strip()
    return text


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item and item not in seen:
            seen.add(item)
            out.append(item)
    return out


def parse_delimited(reply: str) -> list[str]:
    """The texts between ``<START>`` and ``<END>`` markers, cleaned and de-duplicated, in order.

    Markers are matched case-insensitively and with inner spaces; a text with no ``<END>`` runs to the
    next ``<START>`` or to the end of the reply. Surrounding whitespace and quotes are removed and empty
    texts dropped.
    """
    starts = list(_START.finditer(reply))
    items = []
    for i, start in enumerate(starts):
        limit = starts[i + 1].start() if i + 1 < len(starts) else len(reply)
        end = _END.search(reply, start.end(), limit)
        item = _clean(reply[start.end() : end.start() if end else limit])
        # Small models echo the format example of the request; that is not an answer.
        if not _is_format_example(item):
            items.append(item)
    return _unique(items)


def _list_items(reply: str) -> list[str]:
    items: list[list[str]] = []
    open_item = False
    for line in reply.splitlines():
        match = _LIST_ITEM.match(line)
        if match:
            items.append([match.group("text").strip()])
            open_item = True
        elif not line.strip():
            open_item = False  # a blank line ends an item; text after it is commentary
        elif open_item:
            items[-1].append(line.strip())
    return [_clean(" ".join(part for part in item if part).replace("**", "")) for item in items]


def parse_gradients(reply: str, limit: int) -> list[str]:
    """At most ``limit`` reasons from a critique reply: the delimited texts, else the items of a
    numbered or bulleted list, else the whole reply when it is not empty."""
    if limit <= 0:
        return []
    items = parse_delimited(reply) or _unique(_list_items(reply))
    if not items:
        whole = _clean(_END.sub("", _START.sub("", reply)))
        items = [whole] if whole else []
    return items[:limit]


def parse_prompts(reply: str, limit: int) -> list[str]:
    """At most ``limit`` instructions from an edit or paraphrase reply: the delimited texts, else the
    whole reply without a leading label such as ``Improved instruction:``."""
    if limit <= 0:
        return []
    items = parse_delimited(reply)
    if not items:
        text = _END.sub("", _START.sub("", reply))
        text = _PREFACE.sub("", text, count=1)
        text = _clean(_LABEL.sub("", text, count=1))
        items = [text] if text and not _is_format_example(text) else []
    return items[:limit]
