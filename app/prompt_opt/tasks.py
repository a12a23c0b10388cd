"""What a prompt is *for*: how a candidate prompt and an example become the task model's conversation,
and how its reply becomes a label. Pure functions; the worker runs the model.

- ``classification``: the prompt is a template over the example's fields (e.g. ``{text}``), sent as the
  user message; the reply's first label word is the prediction.
- ``judge-agreement``: the prompt is a judge template written as two sections, ``# Task`` (the judge's
  instructions, sent as the system message; this is what the search edits) and ``# Output format``
  (the user message with ``{question}``, ``{answer_a}``, ``{answer_b}`` and the verdict format, kept
  verbatim); the reply's verdict (A / B / tie) is the prediction, compared with human verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from app.engine.base import Conversation
from app.judging.verdicts import VerdictParseError, parse_pairwise
from app.prompt_opt import sections
from app.prompt_opt.domain import Example
from app.prompt_opt.metrics import parse_label

TaskType = Literal["classification", "judge-agreement"]
JUDGE_FIELDS = ("question", "answer_a", "answer_b")
JUDGE_LABELS = ("A", "B", "tie")


class Task(Protocol):
    @property
    def labels(self) -> tuple[str, ...]:
        """The label words predictions are made of."""
        ...

    def conversation(self, prompt: str, example: Example) -> Conversation:
        """The task model's input for ``prompt`` on ``example``."""
        ...

    def prediction(self, output: str) -> str | None:
        """The label the model's reply states, or None when it states none."""
        ...

    def show(self, example: Example) -> str:
        """The example as the optimizer sees it when shown the prompt's errors."""
        ...


@dataclass(frozen=True)
class ClassificationTask:
    labels: tuple[str, ...]

    def conversation(self, prompt: str, example: Example) -> Conversation:
        return [{"role": "user", "content": sections.render(prompt, example.inputs)}]

    def prediction(self, output: str) -> str | None:
        return parse_label(output, self.labels)

    def show(self, example: Example) -> str:
        if set(example.inputs) == {"text"}:
            return example.inputs["text"]
        return "\n".join(f"{name}: {value}" for name, value in example.inputs.items())


@dataclass(frozen=True)
class JudgeAgreementTask:
    labels: tuple[str, ...] = JUDGE_LABELS

    def conversation(self, prompt: str, example: Example) -> Conversation:
        # Rendered with no values: it holds no placeholders, but its escaped braces ({{ }}) unescape.
        system = sections.render(sections.task_section(prompt), {}).strip()
        user = sections.render(sections.output_format_section(prompt) or "", example.inputs)
        messages: Conversation = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        return messages

    def prediction(self, output: str) -> str | None:
        try:
            return parse_pairwise(output)
        except VerdictParseError:
            return None

    def show(self, example: Example) -> str:
        return (
            f"Question: {example.inputs['question']}\n"
            f"Answer A: {example.inputs['answer_a']}\n"
            f"Answer B: {example.inputs['answer_b']}"
        )


def judge_prompt(system: str, user: str) -> str:
    """A judge template as a sectioned prompt: the instructions are the editable task section."""
    return f"# Task\n{system.strip()}\n\n# Output format\n{user.strip()}\n"


def judge_template_parts(prompt: str) -> tuple[str, str]:
    """(system, user) of a judge-agreement prompt, ready to register as a judge template."""
    return sections.task_section(prompt).strip(), (sections.output_format_section(prompt) or "").strip()


def build_task(task_type: TaskType, labels: Sequence[str]) -> Task:
    if task_type == "judge-agreement":
        return JudgeAgreementTask()
    return ClassificationTask(tuple(labels))
