"""The new model against the previous one: it judges its held-out answers (A) against the previous
model's (B) with the built-in pairwise template, in both orders (conservative swap). No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.engine.base import Generation, SamplingParams
from app.judging.domain import CallOutput, JudgeItem, JudgeOptions, PlannedCall
from app.judging.planning import plan_item
from app.judging.swap import aggregate
from app.judging.templates import builtin_templates
from app.self_reward.evaluation import win_rate

# The judge calls end at the verdict: "[[A]]" needs a few tokens.
MAX_TOKENS = 16
SAMPLING = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, stop=("]]",))
OPTIONS = JudgeOptions(mode="pairwise", swap="conservative")


def plan(prompts: Sequence[str], new: Sequence[str], old: Sequence[str]) -> list[list[PlannedCall]]:
    """Each prompt's judge calls, one per order."""
    template = builtin_templates()["pairwise"]
    return [
        plan_item(JudgeItem(turns=(p,), answers_a=(a,), answers_b=(b,)), template, OPTIONS, i)
        for i, (p, a, b) in enumerate(zip(prompts, new, old, strict=True))
    ]


def summarize(plans: Sequence[Sequence[PlannedCall]], generations: Iterable[Generation]) -> dict[str, Any]:
    """Win, loss and tie rates of the new model from the replies to the planned calls (in plan order),
    with ``n`` prompts and the ``errors`` that gave no verdict."""
    replies = iter(generations)
    verdicts, errors = [], 0
    for calls in plans:
        outputs = []
        for call in calls:
            gen = next(replies)
            outputs.append(CallOutput(call.order, call.response_prefix + gen.text + (gen.stop_string or "")))
        outcome = aggregate("pairwise", "conservative", outputs, OPTIONS.scale)
        if outcome.verdict is None:
            errors += 1
        else:
            verdicts.append(outcome.verdict)
    rates: dict[str, Any] = win_rate(verdicts) if verdicts else {}
    return {**rates, "n": len(plans), "errors": errors}
