"""Judge prompt templates: validation, the built-in set, fitting checks and rendering.

A template is ``str.format`` text with named placeholders only. Which placeholders a template may
use depends on its mode, whether it shows whole conversations (``multi_turn``) and whether it shows
a reference answer (``reference``); see :func:`allowed_placeholders`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any, get_args

import yaml

from app.engine.base import ChatMessage, Conversation
from app.judging.domain import JudgeItem, Mode, Order, Scale, TemplateSpec, VerdictParser

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_RESPONSE_PREFIX = 200

_MODES: tuple[str, ...] = get_args(Mode)
_PARSERS: tuple[str, ...] = get_args(VerdictParser)
_SCALE_FIELDS = frozenset({"scale_min", "scale_max"})
# A single-grading template that shows an item's own rubric uses this placeholder (and then judges only
# items that carry one).
RUBRIC = "rubric"

# The judge model writes its own answer with this instruction when references are {"auto": true}.
REFERENCE_SYSTEM_PROMPT = (
    "You are a careful expert. Answer the user's question correctly and completely. "
    "Work it out step by step when it needs reasoning, and state the final answer clearly."
)


class TemplateError(ValueError):
    """A template is malformed or cannot be used; ``field`` names the offending part."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def allowed_placeholders(mode: Mode, multi_turn: bool, reference: bool) -> frozenset[str]:
    """The placeholders a template of this kind may use."""
    if multi_turn:
        names = {"conversation_a", "conversation_b"} if mode == "pairwise" else {"conversation"}
        names |= {"turn", "question"}
    else:
        names = {"answer_a", "answer_b"} if mode == "pairwise" else {"answer"}
        names.add("question")
    if reference:
        names.add("reference")
    if mode == "single":
        names |= _SCALE_FIELDS | {RUBRIC}
    return frozenset(names)


def required_placeholders(mode: Mode, multi_turn: bool, reference: bool) -> frozenset[str]:
    """The placeholders a template of this kind must use (in its system or user text)."""
    if multi_turn:
        names = {"conversation_a", "conversation_b"} if mode == "pairwise" else {"conversation"}
    else:
        names = {"answer_a", "answer_b"} if mode == "pairwise" else {"answer"}
        names.add("question")
    if reference:
        names.add("reference")
    return frozenset(names)


def template_placeholders(spec: TemplateSpec) -> frozenset[str]:
    """The placeholder names a (valid) template uses, in its system and user text together."""
    return _placeholders(spec.system, "system") | _placeholders(spec.user, "user")


def _kind(mode: str, multi_turn: bool, reference: bool) -> str:
    turns = "multi-turn" if multi_turn else "single-turn"
    ref = " reference" if reference else ""
    return f"{turns} {mode}{ref}"


def _placeholders(text: str, field: str) -> frozenset[str]:
    """Parse ``text`` as a format string that may hold only plain ``{name}`` fields."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(
            f"{field}: malformed template ({exc}); write literal braces as '{{{{' and '}}}}'", field
        ) from exc
    names: set[str] = set()
    for _literal, name, format_spec, conversion in parsed:
        if name is None:
            continue
        shown = _field_text(name, conversion, format_spec)
        if name == "" or name.isdigit():
            raise TemplateError(
                f"{field}: positional field {shown} is not allowed; use a named placeholder", field
            )
        if not name.isidentifier():
            raise TemplateError(
                f"{field}: {shown} is not a plain placeholder (no attribute or index access, no spaces)",
                field,
            )
        if conversion or format_spec:
            raise TemplateError(
                f"{field}: {shown} uses a conversion or format spec; write just {{{name}}}", field
            )
        names.add(name)
    return frozenset(names)


def _field_text(name: str, conversion: str | None, format_spec: str | None) -> str:
    conversion_text = f"!{conversion}" if conversion else ""
    spec_text = f":{format_spec}" if format_spec else ""
    return "{" + name + conversion_text + spec_text + "}"


def validate_template(spec: TemplateSpec) -> None:
    """Raise :class:`TemplateError` unless ``spec`` is a usable template.

    Checks the name, the mode, that the user text is not empty, that both texts are well-formed format
    strings with only named placeholders, that every placeholder is allowed for the template's kind,
    and that the required ones appear.
    """
    if not NAME_PATTERN.fullmatch(spec.name):
        raise TemplateError(
            f"template name {spec.name!r} must be 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit",
            "name",
        )
    if spec.mode not in _MODES:
        raise TemplateError(f"mode {spec.mode!r} is not one of {', '.join(_MODES)}", "mode")
    if not spec.user.strip():
        raise TemplateError("the user message must not be empty", "user")

    allowed = allowed_placeholders(spec.mode, spec.multi_turn, spec.reference)
    used: set[str] = set()
    for field, text in (("system", spec.system), ("user", spec.user)):
        names = _placeholders(text, field)
        unknown = sorted(names - allowed)
        if unknown:
            kind = _kind(spec.mode, spec.multi_turn, spec.reference)
            raise TemplateError(
                f"{field}: unknown placeholder(s) {_braced(unknown)}; "
                f"a {kind} template may use {_braced(sorted(allowed))}",
                field,
            )
        used |= names

    if spec.parser not in _PARSERS:
        raise TemplateError(f"parser {spec.parser!r} is not one of {', '.join(_PARSERS)}", "parser")
    if len(spec.response_prefix) > MAX_RESPONSE_PREFIX or "\n\n" in spec.response_prefix:
        raise TemplateError(
            f"response_prefix must be at most {MAX_RESPONSE_PREFIX} characters without blank lines",
            "response_prefix",
        )

    missing = sorted(required_placeholders(spec.mode, spec.multi_turn, spec.reference) - used)
    if missing:
        raise TemplateError(
            f"a {_kind(spec.mode, spec.multi_turn, spec.reference)} template must use {_braced(missing)}",
            "user",
        )


def _braced(names: Sequence[str]) -> str:
    return ", ".join("{" + name + "}" for name in names)


@cache
def _load_builtins() -> tuple[TemplateSpec, ...]:
    text = resources.files("app.templates").joinpath("builtin.yaml").read_text(encoding="utf-8")
    data: Any = yaml.safe_load(text)
    specs = tuple(_spec_from_yaml(entry) for entry in data["templates"])
    for spec in specs:
        validate_template(spec)
    return specs


def _spec_from_yaml(entry: dict[str, Any]) -> TemplateSpec:
    return TemplateSpec(
        name=str(entry["name"]),
        mode=entry["mode"],
        system=str(entry.get("system") or "").strip(),
        user=str(entry["user"]).strip(),
        multi_turn=bool(entry.get("multi_turn", False)),
        reference=bool(entry.get("reference", False)),
        cot=bool(entry.get("cot", False)),
        version=int(entry.get("version", 1)),
        description=str(entry.get("description", "")).strip(),
        response_prefix=str(entry.get("response_prefix", "")),
        parser=entry.get("parser", "strict"),
    )


def builtin_templates() -> dict[str, TemplateSpec]:
    """The built-in templates by name (loaded once from ``app/templates/builtin.yaml``)."""
    return {spec.name: spec for spec in _load_builtins()}


def default_template_name(mode: Mode, multi_turn: bool, reference: bool, cot: bool) -> str:
    """The built-in template for a kind of request, e.g. ``pairwise-multi-ref-cot``."""
    return mode + ("-multi" if multi_turn else "") + ("-ref" if reference else "") + ("-cot" if cot else "")


def rubric_template_name(reference: bool) -> str:
    """The built-in template for items with their own rubric (single-turn, no chain of thought)."""
    return "single-rubric" + ("-ref" if reference else "")


def uses_rubric(spec: TemplateSpec) -> bool:
    """Whether the template shows an item's own rubric."""
    return RUBRIC in template_placeholders(spec)


def check_template_fits(
    spec: TemplateSpec, item: JudgeItem, mode: Mode, has_reference: bool, cot: bool
) -> str | None:
    """Why ``spec`` cannot judge ``item`` in this request, or None when it can.

    A multi-turn template may judge a one-turn item; a single-turn template may not judge a longer one.
    ``cot`` only shapes the suggested replacement template.
    """
    suggestion = default_template_name(mode, spec.multi_turn or item.multi_turn, has_reference, cot)
    if spec.mode != mode:
        return (
            f"template '{spec.name}' is for {spec.mode} judging but the request is {mode}; "
            f"use a {mode} template such as '{suggestion}'"
        )
    if spec.reference and not has_reference:
        return (
            f"template '{spec.name}' shows a reference answer but the request has none; "
            f"give references (or reference auto) or use a template such as '{suggestion}'"
        )
    if has_reference and not spec.reference:
        return (
            f"the request has references but template '{spec.name}' does not show them; "
            f"use a reference template such as '{suggestion}'"
        )
    if item.multi_turn and not spec.multi_turn:
        return (
            f"template '{spec.name}' judges single-turn items but the item has {len(item.turns)} turns; "
            f"use a multi-turn template such as '{suggestion}'"
        )
    if mode == "single" and uses_rubric(spec) != (item.rubric is not None):
        if item.rubric is None:
            return f"template '{spec.name}' shows the item's rubric ({{rubric}}) but the item has no `rubric`"
        return (
            f"the item has a `rubric` but template '{spec.name}' does not show it ({{rubric}}); use a rubric "
            f"template such as '{rubric_template_name(has_reference)}'"
        )
    return _item_problem(item, mode)


def _item_problem(item: JudgeItem, mode: Mode) -> str | None:
    """What makes an item impossible to render (the API normally rejects these earlier)."""
    if not item.turns:
        return "the item has no turns"
    turn = item.judged_turn
    if not 0 <= turn < len(item.turns):
        return f"turn {item.turn} is out of range for an item with {len(item.turns)} turn(s)"
    if mode == "pairwise" and item.answers_b is None:
        return "pairwise judging needs answer B"
    for label, answers in (("answer A", item.answers_a), ("answer B", item.answers_b)):
        if answers is not None and len(answers) <= turn:
            return f"{label} has {len(answers)} turn(s) but turn {turn + 1} is judged"
    if item.references is not None and len(item.references) <= turn:
        return f"the references cover {len(item.references)} turn(s) but turn {turn + 1} is judged"
    return None


def format_number(value: float) -> str:
    """A scale bound as a person writes it: ``10`` rather than ``10.0``."""
    as_float = float(value)
    return str(int(as_float)) if as_float.is_integer() else repr(as_float)


def render(spec: TemplateSpec, item: JudgeItem, order: Order, scale: Scale) -> Conversation:
    """The judge conversation for one item in one order: system message (if any) and user message.

    In order ``BA`` the answers are swapped: ``answers_b`` is shown as answer A. Raises ``ValueError``
    when the order does not suit the template's mode or the item lacks what the template shows
    (see :func:`check_template_fits`).
    """
    if (order == "single") != (spec.mode == "single"):
        raise ValueError(f"order {order!r} does not suit a {spec.mode} template")
    problem = _item_problem(item, spec.mode)
    if problem is not None:
        raise ValueError(problem)
    values = _values(spec, item, order, scale)
    messages: Conversation = []
    system = spec.system.format_map(values)
    if system.strip():
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": spec.user.format_map(values)})
    if spec.response_prefix:
        # An open assistant turn: the engine continues it rather than starting a new reply.
        messages.append({"role": "assistant", "content": spec.response_prefix})
    return messages


def _values(spec: TemplateSpec, item: JudgeItem, order: Order, scale: Scale) -> dict[str, str]:
    turn = item.judged_turn
    values: dict[str, str] = {"question": item.turns[turn]}
    if spec.mode == "pairwise":
        if item.answers_b is None:
            raise ValueError("pairwise judging needs answer B")
        first, second = item.answers_a, item.answers_b
        if order == "BA":
            first, second = second, first
        if spec.multi_turn:
            values["conversation_a"] = _transcript(item.turns, first, turn, "Assistant A")
            values["conversation_b"] = _transcript(item.turns, second, turn, "Assistant B")
        else:
            values["answer_a"] = first[turn]
            values["answer_b"] = second[turn]
    elif spec.multi_turn:
        values["conversation"] = _transcript(item.turns, item.answers_a, turn, "Assistant")
    else:
        values["answer"] = item.answers_a[turn]
    if spec.multi_turn:
        values["turn"] = str(turn + 1)
    if spec.reference:
        if item.references is None:
            raise ValueError(f"template '{spec.name}' needs reference answers but the item has none")
        if spec.multi_turn:
            values["reference"] = _transcript(item.turns, item.references, turn, "Reference answer")
        else:
            values["reference"] = item.references[turn]
    if spec.mode == "single":
        values["scale_min"] = format_number(scale.min)
        values["scale_max"] = format_number(scale.max)
        if item.rubric is not None:
            values[RUBRIC] = item.rubric.text()
        elif uses_rubric(spec):
            raise ValueError(f"template '{spec.name}' shows a rubric but the item has none")
    return values


def _transcript(turns: Sequence[str], replies: Sequence[str], last: int, speaker: str) -> str:
    """User turns and one side's replies, up to and including turn index ``last``."""
    blocks = []
    for index in range(last + 1):
        number = index + 1
        blocks.append(f"### User (turn {number}):\n{turns[index]}")
        blocks.append(f"### {speaker} (turn {number}):\n{replies[index]}")
    return "\n\n".join(blocks)


def reference_prompt(item: JudgeItem, turn_index: int, previous_answers: Sequence[str]) -> Conversation:
    """The conversation asking the judge model to write its own answer to turn ``turn_index`` (0-based).

    Earlier turns are replayed with ``previous_answers[:turn_index]`` (the reference answers already
    generated) as the assistant's replies, so each reference answers in context.
    """
    if not 0 <= turn_index < len(item.turns):
        raise ValueError(
            f"turn index {turn_index} is out of range for an item with {len(item.turns)} turn(s)"
        )
    if len(previous_answers) < turn_index:
        raise ValueError(
            f"turn index {turn_index} needs the {turn_index} earlier reference answer(s), "
            f"got {len(previous_answers)}"
        )
    messages: Conversation = [ChatMessage(role="system", content=REFERENCE_SYSTEM_PROMPT)]
    for index in range(turn_index):
        messages.append({"role": "user", "content": item.turns[index]})
        messages.append({"role": "assistant", "content": previous_answers[index]})
    messages.append({"role": "user", "content": item.turns[turn_index]})
    return messages
