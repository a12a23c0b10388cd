"""FastChat llm_judge's verdict rules (common.py: run_judge_pair's ``[[A]]`` output format and
run_judge_single's one_score_pattern / one_score_pattern_backup), probe by probe, next to the strict
parser's reading of the same text where the two differ."""

from __future__ import annotations

import pytest

from app.judging.domain import Scale, TemplateSpec, Verdict
from app.judging.fastchat_verdicts import parse_pairwise, parse_rating
from app.judging.parsers import PARSERS, resolve_parser
from app.judging.verdicts import VerdictParseError

TEN = Scale(1, 10)


def make_spec(parser: str = "strict") -> TemplateSpec:
    return TemplateSpec(name="t", mode="pairwise", system="", user="{question}", parser=parser)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "fastchat", "strict"),
    [
        # Presence in priority order: [[A]] anywhere wins, whatever comes after it.
        ("[[A]] at first, but on reflection [[B]]", "A", "B"),
        ("[[B]] ... no, [[A]]", "A", "A"),
        ("[[C]] or rather [[B]]", "B", "B"),
        ("[[B]] is close, [[C]]", "B", "tie"),
        ("My final verdict is [[C]]", "tie", "tie"),
        ("Verdict: [[A]]", "A", "A"),
    ],
)
def test_pairwise_priority(raw: str, fastchat: Verdict, strict: Verdict) -> None:
    assert parse_pairwise(raw) == fastchat
    assert PARSERS["strict"].pairwise(raw) == strict


@pytest.mark.parametrize("raw", ["", "A is better", "[[ A ]]", "[[tie]]", "[[a]]", "[A]"])
def test_pairwise_needs_an_exact_marker(raw: str) -> None:
    # FastChat looks for the exact substrings "[[A]]", "[[B]]", "[[C]]"; anything else is "error".
    with pytest.raises(VerdictParseError):
        parse_pairwise(raw)


@pytest.mark.parametrize(
    ("raw", "rating"),
    [
        ("Rating: [[3]] ... if it were complete, [[8]]", 3.0),  # the FIRST [[n]]
        ("Rating: [7]", 7.0),  # the single-bracket fallback
        ("[5] is what a lazier judge gives; Rating: [[9]]", 9.0),  # [[n]] is looked for before [n]
        ("Rating: [[11]]", 11.0),  # no range check
        ("Rating: [[0]]", 0.0),
        ("Rating: [[7.5]]", 7.5),
        ("Rating: [[8.]]", 8.0),
        ("Rating: [[6]] out of [[10]]", 6.0),
    ],
)
def test_rating_first_marker_no_range_check(raw: str, rating: float) -> None:
    assert parse_rating(raw) == rating
    assert PARSERS["fastchat"].score(raw, TEN) == rating


@pytest.mark.parametrize(
    "raw", ["", "Rating: 7", "Rating: [[ 7 ]]", "Rating: [[-3]]", "Rating: [[7/10]]", "[[07]]"]
)
def test_rating_errors(raw: str) -> None:
    # No match is FastChat's rating -1 (an error judgment); "07" is no Python literal.
    with pytest.raises(VerdictParseError):
        parse_rating(raw)


def test_strict_reads_the_same_probes_differently() -> None:
    assert PARSERS["strict"].score("Rating: [[3]] ... [[8]]", TEN) == 8.0
    for raw in ("Rating: [7]", "Rating: [[11]]"):
        with pytest.raises(VerdictParseError):
            PARSERS["strict"].score(raw, TEN)


def test_a_request_parser_wins_over_the_templates() -> None:
    strict, fastchat = make_spec(), make_spec(parser="fastchat")
    assert resolve_parser(None, [strict, strict]) == "strict"
    assert resolve_parser(None, [fastchat]) == "fastchat"
    assert resolve_parser("strict", [fastchat]) == "strict"
    assert resolve_parser(None, []) == "strict"
    with pytest.raises(ValueError, match="read verdicts differently"):
        resolve_parser(None, [strict, fastchat])
