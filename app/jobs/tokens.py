"""How many tokens a model call costs, estimated before it runs. Pure.

Token costs of a call are known only after it ran, so long jobs project and admit calls on an estimate:
the prompt's characters / ``CHARS_PER_TOKEN`` plus the completion's token limit (an over-estimate for
the tokenizers we serve).
"""

from __future__ import annotations

CHARS_PER_TOKEN = 3


def estimate_tokens(prompt_chars: int, max_new_tokens: int) -> int:
    """Prompt plus completion tokens of one call, at most (roughly)."""
    return prompt_chars // CHARS_PER_TOKEN + 1 + max_new_tokens
