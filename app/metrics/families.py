"""The metric families that workers record into Redis and the API exposes, and how they are stored.
Pure: no I/O.

Workers may run on other machines than the API, so their figures cannot live in the API's memory.
A worker adds to one Redis hash (``HINCRBY`` / ``HINCRBYFLOAT``), one field per counter series and
per histogram bucket; the API reads the hash at scrape time and turns it back into families. Bucket
fields count the observations that fell in that bucket only; :func:`to_metric_families` makes them
cumulative, as Prometheus wants.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# The Redis hash that holds every worker-side series.
WORKER_HASH = "judge:metrics:worker"
# Recent judgments are also counted in short slots, for the "judgments per second over the last
# minute" gauge (Prometheus users would rather take rate() of the counter).
RECENT_KEY_PREFIX = "judge:metrics:judgments:"
SLOT_SECONDS = 5
WINDOW_SECONDS = 60

_SUM = "sum"
_INF = math.inf


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    kind: Literal["counter", "histogram"]
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


JUDGMENTS = Family(
    "judge_judgments",
    "Judge outputs of judging jobs, one per order judged (both orders of a conservative swap count); "
    "rate() gives judgments per second.",
    "counter",
    ("model", "mode"),
)
PARSE_ERRORS = Family(
    "judge_parse_errors",
    "Judge outputs whose verdict or score could not be parsed; divide its rate by judge_judgments_total's "
    "for the parse-error rate.",
    "counter",
    ("model", "mode"),
)
ITEMS = Family(
    "judge_items",
    "Judging items finished, by outcome (ok, or error: an unparseable judgment).",
    "counter",
    ("model", "mode", "status"),
)
BATCH_SIZE = Family(
    "judge_batch_size",
    "Prompts per engine call (one batch), every job kind.",
    "histogram",
    ("model", "operation"),
    (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
MODEL_LATENCY = Family(
    "judge_model_latency_seconds",
    "Wall time of one engine call (a whole batch), every job kind.",
    "histogram",
    ("model", "operation"),
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

FAMILIES: dict[str, Family] = {f.name: f for f in (JUDGMENTS, PARSE_ERRORS, ITEMS, BATCH_SIZE, MODEL_LATENCY)}


def _field(family: Family, labels: Mapping[str, str], part: str = "") -> str:
    if set(labels) != set(family.labels):
        raise ValueError(f"{family.name} takes labels {family.labels}, got {tuple(labels)}")
    return json.dumps({"f": family.name, "l": [labels[name] for name in family.labels], "p": part})


def bucket_of(family: Family, value: float) -> float:
    """The upper bound of the (non-cumulative) bucket ``value`` falls in; +Inf above the last."""
    return next((bound for bound in family.buckets if value <= bound), _INF)


def increments(family: Family, labels: Mapping[str, str], value: float) -> dict[str, float]:
    """The hash fields to add to for one observation (histogram) or increment (counter)."""
    if family.kind == "counter":
        return {_field(family, labels): value}
    le = floatToGoString(bucket_of(family, value))
    return {_field(family, labels, f"le={le}"): 1, _field(family, labels, _SUM): value}


def merge(*parts: Mapping[str, float]) -> dict[str, float]:
    """Sum several increments into one (so a batch is one round trip)."""
    out: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = out.get(key, 0) + value
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def to_metric_families(stored: Mapping[bytes, bytes] | Mapping[str, str]) -> list[Metric]:
    """The families held in the worker hash (every known family, empty when nothing was recorded).
    Fields of unknown families or with the wrong labels (another version's) are ignored."""
    counters: dict[str, dict[tuple[str, ...], float]] = {}
    buckets: dict[str, dict[tuple[str, ...], dict[float, float]]] = {}
    sums: dict[str, dict[tuple[str, ...], float]] = {}
    for raw_key, raw_value in stored.items():
        try:
            decoded = json.loads(_text(raw_key))
            family = FAMILIES[decoded["f"]]
            labels = tuple(str(v) for v in decoded["l"])
            part = str(decoded["p"])
            value = float(_text(raw_value))
        except (ValueError, KeyError, TypeError):
            continue
        if len(labels) != len(family.labels):
            continue
        if family.kind == "counter" and part == "":
            counters.setdefault(family.name, {})[labels] = value
        elif family.kind == "histogram" and part == _SUM:
            sums.setdefault(family.name, {})[labels] = value
        elif family.kind == "histogram" and part.startswith("le="):
            try:
                bound = float(part[3:])
            except ValueError:
                continue
            series = buckets.setdefault(family.name, {}).setdefault(labels, {})
            series[bound] = series.get(bound, 0) + value
    out: list[Metric] = []
    for family in FAMILIES.values():
        if family.kind == "counter":
            counter = CounterMetricFamily(family.name, family.help, labels=family.labels)
            for labels, value in sorted(counters.get(family.name, {}).items()):
                counter.add_metric(labels, value)
            out.append(counter)
            continue
        histogram = HistogramMetricFamily(family.name, family.help, labels=family.labels)
        for labels, series in sorted(buckets.get(family.name, {}).items()):
            histogram.add_metric(
                labels, _cumulative(family, series), sums.get(family.name, {}).get(labels, 0.0)
            )
        out.append(histogram)
    return out


def _cumulative(family: Family, series: Mapping[float, float]) -> list[tuple[str, float]]:
    running = 0.0
    out = []
    for bound in (*family.buckets, _INF):
        running += series.get(bound, 0)
        out.append((floatToGoString(bound), running))
    return out


def slot_of(now: float) -> int:
    return int(now // SLOT_SECONDS)


def recent_slots(now: float) -> list[int]:
    """The complete slots of the last minute (the slot in progress is left out)."""
    current = slot_of(now)
    count = WINDOW_SECONDS // SLOT_SECONDS
    return list(range(current - count, current))


def per_second(counts: Iterable[int | None]) -> float:
    """Judgments per second over the window, from the recent slots' counts (a missing slot is 0)."""
    return sum(c or 0 for c in counts) / WINDOW_SECONDS
