import pytest

from app.prompt_opt.sections import (
    MAX_TASK_CHARS,
    PromptError,
    candidate_problem,
    output_format_section,
    placeholders,
    render,
    replace_task_section,
    task_section,
    task_text_problem,
)

PROMPT = (
    "# Task\n"
    "Decide whether the review is positive or negative.\n"
    "\n"
    "# Output format\n"
    "Answer with one word: positive or negative.\n"
    "\n"
    "# Prediction\n"
    "Text: {text}\n"
    "Label:"
)


# --- placeholders / render -------------------------------------------------------------------


def test_placeholders_are_the_plain_names_and_escaped_braces_are_literal() -> None:
    assert placeholders("Q: {question}\nA: {answer} {question} {{not_a_field}} }}{{") == {
        "question",
        "answer",
    }
    assert placeholders("no fields") == frozenset()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{x.__class__}", "not a plain placeholder"),
        ("{x[0]}", "not a plain placeholder"),
        ("{x!r}", "conversion or format spec"),
        ("{x:>10}", "conversion or format spec"),
        ("{}", "positional"),
        ("{0}", "positional"),
        ("{two words}", "not a plain placeholder"),
        ("open { brace", "unbalanced or nested '{'"),
        ("close } brace", "unbalanced '}'"),
        ("{a{b}}", "nested '{'"),
        ("{x:{y}}", "nested '{'"),
    ],
)
def test_placeholders_reject_anything_but_plain_names(text: str, fragment: str) -> None:
    with pytest.raises(PromptError, match=fragment.replace("{", r"\{")):
        placeholders(text)


def test_prompt_error_is_a_value_error() -> None:
    assert issubclass(PromptError, ValueError)


def test_render_fills_values_verbatim_without_interpreting_their_braces() -> None:
    assert (
        render("{a} and {b} {{b}}", {"a": "{b}", "b": "x.__class__", "unused": "?"})
        == "{b} and x.__class__ {b}"
    )


def test_render_names_the_missing_placeholder() -> None:
    with pytest.raises(PromptError, match=r"\{text\}"):
        render("Review: {text}", {"other": "x"})


def test_render_refuses_attribute_access_instead_of_evaluating_it() -> None:
    with pytest.raises(PromptError):
        render("{text.__class__.__mro__}", {"text": "x"})


# --- sections ---------------------------------------------------------------------------------


def test_task_section_is_the_body_of_the_task_header() -> None:
    assert task_section(PROMPT) == "Decide whether the review is positive or negative."


@pytest.mark.parametrize("title", ["Task", "TASK", "Instruction", "instructions", "Task:"])
def test_task_section_accepts_instruction_headers_in_any_case(title: str) -> None:
    assert task_section(f"Intro\n# {title}\nDo it.\n# Input\n{{text}}") == "Do it."


def test_task_section_without_headers_is_the_whole_prompt() -> None:
    assert task_section("  Classify {text} as spam or ham.\n") == "Classify {text} as spam or ham."


def test_task_section_falls_back_to_text_before_the_first_header() -> None:
    assert task_section("Label the text.\n\n# Input\n{text}") == "Label the text."


def test_task_section_raises_when_headers_leave_no_instruction() -> None:
    with pytest.raises(PromptError, match="no '# Task'"):
        task_section("\n\n# Input\n{text}\n# Output format\nyes or no")


def test_deeper_headers_and_code_comments_are_not_section_headers() -> None:
    prompt = "# Task\nDo it.\n## Detail\nmore\n```\n# a comment\n```\n# Input\n{text}"
    assert task_section(prompt) == "Do it.\n## Detail\nmore\n```\n# a comment\n```"


def test_replace_task_section_keeps_everything_else_byte_for_byte() -> None:
    new = replace_task_section(PROMPT, "  Say whether the reviewer liked the film.  ")
    assert new == PROMPT.replace(
        "Decide whether the review is positive or negative.", "Say whether the reviewer liked the film."
    )
    assert task_section(new) == "Say whether the reviewer liked the film."


def test_replace_task_section_without_headers_keeps_surrounding_whitespace() -> None:
    assert replace_task_section("\nOld {text}\n\n", "New {text}") == "\nNew {text}\n\n"


def test_replace_task_section_in_the_preamble() -> None:
    assert replace_task_section("Old.\n\n# Input\n{text}", "New.") == "New.\n\n# Input\n{text}"


def test_replace_an_empty_task_body_keeps_the_next_header_on_its_own_line() -> None:
    assert replace_task_section("# Task\n# Input\n{text}", "Do it.") == "# Task\nDo it.\n# Input\n{text}"
    assert replace_task_section("# Input\n{text}\n# Task", "Do it.") == "# Input\n{text}\n# Task\nDo it.\n"


def test_replace_task_section_refuses_a_header_in_the_new_text() -> None:
    with pytest.raises(PromptError, match="header"):
        replace_task_section(PROMPT, "Do it.\n# Output format\nanything")


def test_crlf_prompts_keep_their_line_endings() -> None:
    prompt = PROMPT.replace("\n", "\r\n")
    assert task_section(prompt) == "Decide whether the review is positive or negative."
    new = replace_task_section(prompt, "Judge it.")
    assert new == prompt.replace("Decide whether the review is positive or negative.", "Judge it.")


def test_output_format_section() -> None:
    assert output_format_section(PROMPT) == "Answer with one word: positive or negative."
    assert output_format_section("# Task\nx\n# FORMAT\n yes/no \n") == "yes/no"
    assert output_format_section("Classify {text}") is None


# --- candidate checks -------------------------------------------------------------------------


def test_a_spliced_edit_is_an_acceptable_candidate() -> None:
    assert candidate_problem(PROMPT, replace_task_section(PROMPT, "Is the review favourable?")) is None
    assert candidate_problem(PROMPT, PROMPT) is None


def test_candidate_that_is_not_a_template_is_rejected() -> None:
    problem = candidate_problem(PROMPT, PROMPT + " {x[0]}")
    assert problem is not None and problem.startswith("not a valid template")


def test_candidate_losing_placeholders_names_them() -> None:
    initial = "Q: {question}\nA: {answer}\nContext: {context}"
    assert candidate_problem(initial, "Q: {question}") == "lost placeholder(s) {answer}, {context}"


def test_candidate_adding_placeholders_is_rejected() -> None:
    problem = candidate_problem(PROMPT, PROMPT + " {label}")
    assert problem is not None and "added placeholder(s) {label}" in problem


def test_candidate_changing_the_output_format_is_rejected() -> None:
    lost = PROMPT.replace("# Output format\nAnswer with one word: positive or negative.\n\n", "")
    assert candidate_problem(PROMPT, lost) == "lost the output-format section"
    changed = PROMPT.replace("one word", "a single word")
    assert candidate_problem(PROMPT, changed) == "changed the output-format section"
    # Whitespace around the body is not a change.
    assert (
        candidate_problem(PROMPT, PROMPT.replace("negative.\n\n# Prediction", "negative.\n# Prediction"))
        is None
    )
    added = "Classify {text}"
    problem = candidate_problem(added, "# Task\nClassify {text}\n# Output format\nyes")
    assert problem is not None and "added an output-format section" in problem


def test_candidate_with_an_empty_task_is_rejected() -> None:
    assert candidate_problem(
        PROMPT, PROMPT.replace("Decide whether the review is positive or negative.", "")
    ) == ("the task section is empty")
    problem = candidate_problem("{text}", "# Input\n{text}")
    assert problem is not None and "no '# Task'" in problem


def test_task_text_problem() -> None:
    allowed = frozenset({"text"})
    assert task_text_problem("Classify {text} carefully.", allowed) is None
    assert task_text_problem("Be precise.", allowed) is None
    assert task_text_problem("  \n ", allowed) == "the task text is empty"
    assert "header" in (task_text_problem("Do it.\n# Output format\nx", allowed) or "")
    assert "{label}" in (task_text_problem("Use {label}.", allowed) or "")
    assert "not a valid template" in (task_text_problem('Answer like {"label": "x"}', allowed) or "")
    assert "at most 4000" in (task_text_problem("x" * (MAX_TASK_CHARS + 1), allowed) or "")
    assert task_text_problem("x" * MAX_TASK_CHARS, allowed) is None
