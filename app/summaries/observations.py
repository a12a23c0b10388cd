"""Judged items as the observations summaries are computed from: who answered, what was asked, how
long the answers were, and what the judge said. Pure.

The models behind an item's answers are named, in this order, by an MT-Bench item id
(``<question>|<model_1>[|<model_2>]|<turn>``, as ``judge mtbench run`` tags its items), by the job's
metadata ``model_a`` / ``model_b`` (grading: ``model_a``), or else by the answers' labels ``A`` / ``B``.
An item's category is its job's metadata ``category``, if any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.jobs.schemas import ItemResult
from app.mtbench.records import parse_item_id
from app.stats.records import Game, Grade

MODEL_A_KEY = "model_a"
MODEL_B_KEY = "model_b"
CATEGORY_KEY = "category"


@dataclass(frozen=True)
class JudgedItem:
    """One item of a judging job, with what the summary needs of its job."""

    pairwise: bool
    metadata: Mapping[str, str]
    inputs: Mapping[str, Any]
    result: ItemResult


@dataclass
class Observations:
    games: list[Game] = field(default_factory=list)
    grades: list[Grade] = field(default_factory=list)
    results: list[ItemResult] = field(default_factory=list)


def _mtbench(item: JudgedItem) -> tuple[tuple[str, ...], str] | None:
    """(models, instruction) from an MT-Bench item id that fits the item's mode, else None."""
    try:
        question, models, turn = parse_item_id(item.result.id or "")
    except ValueError:
        return None
    return (models, f"{question}|{turn}") if len(models) == (2 if item.pairwise else 1) else None


def _named(item: JudgedItem) -> tuple[tuple[str, ...], str]:
    turn = int(item.inputs["turn"])
    instruction = "\n".join(item.inputs["turns"][: turn + 1])
    model_a = item.metadata.get(MODEL_A_KEY, "A")
    if not item.pairwise:
        return (model_a,), instruction
    return (model_a, item.metadata.get(MODEL_B_KEY, "B")), instruction


def observations(items: Iterable[JudgedItem]) -> Observations:
    """The games and grades of the judged items (every item's result is kept for the verdict
    figures). An MT-Bench task judged more than once (a resumed run) counts once, from the first item
    given: pass the newest first."""
    out = Observations()
    seen: set[str] = set()
    for item in items:
        tagged = _mtbench(item)
        if tagged is not None:
            if item.result.status != "pending" and item.result.id in seen:
                continue
            if item.result.status != "pending":
                seen.add(item.result.id or "")
        out.results.append(item.result)
        if item.result.status != "ok":
            continue
        models, instruction = tagged if tagged is not None else _named(item)
        category = item.metadata.get(CATEGORY_KEY)
        turn = int(item.inputs["turn"])
        if item.pairwise and item.result.verdict is not None:
            out.games.append(
                Game(
                    model_a=models[0],
                    model_b=models[1],
                    winner=item.result.verdict,
                    instruction=instruction,
                    length_a=len(item.inputs["answers_a"][turn]),
                    length_b=len(item.inputs["answers_b"][turn]),
                    category=category,
                )
            )
        elif not item.pairwise and item.result.score is not None:
            out.grades.append(Grade(models[0], item.result.score, category))
    return out
