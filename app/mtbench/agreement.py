"""Agreement between two sources of pairwise votes, as FastChat's compute_agreement.py and the MT-Bench
paper's Table 5 compute it.

A vote says which of two models won one question at one turn (``model_a``, ``model_b`` or ``tie``).
Votes are matched on (question, the two models in either order, turn); every vote of one source is
compared with every vote of the other on the same game (with one source: every two votes of it, as
for human-human agreement). "Without ties" leaves out every comparison where either vote is a tie.

Sources are our (FastChat's) ``_pair.jsonl`` judgment files, where a game pair whose two orders
disagree, or that either calls a tie, is a tie vote and a record with an error is left out; or
human-judgment style files (``question_id``, ``model_a``, ``model_b``, ``winner``, ``turn``,
``judge``; JSON Lines or one JSON array), where any winner containing "tie" is a tie.

Voters fall in groups as compute_agreement.py names them: ``expert_*`` judges are "human", ``author_*``
judges are "author" (the paper's authors, kept apart), a ``[judge model, prompt]`` judge and every vote
of a pairwise judgment file is a "model" judge's, any other judge is "other". Only human and model votes
are compared by default (FastChat's ``human``); ``include_authors`` counts author votes as human too.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from app.mtbench.formats import FormatError, PairJudgment, QuestionId, read_pair_judgments

VoteWinner = Literal["model_a", "model_b", "tie"]
VoterGroup = Literal["human", "author", "model", "other"]
_GROUP_NAMES: dict[VoterGroup, str] = {
    "human": "human (expert_*)",
    "author": "author (author_*)",
    "model": "model judge",
    "other": "other (neither expert_* nor author_*)",
}
_REVERSED: dict[VoteWinner, VoteWinner] = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}


@dataclass(frozen=True)
class Vote:
    question_id: QuestionId
    model_a: str
    model_b: str
    winner: VoteWinner
    turn: int = 1
    judge: str = ""
    group: VoterGroup = "model"

    def normalized(self) -> tuple[tuple[QuestionId, str, str, int], VoteWinner]:
        """The game's key with the models in sorted order, and the winner in that order."""
        if self.model_a <= self.model_b:
            return (self.question_id, self.model_a, self.model_b, self.turn), self.winner
        return (self.question_id, self.model_b, self.model_a, self.turn), _REVERSED[self.winner]


def voter_group(judge: object) -> VoterGroup:
    """The group of a human-judgment file's ``judge`` (FastChat's ``get_judge_name``, with any judge
    model in place of only GPT-4)."""
    if isinstance(judge, list):
        return "model"
    if isinstance(judge, str):
        if judge.startswith("expert"):
            return "human"
        if judge.startswith("author"):
            return "author"
    return "other"


def counted_groups(include_authors: bool = False) -> frozenset[VoterGroup]:
    """The voter groups whose votes are compared: human and model judges, and authors when asked."""
    return frozenset(("human", "model", "author") if include_authors else ("human", "model"))


def counted_votes(votes: Iterable[Vote], include_authors: bool = False) -> list[Vote]:
    """The votes of the groups that are compared (see :func:`counted_groups`)."""
    groups = counted_groups(include_authors)
    return [vote for vote in votes if vote.group in groups]


def describe_voters(source: str, votes: Sequence[Vote], include_authors: bool = False) -> str:
    """Which voter groups of ``source`` are counted and which are left out, with their vote counts:
    ``voters in h.jsonl: counted human (expert_*) 11; left out author (author_*) 3``."""
    counts = Counter(vote.group for vote in votes)
    groups = counted_groups(include_authors)

    def listed(names: Iterable[VoterGroup]) -> str:
        return ", ".join(f"{_GROUP_NAMES[g]} {counts[g]}" for g in _GROUP_NAMES if g in names) or "none"

    counted = [g for g in counts if g in groups]
    left_out = [g for g in counts if g not in groups]
    line = f"voters in {source}: counted {listed(counted)}; left out {listed(left_out)}"
    if "author" in left_out:
        line += " (--include-authors counts authors as human)"
    return line


@dataclass(frozen=True)
class Agreement:
    agree: int
    total: int

    @property
    def ratio(self) -> float | None:
        return self.agree / self.total if self.total else None


def votes_from_pairs(judgments: Iterable[PairJudgment]) -> list[Vote]:
    """One vote per judgment record: the winner both games agree on, else a tie; errors left out."""
    votes = []
    for j in judgments:
        if "error" in (j.g1_winner, j.g2_winner):
            continue
        if j.g1_winner == j.g2_winner and j.g1_winner != "tie":
            winner: VoteWinner = "model_a" if j.g1_winner == "model_1" else "model_b"
        else:
            winner = "tie"
        votes.append(Vote(j.question_id, j.model_1, j.model_2, winner, j.turn, "/".join(j.judge)))
    return votes


def _vote_from_human(path: Path, where: int, obj: Any) -> Vote:
    if not isinstance(obj, dict):
        raise FormatError(path, where, "expected a JSON object")
    missing = [k for k in ("question_id", "model_a", "model_b", "winner") if k not in obj]
    if missing:
        raise FormatError(path, where, f"missing field(s) {', '.join(missing)}")
    raw = str(obj["winner"])
    if "tie" in raw:
        winner: VoteWinner = "tie"
    elif raw in ("model_a", "model_b"):
        winner = "model_a" if raw == "model_a" else "model_b"
    else:
        raise FormatError(path, where, f"'winner' must be model_a, model_b or a tie, got {raw!r}")
    turn = obj.get("turn", 1)
    if not isinstance(turn, int) or isinstance(turn, bool) or turn < 1:
        raise FormatError(path, where, f"'turn' must be a positive integer, got {turn!r}")
    judge = obj.get("judge", "")
    judge_name = judge if isinstance(judge, str) else json.dumps(judge)
    return Vote(
        obj["question_id"],
        str(obj["model_a"]),
        str(obj["model_b"]),
        winner,
        turn,
        judge_name,
        voter_group(judge),
    )


def read_votes(path: Path) -> list[Vote]:
    """The votes of a pairwise judgment file (ours or FastChat's) or of a human-judgment file."""
    text = path.read_text(encoding="utf-8") if path.is_file() else None
    if text is None:
        raise FormatError(path, None, "no such file")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise FormatError(path, None, f"not valid JSON ({exc.msg})") from None
        return [_vote_from_human(path, i + 1, row) for i, row in enumerate(rows)]
    first = next((line for line in stripped.splitlines() if line.strip()), "")
    if '"g1_winner"' in first or '"model_1"' in first:
        return votes_from_pairs(read_pair_judgments(path))
    votes = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(path, number, f"not valid JSON ({exc.msg})") from None
        votes.append(_vote_from_human(path, number, obj))
    return votes


def _by_game(votes: Iterable[Vote], turn: int) -> dict[tuple[QuestionId, str, str, int], list[VoteWinner]]:
    games: dict[tuple[QuestionId, str, str, int], list[VoteWinner]] = defaultdict(list)
    for vote in votes:
        if vote.turn == turn:
            key, winner = vote.normalized()
            games[key].append(winner)
    return games


def agreement(
    first: Sequence[Vote],
    second: Sequence[Vote] | None,
    turn: int,
    include_ties: bool = True,
    include_authors: bool = False,
) -> Agreement:
    """How often two sources agree on the games of one turn (``second=None``: how often two votes of
    ``first`` on the same game agree). Without ties, any comparison involving a tie is left out. Only
    the votes of :func:`counted_groups` take part."""
    agree = total = 0
    games_a = _by_game(counted_votes(first, include_authors), turn)
    if second is None:
        pairs = ((a, b) for winners in games_a.values() for a, b in combinations(winners, 2))
    else:
        games_b = _by_game(counted_votes(second, include_authors), turn)
        pairs = ((a, b) for key, winners in games_a.items() for a in winners for b in games_b.get(key, ()))
    for a, b in pairs:
        if not include_ties and "tie" in (a, b):
            continue
        total += 1
        agree += a == b
    return Agreement(agree, total)


def agreement_report(
    first: Sequence[Vote], second: Sequence[Vote] | None, include_authors: bool = False
) -> list[tuple[int, bool, Agreement]]:
    """(turn, with ties, agreement) for every turn either source has, with and without ties."""
    turns = sorted({v.turn for v in first} | {v.turn for v in (second or ())})
    return [
        (t, ties, agreement(first, second, t, ties, include_authors)) for t in turns for ties in (True, False)
    ]


def format_report(report: Sequence[tuple[int, bool, Agreement]]) -> str:
    """FastChat's lines: ``turn 1 with tie. #total: 40, #agree: 26, ratio: 0.65``."""
    lines = []
    for turn, ties, result in report:
        ratio = f"{result.ratio:.2f}" if result.ratio is not None else "n/a"
        label = "with tie" if ties else "without tie"
        lines.append(f"turn {turn} {label}. #total: {result.total}, #agree: {result.agree}, ratio: {ratio}")
    return "\n".join(lines)
