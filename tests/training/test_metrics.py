"""Metrics of a run from a trainer's log history (the shape TRL 1.16 logs with logging_steps=1)."""

from __future__ import annotations

from app.training.metrics import training_metrics

DPO_LOG = [
    {"loss": 0.6931, "rewards/margins": 0.0, "rewards/chosen": 0.0, "rewards/rejected": 0.0,
     "rewards/accuracies": 0.0, "epoch": 0.5, "step": 1},
    {"loss": 0.5135, "rewards/margins": 0.399, "rewards/chosen": -0.364, "rewards/rejected": -0.763,
     "rewards/accuracies": 1.0, "epoch": 1.0, "step": 2},
    {"train_runtime": 84.8, "train_loss": 0.6033, "epoch": 1.0, "step": 2},
]  # fmt: skip


def test_dpo_metrics_keep_the_loss_and_margin_histories_and_the_last_rewards() -> None:
    metrics = training_metrics(DPO_LOG, steps=2, dpo=True)

    assert metrics["loss_history"] == [0.6931, 0.5135]
    assert (metrics["first_loss"], metrics["last_loss"]) == (0.6931, 0.5135)
    assert metrics["train_loss"] == 0.6033
    assert metrics["runtime_seconds"] == 84.8
    assert metrics["steps"] == 2
    assert metrics["reward_margins"] == [0.0, 0.399]
    assert metrics["rewards_chosen"] == -0.364
    assert metrics["rewards_rejected"] == -0.763
    assert metrics["accuracies"] == 1.0


def test_sft_metrics_have_no_rewards_and_survive_an_empty_history() -> None:
    metrics = training_metrics([], steps=0)

    assert metrics["loss_history"] == []
    assert metrics["first_loss"] is None and metrics["train_loss"] is None
    assert "reward_margins" not in metrics
