"""The ProTeGi search against a scripted world whose task model is right exactly when the prompt
mentions what an example needs, so a working search provably finds the better prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import pytest

from app.engine.base import Conversation
from app.prompt_opt.domain import (
    BudgetExhausted,
    Candidate,
    Example,
    Hyperparams,
    Metric,
    SelectorConfig,
)
from app.prompt_opt.search import CandidateRecord, ProTeGi, RoundRecord, SearchState, Splits
from app.prompt_opt.tasks import ClassificationTask

CATS = ("sarcasm", "negation", "irony")
BASE = "Decide whether the review is positive or negative."
INITIAL = (
    f"# Task\n{BASE}\n\n# Output format\nAnswer with one word: positive or negative.\n\n"
    "# Prediction\nReview: {text}\nAnswer:"
)


def make_examples(prefix: str, n: int) -> list[Example]:
    out = []
    for i in range(n):
        cat = (None, *CATS)[i % 4]
        label = "positive" if i % 2 else "negative"
        text = f"[{cat}] review {prefix}{i}" if cat else f"plain review {prefix}{i}"
        out.append(Example(f"{prefix}{i}", {"text": text}, label))
    return out


def _cat(example: Example) -> str | None:
    m = re.match(r"\[(\w+)\]", example.inputs["text"])
    return m.group(1) if m else None


class Killed(BaseException):
    """A worker dying mid-step (not an Exception: nothing in the search may swallow it)."""


class World:
    """Scripted task and optimizer models with a shared output cache and a call budget."""

    def __init__(self, cache: dict[object, object] | None = None, max_calls: int | None = None) -> None:
        self.cache: dict[object, object] = cache if cache is not None else {}
        self.calls = 0
        self.max_calls = max_calls
        self.kill_after: int | None = None
        self.phase = "search"
        self.optimizer_calls = 0

    def _charge(self) -> None:
        if self.kill_after is not None and self.calls >= self.kill_after:
            raise Killed
        if self.max_calls is not None and self.phase == "search" and self.calls >= self.max_calls:
            raise BudgetExhausted
        self.calls += 1

    def set_phase(self, phase: str) -> None:
        self.phase = phase

    def predict(self, prompts: Sequence[str], examples: Sequence[Example]) -> list[list[str | None]]:
        out: list[list[str | None]] = []
        for prompt in prompts:
            row: list[str | None] = []
            for ex in examples:
                key = ("predict", prompt, ex.id)
                if key not in self.cache:
                    self._charge()
                    cat = _cat(ex)
                    right = cat is None or cat in prompt.lower()
                    wrong = "negative" if ex.label == "positive" else "positive"
                    self.cache[key] = ex.label if right else wrong
                row.append(self.cache[key])  # type: ignore[arg-type]
            out.append(row)
        return out

    def complete(self, requests: Sequence[tuple[Conversation, str]]) -> list[str]:
        replies = []
        for conv, tag in requests:
            key = ("complete", tag)
            if key not in self.cache:
                self._charge()
                self.optimizer_calls += 1
                self.cache[key] = self._reply(conv, tag)
            replies.append(self.cache[key])
        return replies  # type: ignore[return-value]

    @staticmethod
    def _reply(conv: Conversation, tag: str) -> str:
        text = "\n".join(m["content"] for m in conv)
        kind = tag.split(":")[1]
        known = set(re.findall(r"Pay attention to: ([\w ,]+)", text))
        known_cats = {c.strip() for group in known for c in group.split(",") if c.strip()}
        if kind == "gradient":
            missed = sorted({c for c in re.findall(r"\[(\w+)\]", text) if c not in known_cats})
            if not missed:
                return "<START>The instruction is too vague.<END>"
            return "".join(f"<START>The instruction ignores {c}.<END>" for c in missed[:1])
        if kind == "edit":
            m = re.search(r"ignores (\w+)", text)
            cats = known_cats | ({m.group(1)} if m else set())
            return f"<START>{BASE} Pay attention to: {', '.join(sorted(cats))}<END>"
        # paraphrase: drops what it does not understand, and sometimes breaks the template
        if "irony" in text and "negation" not in text:
            return "<START>Say if the review {text} is good.<END>"
        return f"<START>{BASE}<END>"


class MemoryStore:
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.states: list[dict[str, object]] = []
        self.records: dict[str, CandidateRecord] = {}
        self.rounds: list[RoundRecord] = []

    def save(self, step: str, state: SearchState, records: Sequence[CandidateRecord]) -> None:
        self.steps.append(step)
        self.states.append(state.to_json())
        for r in records:
            self.records[r.candidate.key] = r

    def save_round(self, record: RoundRecord) -> None:
        self.rounds.append(record)


PARAMS = Hyperparams(
    rounds=3,
    beam_size=2,
    minibatch_size=16,
    n_gradients=2,
    errors_per_gradient=3,
    mc_samples=1,
    max_expansion=4,
    selector=SelectorConfig(eval_rounds=4, prompts_per_round=3, samples_per_eval=16),
)
SPLITS = Splits(train=make_examples("t", 48), dev=make_examples("d", 24), test=make_examples("x", 24))


def search(world: World, store: MemoryStore, params: Hyperparams = PARAMS, seed: int = 7) -> ProTeGi:
    return ProTeGi(
        task=ClassificationTask(("positive", "negative")),
        initial_prompt=INITIAL,
        splits=SPLITS,
        params=params,
        metric=Metric("accuracy"),
        models=world,
        store=store,
        seed=seed,
    )


def test_search_finds_the_prompt_that_names_what_the_examples_need() -> None:
    store = MemoryStore()
    state = search(World(), store).run(SearchState())

    assert state.phase == "done" and state.stop_reason == "rounds"
    test = state.final["test"]
    assert test["initial"]["accuracy"] == pytest.approx(0.25)  # only plain reviews are right
    assert test["best"]["accuracy"] > 0.7
    assert state.best is not None and "Pay attention to:" in state.best.text
    # the output format and the example slot survive every kept edit
    assert state.best.text.endswith(
        "# Output format\nAnswer with one word: positive or negative.\n\n"
        "# Prediction\nReview: {text}\nAnswer:"
    )
    assert [r.round for r in store.rounds] == [1, 2, 3]
    dev_scores = [r.best_dev_score for r in store.rounds]
    assert dev_scores == sorted(dev_scores)  # best-so-far never gets worse


def test_every_candidate_is_recorded_with_its_lineage_and_rejections() -> None:
    store = MemoryStore()
    search(World(), store).run(SearchState())
    records = store.records.values()
    edits = [r for r in records if r.candidate.origin == "edit"]
    assert edits and all(r.candidate.parent and r.candidate.gradient for r in edits)
    rejected = [r for r in records if r.rejected]
    # the paraphrase that moved {text} into the task section is refused
    assert any("placeholder" in (r.rejected or "") for r in rejected)
    pulled = [r for r in records if r.pulls]
    assert pulled and all(r.estimate is not None for r in pulled)


def test_same_seed_same_search() -> None:
    a, b = MemoryStore(), MemoryStore()
    sa = search(World(), a).run(SearchState())
    sb = search(World(), b).run(SearchState())
    assert sa.to_json() == sb.to_json()
    assert a.steps == b.steps


@pytest.mark.parametrize("kill_after", [5, 40, 90, 150])
def test_a_killed_run_resumes_from_its_last_step_without_paying_twice(kill_after: int) -> None:
    reference = World()
    expected = search(reference, MemoryStore()).run(SearchState())

    cache: dict[object, object] = {}
    first = World(cache)
    first.kill_after = kill_after
    store = MemoryStore()
    with pytest.raises(Killed):
        search(first, store).run(SearchState())
    saved = SearchState.from_json(store.states[-1]) if store.states else SearchState()

    second = World(cache)
    resumed = search(second, store).run(saved)

    assert resumed.to_json() == expected.to_json()
    assert first.calls + second.calls == reference.calls  # no model output computed twice


def test_budget_stops_the_search_exactly_at_its_limit_and_still_evaluates() -> None:
    world = World(max_calls=120)
    store = MemoryStore()
    state = search(world, store).run(SearchState())
    assert state.stop_reason == "budget"
    assert state.phase == "done"
    assert "test" in state.final  # the final evaluation ran on its held-back share
    search_calls = world.calls - len(SPLITS.test) * 2  # final: both prompts on test; dev was cached
    assert search_calls <= 120


def test_budget_limit_is_exact() -> None:
    world = World(max_calls=77)
    splits_without_final = Splits(train=SPLITS.train)
    run = ProTeGi(
        task=ClassificationTask(("positive", "negative")),
        initial_prompt=INITIAL,
        splits=splits_without_final,
        params=PARAMS,
        metric=Metric("accuracy"),
        models=world,
        store=MemoryStore(),
    )
    state = run.run(SearchState())
    assert state.stop_reason == "budget"
    assert world.calls == 77


def test_patience_stops_when_dev_does_not_improve() -> None:
    class Stuck(World):
        @staticmethod
        def _reply(conv: Conversation, tag: str) -> str:
            return f"<START>{BASE}<END>"  # the same task text again: a duplicate, never better

    store = MemoryStore()
    params = replace(PARAMS, rounds=6, patience=2)
    state = search(Stuck(), store, params).run(SearchState())
    assert state.stop_reason is not None and state.stop_reason.startswith("early stop")
    assert len(store.rounds) == 2
    assert state.best is not None and state.best.key == "r0c0"


@pytest.mark.parametrize(
    "method", ["ucb", "ucb-e", "successive-rejects", "successive-halving", "brute-force"]
)
def test_every_selector_drives_the_search_to_a_better_prompt(method: str) -> None:
    params = replace(PARAMS, selector=replace(PARAMS.selector, method=method))  # type: ignore[arg-type]
    state = search(World(), MemoryStore(), params).run(SearchState())
    assert state.final["test"]["best"]["accuracy"] > state.final["test"]["initial"]["accuracy"]


# Expansion as LMOps' ProTeGi.expand_candidates does it ----------------------------------------------

OTHER = INITIAL.replace(BASE, f"{BASE} Pay attention to: sarcasm")
EXPAND_PARAMS = replace(PARAMS, max_expansion=8)


class Recording(World):
    """Logs every predict call (prompts, example ids) and optimizer request (tag, text); paraphrases
    reword their instruction recognisably."""

    def __init__(self) -> None:
        super().__init__()
        self.predicts: list[tuple[list[str], list[str]]] = []
        self.requests: list[tuple[str, str]] = []

    def predict(self, prompts: Sequence[str], examples: Sequence[Example]) -> list[list[str | None]]:
        self.predicts.append((list(prompts), [ex.id for ex in examples]))
        return super().predict(prompts, examples)

    def complete(self, requests: Sequence[tuple[Conversation, str]]) -> list[str]:
        self.requests += [(tag, "\n".join(m["content"] for m in conv)) for conv, tag in requests]
        return super().complete(requests)

    @staticmethod
    def _reply(conv: Conversation, tag: str) -> str:
        if tag.split(":")[1] == "paraphrase":
            original = conv[-1]["content"].split('"""')[1].strip()
            return f"<START>In other words ({tag.split(':')[-1]}): {original}<END>"
        return World._reply(conv, tag)


class StopAfterExpand(MemoryStore):
    def save(self, step: str, state: SearchState, records: Sequence[CandidateRecord]) -> None:
        super().save(step, state, records)
        if step.endswith("expand"):
            raise Killed


def expand_round_one(
    params: Hyperparams, beam: Sequence[str] = (INITIAL,)
) -> tuple[Recording, StopAfterExpand]:
    """Run only round 1's expand step, from a beam of the given prompts."""
    world, store = Recording(), StopAfterExpand()
    state = SearchState(phase="expand", beam=[Candidate(f"r0c{i}", t, 0) for i, t in enumerate(beam)])
    state.next_index = len(beam)
    with pytest.raises(Killed):
        search(world, store, params).run(state)
    return world, store


def test_every_parent_is_scored_on_one_minibatch_drawn_per_round() -> None:
    world, _ = expand_round_one(EXPAND_PARAMS, (INITIAL, OTHER))
    assert len(world.predicts) == 1  # the expand step's only task-model calls
    prompts, ids = world.predicts[0]
    assert prompts == [INITIAL, OTHER]
    assert len(ids) == len(set(ids)) == EXPAND_PARAMS.minibatch_size

    per_parent, _ = expand_round_one(replace(EXPAND_PARAMS, shared_minibatch=False), (INITIAL, OTHER))
    assert [prompts for prompts, _ in per_parent.predicts] == [[INITIAL], [OTHER]]
    assert per_parent.predicts[0][1] != per_parent.predicts[1][1]


def test_the_parents_own_task_section_is_paraphrased_among_the_candidates() -> None:
    params = replace(EXPAND_PARAMS, mc_samples=2)
    world, store = expand_round_one(params)
    own = [(tag, text) for tag, text in world.requests if tag.startswith("r1:paraphrase:r0c0:parent:")]
    assert [tag for tag, _ in own] == ["r1:paraphrase:r0c0:parent:0", "r1:paraphrase:r0c0:parent:1"]
    assert all(BASE in text and "Pay attention to" not in text for _, text in own)
    edits = [r for r in store.records.values() if r.candidate.origin == "edit"]
    paraphrase_requests = [tag for tag, _ in world.requests if ":paraphrase:" in tag]
    assert len(paraphrase_requests) == (len(edits) + 1) * params.mc_samples
    of_parent = [
        r
        for r in store.records.values()
        if r.candidate.origin == "paraphrase" and r.candidate.gradient is None
    ]
    assert [r.candidate.parent for r in of_parent] == ["r0c0", "r0c0"]
    assert all(r.rejected is None for r in of_parent)
    assert [r.candidate.text.split("\n\n")[0] for r in of_parent] == [
        f"# Task\nIn other words (0): {BASE}",
        f"# Task\nIn other words (1): {BASE}",
    ]
    pending = SearchState.from_json(store.states[-1]).pending
    assert all(r.candidate in pending for r in of_parent)

    edits_only, edits_only_store = expand_round_one(replace(params, paraphrase_parents=False))
    assert not [tag for tag, _ in edits_only.requests if ":parent:" in tag]
    assert all(
        r.candidate.gradient for r in edits_only_store.records.values() if r.candidate.origin != "initial"
    )
