"""The named verdict parsers a judging request or template may choose: ``strict`` (the service's,
:mod:`app.judging.verdicts`) and ``fastchat`` (FastChat llm_judge's rules,
:mod:`app.judging.fastchat_verdicts`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.judging import fastchat_verdicts, verdicts
from app.judging.domain import Scale, TemplateSpec, Verdict, VerdictParser


@dataclass(frozen=True)
class VerdictRules:
    """How one parser reads a pairwise verdict and a score out of a judge's text (both raise
    :class:`app.judging.verdicts.VerdictParseError` when there is none)."""

    pairwise: Callable[[str], Verdict]
    score: Callable[[str, Scale], float]


PARSERS: dict[VerdictParser, VerdictRules] = {
    "strict": VerdictRules(verdicts.parse_pairwise, verdicts.parse_score),
    # FastChat checks no range: the scale is not consulted.
    "fastchat": VerdictRules(
        fastchat_verdicts.parse_pairwise, lambda raw, _scale: fastchat_verdicts.parse_rating(raw)
    ),
}


def resolve_parser(requested: VerdictParser | None, templates: Iterable[TemplateSpec]) -> VerdictParser:
    """The parser of a job: the request's when it names one, else the one its templates share.
    Raises ``ValueError`` when the templates name different parsers and the request none."""
    if requested is not None:
        return requested
    named = sorted({spec.parser for spec in templates})
    if len(named) > 1:
        raise ValueError(f"the templates of this request read verdicts differently ({', '.join(named)})")
    return named[0] if named else "strict"
