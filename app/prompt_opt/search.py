"""ProTeGi's beam search over prompts, as a resumable chain of steps. No I/O: the model calls go
through ``SearchModels`` and every completed step is handed to ``SearchStore``.

A round, for the prompts in the beam:
1. ``expand``: score each prompt on a training minibatch (as in LMOps, one per round shared by the
   beam); show the optimizer samples of its errors and ask what is wrong (textual gradients); ask for
   edited prompts that fix each gradient; widen with paraphrases of each edit and of the prompt's own
   task section (Monte-Carlo successors). Candidates that lost the prompt's placeholders or output
   format are kept in the record, rejected; at most ``max_expansion`` successors per parent survive.
2. ``select``: a bandit (or brute force) picks the next beam among the old beam and the new candidates,
   on samples of the training data.
3. ``dev``: the beam is scored on the dev split; the best dev score so far gives the answer, and
   ``patience`` rounds without improvement stop the search.

Every random choice draws from a generator seeded by (seed, round, step), and model outputs are cached
by the worker, so a resumed run redoes an interrupted step exactly, without paying for it twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from app.engine.base import Conversation
from app.prompt_opt import bandits, meta_prompts, sections
from app.prompt_opt.domain import (
    BudgetExhausted,
    Candidate,
    Example,
    Hyperparams,
    Metric,
    Origin,
)
from app.prompt_opt.metrics import score
from app.prompt_opt.tasks import Task


class SearchModels(Protocol):
    """The model calls a search makes (the worker runs them through a cache and a budget meter)."""

    def predict(self, prompts: Sequence[str], examples: Sequence[Example]) -> list[list[str | None]]:
        """The task model's label for every prompt on every example: ``[prompt][example]``."""
        ...

    def complete(self, requests: Sequence[tuple[Conversation, str]]) -> list[str]:
        """The optimizer model's reply to each conversation. The tag names the request within the run
        (e.g. ``r2:gradient:r1c3:0``), so a repeated request samples the same way."""
        ...

    def set_phase(self, phase: str) -> None:
        """``search`` or ``final``: the budget of the final evaluation is held back from the search."""
        ...


class SearchStore(Protocol):
    def save(self, step: str, state: SearchState, records: Sequence[CandidateRecord]) -> None:
        """Persist a completed step: the state to resume from, and the candidate records it changed."""
        ...

    def save_round(self, record: RoundRecord) -> None:
        """Persist a completed round (called just before the ``save`` that ends the round)."""
        ...


@dataclass
class CandidateRecord:
    """A candidate with everything the search learnt about it."""

    candidate: Candidate
    rejected: str | None = None
    minibatch_score: float | None = None
    pulls: int = 0
    examples: int = 0
    estimate: float | None = None
    dev_score: float | None = None
    in_beam: bool = False


@dataclass(frozen=True)
class RoundRecord:
    round: int
    beam: list[str]
    best_key: str
    best_dev_score: float | None
    details: dict[str, Any]


@dataclass
class SearchState:
    """Where a run stands: ``round`` rounds are complete, and ``phase`` is the next step of the next."""

    round: int = 0
    phase: str = "start"  # start | expand | select | dev | final | done
    beam: list[Candidate] = field(default_factory=list)
    pending: list[Candidate] = field(default_factory=list)
    next_index: int = 0
    best: Candidate | None = None
    best_dev: float | None = None
    initial_dev: float | None = None
    stale_rounds: int = 0
    stop_reason: str | None = None
    final: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchState:
        values = dict(data)
        for name in ("beam", "pending"):
            values[name] = [Candidate(**c) for c in values.get(name, [])]
        if values.get("best") is not None:
            values["best"] = Candidate(**values["best"])
        return cls(**values)


@dataclass(frozen=True)
class Splits:
    train: Sequence[Example]
    dev: Sequence[Example] = ()
    test: Sequence[Example] = ()


class ProTeGi:
    """One optimization run. ``run(state)`` continues from ``state`` (a fresh ``SearchState()`` to start)
    and returns the final state; ``state.final`` then holds the evaluation of the initial and the best
    prompt on dev and test."""

    def __init__(
        self,
        *,
        task: Task,
        initial_prompt: str,
        splits: Splits,
        params: Hyperparams,
        metric: Metric,
        models: SearchModels,
        store: SearchStore,
        seed: int = 0,
        on_progress: Callable[[SearchState], None] | None = None,
    ) -> None:
        if not splits.train:
            raise ValueError("prompt optimization needs training examples")
        self.task = task
        self.initial = initial_prompt
        self.splits = splits
        self.params = params
        self.metric = metric
        self.models = models
        self.store = store
        self.seed = seed
        self.on_progress = on_progress
        # An edited task section may keep the placeholders the task section had, and no others.
        self.allowed = sections.placeholders(sections.task_section(initial_prompt))

    # -- driving -------------------------------------------------------------------------------
    def run(self, state: SearchState) -> SearchState:
        steps: dict[str, Callable[[SearchState], None]] = {
            "start": self._start,
            "expand": self._expand,
            "select": self._select,
            "dev": self._dev,
            "final": self._final,
        }
        while state.phase != "done":
            if self.on_progress is not None:
                self.on_progress(state)
            try:
                steps[state.phase](state)
            except BudgetExhausted:
                if state.phase == "final":
                    # Even the held-back budget ran out: report what was measured.
                    state.stop_reason = state.stop_reason or "budget"
                    state.phase = "done"
                    self.store.save("done", state, [])
                    break
                state.stop_reason = "budget"
                state.pending = []
                state.phase = "final"
                self.store.save(f"round {state.round + 1}: budget exhausted", state, [])
        return state

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    def _score(self, golds: Sequence[str], preds: Sequence[str | None]) -> float:
        return score(self.metric, golds, preds, self.task.labels)

    def _evaluate(self, prompts: Sequence[str], examples: Sequence[Example]) -> list[float]:
        if not examples:
            return [0.0 for _ in prompts]
        preds = self.models.predict(prompts, examples)
        golds = [ex.label for ex in examples]
        return [self._score(golds, row) for row in preds]

    # -- steps -----------------------------------------------------------------------------------
    def _start(self, state: SearchState) -> None:
        initial = Candidate(key="r0c0", text=self.initial, round=0)
        record = CandidateRecord(initial, in_beam=True)
        state.beam = [initial]
        state.best = initial
        if self.splits.dev:
            state.initial_dev = self._evaluate([self.initial], self.splits.dev)[0]
            state.best_dev = record.dev_score = state.initial_dev
        state.phase = "expand" if self.params.rounds > 0 else "final"
        self.store.save("start", state, [record])

    def _expand(self, state: SearchState) -> None:
        r = state.round + 1
        p = self.params
        beam = state.beam
        records: list[CandidateRecord] = []
        # 1. each parent on a minibatch
        error_blocks: list[list[str]] = []
        for parent, batch, preds in self._score_on_minibatches(beam, r):
            golds = [ex.label for ex in batch]
            records.append(CandidateRecord(parent, minibatch_score=self._score(golds, preds), in_beam=True))
            errors = [(ex, pred) for ex, pred in zip(batch, preds, strict=True) if pred != ex.label]
            rng = self._rng(r, "errors", parent.key)
            blocks = []
            if errors:
                for _ in range(p.n_gradients):
                    chosen = rng.sample(errors, min(p.errors_per_gradient, len(errors)))
                    blocks.append(
                        meta_prompts.format_errors(
                            [(self.task.show(ex), ex.label, pred) for ex, pred in chosen]
                        )
                    )
            error_blocks.append(blocks)

        # 2. gradients: what is wrong with each parent, from samples of its errors
        grad_requests: list[tuple[Conversation, str]] = []
        grad_owner: list[tuple[int, str]] = []
        for i, (parent, blocks) in enumerate(zip(beam, error_blocks, strict=True)):
            task_text = sections.task_section(parent.text)
            for g, block in enumerate(blocks):
                conv = meta_prompts.gradient_conversation(task_text, block, p.gradients_per_error)
                grad_requests.append((conv, f"r{r}:gradient:{parent.key}:{g}"))
                grad_owner.append((i, block))
        replies = self.models.complete(grad_requests)
        gradients: list[tuple[int, str, str]] = []  # (parent index, errors block, gradient)
        for (i, block), reply in zip(grad_owner, replies, strict=True):
            for reason in meta_prompts.parse_gradients(reply, p.gradients_per_error):
                gradients.append((i, block, reason))

        # 3. edits: prompts that fix each gradient
        edit_requests = [
            (
                meta_prompts.edit_conversation(
                    sections.task_section(beam[i].text), block, reason, p.steps_per_gradient
                ),
                f"r{r}:edit:{beam[i].key}:{n}",
            )
            for n, (i, block, reason) in enumerate(gradients)
        ]
        edits: list[tuple[int, str, str]] = []  # (parent index, gradient, new task text)
        for (i, _, reason), reply in zip(gradients, self.models.complete(edit_requests), strict=True):
            for new_task in meta_prompts.parse_prompts(reply, p.steps_per_gradient):
                edits.append((i, reason, new_task))

        # 4. Monte-Carlo successors: paraphrases of each edit and, as in LMOps, of each parent's own task
        #    section (which have no gradient)
        sources: list[tuple[int, str | None, str, str]] = [  # (parent index, gradient, task text, tag)
            (i, gradient, new_task, str(n)) for n, (i, gradient, new_task) in enumerate(edits)
        ]
        if p.paraphrase_parents:
            sources += [(i, None, sections.task_section(c.text), "parent") for i, c in enumerate(beam)]
        para_requests = [
            (meta_prompts.paraphrase_conversation(text), f"r{r}:paraphrase:{beam[i].key}:{tag}:{m}")
            for i, _, text, tag in sources
            for m in range(p.mc_samples)
        ]
        para_replies = self.models.complete(para_requests)
        paraphrases: list[tuple[int, str | None, str]] = []
        for n, (i, gradient, _, _) in enumerate(sources):
            for reply in para_replies[n * p.mc_samples : (n + 1) * p.mc_samples]:
                for text in meta_prompts.parse_prompts(reply, 1):
                    paraphrases.append((i, gradient, text))

        # 5. assemble, validate, and cap each parent's successors
        seen = {c.text for c in beam}
        pending: list[Candidate] = []
        for i, parent in enumerate(beam):
            valid: list[Candidate] = []
            produced: list[tuple[str | None, str, Origin]] = [
                (gradient, t, "edit") for j, gradient, t in edits if j == i
            ] + [(gradient, t, "paraphrase") for j, gradient, t in paraphrases if j == i]
            for gradient, new_task, origin in produced:
                key = f"r{r}c{state.next_index}"
                state.next_index += 1
                text, problem = self._splice(parent.text, new_task)
                candidate = Candidate(key, text, r, origin, parent.key, gradient)
                if problem is None and text in seen:
                    problem = "duplicate of another candidate"
                if problem is not None:
                    records.append(CandidateRecord(candidate, rejected=problem))
                    continue
                seen.add(text)
                valid.append(candidate)
            if len(valid) > p.max_expansion:
                kept = set(id(c) for c in self._rng(r, "prune", parent.key).sample(valid, p.max_expansion))
                for c in valid:
                    if id(c) not in kept:
                        records.append(
                            CandidateRecord(c, rejected=f"pruned: over max_expansion={p.max_expansion}")
                        )
                valid = [c for c in valid if id(c) in kept]
            pending.extend(valid)
            records.extend(CandidateRecord(c) for c in valid)
        state.pending = pending
        state.phase = "select"
        self.store.save(f"round {r}: expand", state, records)

    def _score_on_minibatches(
        self, beam: Sequence[Candidate], r: int
    ) -> list[tuple[Candidate, list[Example], list[str | None]]]:
        """(parent, its minibatch, its predictions on it) for each parent: one minibatch drawn for the
        round and shared, as LMOps' ``expand_candidates`` draws it, or one per parent."""
        train, size = self.splits.train, self.params.minibatch_size
        if self.params.shared_minibatch:
            batch = self._sample(train, size, r, "minibatch")
            preds = self.models.predict([c.text for c in beam], batch)
            return [(c, batch, row) for c, row in zip(beam, preds, strict=True)]
        out = []
        for parent in beam:
            batch = self._sample(train, size, r, "minibatch", parent.key)
            out.append((parent, batch, self.models.predict([parent.text], batch)[0]))
        return out

    def _splice(self, parent: str, new_task: str) -> tuple[str, str | None]:
        problem = sections.task_text_problem(new_task, self.allowed)
        if problem is not None:
            return new_task, problem
        try:
            text = sections.replace_task_section(parent, new_task)
        except sections.PromptError as exc:
            return new_task, str(exc)
        return text, sections.candidate_problem(self.initial, text)

    def _select(self, state: SearchState) -> None:
        r = state.round + 1
        arms = [*state.beam, *state.pending]
        texts = [c.text for c in arms]

        def pull(indices: Sequence[int], sample: Sequence[Example]) -> list[float]:
            return self._evaluate([texts[i] for i in indices], sample)

        selector = self.params.selector
        if selector.method == "brute-force":
            pool: Sequence[Example] = self.splits.dev or self.splits.train
        else:
            pool = self.splits.train
        selection = bandits.select(
            selector, len(arms), self.params.beam_size, pull, pool, self._rng(r, "select")
        )
        chosen = selection.top(self.params.beam_size)
        records = [
            CandidateRecord(
                arm,
                pulls=stats.pulls,
                examples=stats.examples,
                estimate=stats.mean,
                in_beam=index in chosen,
            )
            for index, (arm, stats) in enumerate(zip(arms, selection.stats, strict=True))
        ]
        state.beam = [arms[i] for i in chosen]
        state.pending = []
        state.phase = "dev"
        self.store.save(f"round {r}: select", state, records)

    def _dev(self, state: SearchState) -> None:
        r = state.round + 1
        leader = state.beam[0]
        records: list[CandidateRecord] = []
        dev_score: float | None = None
        if self.splits.dev:
            # Every beam member on dev: the bandit ranks on small training samples (or not at all when
            # the candidates fit the beam), so dev decides which one leads.
            scores = self._evaluate([c.text for c in state.beam], self.splits.dev)
            records = [
                CandidateRecord(c, dev_score=sc, in_beam=True)
                for c, sc in zip(state.beam, scores, strict=True)
            ]
            top = max(range(len(scores)), key=lambda i: (scores[i], -i))
            leader, dev_score = state.beam[top], scores[top]
            if state.best_dev is None or dev_score > state.best_dev:
                state.best, state.best_dev, state.stale_rounds = leader, dev_score, 0
            else:
                state.stale_rounds += 1
        else:
            state.best = leader
        state.round = r
        self.store.save_round(
            RoundRecord(
                round=r,
                beam=[c.key for c in state.beam],
                best_key=state.best.key if state.best else leader.key,
                best_dev_score=state.best_dev,
                details={
                    "leader": leader.key,
                    "leader_dev_score": dev_score,
                    "stale_rounds": state.stale_rounds,
                },
            )
        )
        patience = self.params.patience
        if patience is not None and self.splits.dev and state.stale_rounds >= patience:
            state.stop_reason = f"early stop: no dev improvement in {patience} round(s)"
            state.phase = "final"
        elif r >= self.params.rounds:
            state.stop_reason = "rounds"
            state.phase = "final"
        else:
            state.phase = "expand"
        self.store.save(f"round {r}: dev", state, records)

    def _final(self, state: SearchState) -> None:
        """Score the initial and the best prompt on dev and test (the budget held back for this)."""
        self.models.set_phase("final")
        best = state.best or Candidate(key="r0c0", text=self.initial, round=0)
        state.best = best
        final: dict[str, Any] = {}
        for split_name, examples in (("dev", self.splits.dev), ("test", self.splits.test)):
            if not examples:
                continue
            prompts = [self.initial] if best.text == self.initial else [self.initial, best.text]
            preds = self.models.predict(prompts, examples)
            golds = [ex.label for ex in examples]
            final[split_name] = {
                "initial": self._report(golds, preds[0]),
                "best": self._report(golds, preds[-1]),
            }
        state.final = final
        state.phase = "done"
        self.store.save("final", state, [])

    def _report(self, golds: Sequence[str], preds: Sequence[str | None]) -> dict[str, Any]:
        labels = self.task.labels
        report: dict[str, Any] = {
            "n": len(golds),
            "score": self._score(golds, preds),
            "accuracy": score(Metric("accuracy"), golds, preds, labels),
            "macro_f1": score(Metric("macro_f1"), golds, preds, labels),
            "unparsed": sum(1 for pred in preds if pred is None),
        }
        if self.metric.positive is not None:
            report["f1"] = score(Metric("f1", self.metric.positive), golds, preds, labels)
        return report

    def _sample(self, pool: Sequence[Example], size: int, *tag: object) -> list[Example]:
        rng = self._rng(*tag)
        return list(pool) if size >= len(pool) else rng.sample(list(pool), size)


def final_eval_calls(dev: int, test: int) -> int:
    """The most task-model calls the final evaluation makes (both prompts on dev and test)."""
    return 2 * (dev + test)
