"""FastChat file formats: round trips, and errors that name the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.mtbench import formats
from app.mtbench.formats import FormatError, ModelAnswer, PairJudgment, Question, SingleJudgment
from tests.mtbench.conftest import JUDGE_PROMPTS, JUDGMENTS, TINY_BENCH


def test_fixture_bench_reads() -> None:
    questions = formats.read_questions(TINY_BENCH / "question.jsonl")
    assert [(q.question_id, q.category, len(q.turns)) for q in questions] == [
        (1, "writing", 2),
        (2, "math", 2),
        (3, "reasoning", 2),
    ]
    assert questions[2].reference == ("Bo is the shortest.", "Tom is the tallest.")
    answers = formats.read_answer_dir(TINY_BENCH / "model_answer")
    assert sorted(answers) == ["alpha", "beta", "gpt-3.5-turbo"]
    assert answers["beta"][2].turns == ("7 times 8 is 54. (beta)", "54 minus 6 is 48. (beta)")
    prompts = formats.read_judge_prompts(JUDGE_PROMPTS)
    assert prompts["pair-v2"].type == "pairwise" and prompts["single-v1"].output_format == "[[rating]]"


def test_round_trips(tmp_path: Path) -> None:
    q = Question(
        "q-7", "coding", ("Write a loop.", "Now in reverse."), reference=("for ...", "for reversed ...")
    )
    formats.write_jsonl(tmp_path / "question.jsonl", [formats.question_json(q)])
    assert formats.read_questions(tmp_path / "question.jsonl") == [q]

    a = ModelAnswer(81, "m", ("one", "two"), answer_id="x", tstamp=1.5)
    formats.write_jsonl(tmp_path / "m.jsonl", [formats.answer_json(a)])
    assert formats.read_answers(tmp_path / "m.jsonl") == {81: a}

    single = SingleJudgment(81, "m", ("judge", "single-v1"), "prompt", "Rating: [[7]]", 7, 2, 3.0)
    pair = PairJudgment(81, "m", "n", "model_1", "tie", ("judge", "pair-v2"), "p1", "j1", "p2", "j2", 1, 4.0)
    with formats.JudgmentWriter(tmp_path / "j_single.jsonl") as w:
        w.write(single)
    with formats.JudgmentWriter(tmp_path / "j_pair.jsonl") as w:
        w.write(pair)
    assert formats.read_single_judgments(tmp_path / "j_single.jsonl") == [single]
    assert formats.read_pair_judgments(tmp_path / "j_pair.jsonl") == [pair]
    # FastChat's field names and order; whole scores written as integers.
    line = json.loads((tmp_path / "j_single.jsonl").read_text())
    assert list(line) == [
        "question_id",
        "model",
        "judge",
        "user_prompt",
        "judgment",
        "score",
        "turn",
        "tstamp",
    ]
    assert line["score"] == 7 and isinstance(line["score"], int) and line["judge"] == ["judge", "single-v1"]
    assert list(json.loads((tmp_path / "j_pair.jsonl").read_text())) == [
        "question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge",
        "g1_user_prompt", "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp",
    ]  # fmt: skip


def test_fixture_judgments_read() -> None:
    singles = formats.read_single_judgments(JUDGMENTS / "judge-x_single.jsonl")
    assert len(singles) == 12 and sum(j.score == -1 for j in singles) == 2
    assert formats.judgment_kind(JUDGMENTS / "judge-x_pair.jsonl") == "pair"
    assert formats.judgment_kind(JUDGMENTS / "judge-x_single.jsonl") == "single"


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question_id": 1, "category": "x", "turns": ["a"]}', "{oops"], "line 2: not valid JSON"),
        (['{"question_id": 1, "category": "x"}'], "line 1: missing field 'turns'"),
        (['{"question_id": 1, "turns": []}'], "line 1: 'turns' must be a non-empty list of strings"),
        (['{"question_id": true, "turns": ["a"]}'], "line 1: 'question_id' must be an integer or a string"),
        (
            ['{"question_id": 1, "turns": ["a"]}', "", '{"question_id": 1, "turns": ["b"]}'],
            "line 3: question_id 1",
        ),
        (["[1, 2]"], "line 1: expected a JSON object, got list"),
    ],
)
def test_question_errors_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = _write(tmp_path / "question.jsonl", *lines)
    with pytest.raises(FormatError) as info:
        formats.read_questions(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_answer_and_judgment_errors(tmp_path: Path) -> None:
    bad_answer = _write(tmp_path / "m.jsonl", '{"question_id": 1, "choices": [{"index": 0}]}')
    with pytest.raises(FormatError, match=r"m.jsonl line 1: missing field 'choices\[0\].turns'"):
        formats.read_answers(bad_answer)
    no_choices = _write(tmp_path / "n.jsonl", '{"question_id": 1, "turns": ["a"]}')
    with pytest.raises(FormatError, match="line 1: 'choices' must be a non-empty list"):
        formats.read_answers(no_choices)
    bad_winner = _write(
        tmp_path / "p.jsonl",
        json.dumps({"question_id": 1, "model_1": "a", "model_2": "b", "g1_winner": "A", "g2_winner": "tie",
                    "judge": ["j", "p"], "turn": 1}),
    )  # fmt: skip
    with pytest.raises(FormatError, match="'g1_winner' must be one of model_1, model_2, tie, error"):
        formats.read_pair_judgments(bad_winner)
    with pytest.raises(FormatError, match="line 1: holds single-answer grades, not pair judgments"):
        formats.read_pair_judgments(JUDGMENTS / "judge-x_single.jsonl")
    with pytest.raises(FormatError, match="line 1: holds pairwise judgments, not single judgments"):
        formats.read_single_judgments(JUDGMENTS / "judge-x_pair.jsonl")
    with pytest.raises(FormatError, match="no such file"):
        formats.read_questions(tmp_path / "absent.jsonl")
    with pytest.raises(FormatError, match="'type' must be 'pairwise' or 'single'"):
        formats.read_judge_prompts(
            _write(
                tmp_path / "jp.jsonl",
                '{"name": "x", "type": "both", "prompt_template": "", "output_format": ""}',
            )
        )


def test_repair_tail_drops_a_cut_off_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"a": 1}\n{"b": 2', encoding="utf-8")  # killed mid-write
    assert formats.repair_tail(path) is True
    assert path.read_text() == '{"a": 1}\n'
    path.write_text('{"a": 1}\n{"b": 2}', encoding="utf-8")  # complete, only the newline missing
    assert formats.repair_tail(path) is False
    assert path.read_text() == '{"a": 1}\n{"b": 2}\n'
