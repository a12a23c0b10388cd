"""The job kinds: registered once by their packages; the base layer serves whatever is registered."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import app.kinds
from app.jobs import kinds
from app.judging.params import JudgingParams


def test_every_kind_is_registered_once_with_its_params_results_and_runner() -> None:
    assert kinds.names() == tuple(k.name for k in app.kinds.ALL)
    assert set(kinds.names()) == {"judge_pairwise", "judge_single", "prompt_opt", "self_reward"}
    assert kinds.long_kinds() == ("prompt_opt", "self_reward")
    for name in kinds.names():
        assert callable(kinds.get(name).load_runner())


def test_registering_a_different_kind_under_a_known_name_is_refused() -> None:
    judging = kinds.get("judge_pairwise")
    kinds.register(judging)  # the same again: no-op
    with pytest.raises(ValueError):
        kinds.register(type(judging)(**{**judging.__dict__, "long": True}))


def test_an_unknown_kind_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        kinds.get("nope")


def test_judging_params_round_trip_and_are_revalidated() -> None:
    params = {
        "mode": "pairwise",
        "swap": "conservative",
        "cot": False,
        "temperature": 0.0,
        "max_tokens": 16,
        "seed": 7,
        "reference_auto": False,
        "template": None,
        "templates": {},
    }
    parsed = kinds.get("judge_pairwise").validate_params(params)
    assert isinstance(parsed, JudgingParams)
    assert parsed.priority == "batch" and parsed.verdict_mode == "generate"
    assert parsed.stored() == params  # defaults stay out of the stored form
    with pytest.raises(ValidationError):
        kinds.get("judge_pairwise").validate_params({**params, "unexpected": 1})
    with pytest.raises(ValidationError):
        kinds.get("judge_pairwise").validate_params({**params, "max_tokens": 0})
