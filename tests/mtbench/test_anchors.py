"""FastChat's own MT-Bench files (question.jsonl, reference answers, judge_prompts.jsonl) read, planned
and turned into templates, when a copy is at ../shared/anchors/fastchat_llm_judge; skipped otherwise.
Nothing of their text is kept in this project: the test only reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.judging.domain import Scale
from app.judging.templates import render
from app.mtbench import formats, prompts
from app.mtbench.formats import ModelAnswer, QuestionId
from app.mtbench.plan import NEED_REF_CATEGORIES, plan, references_for
from app.mtbench.prompts import FASTCHAT_PROMPT_NAMES

ANCHORS = Path(__file__).resolve().parents[3] / "shared" / "anchors" / "fastchat_llm_judge"
QUESTIONS = ANCHORS / "mt_bench" / "question.jsonl"
REFERENCES = ANCHORS / "mt_bench" / "reference_answer" / "gpt-4.jsonl"
JUDGE_PROMPTS = ANCHORS / "judge_prompts.jsonl"

pytestmark = pytest.mark.skipif(
    not all(p.is_file() for p in (QUESTIONS, REFERENCES, JUDGE_PROMPTS)),
    reason=f"FastChat's MT-Bench files are not at {ANCHORS}",
)


def test_mt_bench_files_plan_like_fastchat() -> None:
    questions = formats.read_questions(QUESTIONS)
    assert len(questions) == 80 and all(len(q.turns) == 2 for q in questions)
    refs = references_for(questions, formats.read_answers(REFERENCES))
    # FastChat grades math, reasoning and coding against GPT-4's references: 30 questions.
    assert len(refs) == 30 and {q.category for q in questions if q.question_id in refs} == NEED_REF_CATEGORIES
    answers = {
        m: {
            q.question_id: ModelAnswer(q.question_id, m, tuple(f"{m} says {t[:10]}" for t in q.turns))
            for q in questions
        }
        for m in ("model-x", "model-y", "gpt-3.5-turbo")
    }
    single = plan("single", questions, answers, refs)
    assert len(single) == 80 * 2 * 3  # gen_judgment.py --mode single: 480 matches for 3 models
    assert sum(t.role.reference for t in single) == 30 * 2 * 3
    assert len(plan("pairwise-baseline", questions, answers, refs)) == 80 * 2 * 2


def test_fastchat_judge_prompts_become_templates() -> None:
    loaded = formats.read_judge_prompts(JUDGE_PROMPTS)
    templates = prompts.from_fastchat(loaded)
    assert dict(templates.names) == FASTCHAT_PROMPT_NAMES
    questions = {q.question_id: q for q in formats.read_questions(QUESTIONS)}
    ref = formats.read_answers(REFERENCES)[101]
    answers: dict[str, dict[QuestionId, ModelAnswer]] = {
        m: {101: ModelAnswer(101, m, (f"{m} one", f"{m} two"))} for m in ("m1", "m2")
    }
    (task,) = [t for t in plan("pairwise-all", [questions[101]], answers, {101: ref.turns}) if t.turn == 2]
    spec = templates.spec(task.role)
    user = render(spec, task.item(), "AB", Scale())[-1]["content"]
    # Both user turns, both references and both sides' answers are in the prompt, with no placeholder left.
    for text in (*questions[101].turns, *ref.turns, "m1 one", "m1 two", "m2 one", "m2 two"):
        assert text in user
    assert "{" not in user.replace("{{", "")
    # Single-turn prompts render exactly as FastChat formats them.
    prompt = loaded["pair-v2"]
    writing: dict[str, dict[QuestionId, ModelAnswer]] = {
        m: {81: ModelAnswer(81, m, (f"{m} first", f"{m} second"))} for m in ("m1", "m2")
    }
    first_turn = next(t for t in plan("pairwise-all", [questions[81]], writing, {}) if t.turn == 1)
    rendered = render(templates.spec(first_turn.role), first_turn.item(), "AB", Scale())
    assert rendered[-1]["content"] == prompt.prompt_template.format(
        question=questions[81].turns[0], answer_a="m1 first", answer_b="m2 first"
    )
    assert rendered[0]["content"] == prompt.system_prompt
