import itertools
from dataclasses import replace

import pytest

from app.judging.domain import JudgeItem, Mode, Order, Rubric, Scale, TemplateSpec
from app.judging.templates import (
    REFERENCE_SYSTEM_PROMPT,
    TemplateError,
    allowed_placeholders,
    builtin_templates,
    check_template_fits,
    default_template_name,
    reference_prompt,
    render,
    required_placeholders,
    template_placeholders,
    uses_rubric,
    validate_template,
)

TEN = Scale(1, 10)
KINDS = list(itertools.product(("pairwise", "single"), (False, True), (False, True), (False, True)))


def spec(
    user: str,
    *,
    mode: Mode = "pairwise",
    system: str = "",
    name: str = "custom",
    multi_turn: bool = False,
    reference: bool = False,
    cot: bool = False,
) -> TemplateSpec:
    return TemplateSpec(
        name=name, mode=mode, system=system, user=user, multi_turn=multi_turn, reference=reference, cot=cot
    )


PAIR_USER = "Q: {question}\nA: {answer_a}\nB: {answer_b}"
SINGLE_USER = "Q: {question}\nAnswer: {answer}\nScale {scale_min}-{scale_max}"


# --- placeholder rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "multi_turn", "reference", "allowed", "required"),
    [
        (
            "pairwise",
            False,
            False,
            {"question", "answer_a", "answer_b"},
            {"question", "answer_a", "answer_b"},
        ),
        (
            "pairwise",
            False,
            True,
            {"question", "answer_a", "answer_b", "reference"},
            {"question", "answer_a", "answer_b", "reference"},
        ),
        (
            "pairwise",
            True,
            False,
            {"conversation_a", "conversation_b", "turn", "question"},
            {"conversation_a", "conversation_b"},
        ),
        (
            "pairwise",
            True,
            True,
            {"conversation_a", "conversation_b", "turn", "question", "reference"},
            {"conversation_a", "conversation_b", "reference"},
        ),
        (
            "single",
            False,
            False,
            {"question", "answer", "scale_min", "scale_max", "rubric"},
            {"question", "answer"},
        ),
        (
            "single",
            False,
            True,
            {"question", "answer", "scale_min", "scale_max", "rubric", "reference"},
            {"question", "answer", "reference"},
        ),
        (
            "single",
            True,
            False,
            {"conversation", "turn", "question", "scale_min", "scale_max", "rubric"},
            {"conversation"},
        ),
        (
            "single",
            True,
            True,
            {"conversation", "turn", "question", "scale_min", "scale_max", "rubric", "reference"},
            {"conversation", "reference"},
        ),
    ],
)
def test_placeholder_sets(
    mode: Mode, multi_turn: bool, reference: bool, allowed: set[str], required: set[str]
) -> None:
    assert allowed_placeholders(mode, multi_turn, reference) == allowed
    assert required_placeholders(mode, multi_turn, reference) == required


@pytest.mark.parametrize(
    "template",
    [
        spec(PAIR_USER),
        spec(PAIR_USER, system="Judge {question} fairly. Literal {{braces}} are fine."),
        spec("{answer_a}{answer_b}", system="{question}"),  # required ones may sit in the system text
        spec(PAIR_USER + "\n{reference}", reference=True),
        spec("{conversation_a}\n{conversation_b}\nturn {turn}: {question}", multi_turn=True),
        spec(SINGLE_USER, mode="single"),
        spec("{question} {answer}", mode="single"),  # the scale placeholders are optional
        spec("{conversation} {reference}", mode="single", multi_turn=True, reference=True),
        spec(PAIR_USER, name="a"),
        spec(PAIR_USER, name="0-my_template.v2"),
        spec(PAIR_USER, name="x" * 64),
    ],
)
def test_valid_templates(template: TemplateSpec) -> None:
    validate_template(template)


@pytest.mark.parametrize(
    ("template", "field", "message_part"),
    [
        # names
        (spec(PAIR_USER, name=""), "name", "template name"),
        (spec(PAIR_USER, name="Pairwise"), "name", "template name"),
        (spec(PAIR_USER, name="-pairwise"), "name", "template name"),
        (spec(PAIR_USER, name="my template"), "name", "template name"),
        (spec(PAIR_USER, name="x" * 65), "name", "template name"),
        (spec(PAIR_USER, name="pairwise\n"), "name", "template name"),
        (spec(PAIR_USER, name="a/b"), "name", "template name"),
        # mode
        (spec(PAIR_USER, mode="ranking"), "mode", "mode 'ranking'"),  # type: ignore[arg-type]
        # empty text
        (spec(""), "user", "must not be empty"),
        (spec("  \n\t"), "user", "must not be empty"),
        # unknown placeholders, named
        (spec(PAIR_USER + " {answer}"), "user", "unknown placeholder(s) {answer}"),
        (spec(PAIR_USER + " {zeta} {alpha}"), "user", "unknown placeholder(s) {alpha}, {zeta}"),
        (spec(PAIR_USER, system="{judge_name}"), "system", "unknown placeholder(s) {judge_name}"),
        (spec(PAIR_USER + " {reference}"), "user", "{reference}"),
        (spec(PAIR_USER + " {scale_max}"), "user", "{scale_max}"),
        (spec(PAIR_USER + " {turn}"), "user", "{turn}"),
        (spec(SINGLE_USER + " {answer_a}", mode="single"), "user", "{answer_a}"),
        (spec("{conversation_a} {conversation_b} {answer_a}", multi_turn=True), "user", "{answer_a}"),
        (spec("{conversation} {conversation_a}", mode="single", multi_turn=True), "user", "{conversation_a}"),
        # missing required placeholders
        (spec("Q: {question}\nA: {answer_a}"), "user", "must use {answer_b}"),
        (spec("{answer_a} {answer_b}"), "user", "must use {question}"),
        (spec(PAIR_USER, reference=True), "user", "must use {reference}"),
        (spec("{question}", mode="single"), "user", "must use {answer}"),
        (spec("{conversation_a} {turn}", multi_turn=True), "user", "must use {conversation_b}"),
        (
            spec("{conversation}", mode="single", multi_turn=True, reference=True),
            "user",
            "must use {reference}",
        ),
        # malformed format strings
        (spec(PAIR_USER + " {"), "user", "malformed"),
        (spec(PAIR_USER + " }"), "user", "malformed"),
        (spec(PAIR_USER + " {question"), "user", "malformed"),
        (spec(PAIR_USER, system="{oops"), "system", "malformed"),
        (spec(PAIR_USER + " {}"), "user", "positional"),
        (spec(PAIR_USER + " {0}"), "user", "positional"),
        (spec(PAIR_USER + " {question.upper}"), "user", "not a plain placeholder"),
        (spec(PAIR_USER + " {answer_a[0]}"), "user", "not a plain placeholder"),
        (spec(PAIR_USER + " { question }"), "user", "not a plain placeholder"),
        (spec(PAIR_USER + " {question!r}"), "user", "conversion or format spec"),
        (spec(PAIR_USER + " {question:>10}"), "user", "conversion or format spec"),
        (spec(PAIR_USER + " {question:{answer_a}}"), "user", "conversion or format spec"),
    ],
)
def test_invalid_templates(template: TemplateSpec, field: str, message_part: str) -> None:
    with pytest.raises(TemplateError) as info:
        validate_template(template)
    assert info.value.field == field
    assert message_part in info.value.message


def test_unknown_placeholder_message_lists_what_is_allowed() -> None:
    with pytest.raises(TemplateError) as info:
        validate_template(spec(PAIR_USER + " {answer}"))
    assert "{answer_a}, {answer_b}, {question}" in info.value.message


def test_template_placeholders() -> None:
    template = spec(PAIR_USER, system="About {question}, {{not_a_field}}")
    assert template_placeholders(template) == {"question", "answer_a", "answer_b"}


# --- built-in templates ------------------------------------------------------------------------


def test_builtin_names() -> None:
    expected = {
        f"{mode}{'-multi' if multi else ''}{'-ref' if ref else ''}{'-cot' if cot else ''}"
        for mode, multi, ref, cot in KINDS
    }
    # Items with their own rubric (single grading) have two more.
    assert set(builtin_templates()) == expected | {"single-rubric", "single-rubric-ref"}
    assert len(expected) == 16


@pytest.mark.parametrize(("mode", "multi_turn", "reference", "cot"), KINDS)
def test_builtin_for_each_kind(mode: Mode, multi_turn: bool, reference: bool, cot: bool) -> None:
    name = default_template_name(mode, multi_turn, reference, cot)
    template = builtin_templates()[name]
    assert template.name == name
    assert (template.mode, template.multi_turn, template.reference, template.cot) == (
        mode,
        multi_turn,
        reference,
        cot,
    )
    assert template.description
    assert template.system
    validate_template(template)
    user = template.user
    if mode == "pairwise":
        assert "[[A]], [[B]], [[C]]" in user
        assert "[[C]] if they are equally good" in user
    else:
        assert "[[{scale_min}]]" in user and "[[{scale_max}]]" in user
        assert "{scale_min}" in user and "{scale_max}" in user
    if not cot:
        # Fixed instructions first, the item last: a long shared prefix, and the reply prefix
        # directly after the item.
        first_placeholder = min(
            user.index("{" + name) for name in ("question", "conversation") if "{" + name in user
        )
        assert user.index("[[") < first_placeholder
        assert user.rstrip().endswith("===")
    # Non-CoT templates open the judge's reply with the verdict marker; CoT ones let it reason first.
    expected_prefix = "" if cot else ("Verdict: [[" if mode == "pairwise" else "Rating: [[")
    assert template.response_prefix == expected_prefix
    assert ("last line" in user) is cot
    if mode == "pairwise":
        assert ("Answer with exactly" in user) is not cot
    assert ("{reference}" in user) is reference


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("pairwise", False, False, False), "pairwise"),
        (("pairwise", False, False, True), "pairwise-cot"),
        (("pairwise", False, True, False), "pairwise-ref"),
        (("pairwise", True, False, False), "pairwise-multi"),
        (("pairwise", True, True, True), "pairwise-multi-ref-cot"),
        (("single", False, False, False), "single"),
        (("single", False, True, True), "single-ref-cot"),
        (("single", True, False, True), "single-multi-cot"),
    ],
)
def test_default_template_name(args: tuple[Mode, bool, bool, bool], expected: str) -> None:
    assert default_template_name(*args) == expected


def test_builtin_templates_returns_a_fresh_mapping() -> None:
    first = builtin_templates()
    first.pop("pairwise")
    assert "pairwise" in builtin_templates()


ONE_TURN_PAIR = JudgeItem(
    turns=("What is 6*7?",), answers_a=("ANSWER-A-1",), answers_b=("ANSWER-B-1",), references=("REF-1",)
)
TWO_TURN_PAIR = JudgeItem(
    turns=("QUESTION-1", "QUESTION-2"),
    answers_a=("ANSWER-A-1", "ANSWER-A-2"),
    answers_b=("ANSWER-B-1", "ANSWER-B-2"),
    references=("REF-1", "REF-2"),
)


def _for(item: JudgeItem, mode: Mode, reference: bool, rubric: bool = False) -> JudgeItem:
    if mode == "single":
        item = replace(item, answers_b=None)
    if not reference:
        item = replace(item, references=None)
    if rubric:
        item = replace(item, rubric=RUBRIC)
    return item


RUBRIC = Rubric("RUBRIC-CRITERIA", tuple((n, f"RUBRIC-SCORE-{n}") for n in range(1, 11)))


FITTING = [
    pytest.param(name, base, id=f"{name}-{len(base.turns)}-turn")
    for name, template in sorted(builtin_templates().items())
    for base in (ONE_TURN_PAIR, TWO_TURN_PAIR)
    if template.multi_turn or not base.multi_turn
]


@pytest.mark.parametrize(("name", "base"), FITTING)
def test_every_builtin_renders_fitting_items(name: str, base: JudgeItem) -> None:
    template = builtin_templates()[name]
    item = _for(base, template.mode, template.reference, uses_rubric(template))
    assert check_template_fits(template, item, template.mode, template.reference, template.cot) is None
    orders: tuple[Order, ...] = ("single",) if template.mode == "single" else ("AB", "BA")
    for order in orders:
        messages = render(template, item, order, TEN)
        roles = ["system", "user"] + (["assistant"] if template.response_prefix else [])
        assert [m["role"] for m in messages] == roles
        if template.response_prefix:
            assert messages[-1]["content"] == template.response_prefix
        text = messages[0]["content"] + messages[1]["content"]
        assert "{" not in text and "}" not in text
        assert item.turns[-1] in text
        assert "ANSWER-A-" + str(len(item.turns)) in text
        if template.mode == "pairwise":
            assert "ANSWER-B-" + str(len(item.turns)) in text
        else:
            assert "from 1 to 10" in text
        assert ("REF-" + str(len(item.turns)) in text) is template.reference
        assert ("Criteria: RUBRIC-CRITERIA\nScore 1: RUBRIC-SCORE-1" in text) is uses_rubric(template)


# --- fitting ----------------------------------------------------------------------------------

BUILTIN = builtin_templates()
SINGLE_ITEM = replace(ONE_TURN_PAIR, answers_b=None, references=None)


@pytest.mark.parametrize(
    ("name", "item", "mode", "has_reference", "message_part"),
    [
        ("pairwise", ONE_TURN_PAIR, "single", False, "is for pairwise judging but the request is single"),
        ("single", SINGLE_ITEM, "pairwise", False, "use a pairwise template such as 'pairwise'"),
        (
            "pairwise-ref",
            ONE_TURN_PAIR,
            "pairwise",
            False,
            "shows a reference answer but the request has none",
        ),
        ("pairwise-ref", ONE_TURN_PAIR, "pairwise", False, "such as 'pairwise'"),
        ("pairwise", ONE_TURN_PAIR, "pairwise", True, "does not show them; use a reference template"),
        ("pairwise", ONE_TURN_PAIR, "pairwise", True, "such as 'pairwise-ref'"),
        ("single-multi", SINGLE_ITEM, "single", True, "such as 'single-multi-ref'"),
        ("pairwise", TWO_TURN_PAIR, "pairwise", False, "judges single-turn items but the item has 2 turns"),
        ("pairwise", TWO_TURN_PAIR, "pairwise", False, "such as 'pairwise-multi'"),
        ("pairwise-ref", TWO_TURN_PAIR, "pairwise", True, "such as 'pairwise-multi-ref'"),
        ("single", replace(TWO_TURN_PAIR, answers_b=None), "single", False, "such as 'single-multi'"),
        ("pairwise-multi", replace(TWO_TURN_PAIR, turn=2), "pairwise", False, "turn 2 is out of range"),
        ("pairwise-multi", replace(TWO_TURN_PAIR, turn=-3), "pairwise", False, "out of range"),
        ("pairwise", SINGLE_ITEM, "pairwise", False, "needs answer B"),
        ("pairwise-multi", replace(TWO_TURN_PAIR, answers_b=("B1",)), "pairwise", False, "answer B has 1"),
        (
            "pairwise-multi-ref",
            replace(TWO_TURN_PAIR, references=("R",)),
            "pairwise",
            True,
            "references cover 1",
        ),
    ],
)
def test_check_template_fits_messages(
    name: str, item: JudgeItem, mode: Mode, has_reference: bool, message_part: str
) -> None:
    message = check_template_fits(BUILTIN[name], item, mode, has_reference, cot=False)
    assert message is not None
    assert message_part in message


def test_check_template_fits_suggests_cot_when_asked() -> None:
    message = check_template_fits(BUILTIN["pairwise"], TWO_TURN_PAIR, "pairwise", False, cot=True)
    assert message is not None and "'pairwise-multi-cot'" in message


@pytest.mark.parametrize(
    ("name", "item", "mode", "has_reference"),
    [
        ("pairwise", ONE_TURN_PAIR, "pairwise", False),
        ("pairwise-multi", ONE_TURN_PAIR, "pairwise", False),  # multi-turn template, one-turn item
        ("pairwise-multi-ref-cot", TWO_TURN_PAIR, "pairwise", True),
        ("single-multi", replace(TWO_TURN_PAIR, turn=0), "single", False),
        ("single-ref", SINGLE_ITEM, "single", True),  # reference auto: references come later
    ],
)
def test_check_template_fits_accepts(name: str, item: JudgeItem, mode: Mode, has_reference: bool) -> None:
    assert check_template_fits(BUILTIN[name], item, mode, has_reference, cot=False) is None


# --- rendering --------------------------------------------------------------------------------


def _user(template: TemplateSpec, item: JudgeItem, order: Order, scale: Scale = TEN) -> str:
    [user] = [m["content"] for m in render(template, item, order, scale) if m["role"] == "user"]
    return user


def test_ab_and_ba_rendering_swap_the_answers() -> None:
    template = spec("{question}|{answer_a}|{answer_b}")
    assert _user(template, ONE_TURN_PAIR, "AB") == "What is 6*7?|ANSWER-A-1|ANSWER-B-1"
    assert _user(template, ONE_TURN_PAIR, "BA") == "What is 6*7?|ANSWER-B-1|ANSWER-A-1"


def test_builtin_ba_rendering_puts_answer_b_first() -> None:
    text = _user(BUILTIN["pairwise"], ONE_TURN_PAIR, "BA")
    assert text.index("ANSWER-B-1") < text.index("ANSWER-A-1")
    assert text.index("=== Answer A ===") < text.index("ANSWER-B-1") < text.index("=== Answer B ===")


def test_system_message_is_rendered_and_omitted_when_empty() -> None:
    with_system = render(spec(PAIR_USER, system="Judge {question}."), ONE_TURN_PAIR, "AB", TEN)
    assert with_system[0] == {"role": "system", "content": "Judge What is 6*7?."}
    without = render(spec(PAIR_USER), ONE_TURN_PAIR, "AB", TEN)
    assert [m["role"] for m in without] == ["user"]


def test_answers_with_braces_render_literally() -> None:
    item = JudgeItem(turns=("{question}",), answers_a=("def f(): return {1: 2}",), answers_b=("{answer_a}",))
    assert _user(spec("{question}|{answer_a}|{answer_b} {{x}}"), item, "AB") == (
        "{question}|def f(): return {1: 2}|{answer_a} {x}"
    )


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        (Scale(1, 10), "1..10"),
        (Scale(1.0, 10.0), "1..10"),
        (Scale(0, 5), "0..5"),
        (Scale(0.5, 4.5), "0.5..4.5"),
        (Scale(-1, 1), "-1..1"),
    ],
)
def test_scale_renders_without_trailing_zero(scale: Scale, expected: str) -> None:
    template = spec("{question} {answer} {scale_min}..{scale_max}", mode="single")
    assert _user(template, SINGLE_ITEM, "single", scale).endswith(" " + expected)


THREE_TURNS = JudgeItem(
    turns=("Q1", "Q2", "Q3"),
    answers_a=("A1", "A2", "A3"),
    answers_b=("B1", "B2", "B3"),
    references=("R1", "R2", "R3"),
)
MULTI = spec("{conversation_a}\n---\n{conversation_b}\n---\nturn {turn}: {question}", multi_turn=True)


@pytest.mark.parametrize(
    ("turn", "shown", "hidden", "turn_number"),
    [
        (0, ["Q1", "A1", "B1"], ["Q2", "A2", "B2", "Q3", "A3", "B3"], "1"),
        (1, ["Q1", "A1", "B1", "Q2", "A2", "B2"], ["Q3", "A3", "B3"], "2"),
        (2, ["Q1", "A1", "B1", "Q2", "A2", "B2", "Q3", "A3", "B3"], [], "3"),
        (-1, ["Q3", "A3", "B3"], [], "3"),
        (-2, ["Q2", "A2"], ["Q3", "A3", "B3"], "2"),
    ],
)
def test_multi_turn_transcript_stops_at_judged_turn(
    turn: int, shown: list[str], hidden: list[str], turn_number: str
) -> None:
    item = replace(THREE_TURNS, turn=turn)
    text = _user(MULTI, item, "AB")
    for piece in shown:
        assert piece in text
    for piece in hidden:
        assert piece not in text
    assert text.endswith(f"turn {turn_number}: Q{turn_number}")


def test_multi_turn_transcript_layout() -> None:
    conversation_a, conversation_b, _ = _user(MULTI, replace(THREE_TURNS, turn=1), "AB").split("\n---\n")
    assert conversation_a == (
        "### User (turn 1):\nQ1\n\n### Assistant A (turn 1):\nA1\n\n"
        "### User (turn 2):\nQ2\n\n### Assistant A (turn 2):\nA2"
    )
    assert conversation_b == (
        "### User (turn 1):\nQ1\n\n### Assistant B (turn 1):\nB1\n\n"
        "### User (turn 2):\nQ2\n\n### Assistant B (turn 2):\nB2"
    )


def test_multi_turn_ba_swaps_whole_conversations() -> None:
    conversation_a, conversation_b, _ = _user(MULTI, THREE_TURNS, "BA").split("\n---\n")
    assert "### Assistant A (turn 1):\nB1" in conversation_a
    assert "### Assistant A (turn 3):\nB3" in conversation_a
    assert "### Assistant B (turn 2):\nA2" in conversation_b
    assert "A1" not in conversation_a and "B1" not in conversation_b


def test_multi_turn_single_and_reference_transcripts() -> None:
    template = spec("{conversation}\n---\n{reference}", mode="single", multi_turn=True, reference=True)
    item = replace(THREE_TURNS, answers_b=None, turn=1)
    conversation, reference = _user(template, item, "single").split("\n---\n")
    assert conversation == (
        "### User (turn 1):\nQ1\n\n### Assistant (turn 1):\nA1\n\n"
        "### User (turn 2):\nQ2\n\n### Assistant (turn 2):\nA2"
    )
    assert reference == (
        "### User (turn 1):\nQ1\n\n### Reference answer (turn 1):\nR1\n\n"
        "### User (turn 2):\nQ2\n\n### Reference answer (turn 2):\nR2"
    )


def test_single_turn_reference_is_the_judged_turns_reference() -> None:
    template = spec(PAIR_USER + "\nref: {reference}", reference=True)
    assert _user(template, ONE_TURN_PAIR, "AB").endswith("ref: REF-1")


@pytest.mark.parametrize(
    ("template", "order", "item"),
    [
        (spec(PAIR_USER), "single", ONE_TURN_PAIR),
        (spec(SINGLE_USER, mode="single"), "AB", SINGLE_ITEM),
        (spec(SINGLE_USER, mode="single"), "BA", SINGLE_ITEM),
        (spec(PAIR_USER), "AB", SINGLE_ITEM),
        (spec(PAIR_USER + "{reference}", reference=True), "AB", replace(ONE_TURN_PAIR, references=None)),
        (MULTI, "AB", replace(THREE_TURNS, turn=3)),
    ],
)
def test_render_rejects_what_cannot_be_shown(template: TemplateSpec, order: Order, item: JudgeItem) -> None:
    with pytest.raises(ValueError):
        render(template, item, order, TEN)


# --- reference answers ------------------------------------------------------------------------


def test_reference_prompt_first_turn() -> None:
    assert reference_prompt(THREE_TURNS, 0, []) == [
        {"role": "system", "content": REFERENCE_SYSTEM_PROMPT},
        {"role": "user", "content": "Q1"},
    ]


def test_reference_prompt_replays_earlier_turns_with_generated_references() -> None:
    assert reference_prompt(THREE_TURNS, 2, ["gen1", "gen2"])[1:] == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "gen1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "gen2"},
        {"role": "user", "content": "Q3"},
    ]


def test_reference_prompt_ignores_extra_previous_answers() -> None:
    assert reference_prompt(THREE_TURNS, 1, ["gen1", "gen2", "gen3"])[-1] == {"role": "user", "content": "Q2"}
    assert len(reference_prompt(THREE_TURNS, 1, ["gen1", "gen2", "gen3"])) == 4


@pytest.mark.parametrize(
    ("turn_index", "previous", "message_part"),
    [
        (1, [], "needs the 1 earlier"),
        (2, ["gen1"], "needs the 2 earlier"),
        (3, ["a", "b", "c"], "out of range"),
        (-1, [], "out of range"),
    ],
)
def test_reference_prompt_rejects(turn_index: int, previous: list[str], message_part: str) -> None:
    with pytest.raises(ValueError, match=message_part):
        reference_prompt(THREE_TURNS, turn_index, previous)


@pytest.mark.parametrize(
    "name", ["pairwise-multi", "pairwise-multi-ref-cot", "single-multi", "single-multi-ref"]
)
def test_builtin_multi_turn_judging_the_first_turn_hides_later_turns(name: str) -> None:
    template = BUILTIN[name]
    item = _for(replace(TWO_TURN_PAIR, turn=0), template.mode, template.reference)
    text = _user(template, item, "single" if template.mode == "single" else "AB")
    assert "QUESTION-1" in text and "ANSWER-A-1" in text
    assert "QUESTION-2" not in text and "ANSWER-A-2" not in text and "REF-2" not in text
    assert "turn 1" in text
