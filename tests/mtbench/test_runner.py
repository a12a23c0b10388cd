"""Running a plan in-process: batches, FastChat records, and resuming an interrupted run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from app.engine.base import Conversation, Generation, SamplingParams
from app.judging.domain import ItemOutcome
from app.mtbench import formats, prompts
from app.mtbench.inprocess import InProcessSubmitter
from app.mtbench.plan import Task, missing, plan, references_for
from app.mtbench.runner import Batch, RunOptions, existing_judgments, make_batches, run
from tests.mtbench.conftest import JUDGE_PROMPTS, TINY_BENCH, OracleEngine

OPTIONS = RunOptions(judge_model="oracle", run_name="test")


def _tasks(mode: str) -> list[Task]:
    questions = formats.read_questions(TINY_BENCH / "question.jsonl")
    answers = formats.read_answer_dir(TINY_BENCH / "model_answer")
    refs = references_for(questions, formats.read_answers(TINY_BENCH / "reference_answer" / "gpt-4.jsonl"))
    return plan(mode, questions, answers, refs)  # type: ignore[arg-type]


def _run(tasks: list[Task], out: Path, submitter: object, templates: prompts.Templates | None = None) -> int:
    done = existing_judgments(out, "pair" if len(tasks[0].models) == 2 else "single")
    todo = missing(tasks, done)
    with formats.JudgmentWriter(out) as writer:
        summary = run(len(tasks), todo, templates or prompts.builtin(), submitter, writer, OPTIONS)  # type: ignore[arg-type]
    return summary.written


def test_batches_group_by_template_and_category() -> None:
    tasks = _tasks("pairwise-baseline")
    batches = make_batches(tasks, prompts.builtin(), size=2)
    # Each question (writing, math, reasoning; the last two with references) has 2 tasks per turn.
    names = [(b.template.name, b.tasks[0].question.category) for b in batches]
    assert names == [("pairwise", "writing"), ("pairwise-multi", "writing"), ("pairwise-ref", "math"),
                     ("pairwise-multi-ref", "math"), ("pairwise-ref", "reasoning"),
                     ("pairwise-multi-ref", "reasoning")]  # fmt: skip
    assert all(len({t.question.category for t in b.tasks}) == 1 for b in batches)
    assert batches[2].tags(OPTIONS) == {**OPTIONS.tags, "category": "math"}
    assert sorted(t.key for b in batches for t in b.tasks) == sorted(t.key for t in tasks)
    assert all(len(b.tasks) <= 2 for b in batches)


def test_pairwise_run_writes_fastchat_records(tmp_path: Path, engine: OracleEngine) -> None:
    out = tmp_path / "oracle_pair.jsonl"
    tasks = _tasks("pairwise-baseline")
    assert _run(tasks, out, InProcessSubmitter(engine, batch_size=4)) == 12
    records = formats.read_pair_judgments(out)
    # The oracle ranks alpha > gpt-3.5-turbo > beta in both orders.
    assert {(j.model_1, j.g1_winner, j.g2_winner) for j in records} == {
        ("alpha", "model_1", "model_1"),
        ("beta", "model_2", "model_2"),
    }
    assert all(j.judge[0] == "oracle" and j.g1_judgment.startswith("Verdict: [[") for j in records)
    math = next(j for j in records if j.question_id == 2 and j.turn == 2)
    assert math.judge == ("oracle", "pairwise-multi-ref") and "56 - 6 = 50." in math.g1_user_prompt
    # Both orders of a pair go to the engine together, at most 4 calls per engine batch.
    assert len(engine.prompts) == 24 and all(s.stop == ("]]",) for s in engine.samplings)


def test_single_run_with_fastchat_prompts(tmp_path: Path, engine: OracleEngine) -> None:
    out = tmp_path / "oracle_single.jsonl"
    templates = prompts.from_fastchat(formats.read_judge_prompts(JUDGE_PROMPTS))
    assert _run(_tasks("single"), out, InProcessSubmitter(engine), templates) == 18
    records = formats.read_single_judgments(out)
    assert {(j.model, j.score) for j in records} == {("alpha", 8), ("beta", 3), ("gpt-3.5-turbo", 6)}
    by_key = {(j.question_id, j.model, j.turn): j for j in records}
    assert by_key[(1, "alpha", 1)].judge == ("oracle", "single-v1")
    assert by_key[(3, "beta", 2)].judge == ("oracle", "single-math-v1-multi-turn")
    # FastChat prompts reason first: no reply prefix, no stop at "]]", a long reply allowed.
    assert all(s.stop == () and s.max_tokens == 1024 for s in engine.samplings)
    assert by_key[(1, "alpha", 1)].judgment == "Having compared them, my verdict: [[8]]"


def test_logprobs_verdicts(tmp_path: Path, engine: OracleEngine) -> None:
    out = tmp_path / "oracle_single.jsonl"
    options = RunOptions(judge_model="oracle", run_name="t", verdict_mode="logprobs")
    tasks = _tasks("single")
    with formats.JudgmentWriter(out) as writer:
        run(len(tasks), tasks, prompts.builtin(), InProcessSubmitter(engine), writer, options)
    assert {(j.model, j.score) for j in formats.read_single_judgments(out)} == {
        ("alpha", 8), ("beta", 3), ("gpt-3.5-turbo", 6)
    }  # fmt: skip
    fastchat = prompts.from_fastchat(formats.read_judge_prompts(JUDGE_PROMPTS))
    with (
        formats.JudgmentWriter(tmp_path / "x.jsonl") as writer,
        pytest.raises(ValueError, match="reason first"),
    ):
        run(len(tasks), tasks, fastchat, InProcessSubmitter(engine), writer, options)


class HedgingEngine(OracleEngine):
    """Writes two markers in every reply: FastChat's rules and the strict parser read them differently."""

    def generate(self, prompts: Sequence[Conversation], sampling: SamplingParams) -> list[Generation]:
        self.prompts.extend(prompts)
        replies = {True: "[[A]] at first sight; having read both, [[B]]", False: "Rating: [[3]], or [[8]]"}
        return [Generation(replies[not self._verdict(conv).isdigit()], 10, 9, "stop") for conv in prompts]


@pytest.mark.parametrize(
    ("parser", "winners", "scores"),
    [
        # FastChat: [[A]] anywhere wins (g2 shows model_2 as A), a rating is the first [[n]].
        ("fastchat", {("model_1", "model_2")}, {3}),
        ("strict", {("model_2", "model_1")}, {8}),
    ],
)
def test_runs_read_verdicts_with_fastchats_rules_by_default(
    tmp_path: Path, parser: str, winners: set[tuple[str, str]], scores: set[float]
) -> None:
    assert RunOptions(judge_model="j", run_name="t").parser == "fastchat"
    options = RunOptions(judge_model="j", run_name="t", parser=parser)  # type: ignore[arg-type]
    fastchat = prompts.from_fastchat(formats.read_judge_prompts(JUDGE_PROMPTS))
    for mode, out in (
        ("pairwise-baseline", tmp_path / f"{parser}_pair.jsonl"),
        ("single", tmp_path / "s.jsonl"),
    ):
        tasks = _tasks(mode)
        with formats.JudgmentWriter(out) as writer:
            run(len(tasks), tasks, fastchat, InProcessSubmitter(HedgingEngine()), writer, options)
    pairs = formats.read_pair_judgments(tmp_path / f"{parser}_pair.jsonl")
    assert {(j.g1_winner, j.g2_winner) for j in pairs} == winners
    assert {j.score for j in formats.read_single_judgments(tmp_path / "s.jsonl")} == scores


class Interrupting:
    """Passes outcomes through from a real submitter, then stops the run (Ctrl-C) after ``after``."""

    def __init__(self, inner: InProcessSubmitter, after: int) -> None:
        self.inner, self.after = inner, after

    def judge(self, batches: Sequence[Batch], options: RunOptions) -> Iterator[tuple[Task, ItemOutcome]]:
        for n, pair in enumerate(self.inner.judge(batches, options)):
            if n == self.after:
                raise KeyboardInterrupt
            yield pair


def test_an_interrupted_run_resumes_with_only_the_missing_judgments(tmp_path: Path) -> None:
    out = tmp_path / "oracle_pair.jsonl"
    tasks = _tasks("pairwise-all")
    with pytest.raises(KeyboardInterrupt):
        _run(tasks, out, Interrupting(InProcessSubmitter(OracleEngine(), batch_size=2), after=5))
    assert len(formats.read_pair_judgments(out)) == 5
    # A write cut off by the kill: the next run drops it and judges that task again.
    with open(out, "a", encoding="utf-8") as fh:
        fh.write('{"question_id": 3, "model_1": "al')
    second = OracleEngine()
    assert _run(tasks, out, InProcessSubmitter(second, batch_size=2)) == len(tasks) - 5
    # Only the missing judgments were sent to the judge (two orders each).
    assert len(second.prompts) == 2 * (len(tasks) - 5)
    keys = [(j.question_id, j.model_1, j.model_2, j.turn) for j in formats.read_pair_judgments(out)]
    assert len(keys) == len(set(keys)) == len(tasks)
    # Nothing is left: a third run judges nothing.
    third = OracleEngine()
    assert _run(tasks, out, InProcessSubmitter(third)) == 0 and third.prompts == []
