"""FastChat llm_judge files: readers and writers, with errors that name the file and the line.

A bench directory is laid out as FastChat's ``data/<bench_name>/``::

    question.jsonl                       question_id, category, turns[, reference]
    model_answer/<model>.jsonl           question_id, answer_id, model_id, choices[0].turns, tstamp
    reference_answer/<model>.jsonl       the same shape as model answers
    model_judgment/<judge>_single.jsonl  single-answer grades (see SingleJudgment)
    model_judgment/<judge>_pair.jsonl    pairwise judgments (see PairJudgment)
    judge_prompts.jsonl (anywhere)       name, type, system_prompt, prompt_template, output_format, ...

A model's name is its answer file's name without ``.jsonl``, as in FastChat.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

QuestionId = int | str
Winner = Literal["model_1", "model_2", "tie", "error"]
JudgmentKind = Literal["single", "pair"]

WINNERS: tuple[Winner, ...] = ("model_1", "model_2", "tie", "error")
ERROR_SCORE = -1
QUESTION_FILE = "question.jsonl"
ANSWER_DIR = "model_answer"
REFERENCE_DIR = "reference_answer"
JUDGMENT_DIR = "model_judgment"


class FormatError(ValueError):
    """A file is not in the FastChat format; the message names the file and, when known, the line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        where = f"{path} line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Question:
    question_id: QuestionId
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelAnswer:
    """One model's answer to a question: ``turns`` is ``choices[0].turns``, one reply per user turn."""

    question_id: QuestionId
    model_id: str
    turns: tuple[str, ...]
    answer_id: str = ""
    tstamp: float = 0.0


@dataclass(frozen=True)
class JudgePrompt:
    """A FastChat judge prompt record (its text stays in the user's file, never in this project)."""

    name: str
    type: Literal["pairwise", "single"]
    system_prompt: str
    prompt_template: str
    output_format: str
    description: str = ""
    category: str = ""


@dataclass(frozen=True)
class SingleJudgment:
    """A line of ``<judge>_single.jsonl``; ``score`` is -1 when the judge gave no usable grade."""

    question_id: QuestionId
    model: str
    judge: tuple[str, str]  # (judge model, prompt name)
    user_prompt: str
    judgment: str
    score: float
    turn: int
    tstamp: float


@dataclass(frozen=True)
class PairJudgment:
    """A line of ``<judge>_pair.jsonl``. Game 1 shows ``model_1`` as assistant A, game 2 shows
    ``model_2`` as A; both winners are named in models (``model_1|model_2|tie|error``)."""

    question_id: QuestionId
    model_1: str
    model_2: str
    g1_winner: Winner
    g2_winner: Winner
    judge: tuple[str, str]
    g1_user_prompt: str
    g1_judgment: str
    g2_user_prompt: str
    g2_judgment: str
    turn: int
    tstamp: float


Judgment = SingleJudgment | PairJudgment


# -- reading -----------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON Lines file."""
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        raise FormatError(path, None, "no such file") from None
    except IsADirectoryError:
        raise FormatError(path, None, "is a directory, not a JSON Lines file") from None
    with fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(path, number, f"not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise FormatError(path, number, f"expected a JSON object, got {type(obj).__name__}")
            yield number, obj


class _Fields:
    """Typed access to one record's fields; every error names the file, line and field."""

    def __init__(self, path: Path, line: int, obj: dict[str, Any]) -> None:
        self.path, self.line, self.obj = path, line, obj

    def error(self, message: str) -> FormatError:
        return FormatError(self.path, self.line, message)

    def _get(self, key: str) -> Any:
        if key not in self.obj:
            raise self.error(f"missing field '{key}'")
        return self.obj[key]

    def qid(self, key: str = "question_id") -> QuestionId:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.error(f"'{key}' must be an integer or a string, got {json.dumps(value)}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        if default is not None and key not in self.obj:
            return default
        value = self._get(key)
        if not isinstance(value, str):
            raise self.error(f"'{key}' must be a string, got {type(value).__name__}")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        if default is not None and key not in self.obj:
            return default
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"'{key}' must be a number, got {json.dumps(value)}")
        return value

    def turns(
        self, key: str, source: dict[str, Any] | None = None, label: str | None = None
    ) -> tuple[str, ...]:
        obj = self.obj if source is None else source
        name = label or key
        if key not in obj:
            raise self.error(f"missing field '{name}'")
        value = obj[key]
        if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
            raise self.error(f"'{name}' must be a non-empty list of strings")
        return tuple(value)

    def judge(self) -> tuple[str, str]:
        value = self._get("judge")
        if not (
            isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            raise self.error("'judge' must be [judge model, prompt name]")
        return (value[0], value[1])

    def turn(self) -> int:
        value = self.obj.get("turn", 1)  # pairwise files FastChat wrote from single grades have no turn
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(f"'turn' must be a positive integer, got {json.dumps(value)}")
        return value

    def winner(self, key: str) -> Winner:
        value = self._get(key)
        if value not in WINNERS:
            raise self.error(f"'{key}' must be one of {', '.join(WINNERS)}, got {json.dumps(value)}")
        winner: Winner = value
        return winner


def read_questions(path: Path) -> list[Question]:
    """The questions of ``question.jsonl``, in file order; question ids must be unique."""
    questions: list[Question] = []
    seen: set[QuestionId] = set()
    for line, obj in read_jsonl(path):
        f = _Fields(path, line, obj)
        qid = f.qid()
        if qid in seen:
            raise f.error(f"question_id {qid!r} appears twice")
        seen.add(qid)
        reference = f.turns("reference") if obj.get("reference") is not None else None
        questions.append(Question(qid, f.text("category", ""), f.turns("turns"), reference))
    if not questions:
        raise FormatError(path, None, "holds no questions")
    return questions


def read_answers(path: Path) -> dict[QuestionId, ModelAnswer]:
    """One answer file (``model_answer/<model>.jsonl`` or a reference file), by question id; a later
    line for the same question replaces an earlier one, as in FastChat."""
    answers: dict[QuestionId, ModelAnswer] = {}
    for line, obj in read_jsonl(path):
        f = _Fields(path, line, obj)
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise f.error("'choices' must be a non-empty list of objects with 'turns'")
        qid = f.qid()
        answers[qid] = ModelAnswer(
            question_id=qid,
            model_id=f.text("model_id", path.stem),
            turns=f.turns("turns", choices[0], "choices[0].turns"),
            answer_id=f.text("answer_id", ""),
            tstamp=f.number("tstamp", 0.0),
        )
    return answers


def read_answer_dir(directory: Path) -> dict[str, dict[QuestionId, ModelAnswer]]:
    """Every ``*.jsonl`` answer file of a directory, by model name (the file name without ``.jsonl``)."""
    if not directory.is_dir():
        raise FormatError(directory, None, "no such directory")
    return {p.name[: -len(".jsonl")]: read_answers(p) for p in sorted(directory.glob("*.jsonl"))}


def read_judge_prompts(path: Path) -> dict[str, JudgePrompt]:
    """FastChat's ``judge_prompts.jsonl``, by prompt name."""
    prompts: dict[str, JudgePrompt] = {}
    for line, obj in read_jsonl(path):
        f = _Fields(path, line, obj)
        kind = f.text("type")
        if kind not in ("pairwise", "single"):
            raise f.error(f"'type' must be 'pairwise' or 'single', got {json.dumps(kind)}")
        name = f.text("name")
        if name in prompts:
            raise f.error(f"prompt name {name!r} appears twice")
        prompts[name] = JudgePrompt(
            name=name,
            type=kind,  # type: ignore[arg-type]  # checked just above
            system_prompt=f.text("system_prompt", ""),
            prompt_template=f.text("prompt_template"),
            output_format=f.text("output_format"),
            description=f.text("description", ""),
            category=f.text("category", ""),
        )
    if not prompts:
        raise FormatError(path, None, "holds no judge prompts")
    return prompts


def read_judgments(path: Path, kind: JudgmentKind) -> list[Judgment]:
    """Every judgment of a ``_single.jsonl`` or ``_pair.jsonl`` file, in file order."""
    parse = _single_judgment if kind == "single" else _pair_judgment
    judgments: list[Judgment] = []
    for line, obj in read_jsonl(path):
        other = "model_1" if kind == "single" else "model"
        if other in obj and ("model" if kind == "single" else "model_1") not in obj:
            found = "pairwise judgments" if kind == "single" else "single-answer grades"
            raise FormatError(path, line, f"holds {found}, not {kind} judgments")
        judgments.append(parse(_Fields(path, line, obj)))
    return judgments


def read_single_judgments(path: Path) -> list[SingleJudgment]:
    return [j for j in read_judgments(path, "single") if isinstance(j, SingleJudgment)]


def read_pair_judgments(path: Path) -> list[PairJudgment]:
    return [j for j in read_judgments(path, "pair") if isinstance(j, PairJudgment)]


def judgment_kind(path: Path) -> JudgmentKind:
    """``single`` or ``pair``, from a judgment file's first record (FastChat's file names say it too)."""
    for _line, obj in read_jsonl(path):
        return "pair" if "model_1" in obj else "single"
    raise FormatError(path, None, "holds no judgments")


def _single_judgment(f: _Fields) -> SingleJudgment:
    return SingleJudgment(
        question_id=f.qid(),
        model=f.text("model"),
        judge=f.judge(),
        user_prompt=f.text("user_prompt", ""),
        judgment=f.text("judgment", ""),
        score=f.number("score"),
        turn=f.turn(),
        tstamp=f.number("tstamp", 0.0),
    )


def _pair_judgment(f: _Fields) -> PairJudgment:
    if "g1_winner" not in f.obj and "winner" in f.obj:
        # Older FastChat files carry one "winner" for both games.
        g1 = g2 = f.winner("winner")
    else:
        g1, g2 = f.winner("g1_winner"), f.winner("g2_winner")
    return PairJudgment(
        question_id=f.qid(),
        model_1=f.text("model_1"),
        model_2=f.text("model_2"),
        g1_winner=g1,
        g2_winner=g2,
        judge=f.judge(),
        g1_user_prompt=f.text("g1_user_prompt", ""),
        g1_judgment=f.text("g1_judgment", ""),
        g2_user_prompt=f.text("g2_user_prompt", ""),
        g2_judgment=f.text("g2_judgment", ""),
        turn=f.turn(),
        tstamp=f.number("tstamp", 0.0),
    )


# -- writing -----------------------------------------------------------------------------------------


def _number(value: float) -> float | int:
    """FastChat writes whole scores as integers (``7``, ``-1``)."""
    return int(value) if float(value).is_integer() else value


def question_json(q: Question) -> dict[str, Any]:
    obj: dict[str, Any] = {"question_id": q.question_id, "category": q.category, "turns": list(q.turns)}
    if q.reference is not None:
        obj["reference"] = list(q.reference)
    return obj


def answer_json(a: ModelAnswer) -> dict[str, Any]:
    return {
        "question_id": a.question_id,
        "answer_id": a.answer_id,
        "model_id": a.model_id,
        "choices": [{"index": 0, "turns": list(a.turns)}],
        "tstamp": a.tstamp,
    }


def judge_prompt_json(p: JudgePrompt) -> dict[str, Any]:
    return {
        "name": p.name,
        "type": p.type,
        "system_prompt": p.system_prompt,
        "prompt_template": p.prompt_template,
        "description": p.description,
        "category": p.category,
        "output_format": p.output_format,
    }


def judgment_json(j: Judgment) -> dict[str, Any]:
    """A judgment with FastChat's field names, in FastChat's field order."""
    if isinstance(j, SingleJudgment):
        return {
            "question_id": j.question_id,
            "model": j.model,
            "judge": list(j.judge),
            "user_prompt": j.user_prompt,
            "judgment": j.judgment,
            "score": _number(j.score),
            "turn": j.turn,
            "tstamp": j.tstamp,
        }
    return {
        "question_id": j.question_id,
        "model_1": j.model_1,
        "model_2": j.model_2,
        "g1_winner": j.g1_winner,
        "g2_winner": j.g2_winner,
        "judge": list(j.judge),
        "g1_user_prompt": j.g1_user_prompt,
        "g1_judgment": j.g1_judgment,
        "g2_user_prompt": j.g2_user_prompt,
        "g2_judgment": j.g2_judgment,
        "turn": j.turn,
        "tstamp": j.tstamp,
    }


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write (replace) a JSON Lines file, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def judgment_path(bench_dir: Path, judge_model: str, kind: JudgmentKind) -> Path:
    """FastChat's output file: ``model_judgment/<judge>_single.jsonl`` or ``<judge>_pair.jsonl``."""
    return bench_dir / JUDGMENT_DIR / f"{judge_model}_{kind}.jsonl"


def repair_tail(path: Path) -> bool:
    """Make a judgment file safe to append to after an interrupted write: a last line that was cut off
    (no newline, not valid JSON) is removed; a complete last line without a newline gets one.
    Returns whether a cut-off line was removed."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
    except ValueError:
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        return True
    with open(path, "ab") as fh:
        fh.write(b"\n")
    return False


class JudgmentWriter:
    """Appends judgments to a file, one flushed and synced line each, so a run killed at any moment
    leaves every finished judgment on disk (and at most one cut-off line, see :func:`repair_tail`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, judgment: Judgment) -> None:
        self._fh.write(json.dumps(judgment_json(judgment), ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JudgmentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
