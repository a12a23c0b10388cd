"""Whether an item's prompts fit the judge model's context: each prompt the worker will send for it
(one judge prompt per order; with ``reference: {"auto": true}``, first the prompt asking for its
reference answer), measured as the engine measures it, plus the tokens the engine adds after it
(``max_tokens`` when generating, the longest verdict label when reading label probabilities).

Generated reference answers are not known at submission: those prompts are measured without them,
so an item is refused only when it cannot fit whatever the references say (the worker still fails an
item whose references push it over).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from app.engine.base import Conversation
from app.judging.domain import JudgeItem, JudgeOptions, Order, TemplateSpec
from app.judging.swap import orders_for
from app.judging.templates import reference_prompt, render
from app.models.context import ContextWindow


@dataclass(frozen=True)
class PromptBudget:
    """A model's context window and what the engine adds after each judge prompt."""

    window: ContextWindow
    max_tokens: int
    # Tokens the engine adds after a judge prompt, and how a message names them.
    judge_extra: int
    judge_extra_text: str

    @classmethod
    def generating(cls, window: ContextWindow, max_tokens: int) -> PromptBudget:
        return cls(window, max_tokens, max_tokens, f"max_tokens {max_tokens}")

    @classmethod
    def scoring(cls, window: ContextWindow, max_tokens: int, labels: Sequence[str]) -> PromptBudget:
        """Probability verdicts: the engine scores each label as a continuation of the prompt."""
        longest = max(window.count(label) for label in labels)
        return cls(window, max_tokens, longest, f"the verdict labels' {longest} token(s)")


def item_problem(
    budget: PromptBudget,
    item: JudgeItem,
    template: TemplateSpec,
    options: JudgeOptions,
    index: int,
    auto_reference: bool,
) -> str | None:
    """Why item ``index`` cannot fit the context (a message naming ``items[index]`` and the limit),
    or None. ``auto_reference``: the judge writes the item's reference answers first."""
    window = budget.window
    context = window.context
    if auto_reference:
        # The reference of the judged turn is asked for with every earlier turn in context.
        asked = reference_prompt(item, item.judged_turn, [""] * item.judged_turn)
        tokens = _tokens_over(window, [asked], context - budget.max_tokens)
        if tokens is not None:
            return (
                f"items[{index}]: the prompt asking for its reference answer has {tokens} tokens; with "
                f"max_tokens {budget.max_tokens} it exceeds the model's context of {context} tokens"
            )
        item = dataclasses.replace(item, references=("",) * len(item.turns))
    prompts = [render(template, item, order, options.scale) for order in _orders(options, index)]
    tokens = _tokens_over(window, prompts, context - budget.judge_extra)
    if tokens is None:
        return None
    before = " before its generated reference" if auto_reference else ""
    return (
        f"items[{index}]: the judge prompt has {tokens} tokens{before}; with {budget.judge_extra_text} "
        f"it exceeds the model's context of {context} tokens"
    )


def _orders(options: JudgeOptions, index: int) -> tuple[Order, ...]:
    return orders_for(options.mode, options.swap, options.seed, index)


def _tokens_over(window: ContextWindow, prompts: Sequence[Conversation], limit: int) -> int | None:
    """The largest token count among ``prompts`` that exceeds ``limit``, or None when all fit."""
    worst: int | None = None
    for prompt in prompts:
        tokens = window.tokens_within(window.render(prompt), limit)
        if tokens is not None and tokens > limit and (worst is None or tokens > worst):
            worst = tokens
    return worst
