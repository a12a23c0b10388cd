"""A word-level diff of two prompts (the initial prompt against the best one found). Pure."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

# Words and the whitespace between them, each a token: whitespace changes show where they happen.
_TOKENS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Segment:
    op: Literal["same", "added", "removed"]
    text: str


def prompt_diff(before: str, after: str) -> list[Segment]:
    """``before`` turned into ``after``: runs of unchanged, removed and added text, in reading order
    (removed text comes before the text that replaces it)."""
    a, b = _TOKENS.findall(before), _TOKENS.findall(after)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            segments.append(Segment("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            segments.append(Segment("removed", "".join(a[i1:i2])))
        if j2 > j1:
            segments.append(Segment("added", "".join(b[j1:j2])))
    return segments
