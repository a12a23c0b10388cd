"""FastChat show_result.py's tables from judgment records, and the leaderboard rows of a run.

Single: the mean score per model for each turn and over all turns, grades of -1 (errors) left out.
Pairwise: wins, losses and ties per model, where a game pair counts as a tie when game 1 says tie or
the two games disagree, records with an error in either game are left out, and the adjusted win
rate counts each tie as half a win.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from statistics import fmean

from app.mtbench.formats import ERROR_SCORE, Judgment, PairJudgment, SingleJudgment

_TURN_TITLES = {1: "First turn", 2: "Second turn"}


@dataclass(frozen=True)
class ScoreRow:
    model: str
    score: float
    count: int
    turn: int | None = None  # None: every turn together


@dataclass(frozen=True)
class ScoreTable:
    title: str
    rows: tuple[ScoreRow, ...]


@dataclass(frozen=True)
class WinRateRow:
    model: str
    win: int
    loss: int
    tie: int

    @property
    def games(self) -> int:
        return self.win + self.loss + self.tie

    @property
    def win_rate(self) -> float:
        return self.win / self.games

    @property
    def loss_rate(self) -> float:
        return self.loss / self.games

    @property
    def win_rate_adjusted(self) -> float:
        """Each tie counts as half a win (and half a loss)."""
        return (self.win + 0.5 * self.tie) / self.games


def _by_score(rows: Iterable[ScoreRow]) -> tuple[ScoreRow, ...]:
    return tuple(sorted(rows, key=lambda r: (-r.score, r.model)))


def single_tables(
    judgments: Iterable[SingleJudgment], models: Collection[str] | None = None
) -> list[ScoreTable]:
    """One table per turn and ``Average`` over all grades, rows best first. As FastChat's show_result.py
    does for MT-Bench, ``First turn``, ``Second turn`` and ``Average`` are always there (a table with
    no rows when no grade fits), followed by ``Turn 3`` ... when there are such grades."""
    scores: dict[tuple[str, int], list[float]] = defaultdict(list)
    for j in judgments:
        if j.score == ERROR_SCORE or (models is not None and j.model not in models):
            continue
        scores[(j.model, j.turn)].append(j.score)
    turns = sorted({*_TURN_TITLES, *(turn for _, turn in scores)})
    tables = [
        ScoreTable(
            _TURN_TITLES.get(turn, f"Turn {turn}"),
            _by_score(ScoreRow(m, fmean(v), len(v), t) for (m, t), v in scores.items() if t == turn),
        )
        for turn in turns
    ]
    pooled: dict[str, list[float]] = defaultdict(list)
    for (model, _turn), values in scores.items():
        pooled[model].extend(values)
    tables.append(ScoreTable("Average", _by_score(ScoreRow(m, fmean(v), len(v)) for m, v in pooled.items())))
    return tables


def pair_models(judgments: Iterable[PairJudgment]) -> set[str]:
    """Every model that plays in ``judgments`` (errors included)."""
    return {model for j in judgments for model in (j.model_1, j.model_2)}


def pairwise_table(
    judgments: Iterable[PairJudgment], baseline: str | None = None, models: Collection[str] | None = None
) -> list[WinRateRow]:
    """Win / loss / tie counts per model, best adjusted win rate first. With ``baseline``, only games
    against it count and it gets no row; ``models`` keeps the games whose ``model_1`` is listed (as
    FastChat's ``--model-list``)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for j in judgments:
        if "error" in (j.g1_winner, j.g2_winner):
            continue
        if models is not None and j.model_1 not in models:
            continue
        if baseline is not None and baseline not in (j.model_1, j.model_2):
            continue
        if j.g1_winner == "tie" or j.g1_winner != j.g2_winner:
            counts[j.model_1][2] += 1
            counts[j.model_2][2] += 1
        else:
            winner, loser = (j.model_1, j.model_2) if j.g1_winner == "model_1" else (j.model_2, j.model_1)
            counts[winner][0] += 1
            counts[loser][1] += 1
    rows = [WinRateRow(m, *c) for m, c in counts.items() if m != baseline]
    return sorted(rows, key=lambda r: (-r.win_rate_adjusted, r.model))


def format_single(tables: Sequence[ScoreTable]) -> str:
    """The tables as FastChat prints them: a ``########## <title> ##########`` header, then model,
    turn and mean score."""
    blocks = []
    for table in tables:
        width = max([len("model"), *(len(r.model) for r in table.rows)])
        lines = [f"\n########## {table.title} ##########"]
        if table.title == "Average":
            lines.append(f"{'model':<{width}}  {'score':>9}")
            lines += [f"{r.model:<{width}}  {r.score:>9.6f}" for r in table.rows]
        else:
            lines.append(f"{'model':<{width}}  turn  {'score':>9}")
            lines += [f"{r.model:<{width}}  {r.turn:>4}  {r.score:>9.6f}" for r in table.rows]
        if not table.rows:
            lines.append("(no grades)")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def format_pairwise(rows: Sequence[WinRateRow]) -> str:
    """The table as FastChat prints it: win, loss, tie, win_rate, loss_rate, win_rate_adjusted."""
    width = max([len("model"), *(len(r.model) for r in rows)])
    header = (
        f"{'model':<{width}}  {'win':>4}  {'loss':>4}  {'tie':>4}  win_rate  loss_rate  win_rate_adjusted"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"{r.model:<{width}}  {r.win:>4}  {r.loss:>4}  {r.tie:>4}  {r.win_rate:>8.6f}  "
            f"{r.loss_rate:>9.6f}  {r.win_rate_adjusted:>17.6f}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class LeaderboardRow:
    """One model's standing in a run. Single grading fills ``score`` (mean over every turn) and
    ``turn_scores``; pairwise fills the win / loss / tie counts and rates."""

    rank: int
    model: str
    judgments: int  # records of this model, errors included
    errors: int
    score: float | None = None
    turn_scores: dict[int, float] = field(default_factory=dict)
    win: int | None = None
    loss: int | None = None
    tie: int | None = None
    win_rate: float | None = None
    win_rate_adjusted: float | None = None


def leaderboard(judgments: Sequence[Judgment], baseline: str | None = None) -> list[LeaderboardRow]:
    """Leaderboard rows, best first, from a run's judgment records (all single or all pairwise).
    Pairwise runs against a baseline pass it, so it is left out of the ranking."""
    singles = [j for j in judgments if isinstance(j, SingleJudgment)]
    pairs = [j for j in judgments if isinstance(j, PairJudgment)]
    if singles and pairs:
        raise ValueError("a leaderboard is of single grades or of pairwise judgments, not both")
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # judgments, errors
    for j in singles:
        counts[j.model][0] += 1
        counts[j.model][1] += j.score == ERROR_SCORE
    for p in pairs:
        error = "error" in (p.g1_winner, p.g2_winner)
        for model in (p.model_1, p.model_2):
            counts[model][0] += 1
            counts[model][1] += error
    if singles:
        score_tables = single_tables(singles)
        per_turn: dict[str, dict[int, float]] = defaultdict(dict)
        overall: dict[str, float] = {}
        for table in score_tables:
            for r in table.rows:
                if r.turn is None:
                    overall[r.model] = r.score
                else:
                    per_turn[r.model][r.turn] = r.score
        ranked = sorted(overall, key=lambda m: (-overall[m], m))
        rows = [
            LeaderboardRow(i + 1, m, counts[m][0], counts[m][1], score=overall[m], turn_scores=per_turn[m])
            for i, m in enumerate(ranked)
        ]
        return rows + _unranked(counts, {r.model for r in rows}, baseline, len(rows))
    ranked_pairs = pairwise_table(pairs, baseline)
    rows = [
        LeaderboardRow(
            i + 1,
            r.model,
            counts[r.model][0],
            counts[r.model][1],
            win=r.win,
            loss=r.loss,
            tie=r.tie,
            win_rate=r.win_rate,
            win_rate_adjusted=r.win_rate_adjusted,
        )
        for i, r in enumerate(ranked_pairs)
    ]
    return rows + _unranked(counts, {r.model for r in rows}, baseline, len(rows))


def _unranked(
    counts: dict[str, list[int]], ranked: set[str], baseline: str | None, after: int
) -> list[LeaderboardRow]:
    """Models with judgments but no usable one (every record an error), ranked last."""
    left = sorted(m for m in counts if m not in ranked and m != baseline)
    return [LeaderboardRow(after + i + 1, m, counts[m][0], counts[m][1]) for i, m in enumerate(left)]
