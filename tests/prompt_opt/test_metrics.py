import pytest

from app.prompt_opt.domain import Metric
from app.prompt_opt.metrics import parse_label, per_example_correct, score

LABELS = ["positive", "negative"]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("positive", "positive"),
        ("  NEGATIVE.", "negative"),
        ("The answer is: Positive", "positive"),
        ("Negative, not positive.", "negative"),  # earliest wins
        ("I think it's positive; negative reviews differ", "positive"),
        ("nonpositive", None),  # whole words only
        ("positively", None),
        ("", None),
        ("no idea", None),
    ],
)
def test_parse_label_finds_the_earliest_whole_word_label(output: str, expected: str | None) -> None:
    assert parse_label(output, LABELS) == expected


def test_longer_label_wins_at_the_same_position_and_spacing_is_flexible() -> None:
    labels = ["sure", "not", "not sure"]
    assert parse_label("Not  sure, really.", labels) == "not sure"
    assert parse_label("not\nsure", labels) == "not sure"
    assert parse_label("not at all", labels) == "not"
    assert parse_label("I am sure", labels) == "sure"


def test_labels_with_punctuation_are_matched_literally() -> None:
    labels = ["(A)", "(B)", "A+"]
    assert parse_label("The answer is (B).", labels) == "(B)"
    assert parse_label("Grade: a+", labels) == "A+"
    assert parse_label("A.B", ["A.B", "A"]) == "A.B"
    assert parse_label("AxB", ["A.B"]) is None  # the dot is not a wildcard


def test_parse_label_returns_the_canonical_spelling_and_skips_blank_labels() -> None:
    assert parse_label("YES!", ["", " ", "Yes", "No"]) == "Yes"


def test_per_example_correct() -> None:
    assert per_example_correct(["a", "b", "a"], ["a", None, "b"]) == [True, False, False]
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        per_example_correct(["a", "b"], ["a"])


def test_accuracy() -> None:
    assert score(Metric(), ["a", "b", "a", "b"], ["a", "b", None, "a"], ["a", "b"]) == 0.5
    assert score(Metric("accuracy"), [], [], ["a"]) == 0.0


def test_binary_f1_of_the_positive_label() -> None:
    metric = Metric("f1", positive="yes")
    golds = ["yes", "yes", "yes", "no", "no"]
    preds: list[str | None] = ["yes", None, "no", "yes", "no"]
    # tp=1, fp=1, fn=2 -> 2/(2+1+2)
    assert score(metric, golds, preds, ["yes", "no"]) == pytest.approx(0.4)
    assert score(metric, ["no", "no"], ["no", None], ["yes", "no"]) == 0.0  # undefined -> 0
    assert score(metric, [], [], ["yes", "no"]) == 0.0
    with pytest.raises(ValueError, match="positive"):
        score(Metric("f1"), ["yes"], ["yes"], ["yes", "no"])


def test_macro_f1_follows_sklearn_zero_division_0() -> None:
    golds = ["a", "a", "b", "b", "c"]
    preds: list[str | None] = ["a", "b", "b", None, "a"]
    # a: tp1 fp1 fn1 -> 0.5; b: tp1 fp1 fn1 -> 0.5; c: tp0 fp0 fn1 -> 0; d: absent -> 0
    assert score(Metric("macro_f1"), golds, preds, ["a", "b", "c"]) == pytest.approx(1 / 3)
    assert score(Metric("macro_f1"), golds, preds, ["a", "b", "c", "d"]) == pytest.approx(0.25)
    assert score(Metric("macro_f1"), ["a", "b"], ["a", "b"], ["a", "b"]) == 1.0
    assert score(Metric("macro_f1"), [], [], ["a"]) == 0.0
