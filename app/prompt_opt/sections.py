"""Prompt templates of the search: placeholders, rendering, and the task section the optimizer edits.

A prompt is text with ``{name}`` placeholders (``{{`` and ``}}`` write literal braces) and optional
section headers: lines that start with ``# `` (``# Task``, ``# Output format``, ...). The optimizer edits
only the task section; everything else, the output format above all, must survive an edit unchanged.
Templates are data: they are parsed here and never handed to ``str.format``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MAX_TASK_CHARS = 4000

_TASK_TITLES = frozenset({"task", "instruction", "instructions"})
_FORMAT_TITLES = frozenset({"output format", "format"})
_FENCES = ("```", "~~~")


class PromptError(ValueError):
    """A prompt is not a usable template, or lacks the section asked for."""


# A parsed template: literal text and placeholder names, in order.
@dataclass(frozen=True)
class _Field:
    name: str


_Piece = str | _Field


def _parse(text: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif ch == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif ch == "}":
            raise PromptError(f"unbalanced '}}' at position {i}; write a literal brace as '}}}}'")
        elif ch == "{":
            close = text.find("}", i + 1)
            nested = text.find("{", i + 1)
            if close == -1 or (nested != -1 and nested < close):
                raise PromptError(
                    f"unbalanced or nested '{{' at position {i}; write a literal brace as '{{{{'"
                )
            name = text[i + 1 : close]
            _check_field(name)
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append(_Field(name))
            i = close + 1
        else:
            # Copy the run up to the next brace in one step; prompts can be long.
            nxt = min((j for j in (text.find("{", i), text.find("}", i)) if j != -1), default=n)
            literal.append(text[i:nxt])
            i = nxt
    if literal:
        pieces.append("".join(literal))
    return pieces


def _check_field(name: str) -> None:
    shown = "{" + name + "}"
    if name == "" or name.isdigit():
        raise PromptError(f"positional field {shown} is not allowed; use a named placeholder like {{text}}")
    if "!" in name or ":" in name:
        raise PromptError(f"{shown} uses a conversion or format spec; placeholders are plain names only")
    if not name.isidentifier():
        raise PromptError(
            f"{shown} is not a plain placeholder name (no attribute or index access, no spaces); "
            "write literal braces as '{{' and '}}'"
        )


def placeholders(text: str) -> frozenset[str]:
    """The placeholder names ``text`` uses. Raises :class:`PromptError` unless it is a valid template."""
    return frozenset(p.name for p in _parse(text) if isinstance(p, _Field))


def render(prompt: str, values: Mapping[str, str]) -> str:
    """``prompt`` with every placeholder filled from ``values`` (extra values are ignored).

    Values are inserted verbatim: braces inside them are not interpreted. Raises :class:`PromptError`
    for an invalid template or a placeholder with no value.
    """
    out: list[str] = []
    for piece in _parse(prompt):
        if isinstance(piece, str):
            out.append(piece)
        elif piece.name in values:
            out.append(values[piece.name])
        else:
            raise PromptError(f"no value for placeholder {{{piece.name}}}")
    return "".join(out)


@dataclass(frozen=True)
class _Section:
    title: str | None  # normalised (case-folded) header title; None for the text before any header
    start: int  # body offsets in the prompt: body == prompt[start:end]
    end: int


def _sections(prompt: str) -> list[_Section]:
    """The preamble, then one section per header. A single preamble means the prompt has no headers."""
    sections: list[_Section] = []
    title: str | None = None
    body_start = 0
    offset = 0
    in_fence = False
    for line in prompt.splitlines(keepends=True):
        # A '# ' line inside a code block is a comment, not a header.
        if line.lstrip().startswith(_FENCES):
            in_fence = not in_fence
        elif not in_fence and _is_header(line):
            sections.append(_Section(title, body_start, offset))
            title = line[2:].strip().rstrip(":").strip().casefold()
            body_start = offset + len(line)
        offset += len(line)
    sections.append(_Section(title, body_start, len(prompt)))
    return sections


def _is_header(line: str) -> bool:
    return line.startswith("# ")


def _find(prompt: str, titles: frozenset[str]) -> _Section | None:
    return next((s for s in _sections(prompt) if s.title in titles), None)


def _task(prompt: str) -> _Section:
    sections = _sections(prompt)
    if len(sections) == 1:
        return sections[0]
    found = next((s for s in sections if s.title in _TASK_TITLES), None)
    if found is not None:
        return found
    preamble = sections[0]
    if prompt[preamble.start : preamble.end].strip():
        return preamble
    raise PromptError(
        "the prompt has section headers but no '# Task' (or '# Instruction') section and no text "
        "before its first header, so there is no instruction to optimise"
    )


def task_section(prompt: str) -> str:
    """The editable instruction, stripped: the body of the ``# Task`` / ``# Instruction(s)`` section.

    Without headers it is the whole prompt; with headers but no such section, the text before the first
    header. Raises :class:`PromptError` when there is none.
    """
    section = _task(prompt)
    return prompt[section.start : section.end].strip()


def replace_task_section(prompt: str, new_task: str) -> str:
    """``prompt`` with the task section's text replaced by ``new_task``.

    Headers, other sections and the whitespace around the task text are kept byte for byte. Raises
    :class:`PromptError` when there is no task section or ``new_task`` holds a header line.
    """
    if any(_is_header(line) for line in new_task.splitlines()):
        raise PromptError("the new task text contains a section header line ('# ...')")
    section = _task(prompt)
    old = prompt[section.start : section.end]
    core = new_task.strip()
    prefix = ""
    if section.start == len(prompt) and prompt and not prompt.endswith("\n"):
        prefix = "\n"  # the header is the last line and has no newline of its own
    if old.strip():
        lead = old[: len(old) - len(old.lstrip())]
        trail = old[len(old.rstrip()) :]
        body = lead + core + trail
    else:
        body = core + (old if old.startswith("\n") else "\n" + old)
    return prompt[: section.start] + prefix + body + prompt[section.end :]


def output_format_section(prompt: str) -> str | None:
    """The stripped body of the ``# Output format`` (or ``# Format``) section; None when absent."""
    section = _find(prompt, _FORMAT_TITLES)
    return None if section is None else prompt[section.start : section.end].strip()


def _names(names: frozenset[str]) -> str:
    return ", ".join("{" + n + "}" for n in sorted(names))


def candidate_problem(initial: str, candidate: str) -> str | None:
    """Why ``candidate`` may not replace ``initial`` in the search, or None when it may.

    Rejects an invalid template, lost or added placeholders, a lost, added or changed output-format
    section, and an empty task section. ``initial`` must itself be a valid template.
    """
    try:
        found = placeholders(candidate)
    except PromptError as exc:
        return f"not a valid template: {exc}"
    expected = placeholders(initial)
    if lost := expected - found:
        return f"lost placeholder(s) {_names(lost)}"
    if added := found - expected:
        return f"added placeholder(s) {_names(added)} that the initial prompt does not have"
    before, after = output_format_section(initial), output_format_section(candidate)
    if before is not None and after is None:
        return "lost the output-format section"
    if before is None and after is not None:
        return "added an output-format section the initial prompt does not have"
    if before != after:
        return "changed the output-format section"
    try:
        task = task_section(candidate)
    except PromptError as exc:
        return str(exc)
    if not task:
        return "the task section is empty"
    return None


def task_text_problem(new_task: str, allowed: frozenset[str]) -> str | None:
    """Why an edited instruction may not be spliced into the prompt, or None when it may.

    ``allowed`` is the set of placeholders the task text may use (those of the initial task section).
    """
    text = new_task.strip()
    if not text:
        return "the task text is empty"
    if len(text) > MAX_TASK_CHARS:
        return f"the task text is {len(text)} characters long (at most {MAX_TASK_CHARS})"
    if any(_is_header(line) for line in text.splitlines()):
        return "the task text contains a section header line ('# ...')"
    try:
        found = placeholders(text)
    except PromptError as exc:
        return f"the task text is not a valid template: {exc}"
    if extra := found - allowed:
        return f"the task text uses placeholder(s) {_names(extra)} that are not allowed here"
    return None
