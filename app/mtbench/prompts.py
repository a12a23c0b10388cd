"""Which judge template each MT-Bench judgment uses: the service's built-ins by default, or FastChat's
own prompts loaded from the user's ``judge_prompts.jsonl`` and turned into service templates.

FastChat prompts are ``str.format`` text like ours. Their placeholders map as follows:
``{question}``, ``{answer}``, ``{answer_a}``, ``{answer_b}`` keep their names, ``{ref_answer_1}`` becomes
``{reference}``; a multi-turn conversation written out turn by turn (``{question_1}``, ``{answer_a_1}``,
``{question_2}``, ``{answer_a_2}``, with the role line before ``{question_1}``) becomes one
``{conversation_a}`` (``{conversation_b}``, ``{conversation}``; ``{reference}`` for ``{ref_answer_N}``),
which the service renders as the transcript up to the judged turn. Their verdict formats (``[[A]]`` /
``[[B]]`` / ``[[C]]``, and ``[[rating]]``) are the ones the service parses.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from app.judging.domain import Mode, TemplateSpec
from app.judging.templates import TemplateError, builtin_templates, default_template_name, validate_template
from app.mtbench.formats import JudgePrompt

TEMPLATE_PREFIX = "mtbench-"
_OUTPUT_FORMATS: dict[str, str] = {"pairwise": "[[A]]", "single": "[[rating]]"}
_SIMPLE_FIELDS: dict[str, dict[str, str]] = {
    "pairwise": {
        "question": "question",
        "answer_a": "answer_a",
        "answer_b": "answer_b",
        "ref_answer_1": "reference",
    },
    "single": {"question": "question", "answer": "answer", "ref_answer_1": "reference"},
}
# The side of a turn-by-turn conversation block -> the service placeholder that shows it whole.
_CONVERSATION_FIELDS: dict[str, dict[str, str]] = {
    "pairwise": {"answer_a": "conversation_a", "answer_b": "conversation_b", "ref_answer": "reference"},
    "single": {"answer": "conversation", "ref_answer": "reference"},
}
_NUMBERED = re.compile(r"^(?P<side>[a-z_]+?)_(?P<turn>[0-9]+)$")


class Role(NamedTuple):
    """What a judgment needs of its template."""

    mode: Mode
    multi_turn: bool
    reference: bool


# The prompt FastChat's gen_judgment.py uses for each role (names only; the text is the user's).
FASTCHAT_PROMPT_NAMES: dict[Role, str] = {
    Role("pairwise", False, False): "pair-v2",
    Role("pairwise", False, True): "pair-math-v1",
    Role("pairwise", True, False): "pair-v2-multi-turn",
    Role("pairwise", True, True): "pair-math-v1-multi-turn",
    Role("single", False, False): "single-v1",
    Role("single", False, True): "single-math-v1",
    Role("single", True, False): "single-v1-multi-turn",
    Role("single", True, True): "single-math-v1-multi-turn",
}


class PromptError(ValueError):
    """A FastChat judge prompt cannot serve as a template, or a needed one is missing."""


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _header_cut(before: str) -> str:
    """``before`` without the role line that introduces the conversation's first user turn
    (``### User:``), which the service's transcript writes itself."""
    trimmed = before.rstrip("\n")
    return before[: trimmed.rfind("\n") + 1]


def _conversation_user_text(prompt: JudgePrompt, mode: Mode) -> tuple[str, bool, bool]:
    """The prompt's template text with service placeholders, and whether it is multi-turn and shows
    a reference."""
    try:
        parsed = list(string.Formatter().parse(prompt.prompt_template))
    except ValueError as exc:
        raise PromptError(f"judge prompt '{prompt.name}': malformed prompt_template ({exc})") from exc
    literals: list[str] = []  # literals[k] is the text before fields[k]
    fields: list[str] = []
    tail = ""
    for literal, name, spec, conversion in parsed:
        if name is None:
            tail += literal
            continue
        if spec or conversion:
            raise PromptError(f"judge prompt '{prompt.name}': {{{name}}} has a format spec or conversion")
        literals.append(literal)
        fields.append(name)
    out: list[str] = []
    multi_turn = reference = False
    k = 0
    while k < len(fields):
        name = fields[k]
        if name == "question_1":
            placeholder, taken = _conversation_block(prompt, mode, fields, k)
            out.append(_escape(_header_cut(literals[k])) + "{" + placeholder + "}")
            multi_turn = True
            reference = reference or placeholder == "reference"
            # The text between the block's fields (per-turn role lines) is the transcript's job.
            k += taken
            continue
        mapped = _SIMPLE_FIELDS[mode].get(name)
        if mapped is None:
            raise PromptError(
                f"judge prompt '{prompt.name}': placeholder {{{name}}} is not supported here "
                f"(a {mode} prompt may use {', '.join('{' + f + '}' for f in _SIMPLE_FIELDS[mode])}, "
                "or a conversation written out turn by turn from {question_1})"
            )
        out.append(_escape(literals[k]) + "{" + mapped + "}")
        reference = reference or mapped == "reference"
        k += 1
    out.append(_escape(tail))
    return "".join(out), multi_turn, reference


def _conversation_block(prompt: JudgePrompt, mode: Mode, fields: list[str], start: int) -> tuple[str, int]:
    """The placeholder replacing the block of fields from ``fields[start]`` (``question_1``) and how many
    fields it spans: ``question_1, X_1, question_2, X_2, ...`` with one side X throughout."""
    side: str | None = None
    k = start
    turn = 1
    while k + 1 < len(fields) and fields[k] == f"question_{turn}":
        match = _NUMBERED.match(fields[k + 1])
        if match is None or int(match["turn"]) != turn or (side is not None and match["side"] != side):
            break
        side = match["side"]
        k += 2
        turn += 1
    placeholder = _CONVERSATION_FIELDS[mode].get(side or "")
    if side is None or placeholder is None:
        raise PromptError(
            f"judge prompt '{prompt.name}': {{question_1}} must start a conversation written out turn by "
            f"turn ({{question_1}}, {{X_1}}, {{question_2}}, {{X_2}} ...) with X one of "
            f"{', '.join(_CONVERSATION_FIELDS[mode])}"
        )
    return placeholder, k - start


def template_from_prompt(prompt: JudgePrompt) -> TemplateSpec:
    """The service template for a FastChat judge prompt (named ``mtbench-<prompt name>``).

    Raises :class:`PromptError` when its verdict format or placeholders have no service equivalent.
    """
    mode: Mode = prompt.type
    expected = _OUTPUT_FORMATS[mode]
    if prompt.output_format != expected:
        raise PromptError(
            f"judge prompt '{prompt.name}': output format {prompt.output_format!r} is not supported; "
            f"a {mode} prompt must ask for {expected!r}"
        )
    user, multi_turn, reference = _conversation_user_text(prompt, mode)
    spec = TemplateSpec(
        name=TEMPLATE_PREFIX + re.sub(r"[^a-z0-9._-]+", "-", prompt.name.lower()).strip("-._")[:56],
        mode=mode,
        # FastChat sends its system prompt as it is (never formatted).
        system=_escape(prompt.system_prompt),
        user=user,
        multi_turn=multi_turn,
        reference=reference,
        # FastChat's prompts ask for an explanation before the verdict.
        cot=True,
        description=f"FastChat judge prompt '{prompt.name}'"
        + (f": {prompt.description}" if prompt.description else ""),
        # FastChat's prompts come with FastChat's reading of their verdicts.
        parser="fastchat",
    )
    try:
        validate_template(spec)
    except TemplateError as exc:
        raise PromptError(f"judge prompt '{prompt.name}' as a template: {exc.message}") from exc
    return spec


@dataclass(frozen=True)
class Templates:
    """The template for each role, and the prompt name written in judgments' ``judge`` field."""

    specs: Mapping[Role, TemplateSpec]
    names: Mapping[Role, str]
    # Templates the service does not know yet (registered before judging in service mode).
    custom: tuple[TemplateSpec, ...] = field(default_factory=tuple)

    def spec(self, role: Role) -> TemplateSpec:
        if role not in self.specs:
            kind = f"{'multi-turn' if role.multi_turn else 'single-turn'} {role.mode}"
            ref = " reference-guided" if role.reference else ""
            raise PromptError(
                f"no judge prompt for{ref} {kind} judging; FastChat names it "
                f"'{FASTCHAT_PROMPT_NAMES[role]}' in judge_prompts.jsonl"
            )
        return self.specs[role]

    def name(self, role: Role) -> str:
        return self.names.get(role) or self.spec(role).name


def builtin(cot: bool = False) -> Templates:
    """The service's own templates (the default)."""
    specs = {
        role: builtin_templates()[default_template_name(role.mode, role.multi_turn, role.reference, cot)]
        for role in FASTCHAT_PROMPT_NAMES
    }
    return Templates(specs=specs, names={role: spec.name for role, spec in specs.items()})


def from_fastchat(prompts: Mapping[str, JudgePrompt]) -> Templates:
    """Templates from FastChat judge prompts: for each role, the prompt FastChat uses for it
    (:data:`FASTCHAT_PROMPT_NAMES`), else the only convertible prompt of that role. Raises
    :class:`PromptError` when a prompt FastChat would use cannot be converted, or a role has several
    candidates and none of FastChat's names."""
    specs: dict[Role, TemplateSpec] = {}
    names: dict[Role, str] = {}
    candidates: dict[Role, list[tuple[str, TemplateSpec]]] = {}
    for name, prompt in prompts.items():
        canonical = name in FASTCHAT_PROMPT_NAMES.values()
        try:
            spec = template_from_prompt(prompt)
        except PromptError:
            if canonical:
                raise
            continue  # another prompt of the file (e.g. an older variant) that is not needed
        role = Role(spec.mode, spec.multi_turn, spec.reference)
        candidates.setdefault(role, []).append((name, spec))
    for role, found in candidates.items():
        preferred = [(n, s) for n, s in found if n == FASTCHAT_PROMPT_NAMES[role]]
        if not preferred and len(found) > 1:
            raise PromptError(
                f"several judge prompts could serve {role.mode} judging (multi-turn: {role.multi_turn}, "
                f"reference: {role.reference}): {', '.join(n for n, _ in found)}; name one "
                f"'{FASTCHAT_PROMPT_NAMES[role]}'"
            )
        name, spec = (preferred or found)[0]
        specs[role], names[role] = spec, name
    return Templates(specs=specs, names=names, custom=tuple(specs.values()))
