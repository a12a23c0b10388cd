"""Request schemas of the judging endpoints (the API contract)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from app.jobs.schemas import JobOptionsIn
from app.judging.domain import JudgeItem, Rubric


def _bad(field: str, message: str) -> PydanticCustomError:
    """A validation error that names the item field at fault (the error handler appends it to the loc)."""
    return PydanticCustomError("invalid_item", message, {"field": field})


class ReferenceAuto(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto: Literal[True] = Field(
        description="Have the judge model first write its own answer to each question and use it as the "
        "reference (items that carry their own reference keep theirs)."
    )


class ScaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float = Field(default=1, ge=-1000, le=1000, description="Lowest score on the scale (inclusive).")
    max: float = Field(default=10, ge=-1000, le=1000, description="Highest score on the scale (inclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max <= self.min:
            raise ValueError(f"scale max ({self.max:g}) must be greater than min ({self.min:g})")
        return self


class _ItemBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, max_length=200, description="Your id for the item; echoed in results."
    )
    question: str | None = Field(default=None, min_length=1, description="The user question (single turn).")
    turns: list[str] | None = Field(
        default=None, min_length=1, max_length=64, description="The user turns of a multi-turn conversation."
    )
    reference: str | None = Field(default=None, min_length=1, description="Reference answer (single turn).")
    references: list[str] | None = Field(
        default=None, min_length=1, description="Reference answers, one per turn (multi-turn)."
    )
    turn: int | None = Field(
        default=None, ge=1, description="Which turn to judge, counted from 1; default the last turn."
    )

    def _user_turns(self) -> list[str]:
        if (self.question is None) == (self.turns is None):
            raise _bad("question", "give exactly one of `question` or `turns`")
        return [self.question] if self.question is not None else list(self.turns or [])

    def _check_common(self, n_turns: int) -> None:
        if self.turns is not None and any(not t for t in self.turns):
            raise _bad("turns", "`turns` must not contain empty strings")
        if self.reference is not None and self.references is not None:
            raise _bad("references", "give at most one of `reference` or `references`")
        if self.reference is not None and self.question is None:
            raise _bad(
                "reference", "`reference` goes with `question`; use `references` (one per turn) with `turns`"
            )
        if self.references is not None and len(self.references) != n_turns:
            raise _bad(
                "references",
                f"`references` must have one entry per turn ({n_turns}), got {len(self.references)}",
            )
        if self.turn is not None and self.turn > n_turns:
            raise _bad("turn", f"turn {self.turn} was requested but the conversation has {n_turns} turn(s)")

    def _refs(self) -> tuple[str, ...] | None:
        if self.reference is not None:
            return (self.reference,)
        return tuple(self.references) if self.references is not None else None

    @abstractmethod
    def to_domain(self) -> JudgeItem:
        """The item as the judging core sees it."""


def _answers(single: str | None, many: list[str] | None, n_turns: int, one: str, per_turn: str) -> list[str]:
    """The answers of one side, one per turn, from either the single-turn or the per-turn field."""
    if (single is None) == (many is None):
        raise _bad(one, f"give exactly one of `{one}` or `{per_turn}`")
    if single is not None:
        if n_turns != 1:
            raise _bad(per_turn, f"a conversation of {n_turns} turns needs `{per_turn}`, one per turn")
        return [single]
    assert many is not None
    if len(many) != n_turns:
        raise _bad(per_turn, f"`{per_turn}` must have one answer per turn ({n_turns}), got {len(many)}")
    return many


class PairwiseItem(_ItemBase):
    answer_a: str | None = Field(default=None, description="Answer A (single turn).")
    answer_b: str | None = Field(default=None, description="Answer B (single turn).")
    answers_a: list[str] | None = Field(default=None, description="Assistant A's answers, one per turn.")
    answers_b: list[str] | None = Field(default=None, description="Assistant B's answers, one per turn.")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        n = len(self._user_turns())
        _answers(self.answer_a, self.answers_a, n, "answer_a", "answers_a")
        _answers(self.answer_b, self.answers_b, n, "answer_b", "answers_b")
        self._check_common(n)
        return self

    def to_domain(self) -> JudgeItem:
        turns = self._user_turns()
        n = len(turns)
        return JudgeItem(
            turns=tuple(turns),
            answers_a=tuple(_answers(self.answer_a, self.answers_a, n, "answer_a", "answers_a")),
            answers_b=tuple(_answers(self.answer_b, self.answers_b, n, "answer_b", "answers_b")),
            references=self._refs(),
            turn=(self.turn - 1) if self.turn is not None else n - 1,
        )


class RubricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criteria: str = Field(
        min_length=1,
        max_length=4000,
        description="What the answer is judged on (e.g. 'Is the proof correct?').",
    )
    descriptions: dict[str, str] = Field(
        min_length=2,
        max_length=10,
        description='What each whole score of the request\'s scale means, keyed by the score (`"1"` to '
        '`"5"` for `scale: {min: 1, max: 5}`); every score of the scale needs one.',
    )


class SingleItem(_ItemBase):
    answer: str | None = Field(default=None, description="The answer to grade (single turn).")
    answers: list[str] | None = Field(default=None, description="The assistant's answers, one per turn.")
    rubric: RubricIn | None = Field(
        default=None,
        description="This item's own rubric (prometheus-eval style): graded with a rubric template "
        "(default `single-rubric`, or `single-rubric-ref` with a reference), which shows it as `{rubric}`. "
        "Single-turn items, a whole-number scale of at most 10 scores; kept on the item's result.",
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        n = len(self._user_turns())
        _answers(self.answer, self.answers, n, "answer", "answers")
        self._check_common(n)
        return self

    def to_domain(self) -> JudgeItem:
        turns = self._user_turns()
        return JudgeItem(
            turns=tuple(turns),
            answers_a=tuple(_answers(self.answer, self.answers, len(turns), "answer", "answers")),
            references=self._refs(),
            turn=(self.turn - 1) if self.turn is not None else len(turns) - 1,
            rubric=_rubric(self.rubric),
        )


def _rubric(rubric: RubricIn | None) -> Rubric | None:
    """The rubric with its scores in order (each key a whole number: the service checks them against the
    request's scale)."""
    if rubric is None:
        return None
    scored = sorted((int(score), text) for score, text in rubric.descriptions.items() if _whole(score))
    return Rubric(criteria=rubric.criteria, descriptions=tuple(scored))


def _whole(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


class JurorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="The judge's registered model name.")
    weight: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="The judge's weight under `aggregate: weighted` (default 1); only with `weighted`.",
    )
    template: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="This judge's template (`name` or `name@version`); default the request's `template`.",
    )


class _JudgeRequestBase(JobOptionsIn):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Judge model name; default the service's default.",
    )
    template: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="Template name (`name` for the latest version or `name@version`); default: the built-in "
        "template that fits each item (multi-turn, reference, cot).",
    )
    judges: list[str | JurorIn] | None = Field(
        default=None,
        min_length=2,
        max_length=7,
        description="A jury (Verga et al. 2024): 2 to 7 distinct judge models (names, or `{model, weight, "
        "template}`) instead of `model`. Each judge judges every item on its own model's queue, with the "
        "request's other options; each item's `verdict` / `score` is the judges' `aggregate` and its "
        "`judges` lists every judge's own result. The jury is one job (one id, one progress, one cancel); "
        "its summary reports inter-judge agreement (Cohen's and Fleiss' kappa) and each judge's "
        "first-position rate.",
    )
    aggregate: Literal["majority", "mean", "weighted"] | None = Field(
        default=None,
        description="How a jury's verdicts combine. Pairwise: `majority` (default; the verdict most judges "
        "gave, verdicts sharing the most votes make a tie) or `weighted` (each judge's verdict counts its "
        "`weight`; the largest total wins, equal largest totals make a tie). Single: `mean` (default; the "
        "judges' mean score) or `weighted` (`sum(weight * score) / sum(weight)`). Only with `judges`.",
    )
    cot: bool = Field(default=False, description="Chain-of-thought: the judge works the problem out first.")
    reference: ReferenceAuto | None = Field(
        default=None, description='`{"auto": true}`: the judge writes its own reference answers first.'
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy.")
    max_tokens: int | None = Field(
        default=None, ge=1, description="Most tokens per judge output; default 256, or 1024 with `cot`."
    )
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Seed for sampling and for `swap: random`; recorded."
    )
    verdict_mode: Literal["generate", "logprobs"] = Field(
        default="generate",
        description="`generate`: the judge writes its verdict, which is parsed. `logprobs`: one forward "
        "pass reads the probability of each verdict label (A / B / C=tie, or each whole score on the "
        "scale) as the judge's next text after the template's `response_prefix`; results carry the "
        "distribution (`probabilities`), its most likely verdict and, when grading, the expected score. "
        "Needs `cot: false`, a template with a `response_prefix` and (single) a whole-number scale of at "
        "most 100 scores.",
    )

    samples: int = Field(
        default=1,
        ge=1,
        description="Self-consistency: judge each order this many times with sampled decoding (needs "
        "`temperature` above 0; at most the service's `max_samples`, default 10). The samples of both "
        "orders are pooled (Wang et al. 2023, balanced position calibration): pairwise, `verdict` is the "
        "label with the most votes (labels sharing the most votes make a tie), with `votes`; single, "
        "`score` is the mean, with `score_std`. `agreement` is the share of samples giving the most "
        "common verdict or score. Unparseable samples are left out; an order with none parseable is an "
        "item error. Every sample's raw output is kept in `orders`. Not with `verdict_mode: logprobs`, "
        "which reads the whole verdict distribution exactly in one pass: samples would repeat it.",
    )
    cache: Literal["use", "refresh", "off"] | None = Field(
        default=None,
        description="The verdict cache (your tenant's entries only). `use`: a judge call identical to an "
        "earlier one (same model and weights, template name@version and text, parser, decoding, item "
        "inputs and order) is served from the cache with no engine call, its result marked `cached: "
        "true`; other calls run and are stored. `refresh`: every call runs and replaces what was stored. "
        "`off`: the cache is neither read nor written. Default: `use` for greedy decoding (`temperature: "
        "0`), `off` for sampled decoding; a sampled verdict is reused only when you send `cache: use`, and "
        "then only by a call with the same `seed`.",
    )
    parser: Literal["strict", "fastchat"] | None = Field(
        default=None,
        description="How a generated verdict is read. `strict`: the last well-formed `[[A]]` / `[[B]]` / "
        "`[[C]]` marker, or the last `[[number]]` within the scale; no marker, or a score off the scale, is "
        "an item error. `fastchat`: FastChat llm_judge's rules: `[[A]]` anywhere wins, else `[[B]]`, "
        "else `[[C]]` (tie); a rating is the first `[[n]]`, else the first `[n]`, with no range check. "
        "Default: the template's parser (`strict` for the built-in templates). Not used with "
        "`verdict_mode: logprobs`.",
    )


class PairwiseRequest(_JudgeRequestBase):
    swap: Literal["none", "conservative", "random"] = Field(
        default="conservative",
        description="Position swap: `conservative` judges both orders and declares a winner only when both "
        "agree, else a tie (with `verdict_mode: logprobs`: when both orders' most likely labels agree; "
        "`probabilities` is the mean of both orders'); `random` picks one order per item from the recorded "
        "seed; `none` shows A first.",
    )
    items: list[PairwiseItem] = Field(
        min_length=1, description="Items to judge (1 to the configured maximum)."
    )


class SingleRequest(_JudgeRequestBase):
    scale: ScaleIn = Field(default_factory=ScaleIn, description="Score scale; default 1 to 10.")
    items: list[SingleItem] = Field(min_length=1, description="Items to grade (1 to the configured maximum).")


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        description="Template name (lowercase letters, digits, `.`, `_`, `-`); re-registering adds a version",
    )
    mode: Literal["pairwise", "single"] = Field(description="Which judging endpoint the template serves.")
    multi_turn: bool = Field(default=False, description="Shows whole conversations (`{conversation_a}` ...).")
    reference: bool = Field(default=False, description="Shows a reference answer (`{reference}`).")
    cot: bool = Field(default=False, description="Asks the judge to reason before its verdict.")
    system: str = Field(default="", max_length=20000, description="System message (may be empty).")
    user: str = Field(min_length=1, max_length=50000, description="User message with `{placeholders}`.")
    response_prefix: str = Field(
        default="",
        max_length=200,
        description='Plain text that opens the judge\'s reply (e.g. `"Verdict: [["`); the model continues '
        "it, which keeps small judges in the verdict format. Kept at the start of each raw output.",
    )
    parser: Literal["strict", "fastchat"] = Field(
        default="strict",
        description="How the judge's verdict is read when a request names no `parser`: `strict` (the "
        "service's rules) or `fastchat` (FastChat llm_judge's: `[[A]]` anywhere wins, else `[[B]]`, else "
        "`[[C]]`; a rating is the first `[[n]]`, else the first `[n]`, unchecked).",
    )
    description: str = Field(default="", max_length=2000)


class TemplateOut(BaseModel):
    name: str
    version: int
    mode: Literal["pairwise", "single"]
    multi_turn: bool
    reference: bool
    cot: bool
    builtin: bool = Field(description="Shipped with the service (read-only).")
    system: str
    user: str
    response_prefix: str = Field(description="Text that opens the judge's reply (may be empty).")
    parser: Literal["strict", "fastchat"] = Field(
        description="How the judge's verdict is read when a request names no `parser` (see the judging "
        "requests' `parser`)."
    )
    placeholders: list[str] = Field(description="The placeholders the template uses.")
    description: str


class TemplateList(BaseModel):
    templates: list[TemplateOut]
