"""AlpacaEval 2's length-controlled win rate: a direct computation of the published formula, and a
length-biased judge whose length-controlled win rates move back toward an unbiased judge's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from app.stats.length_control import (
    MODEL_FIT_C,
    duels,
    instruction_difficulty,
    length_controlled_win_rates,
)
from app.stats.records import Game

N_INSTRUCTIONS = 300
QUALITY = {"good": 0.5, "verbose": 0.0, "terse": 0.0}
# How much longer than the baseline's each model's answers run (times a lognormal spread).
VERBOSITY = {"good": 1.0, "verbose": 1.6, "terse": 0.7}


def _games(length_bias: float, seed: int = 0) -> list[Game]:
    """Every model against ``base`` on the same instructions; the judge's log-odds for the model are
    its quality, minus the instruction's difficulty, plus ``length_bias`` times a squashed length
    difference. The random draws do not depend on the bias, so two judges differ only by it."""
    rng = np.random.default_rng(seed)
    hardness = rng.normal(0, 1, N_INSTRUCTIONS)
    games = []
    for model, quality in QUALITY.items():
        for k in range(N_INSTRUCTIONS):
            base_len = int(rng.lognormal(np.log(1000), 0.4))
            own_len = int(base_len * VERBOSITY[model] * rng.lognormal(0, 0.5))
            logit = quality - hardness[k] + length_bias * np.tanh((own_len - base_len) / 800)
            model_wins = rng.random() < 1 / (1 + np.exp(-logit))
            # Half the games show the baseline as answer A: orientation must not matter.
            if k % 2:
                games.append(Game(model, "base", "A" if model_wins else "B", f"q{k}", own_len, base_len))
            else:
                games.append(Game("base", model, "B" if model_wins else "A", f"q{k}", base_len, own_len))
    return games


def _published(games: list[Game], model: str, difficulty: dict[str, float]) -> float:
    """AlpacaEval's ``length_controlled_v1`` for one model, computed directly: minimize scikit-learn's
    L2 objective, ``C * sum(weight * log loss) + |w|^2 / 2``, of the soft-label logistic model
    ``tanh(std_delta_len) + instruction_difficulty + 1`` with scipy, then average the predicted
    preference with the length term zeroed."""
    own = [d for d in duels(games, "base") if d.model == model]
    delta = np.array([d.delta_len for d in own], dtype=float)
    x = np.column_stack(
        [np.tanh(delta / delta.std(ddof=1)), [difficulty[d.instruction] for d in own], np.ones(len(own))]
    )
    p = np.array([d.preference for d in own])

    def objective(w: np.ndarray) -> float:
        z = x @ w
        log_loss = p * np.logaddexp(0, -z) + (1 - p) * np.logaddexp(0, z)
        return float(MODEL_FIT_C * log_loss.sum() + 0.5 * w @ w)

    w = minimize(objective, np.zeros(3), method="BFGS", options={"gtol": 1e-9}).x
    return float(np.mean(1 / (1 + np.exp(-(x[:, 1:] @ w[1:])))))


def test_matches_a_direct_computation_of_the_published_formula() -> None:
    games = _games(length_bias=1.5)
    ours = {r.model: r.length_controlled for r in length_controlled_win_rates(games, "base")}
    difficulty = instruction_difficulty(duels(games, "base"))
    for model in QUALITY:
        assert ours[model] == pytest.approx(_published(games, model, difficulty), abs=2e-4)


def test_a_length_biased_judge_moves_back_toward_the_unbiased_one() -> None:
    fair = {r.model: r for r in length_controlled_win_rates(_games(length_bias=0.0), "base")}
    biased = {r.model: r for r in length_controlled_win_rates(_games(length_bias=1.5), "base")}
    for model in ("verbose", "terse"):
        raw_gap = abs(biased[model].win_rate - fair[model].win_rate)
        assert raw_gap > 0.08, "the bias should move the raw win rate"
        assert abs(biased[model].length_controlled - fair[model].win_rate) < raw_gap / 2
        # The fit finds the judge's preference for length (a negative weight on baseline minus model).
        assert biased[model].length_weight < -0.5
    assert biased["verbose"].win_rate > biased["verbose"].length_controlled
    assert biased["terse"].win_rate < biased["terse"].length_controlled


def test_ties_count_half_and_other_games_are_left_out() -> None:
    games = [
        Game("m", "base", "tie", "q1", 10, 10),
        Game("m", "base", "A", "q2", 20, 10),
        Game("m", "other", "A", "q3", 20, 10),
    ]
    (row,) = length_controlled_win_rates(games, "base")
    assert (row.model, row.games, row.win_rate) == ("m", 2, 0.75)
    assert length_controlled_win_rates(games, "nobody") == []
