"""Plain value types shared by the pure judging core, the service layer and the workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.engine.base import Conversation

Mode = Literal["pairwise", "single"]
SwapMode = Literal["none", "conservative", "random"]
Order = Literal["AB", "BA", "single"]
Verdict = Literal["A", "B", "tie"]
ItemStatus = Literal["ok", "error"]
# generate: the judge writes its verdict and we parse it; logprobs: one forward pass reads the
# probabilities of the verdict labels as the judge's next text (non-CoT templates with a reply prefix).
VerdictMode = Literal["generate", "logprobs"]
# How a generated verdict is read: strict (the last well-formed marker, scores within the scale) or
# fastchat (FastChat llm_judge's rules, see app/judging/fastchat_verdicts.py).
VerdictParser = Literal["strict", "fastchat"]


@dataclass(frozen=True)
class Scale:
    """Inclusive score range for single-answer grading (MT-Bench uses 1..10)."""

    min: float = 1
    max: float = 10

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max


@dataclass(frozen=True)
class Rubric:
    """An item's own grading rubric (prometheus-eval style): what is judged, and what each whole score
    on the scale means, lowest first."""

    criteria: str
    descriptions: tuple[tuple[int, str], ...]

    def text(self) -> str:
        """The rubric as the judge reads it."""
        lines = [f"Criteria: {self.criteria}"]
        lines += [f"Score {score}: {description}" for score, description in self.descriptions]
        return "\n".join(lines)


@dataclass(frozen=True)
class JudgeItem:
    """One item to judge, normalised: a single-turn item is a conversation of one turn.

    ``answers_a`` holds the single answer(s) in single mode; ``answers_b`` is None there.
    ``references`` (when given) has one reference answer per turn. ``turn`` is 0-based.
    """

    turns: tuple[str, ...]
    answers_a: tuple[str, ...]
    answers_b: tuple[str, ...] | None = None
    references: tuple[str, ...] | None = None
    turn: int = -1
    # Single grading: the item's own rubric, shown by a rubric template ({rubric}).
    rubric: Rubric | None = None

    @property
    def judged_turn(self) -> int:
        return self.turn if self.turn >= 0 else len(self.turns) + self.turn

    @property
    def multi_turn(self) -> bool:
        return len(self.turns) > 1


@dataclass(frozen=True)
class JudgeOptions:
    mode: Mode
    swap: SwapMode = "none"
    cot: bool = False
    scale: Scale = field(default_factory=Scale)
    seed: int = 0
    verdict_mode: VerdictMode = "generate"
    parser: VerdictParser = "strict"
    # Judgments per order (self-consistency, see app/judging/samples.py).
    samples: int = 1


@dataclass(frozen=True)
class TemplateSpec:
    """A judge prompt template (built in or registered by a client).

    ``system`` and ``user`` use ``{placeholder}`` fields (``str.format`` syntax, ``{{``/``}}`` for
    literal braces). ``multi_turn`` templates show whole conversations; ``reference`` templates
    show a reference answer. ``response_prefix`` (plain text) opens the judge's reply, e.g.
    ``"Verdict: [["``, so even a small model answers in the verdict format; the raw output kept
    is the prefix followed by what the model wrote. ``parser`` reads the judge's verdict when a
    request does not choose one.
    """

    name: str
    mode: Mode
    system: str
    user: str
    multi_turn: bool = False
    reference: bool = False
    cot: bool = False
    version: int = 1
    description: str = ""
    response_prefix: str = ""
    parser: VerdictParser = "strict"


@dataclass(frozen=True)
class PlannedCall:
    """One judge call to make: the order the answers are shown in, the prompt, and which of the
    order's samples it is (0-based; see app/judging/samples.py).

    When ``response_prefix`` is set, ``messages`` ends with an assistant message holding it, which
    the engine continues; the judge's full reply is the prefix plus the generated text.
    """

    order: Order
    messages: Conversation
    prompt_hash: str
    response_prefix: str = ""
    sample: int = 0


@dataclass(frozen=True)
class CallOutput:
    """What the model returned for a planned call."""

    order: Order
    raw: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    # Time the call waited in the scheduler's queue before the engine started on it.
    queue_ms: float = 0.0
    sample: int = 0


@dataclass(frozen=True)
class OrderOutcome:
    """One order's parsed result (one ``sample`` of it), mapped back to the caller's labels (A is always
    ``answer_a``).

    ``probs`` (logprobs verdicts only) is the order's label distribution in the caller's labels:
    keys ``"A"``, ``"B"``, ``"tie"`` when comparing, the scale's integers as strings when grading.
    ``verdict``/``score`` are then its most probable label; ``raw`` a rendering of what the judge
    saw, in its own labels (e.g. ``P(A)=0.61 P(B)=0.30 P(C)=0.09``).
    """

    order: Order
    raw: str
    verdict: Verdict | None = None
    score: float | None = None
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    probs: dict[str, float] | None = None
    queue_ms: float = 0.0
    sample: int = 0


@dataclass(frozen=True)
class ItemOutcome:
    """An item's result. ``score`` is always a score the judge gives (parsed, or the most probable
    one); logprobs grading adds ``expected_score`` (the probability-weighted mean, G-Eval style) and
    ``probs``, the item's combined distribution (conservative swap: the mean of both orders')."""

    status: ItemStatus
    orders: tuple[OrderOutcome, ...]
    verdict: Verdict | None = None
    score: float | None = None
    consistent: bool | None = None
    error: str | None = None
    probs: dict[str, float] | None = None
    expected_score: float | None = None
