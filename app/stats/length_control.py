"""AlpacaEval 2's length-controlled win rate (Dubois et al. 2024, ``glm_winrate.py``) over games
against one baseline. Pure.

Each model's preferences over the baseline (win 1, tie 0.5, loss 0) are fit by a logistic regression
with soft labels and no intercept, on AlpacaEval's ``length_controlled_v1`` formula::

    tanh(std_delta_len) + instruction_difficulty + 1

where ``std_delta_len`` is the baseline's answer length minus the model's (in characters), divided by
its standard deviation over the model's games. The length-controlled win rate is the mean over the
model's instructions of the fitted preference with the length term set to zero.

AlpacaEval reads each instruction's difficulty from a table it fit once over its leaderboard; here it
is fit from the data at hand, by one logistic regression of every model's preferences on model
identity, each model's normalized length difference and instruction identity (the instruction's
coefficient, negated: higher is harder to win). Both fits are L2-regularized (AlpacaEval uses L1 with
cross-validation and a pull toward its "gamed" baselines, which need its own data).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from app.stats.records import Game

# Inverse L2 strength: the per-model fit (AlpacaEval's C without cross-validation) and the joint
# difficulty fit (one coefficient per instruction, shrunk toward 0 where few models answered it).
MODEL_FIT_C = 100.0
DIFFICULTY_FIT_C = 1.0


@dataclass(frozen=True)
class Duel:
    """One game of a model against the baseline, from the model's side."""

    model: str
    instruction: str
    preference: float  # 1 win, 0.5 tie, 0 loss
    delta_len: int  # the baseline's length minus the model's


@dataclass(frozen=True)
class LengthControlled:
    model: str
    games: int
    win_rate: float  # mean preference: ties count half, as AlpacaEval's win_rate
    length_controlled: float
    length_weight: float  # the fitted coefficient of tanh(std_delta_len)


def duels(games: Sequence[Game], baseline: str) -> list[Duel]:
    """The games against ``baseline`` from the other model's side (others left out)."""
    out = []
    for g in games:
        if baseline not in (g.model_a, g.model_b) or g.model_a == g.model_b:
            continue
        model = g.opponent(baseline)
        own, theirs = (g.length_a, g.length_b) if model == g.model_a else (g.length_b, g.length_a)
        out.append(Duel(model, g.instruction, g.points(model), theirs - own))
    return out


def _soft_fit(x: np.ndarray, preference: np.ndarray, c: float) -> np.ndarray:
    """Coefficients of a logistic regression without intercept whose labels are probabilities: each row
    twice, labelled 1 with weight p and 0 with weight 1 - p (AlpacaEval's ``is_ytrue_proba``)."""
    rows = np.vstack([x, x])
    labels = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    weights = np.concatenate([preference, 1 - preference])
    model = LogisticRegression(fit_intercept=False, C=c, tol=1e-8, max_iter=10_000)
    # Fits this small are all overhead when the linear algebra spreads over threads.
    with threadpool_limits(1):
        model.fit(rows, labels, sample_weight=weights)
    return np.asarray(model.coef_[0])


def _std_length(delta: np.ndarray) -> np.ndarray:
    """tanh of the length differences over their standard deviation (0 when they do not vary)."""
    spread = delta.std(ddof=1) if delta.size > 1 else 0.0
    return np.tanh(delta / spread) if spread > 0 else np.zeros(delta.size)


def instruction_difficulty(all_duels: Sequence[Duel]) -> dict[str, float]:
    """Each instruction's difficulty, from the joint fit described in the module docstring."""
    models = sorted({d.model for d in all_duels})
    instructions = sorted({d.instruction for d in all_duels})
    m_index = {m: k for k, m in enumerate(models)}
    i_index = {x: k for k, x in enumerate(instructions)}
    p = len(models)
    x = np.zeros((len(all_duels), 2 * p + len(instructions)))
    rows = np.arange(len(all_duels))
    by_model: dict[str, list[int]] = defaultdict(list)
    for row, d in enumerate(all_duels):
        by_model[d.model].append(row)
    for model, picked in by_model.items():
        k = m_index[model]
        x[picked, k] = 1.0
        x[picked, p + k] = _std_length(np.array([all_duels[r].delta_len for r in picked], dtype=float))
    x[rows, [2 * p + i_index[d.instruction] for d in all_duels]] = 1.0
    coef = _soft_fit(x, np.array([d.preference for d in all_duels]), DIFFICULTY_FIT_C)
    return {instruction: -float(coef[2 * p + k]) for k, instruction in enumerate(instructions)}


def _logistic(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -z))


def length_controlled(model: str, own: Sequence[Duel], difficulty: dict[str, float]) -> LengthControlled:
    """One model's length-controlled win rate from its duels and the instructions' difficulty."""
    preference = np.array([d.preference for d in own])
    hardness = np.array([difficulty[d.instruction] for d in own])
    length = _std_length(np.array([d.delta_len for d in own], dtype=float))
    x = np.column_stack([length, hardness, np.ones(len(own))])
    weights = _soft_fit(x, preference, MODEL_FIT_C)
    # The same rows with no length difference: tanh(0) = 0.
    controlled = _logistic(x[:, 1:] @ weights[1:])
    return LengthControlled(
        model=model,
        games=len(own),
        win_rate=float(preference.mean()),
        length_controlled=float(controlled.mean()),
        length_weight=float(weights[0]),
    )


def length_controlled_win_rates(games: Sequence[Game], baseline: str) -> list[LengthControlled]:
    """Every model's length-controlled win rate against ``baseline``, best first (empty when no game
    involves it)."""
    played = duels(games, baseline)
    if not played:
        return []
    grouped: dict[str, list[Duel]] = defaultdict(list)
    for d in played:
        grouped[d.model].append(d)
    difficulty = instruction_difficulty(played)
    rows = [length_controlled(m, own, difficulty) for m, own in sorted(grouped.items())]
    return sorted(rows, key=lambda r: (-r.length_controlled, r.model))
