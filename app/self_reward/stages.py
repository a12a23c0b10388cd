"""What each data step of an iteration makes of the model's outputs: the rows it records and the
metrics it reports (prompts, candidates, judgments, pairs), and the training data they add up to.
No I/O: the driver (:mod:`app.self_reward.loop`) makes the model calls and stores the rows.

Rows read back from the database are taken as the ``Stored*`` protocols below, which the tables' rows
and this module's own row values both satisfy.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.engine.base import Conversation, Generation
from app.self_reward.domain import (
    EvalExample,
    InstructSettings,
    IterationStats,
    PairSettings,
    ScoredCandidate,
    SeedExample,
)
from app.self_reward.instruct import few_shot_conversation, filter_prompt, parse_new_prompt, task_complete
from app.self_reward.pairs import score_histogram, select_pair
from app.self_reward.rubric import judge_conversation, judgment_text, parse_score


class StoredPrompt(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def dropped(self) -> str | None: ...


class StoredCandidate(Protocol):
    @property
    def prompt_index(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def finished(self) -> bool: ...


class StoredJudgment(Protocol):
    @property
    def prompt_index(self) -> int: ...
    @property
    def candidate_index(self) -> int: ...
    @property
    def score(self) -> float | None: ...


class StoredPair(Protocol):
    @property
    def prompt_index(self) -> int: ...
    @property
    def kept(self) -> bool: ...
    @property
    def chosen_index(self) -> int | None: ...
    @property
    def rejected_index(self) -> int | None: ...


@dataclass(frozen=True)
class PromptRow:
    index: int
    text: str
    raw: str
    dropped: str | None


@dataclass(frozen=True)
class CandidateRow:
    prompt_index: int
    index: int
    text: str
    finished: bool
    tokens_out: int


@dataclass(frozen=True)
class JudgmentRow:
    prompt_index: int
    candidate_index: int
    sample: int
    raw: str
    score: float | None
    error: str | None


@dataclass(frozen=True)
class PairRow:
    prompt_index: int
    kept: bool
    reason: str
    chosen_index: int | None
    rejected_index: int | None
    chosen_score: float | None
    rejected_score: float | None


StageRow = PromptRow | CandidateRow | JudgmentRow | PairRow


def words(text: str) -> int:
    return len(re.findall(r"\S+", text))


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


# -- prompts -------------------------------------------------------------------------------------------
class PromptCollector:
    """Self-instruct for one iteration: asks for batches of new prompts until ``wanted`` are kept or
    ``wanted * attempts_factor`` were generated, and records every reply, kept or dropped with why."""

    def __init__(
        self,
        seeds: Sequence[str],
        earlier: Sequence[str],
        settings: InstructSettings,
        wanted: int,
        attempts_factor: int,
        rng: random.Random,
    ) -> None:
        self.seeds = list(seeds)
        self.earlier = list(earlier)
        self.settings = settings
        self.wanted = wanted
        self.budget = wanted * attempts_factor
        self.rng = rng
        self.kept: list[str] = []
        self.rows: list[PromptRow] = []

    def next_batch(self, batch_size: int) -> list[Conversation]:
        """The few-shot conversations to send next; empty when the collection is over."""
        if len(self.kept) >= self.wanted or len(self.rows) >= self.budget:
            return []
        n = min(self.budget - len(self.rows), max(self.wanted - len(self.kept), batch_size))
        return [
            few_shot_conversation(self.seeds, [*self.earlier, *self.kept], self.settings, self.rng)
            for _ in range(n)
        ]

    def add(self, generations: Sequence[Generation]) -> None:
        for gen in generations:
            text = parse_new_prompt(gen.text)
            if text is None:
                reason: str | None = "no task found in the reply"
            elif not task_complete(gen.text, gen.finish_reason == "length"):
                reason = "the reply hit the token limit inside the task"
            elif len(self.kept) >= self.wanted:
                reason = "enough prompts already"
            else:
                reason = filter_prompt(text, [*self.seeds, *self.earlier, *self.kept], self.settings)
            if reason is None and text is not None:
                self.kept.append(text)
            self.rows.append(PromptRow(index=len(self.rows), text=text or "", raw=gen.text, dropped=reason))

    def metrics(self) -> dict[str, Any]:
        dropped = Counter(_reason_kind(r.dropped) for r in self.rows if r.dropped)
        return {"prompts": {"generated": len(self.rows), "kept": len(self.kept), "dropped": dict(dropped)}}


def _reason_kind(reason: str | None) -> str:
    """Group drop reasons for counting ("near-duplicate of '...'" -> "near-duplicate of")."""
    if not reason:
        return ""
    return re.split(r"[:(']", reason, maxsplit=1)[0].strip()


# -- candidates ----------------------------------------------------------------------------------------
def kept_prompts(prompts: Sequence[StoredPrompt]) -> list[StoredPrompt]:
    return [p for p in prompts if not p.dropped]


def candidate_conversations(prompts: Sequence[StoredPrompt], n: int) -> list[Conversation]:
    """``n`` requests per prompt, prompt after prompt."""
    return [[{"role": "user", "content": p.text}] for p in prompts for _ in range(n)]


def candidate_rows(
    prompts: Sequence[StoredPrompt], n: int, generations: Sequence[Generation]
) -> list[CandidateRow]:
    """The answers to :func:`candidate_conversations`; one that hit the token limit (or is empty) is
    kept but marked unfinished, so it is never judged or paired."""
    return [
        CandidateRow(
            prompt_index=prompts[i // n].index,
            index=i % n,
            text=gen.text,
            finished=gen.finish_reason == "stop" and bool(gen.text.strip()),
            tokens_out=gen.tokens_out,
        )
        for i, gen in enumerate(generations)
    ]


def candidate_metrics(rows: Sequence[CandidateRow]) -> dict[str, Any]:
    unfinished = sum(1 for r in rows if not r.finished)
    return {"candidates": {"total": len(rows), "unfinished": unfinished}}


# -- judgments -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JudgmentRequest:
    """One rubric judgment to ask for: sample ``sample`` of candidate ``candidate_index``."""

    prompt_index: int
    candidate_index: int
    sample: int
    conversation: Conversation


def judgment_requests(
    prompts: Sequence[StoredPrompt], candidates: Sequence[StoredCandidate], samples: int
) -> list[JudgmentRequest]:
    """``samples`` judgments of every finished candidate."""
    texts = {p.index: p.text for p in prompts}
    return [
        JudgmentRequest(c.prompt_index, c.index, s, judge_conversation(texts[c.prompt_index], c.text))
        for c in candidates
        if c.finished
        for s in range(samples)
    ]


def judgment_rows(
    requests: Sequence[JudgmentRequest], generations: Sequence[Generation]
) -> list[JudgmentRow]:
    rows = []
    for req, gen in zip(requests, generations, strict=True):
        raw = judgment_text(gen)
        score = parse_score(raw)
        error = score.error
        if score.value is None and gen.finish_reason == "length":
            error = f"{error} (the judgment hit the token limit)"
        rows.append(
            JudgmentRow(
                prompt_index=req.prompt_index,
                candidate_index=req.candidate_index,
                sample=req.sample,
                raw=raw,
                score=score.value,
                error=error,
            )
        )
    return rows


def judgment_metrics(rows: Sequence[JudgmentRow]) -> dict[str, Any]:
    failures = sum(1 for r in rows if r.score is None)
    return {
        "judgments": {"total": len(rows), "parse_failures": failures},
        "score_histogram": score_histogram(r.score for r in rows if r.score is not None),
    }


# -- pairs ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairsOutcome:
    rows: list[PairRow]
    stats: IterationStats


def decide_pairs(
    candidates: Sequence[StoredCandidate], judgments: Sequence[StoredJudgment], settings: PairSettings
) -> PairsOutcome:
    """Each prompt's preference pair (or why it has none) from its candidates' mean scores, and the
    statistics the guards look at."""
    scores: dict[tuple[int, int], list[float]] = defaultdict(list)
    for j in judgments:
        if j.score is not None:
            scores[(j.prompt_index, j.candidate_index)].append(j.score)
    by_prompt: dict[int, list[StoredCandidate]] = defaultdict(list)
    for c in candidates:
        by_prompt[c.prompt_index].append(c)
    stats = IterationStats(
        judgments=len(judgments), parse_failures=sum(1 for j in judgments if j.score is None)
    )
    rows = []
    for p, group in sorted(by_prompt.items()):
        scored = [
            ScoredCandidate(c.index, c.text, tuple(scores.get((p, c.index), ())), c.finished) for c in group
        ]
        decision = select_pair(scored, settings)
        means = {s.index: s.mean for s in scored}
        stats.prompts += 1
        texts = {c.index: c.text for c in group}
        if decision.chosen is not None and decision.rejected is not None:
            stats.pairs += 1
            stats.chosen_lengths.append(words(texts[decision.chosen]))
            stats.rejected_lengths.append(words(texts[decision.rejected]))
        elif decision.reason.startswith("all candidates tie"):
            stats.ties += 1
        rows.append(
            PairRow(
                prompt_index=p,
                kept=decision.chosen is not None and decision.rejected is not None,
                reason=decision.reason,
                chosen_index=decision.chosen,
                rejected_index=decision.rejected,
                chosen_score=means.get(decision.chosen) if decision.chosen is not None else None,
                rejected_score=means.get(decision.rejected) if decision.rejected is not None else None,
            )
        )
    return PairsOutcome(rows, stats)


def pair_metrics(stats: IterationStats) -> dict[str, Any]:
    return {
        "pairs": {
            "kept": stats.pairs,
            "prompts": stats.prompts,
            "tie_dropped": stats.ties,
            "tie_drop_rate": stats.ties / stats.prompts if stats.prompts else 0.0,
            "other_dropped": stats.prompts - stats.pairs - stats.ties,
        },
        "parse_failure_rate": stats.parse_failures / stats.judgments if stats.judgments else 0.0,
        "length": {
            "chosen_mean_words": mean(stats.chosen_lengths),
            "rejected_mean_words": mean(stats.rejected_lengths),
        },
    }


# -- training data -------------------------------------------------------------------------------------
def dpo_pairs(
    prompts: Sequence[StoredPrompt], candidates: Sequence[StoredCandidate], pairs: Sequence[StoredPair]
) -> list[dict[str, str]]:
    """The kept pairs as DPO examples: prompt, chosen answer, rejected answer."""
    texts = {p.index: p.text for p in prompts}
    answers = {(c.prompt_index, c.index): c.text for c in candidates}
    return [
        {
            "prompt": texts[p.prompt_index],
            "chosen": answers[(p.prompt_index, p.chosen_index)],  # type: ignore[index]
            "rejected": answers[(p.prompt_index, p.rejected_index)],  # type: ignore[index]
        }
        for p in pairs
        if p.kept
    ]


def sft_examples(ift: Sequence[SeedExample], eft: Sequence[EvalExample]) -> list[dict[str, str]]:
    """Iteration 0's data: the seed answers (IFT), then the seed judgments of the rubric prompt (EFT)."""
    return [{"prompt": ex.prompt, "completion": ex.response} for ex in ift] + [
        {"prompt": judge_conversation(ex.prompt, ex.response)[-1]["content"], "completion": ex.judgment}
        for ex in eft
    ]
