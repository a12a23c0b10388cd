"""Training specs cross a process boundary as JSON: they round-trip and reject bad values early."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from app.training.specs import DPOSpec, LoraSpec, SFTSpec, TrainResult, result_from_json, spec_from_json

PAIR = {"prompt": "Q?", "chosen": "Good.", "rejected": "Bad."}
PATHS = {"base_path": "/m", "output_path": "/o"}


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("sft", SFTSpec(**PATHS, examples=[{"prompt": "Q?", "completion": "A."}])),
        ("dpo", DPOSpec(**PATHS, pairs=[PAIR], lora=LoraSpec(target_modules=["q_proj"]))),
    ],
)
def test_specs_round_trip_through_json(kind: str, spec: SFTSpec | DPOSpec) -> None:
    assert spec_from_json(kind, json.loads(json.dumps(asdict(spec)))) == spec


def test_results_round_trip_through_json() -> None:
    result = TrainResult(output_path="/o", metrics={"loss_history": [0.69, 0.5], "steps": 2})
    assert result_from_json(json.loads(json.dumps(asdict(result)))) == result


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("ppo", {}, "unknown training kind"),
        ("dpo", PATHS, "invalid dpo spec"),
        ("dpo", {**PATHS, "pairs": [PAIR], "epochs": 1, "typo": 1}, "typo"),
        ("dpo", {**PATHS, "pairs": []}, "pairs must not be empty"),
        ("dpo", {**PATHS, "pairs": [{**PAIR, "chosen": " "}]}, r"pairs\[0\].chosen"),
        ("dpo", {**PATHS, "pairs": [PAIR], "loss_type": "exo_pair"}, "loss_type"),
        ("dpo", {**PATHS, "pairs": [PAIR], "beta": 0}, "beta"),
        (
            "dpo",
            {**PATHS, "pairs": [PAIR], "learning_rate": 1e-6, "min_learning_rate": 2e-6},
            "min_learning_rate",
        ),
        ("sft", {**PATHS, "examples": [{"prompt": "Q?", "completion": "A."}], "dropout": 1.0}, "dropout"),
        ("sft", {**PATHS, "examples": [{"prompt": "Q?"}]}, "completion"),
        (
            "sft",
            {**PATHS, "examples": [PAIR | {"completion": "A"}], "lora": {"r": 0}},
            "lora r",
        ),
    ],
)
def test_bad_specs_are_refused_with_the_field_named(kind: str, data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec_from_json(kind, data)
