"""Agreement as compute_agreement.py and the paper's Table 5 count it; the expected counts were worked
out by hand from tests/mtbench/data/judgments (see the comments)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.mtbench import agreement
from app.mtbench.agreement import Agreement, Vote
from app.mtbench.formats import FormatError
from tests.mtbench.conftest import JUDGMENTS

OURS = agreement.read_votes(JUDGMENTS / "judge-x_pair.jsonl")
HUMAN = agreement.read_votes(JUDGMENTS / "human_votes.jsonl")


def test_votes_from_pair_judgments() -> None:
    # 10 records, one with an error left out; disagreeing games and game-1 ties are tie votes.
    assert len(OURS) == 9
    assert [v.winner for v in OURS[:4]] == ["model_a", "tie", "tie", "model_b"]
    assert HUMAN[1].winner == "tie" and HUMAN[0].judge == "expert_1"  # "tie (bothbad)" is a tie


def test_two_sources_with_and_without_ties() -> None:
    # Turn 1: q1 alpha/gpt-3.5 ours alpha vs human alpha, tie, alpha (2 of 3); q2 ours tie vs alpha (no);
    # q3 tie vs tie (yes); q1 beta/gpt-3.5 ours gpt-3.5 vs beta (no); q2 beta vs beta (yes) -> 4 of 7.
    # The human vote given with the models the other way round is matched and turned round.
    assert agreement.agreement(OURS, HUMAN, turn=1) == Agreement(4, 7)
    # Without ties: only alpha-alpha twice, gpt-3.5-beta, beta-beta -> 3 of 4.
    assert agreement.agreement(OURS, HUMAN, turn=1, include_ties=False) == Agreement(3, 4)
    # Turn 2: q1 gpt-3.5 = gpt-3.5 (yes), q3 beta vs gpt-3.5 (no), q1 tie = tie (yes); q2 was an error.
    assert agreement.agreement(OURS, HUMAN, turn=2) == Agreement(2, 3)
    assert agreement.agreement(OURS, HUMAN, turn=2, include_ties=False) == Agreement(1, 2)
    assert agreement.agreement(OURS, HUMAN, turn=1).ratio == pytest.approx(4 / 7)


def test_within_one_source() -> None:
    # Human-human: only q1 alpha/gpt-3.5 at turn 1 has several votes: alpha, tie, alpha -> 1 of 3 pairs.
    assert agreement.agreement(HUMAN, None, turn=1) == Agreement(1, 3)
    assert agreement.agreement(HUMAN, None, turn=1, include_ties=False) == Agreement(1, 1)
    assert agreement.agreement(HUMAN, None, turn=2) == Agreement(0, 0)
    assert Agreement(0, 0).ratio is None


def test_author_votes_are_kept_apart_by_default() -> None:
    # compute_agreement.py calls expert_* judges "human", author_* ones "author", and compares only
    # "human". The fixture's three author_* votes change none of the counts above unless included.
    assert [v.group for v in HUMAN].count("author") == 3
    assert agreement.agreement(OURS, HUMAN, turn=1) == Agreement(4, 7)
    assert agreement.agreement(HUMAN, None, turn=1) == Agreement(1, 3)
    # Included (FastChat's counts with the author_* judges renamed expert_*): q1 alpha/gpt-3.5 gets
    # author_1's gpt-3.5 (ours alpha: no), q2 author_2's tie (ours tie: yes) -> 5 of 9; without ties
    # 3 of 5. Human-human q1: alpha, tie, alpha, gpt-3.5 -> 1 of 6 pairs, q2 alpha vs tie -> 1 of 7.
    assert agreement.agreement(OURS, HUMAN, turn=1, include_authors=True) == Agreement(5, 9)
    assert agreement.agreement(OURS, HUMAN, 1, include_ties=False, include_authors=True) == Agreement(3, 5)
    assert agreement.agreement(HUMAN, None, turn=1, include_authors=True) == Agreement(1, 7)
    assert agreement.agreement(HUMAN, None, 1, include_ties=False, include_authors=True) == Agreement(1, 3)


def test_voter_groups_as_fastchat_names_them() -> None:
    assert agreement.voter_group("expert_12") == "human"
    assert agreement.voter_group("author_3") == "author"
    assert agreement.voter_group(["gpt-4", "pair-v2"]) == "model"
    assert agreement.voter_group("crowd_1") == "other"
    assert {v.group for v in OURS} == {"model"}
    assert agreement.describe_voters("h.jsonl", HUMAN) == (
        "voters in h.jsonl: counted human (expert_*) 11; left out author (author_*) 3 "
        "(--include-authors counts authors as human)"
    )
    assert agreement.describe_voters("h.jsonl", HUMAN, include_authors=True) == (
        "voters in h.jsonl: counted human (expert_*) 11, author (author_*) 3; left out none"
    )


def test_report_lines() -> None:
    text = agreement.format_report(agreement.agreement_report(OURS, HUMAN))
    assert text.splitlines() == [
        "turn 1 with tie. #total: 7, #agree: 4, ratio: 0.57",
        "turn 1 without tie. #total: 4, #agree: 3, ratio: 0.75",
        "turn 2 with tie. #total: 3, #agree: 2, ratio: 0.67",
        "turn 2 without tie. #total: 2, #agree: 1, ratio: 0.50",
    ]


def test_symmetric_and_normalized() -> None:
    a = [Vote(1, "x", "y", "model_a", 1)]
    b = [Vote(1, "y", "x", "model_b", 1)]
    assert agreement.agreement(a, b, 1) == agreement.agreement(b, a, 1) == Agreement(1, 1)


def test_json_array_and_errors(tmp_path: Path) -> None:
    array = tmp_path / "votes.json"
    array.write_text('[{"question_id": 1, "model_a": "x", "model_b": "y", "winner": "model_a", "turn": 2}]')
    # A vote without a judge belongs to no group FastChat compares.
    assert agreement.read_votes(array) == [Vote(1, "x", "y", "model_a", 2, "", "other")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 1, "model_a": "x", "model_b": "y", "winner": "x"}\n')
    with pytest.raises(FormatError, match="bad.jsonl line 1: 'winner' must be model_a, model_b or a tie"):
        agreement.read_votes(bad)
    with pytest.raises(FormatError, match="no such file"):
        agreement.read_votes(tmp_path / "absent.jsonl")
