"""Turning a trainer's log history into the metrics a training run reports. Pure: plain values in,
plain values out."""

from __future__ import annotations

from typing import Any

# DPO per-step logs name -> metrics key; the whole history for margins, the last value for the rest.
_DPO_HISTORY = {"rewards/margins": "reward_margins"}
_DPO_LAST = {
    "rewards/chosen": "rewards_chosen",
    "rewards/rejected": "rewards_rejected",
    "rewards/accuracies": "accuracies",
    "rewards/margins": "reward_margin",
}


def training_metrics(log_history: list[dict[str, Any]], *, steps: int, dpo: bool = False) -> dict[str, Any]:
    """Metrics of one run from ``trainer.state.log_history`` (logged every step).

    Always: ``train_loss`` (mean over the run), ``loss_history`` (per logged step), ``first_loss``,
    ``last_loss``, ``steps``, ``runtime_seconds``. With ``dpo`` also ``reward_margins`` (history),
    and the last ``rewards_chosen``, ``rewards_rejected``, ``accuracies`` and ``reward_margin``.
    """
    step_logs = [entry for entry in log_history if "loss" in entry and "train_loss" not in entry]
    summary: dict[str, Any] = next((entry for entry in reversed(log_history) if "train_loss" in entry), {})
    losses = [float(entry["loss"]) for entry in step_logs]
    metrics: dict[str, Any] = {
        "train_loss": _float_or_none(summary.get("train_loss")),
        "loss_history": losses,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "steps": steps,
        "runtime_seconds": _float_or_none(summary.get("train_runtime")),
    }
    if dpo:
        for source, key in _DPO_HISTORY.items():
            metrics[key] = [float(entry[source]) for entry in step_logs if source in entry]
        for source, key in _DPO_LAST.items():
            values = [float(entry[source]) for entry in step_logs if source in entry]
            metrics[key] = values[-1] if values else None
    return metrics


def _float_or_none(value: Any) -> float | None:
    return float(value) if value is not None else None
