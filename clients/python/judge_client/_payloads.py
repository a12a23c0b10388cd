"""Request bodies of the judging endpoints, built from the client's arguments (no I/O). Wrong arguments
are an ``InvalidArgument``, raised before any request is sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypedDict

from pydantic import ValidationError

from judge_client.errors import InvalidArgument
from judge_client.types import Aggregate, Kind, PairwiseItem, SingleItem, Swap, VerdictMode, VerdictParser


class JudgeOptions(TypedDict, total=False):
    """Options of every judging request (left out: the service's default)."""

    model: str
    template: str
    cot: bool
    auto_reference: bool
    temperature: float
    max_tokens: int
    seed: int
    samples: int  # judgments per order, pooled (self-consistency; needs a temperature above 0)
    # A jury instead of `model`: 2-7 judge model names, or {"model", "weight", "template"} each.
    judges: Sequence[str | Mapping[str, Any]]
    aggregate: Aggregate  # how a jury's verdicts combine
    cache: Literal["use", "refresh", "off"]  # the verdict cache; default use (greedy), off (sampled)
    verdict_mode: VerdictMode
    parser: VerdictParser  # how generated verdicts are read: strict or fastchat
    metadata: dict[str, str]  # your labels: on the job, and a filter of `jobs(metadata=...)`
    callback_url: str  # called once when the job ends (signed webhook)


class PairwiseOptions(JudgeOptions, total=False):
    swap: Swap


class SingleOptions(JudgeOptions, total=False):
    scale: tuple[float, float]


class BatchOptions(PairwiseOptions, SingleOptions, total=False):
    """``swap`` only for pairwise batches, ``scale`` only for single ones."""


Item = PairwiseItem | SingleItem | Mapping[str, Any]


def _check_kind(kind: str) -> None:
    if kind not in ("pairwise", "single"):
        raise InvalidArgument(f"kind must be 'pairwise' or 'single', not {kind!r}")


def options_body(kind: Kind, options: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields for ``options``; ValueError for an option that is not one of ``kind``'s."""
    _check_kind(kind)
    known = set(BatchOptions.__annotations__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidArgument(f"unknown option(s): {', '.join(unknown)}")
    if kind == "single" and options.get("swap") is not None:
        raise InvalidArgument("swap applies to pairwise judging only")
    if kind == "pairwise" and options.get("scale") is not None:
        raise InvalidArgument("scale applies to single-answer grading only")
    body: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "auto_reference":
            if value:
                body["reference"] = {"auto": True}
        elif name == "judges":
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise InvalidArgument(f"judges must be a list of model names or mappings, not {value!r}")
            body["judges"] = [judge if isinstance(judge, str) else dict(judge) for judge in value]
        elif name == "scale":
            if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
                raise InvalidArgument(f"scale must be a pair (min, max), not {value!r}")
            low, high = value
            body["scale"] = {"min": low, "max": high}
        else:
            body[name] = value
    return body


def item_body(kind: Kind, item: Item) -> dict[str, Any]:
    """One item as JSON; a typed item must match ``kind``. Mappings are sent as they are (the service
    validates them and names the field at fault)."""
    if isinstance(item, PairwiseItem | SingleItem):
        expected = PairwiseItem if kind == "pairwise" else SingleItem
        if not isinstance(item, expected):
            raise InvalidArgument(f"a {type(item).__name__} cannot be judged as {kind}")
        return item.model_dump(exclude_none=True)
    if not isinstance(item, Mapping):
        raise InvalidArgument(
            f"an item must be a PairwiseItem, SingleItem or mapping, not {type(item).__name__}"
        )
    return dict(item)


def judging_body(kind: Kind, items: Iterable[Item], options: Mapping[str, Any]) -> dict[str, Any]:
    body = options_body(kind, options)
    body["items"] = [item_body(kind, item) for item in items]
    if not body["items"]:
        raise InvalidArgument("no items to judge")
    return body


def one_item(
    kind: Kind,
    question: str | Sequence[str],
    answers: Sequence[str | Sequence[str]],
    reference: str | Sequence[str] | None,
    turn: int | None,
    id: str | None,
) -> PairwiseItem | SingleItem:
    """A single- or multi-turn item: ``question`` a string (one turn) or the list of user turns, each
    answer (and ``reference``) a string or one entry per turn to match."""
    multi = not isinstance(question, str)
    for answer in answers:
        if isinstance(answer, str) == multi:
            raise InvalidArgument(
                "with a list of turns, give a list of answers (one per turn)"
                if multi
                else "with one question, give each answer as a string"
            )
    if reference is not None and isinstance(reference, str) == multi:
        raise InvalidArgument("give one reference per turn (a list) with a list of turns")
    try:
        return _build_item(kind, multi, question, answers, reference, turn, id)
    except ValidationError as exc:
        raise InvalidArgument(f"invalid {kind} item: {exc}") from exc


def _build_item(
    kind: Kind,
    multi: bool,
    question: str | Sequence[str],
    answers: Sequence[str | Sequence[str]],
    reference: str | Sequence[str] | None,
    turn: int | None,
    id: str | None,
) -> PairwiseItem | SingleItem:
    def one(value: str | Sequence[str]) -> str:
        assert isinstance(value, str)
        return value

    def many(value: str | Sequence[str]) -> list[str]:
        return list(value)

    common: dict[str, Any] = {"id": id, "turn": turn}
    if multi:
        common.update(turns=many(question), references=many(reference) if reference is not None else None)
    else:
        common.update(question=one(question), reference=one(reference) if reference is not None else None)
    if kind == "pairwise":
        a, b = answers
        if multi:
            return PairwiseItem(answers_a=many(a), answers_b=many(b), **common)
        return PairwiseItem(answer_a=one(a), answer_b=one(b), **common)
    (answer,) = answers
    if multi:
        return SingleItem(answers=many(answer), **common)
    return SingleItem(answer=one(answer), **common)
