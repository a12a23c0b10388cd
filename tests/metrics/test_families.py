"""Worker figures stored as Redis hash fields and read back as Prometheus families."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import families as fam

LABELS = {"model": "m", "operation": "generate"}


def stored(*parts: dict[str, float]) -> dict[bytes, bytes]:
    """What Redis would hold after these increments, as redis-py returns it."""
    return {k.encode(): str(v).encode() for k, v in fam.merge(*parts).items()}


def exposed(families: list[fam.Metric]) -> dict[str, float]:
    """The samples of ``families`` after a round trip through the text format."""

    class Fixed:
        def collect(self) -> list[fam.Metric]:
            return families

    registry = CollectorRegistry()
    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        s.name + str(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_histogram_buckets_become_cumulative() -> None:
    families = fam.to_metric_families(
        stored(*(fam.increments(fam.BATCH_SIZE, LABELS, n) for n in (1, 3, 3, 16, 1000)))
    )
    samples = exposed(families)

    def bucket(le: str) -> float:
        return samples["judge_batch_size_bucket" + str(sorted({**LABELS, "le": le}.items()))]

    assert bucket("1.0") == 1
    assert bucket("2.0") == 1
    assert bucket("4.0") == 3
    assert bucket("16.0") == 4
    assert bucket("512.0") == 4
    assert bucket("+Inf") == 5
    assert samples["judge_batch_size_count" + str(sorted(LABELS.items()))] == 5
    assert samples["judge_batch_size_sum" + str(sorted(LABELS.items()))] == 1023


def test_counters_and_every_family_present_when_empty() -> None:
    names = {f.name for f in fam.to_metric_families({})}
    assert names == {
        "judge_judgments",
        "judge_parse_errors",
        "judge_items",
        "judge_batch_size",
        "judge_model_latency_seconds",
    }
    labels = {"model": "m", "mode": "pairwise"}
    families = fam.to_metric_families(
        stored(fam.increments(fam.JUDGMENTS, labels, 4), fam.increments(fam.JUDGMENTS, labels, 2))
    )
    samples = exposed(families)
    assert samples["judge_judgments_total" + str(sorted(labels.items()))] == 6


def test_latency_sums_keep_fractions() -> None:
    families = fam.to_metric_families(
        stored(fam.increments(fam.MODEL_LATENCY, LABELS, 0.3), fam.increments(fam.MODEL_LATENCY, LABELS, 7.2))
    )
    samples = exposed(families)
    assert samples["judge_model_latency_seconds_sum" + str(sorted(LABELS.items()))] == pytest.approx(7.5)
    assert samples["judge_model_latency_seconds_bucket" + str(sorted({**LABELS, "le": "0.5"}.items()))] == 1


def test_foreign_and_malformed_fields_are_ignored() -> None:
    good = fam.increments(fam.JUDGMENTS, {"model": "m", "mode": "single"}, 1)
    raw = {
        **stored(good),
        b"not json": b"1",
        b'{"f": "other", "l": [], "p": ""}': b"3",
        b'{"f": "judge_judgments", "l": ["only-one"], "p": ""}': b"9",
    }
    samples = exposed(fam.to_metric_families(raw))
    assert [k for k in samples if k.startswith("judge_judgments_total")] == [
        "judge_judgments_total[('mode', 'single'), ('model', 'm')]"
    ]


def test_wrong_labels_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        fam.increments(fam.JUDGMENTS, {"model": "m"}, 1)


def test_recent_window() -> None:
    slots = fam.recent_slots(1000.0)
    assert len(slots) == fam.WINDOW_SECONDS // fam.SLOT_SECONDS
    assert fam.slot_of(1000.0) not in slots  # the slot in progress is left out
    assert slots[-1] == fam.slot_of(1000.0) - 1
    assert fam.per_second([30, None, 30]) == 1.0
