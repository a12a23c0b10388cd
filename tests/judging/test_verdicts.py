import pytest

from app.judging.domain import Scale
from app.judging.verdicts import VerdictParseError, parse_pairwise, parse_score


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[[A]]", "A"),
        ("[[B]]", "B"),
        ("[[C]]", "tie"),
        ("[[tie]]", "tie"),
        ("[[TIE]]", "tie"),
        ("[[Tie]]", "tie"),
        ("[[ A ]]", "A"),
        ("[[\tB ]]", "B"),
        ("Final verdict: [[B]]", "B"),
        ("[[A]]\n", "A"),
        # The last marker wins, whatever came before.
        ("[[A]] [[B]]", "B"),
        ("[[B]] then [[A]]", "A"),
        ("[[A]] [[B]] [[C]]", "tie"),
        ("[[C]] ... on reflection [[A]]", "A"),
        # Markers quoted in the reasoning, then the final one.
        (
            'The format says "[[A]]" if A is better and "[[B]]" if B is better.\n'
            "Answer A is wrong, B is right.\n[[B]]",
            "B",
        ),
        ("Assistant B ([[B]]) is weaker; A ([[A]]) wins. Verdict: [[A]]", "A"),
        # Non-markers after the final marker do not displace it.
        ("[[A]] and then [[D]]", "A"),
        ("[[B]] [[a]]", "B"),
        ("[[A]] [[AB]]", "A"),
        ("[[A]] [[5]]", "A"),
        ("[[B]] [[]]", "B"),
        # Triple brackets still contain a well-formed marker.
        ("[[[A]]]", "A"),
    ],
)
def test_parse_pairwise(raw: str, expected: str) -> None:
    assert parse_pairwise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message_part"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("A is better", "no verdict marker"),
        ("[A]", "no verdict marker"),
        ("[[a]]", "[[a]]"),
        ("[[b]]", "no verdict marker"),
        ("[[D]]", "[[D]]"),
        ("[[A or B]]", "no verdict marker"),
        ("[[AB]]", "no verdict marker"),
        ("[[Assistant A]]", "no verdict marker"),
        ("[[5]]", "no verdict marker"),
        ("[[]]", "no verdict marker"),
        ("[[A]", "no verdict marker"),
        ("[A]]", "no verdict marker"),
        ("[[\nA\n]]", "no verdict marker"),
        ("[[tied]]", "no verdict marker"),
        ("Verdict: A", "no verdict marker"),
    ],
)
def test_parse_pairwise_rejects(raw: str, message_part: str) -> None:
    with pytest.raises(VerdictParseError) as info:
        parse_pairwise(raw)
    assert message_part in info.value.message
    assert str(info.value) == info.value.message


def test_parse_pairwise_error_names_the_last_bracket_seen() -> None:
    with pytest.raises(VerdictParseError, match=r"\[\[D\]\]"):
        parse_pairwise("[[X]] then [[D]]")


TEN = Scale(1, 10)


@pytest.mark.parametrize(
    ("raw", "scale", "expected"),
    [
        ("[[7]]", TEN, 7.0),
        ("Rating: [[7]]", TEN, 7.0),
        ("Rating: [[ 8 ]]", TEN, 8.0),
        ("[[1]]", TEN, 1.0),
        ("[[10]]", TEN, 10.0),
        ("[[7.5]]", TEN, 7.5),
        ("[[7.]]", TEN, 7.0),
        ("[[+3]]", TEN, 3.0),
        ("[[.5]]", Scale(0, 1), 0.5),
        ("[[-2]]", Scale(-5, 5), -2.0),
        ("[[0]]", Scale(0, 5), 0.0),
        ("[[2.5]]", Scale(1, 5), 2.5),
        # The last numeric marker wins.
        ("Rating: [[3]] ... actually Rating: [[9]]", TEN, 9.0),
        ("It is not a [[10]]; rather a [[6]]", TEN, 6.0),
        # Non-numeric brackets are not score markers, whether before or after.
        ("[[A]] Rating: [[4]]", TEN, 4.0),
        ("Rating: [[4]] [[N]]", TEN, 4.0),
        ("Rating: [[5]] out of 10, maybe 9", TEN, 5.0),
        # Reasoning with the format string quoted, then the real rating.
        ('The format is "Rating: [[N]]". The answer is decent.\nRating: [[6]]', TEN, 6.0),
    ],
)
def test_parse_score(raw: str, scale: Scale, expected: float) -> None:
    assert parse_score(raw, scale) == expected


@pytest.mark.parametrize(
    ("raw", "scale", "message_part"),
    [
        ("", TEN, "empty"),
        ("I would give it 7 out of 10", TEN, "no rating marker"),
        ("Rating: 7", TEN, "no rating marker"),
        ("Rating: [7]", TEN, "no rating marker"),
        ("Rating: [[N]]", TEN, "[[N]]"),
        ("Rating: [[7/10]]", TEN, "no rating marker"),
        ("Rating: [[seven]]", TEN, "no rating marker"),
        ("Rating: [[1e3]]", TEN, "no rating marker"),
        ("Rating: [[7 8]]", TEN, "no rating marker"),
        ("Rating: [[nan]]", TEN, "no rating marker"),
        ("Rating: [[inf]]", TEN, "no rating marker"),
        ("[[A]]", TEN, "no rating marker"),
        ("Rating: [[11]]", TEN, "score 11 is outside the scale 1..10"),
        ("Rating: [[0]]", TEN, "score 0 is outside the scale 1..10"),
        ("Rating: [[-3]]", TEN, "score -3 is outside the scale 1..10"),
        ("Rating: [[10.5]]", TEN, "score 10.5 is outside the scale 1..10"),
        ("Rating: [[6]] Rating: [[12]]", TEN, "score 12 is outside"),
        ("Rating: [[6]]", Scale(1, 5), "score 6 is outside the scale 1..5"),
        ("Rating: [[0.5]]", Scale(1.5, 4.5), "score 0.5 is outside the scale 1.5..4.5"),
    ],
)
def test_parse_score_rejects(raw: str, scale: Scale, message_part: str) -> None:
    with pytest.raises(VerdictParseError) as info:
        parse_score(raw, scale)
    assert message_part in info.value.message
