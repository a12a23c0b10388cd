"""The dry-run projection against what the search asks for."""

from dataclasses import replace

import pytest

from app.prompt_opt.projection import Sizes, project
from tests.prompt_opt.test_search import EXPAND_PARAMS, SPLITS, expand_round_one

SIZES = Sizes(train=len(SPLITS.train), dev=len(SPLITS.dev), test=len(SPLITS.test))


@pytest.mark.parametrize("paraphrase_parents", [True, False])
@pytest.mark.parametrize("mc_samples", [0, 1, 3])
def test_round_one_projects_the_optimizer_calls_the_expansion_makes(
    paraphrase_parents: bool, mc_samples: int
) -> None:
    # Round 1 has one parent, and the scripted optimizer answers every request in full (the worst case).
    params = replace(EXPAND_PARAMS, mc_samples=mc_samples, paraphrase_parents=paraphrase_parents)
    world, _ = expand_round_one(params)
    projected = project(params, SIZES, 1, 1).per_round[0]["optimizer_calls"]
    assert world.optimizer_calls == len(world.requests) == projected
    edits = params.n_gradients * params.gradients_per_error * params.steps_per_gradient
    assert projected == params.n_gradients + edits + (edits + paraphrase_parents) * mc_samples
