"""Turning an item into the judge calls to make."""

from __future__ import annotations

import hashlib
import json

from app.engine.base import Conversation
from app.judging.domain import JudgeItem, JudgeOptions, PlannedCall, TemplateSpec
from app.judging.swap import orders_for
from app.judging.templates import TemplateError, check_template_fits, render


def prompt_hash(messages: Conversation) -> str:
    """SHA-256 (hex) of the conversation as canonical JSON: keys sorted, no spaces, UTF-8."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def plan_item(
    item: JudgeItem, template: TemplateSpec, options: JudgeOptions, item_index: int
) -> list[PlannedCall]:
    """One call per order the item is judged in (see :func:`app.judging.swap.orders_for`) and sample
    (``options.samples``), sample by sample: each sample's orders are next to each other.

    ``item.references`` must already hold the reference answers when the template shows them
    (generated ones included). Raises :class:`TemplateError` (field ``"template"``) when the
    template cannot judge the item.
    """
    problem = check_template_fits(template, item, options.mode, item.references is not None, options.cot)
    if problem is not None:
        raise TemplateError(problem, "template")
    rendered = [
        (order, render(template, item, order, options.scale))
        for order in orders_for(options.mode, options.swap, options.seed, item_index)
    ]
    hashes = [prompt_hash(messages) for _, messages in rendered]
    return [
        PlannedCall(
            order=order,
            messages=messages,
            prompt_hash=hashed,
            response_prefix=template.response_prefix,
            sample=sample,
        )
        for sample in range(options.samples)
        for (order, messages), hashed in zip(rendered, hashes, strict=True)
    ]
