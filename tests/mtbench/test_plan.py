"""Planning: which judgments each mode needs, references for math / reasoning / coding, turn 2 as a
multi-turn judgment, and what an interrupted run still has to do."""

from __future__ import annotations

import pytest

from app.mtbench import formats
from app.mtbench.formats import ModelAnswer, PairJudgment, SingleJudgment
from app.mtbench.plan import PlanError, Task, missing, plan, references_for
from app.mtbench.prompts import Role
from tests.mtbench.conftest import TINY_BENCH


@pytest.fixture
def files() -> tuple[list[formats.Question], dict[str, dict[formats.QuestionId, ModelAnswer]], dict]:
    questions = formats.read_questions(TINY_BENCH / "question.jsonl")
    answers = formats.read_answer_dir(TINY_BENCH / "model_answer")
    refs = references_for(questions, formats.read_answers(TINY_BENCH / "reference_answer" / "gpt-4.jsonl"))
    return questions, answers, refs


def test_references_come_from_the_file_else_the_question(files: tuple) -> None:
    _questions, _answers, refs = files
    # writing (1) needs none; math (2) from the reference file; reasoning (3) from question.jsonl.
    assert refs == {2: ("7 * 8 = 56.", "56 - 6 = 50."), 3: ("Bo is the shortest.", "Tom is the tallest.")}


def test_missing_reference_is_named(files: tuple) -> None:
    questions, _answers, _refs = files
    with pytest.raises(PlanError, match=r"question ids 2\)"):
        references_for(questions, None)  # question 2 (math) has no reference of its own


def test_single_mode(files: tuple) -> None:
    questions, answers, refs = files
    tasks = plan("single", questions, answers, refs)
    assert len(tasks) == 3 * 2 * 3  # questions x turns x models
    assert {t.models for t in tasks} == {("alpha",), ("beta",), ("gpt-3.5-turbo",)}
    by_key = {(t.question.question_id, t.models[0], t.turn): t for t in tasks}
    first, second = by_key[(2, "beta", 1)], by_key[(2, "beta", 2)]
    assert first.role == Role("single", False, True) and second.role == Role("single", True, True)
    # Turn 1 shows the first turn alone; turn 2 the conversation so far, judged at its last turn.
    assert first.item().turns == ("What is 7 times 8?",) and first.item().references == ("7 * 8 = 56.",)
    item = second.item()
    assert item.turns == questions[1].turns and item.judged_turn == 1 and item.multi_turn
    assert item.answers_a == ("7 times 8 is 54. (beta)", "54 minus 6 is 48. (beta)")
    assert item.references == ("7 * 8 = 56.", "56 - 6 = 50.") and item.answers_b is None
    assert by_key[(1, "beta", 2)].role == Role("single", True, False)  # writing: no reference


def test_pairwise_baseline_and_all(files: tuple) -> None:
    questions, answers, refs = files
    baseline = plan("pairwise-baseline", questions, answers, refs)
    assert len(baseline) == 3 * 2 * 2
    assert {t.models for t in baseline} == {("alpha", "gpt-3.5-turbo"), ("beta", "gpt-3.5-turbo")}
    every = plan("pairwise-all", questions, answers, refs)
    assert [t.models for t in every[:3]] == [
        ("alpha", "beta"),
        ("alpha", "gpt-3.5-turbo"),
        ("beta", "gpt-3.5-turbo"),
    ]
    assert len(every) == 3 * 2 * 3
    task = next(t for t in every if t.question.question_id == 3 and t.turn == 2)
    assert task.role == Role("pairwise", True, True)
    assert task.item().answers_b == answers["beta"][3].turns
    chosen = plan("pairwise-all", questions, answers, refs, models=["beta", "alpha"])
    assert {t.models for t in chosen} == {("beta", "alpha")}


def test_plan_errors(files: tuple) -> None:
    questions, answers, refs = files
    with pytest.raises(PlanError, match="no answer file for model\\(s\\) gpt-4 "):
        plan("pairwise-baseline", questions, answers, refs, baseline="gpt-4")
    with pytest.raises(PlanError, match="mode pairwise-all needs two models"):
        plan("pairwise-all", questions, answers, refs, models=["alpha"])
    short = {**answers, "beta": {k: v for k, v in answers["beta"].items() if k != 3}}
    with pytest.raises(PlanError, match="model beta has no answer to question 3"):
        plan("single", questions, short, refs)
    one_turn = {**answers, "alpha": {**answers["alpha"], 1: ModelAnswer(1, "alpha", ("only one",))}}
    with pytest.raises(PlanError, match="model alpha answered 1 of the 2 turns of question 1"):
        plan("single", questions, one_turn, refs)


def test_missing_skips_what_is_written_in_either_model_order(files: tuple) -> None:
    questions, answers, refs = files
    tasks = plan("pairwise-all", questions, answers, refs)
    done = [
        # Written as (beta, alpha): the same game as the planned (alpha, beta).
        PairJudgment(1, "beta", "alpha", "tie", "tie", ("j", "p"), "", "", "", "", 1, 0.0),
        PairJudgment(3, "alpha", "gpt-3.5-turbo", "error", "error", ("j", "p"), "", "", "", "", 2, 0.0),
    ]
    left = missing(tasks, done)
    assert len(left) == len(tasks) - 2
    gone = {(t.question.question_id, t.models, t.turn) for t in tasks} - {
        (t.question.question_id, t.models, t.turn) for t in left
    }
    assert gone == {(1, ("alpha", "beta"), 1), (3, ("alpha", "gpt-3.5-turbo"), 2)}
    singles = plan("single", questions, answers, refs)
    grade = SingleJudgment(2, "beta", ("j", "p"), "", "", 4, 2, 0.0)
    assert [t for t in singles if t not in missing(singles, [grade])] == [
        t for t in singles if t.question.question_id == 2 and t.models == ("beta",) and t.turn == 2
    ]


def test_task_key_is_order_free() -> None:
    q = formats.Question(5, "stem", ("q",))
    assert Task(q, 1, ("a", "b"), (("x",), ("y",))).key == Task(q, 1, ("b", "a"), (("y",), ("x",))).key
