"""Self-consistency (``samples: k``): each order is judged k times with sampled decoding, and the
samples are pooled over both orders, as Wang et al. 2023 ("Large Language Models are not Fair
Evaluators": multiple evidence calibration and balanced position calibration) average over samples
and positions.

Pairwise: the verdict is the plurality of all parsed votes (in the caller's labels); labels sharing
the most votes make a ``"tie"``. With one sample per order this is exactly the conservative swap rule
(two orders that disagree tie). Single: the score is the mean of the parsed scores, reported with
their sample standard deviation. ``agreement`` is the share of parsed samples that gave the most
common verdict or score.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from app.judging.domain import Verdict

VERDICTS: tuple[Verdict, ...] = ("A", "B", "tie")


def sample_seed(seed: int, sample: int) -> int:
    """The decoding seed of sample ``sample`` of a job seeded ``seed``: the job's own seed for sample 0
    (a one-sample job decodes as before), else the first 4 bytes (big-endian) of
    ``sha256(f"sample:{seed}:{sample}")`` with the top bit cleared. Backends that seed per request
    (vLLM, OpenAI-compatible servers) would repeat one sample k times under a shared seed."""
    if sample == 0:
        return seed
    digest = hashlib.sha256(f"sample:{seed}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def vote_counts(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """How many times each verdict was given; every label is present (0 when never given)."""
    counts = Counter(verdicts)
    return {verdict: counts[verdict] for verdict in VERDICTS}


def majority(verdicts: Sequence[Verdict]) -> Verdict:
    """The verdict with the most votes; labels sharing the most votes make a ``"tie"`` (the samples do
    not prefer either answer). Raises ``ValueError`` for no votes."""
    if not verdicts:
        raise ValueError("no verdicts to count")
    counts = vote_counts(verdicts)
    top = max(counts.values())
    leaders = [verdict for verdict in VERDICTS if counts[verdict] == top]
    return leaders[0] if len(leaders) == 1 else "tie"


def mean_score(scores: Sequence[float]) -> float:
    """The mean of the scores (exactly the score itself for one). Raises ``ValueError`` for none."""
    if not scores:
        raise ValueError("no scores to average")
    return math.fsum(scores) / len(scores)


@dataclass(frozen=True)
class Consensus:
    """How an item's parsed samples agree: ``samples`` counted, ``agreement`` the share that gave the
    most common verdict (or score), ``votes`` per verdict (pairwise) or ``score_std`` (single: the
    sample standard deviation, None with fewer than two scores)."""

    samples: int
    agreement: float
    votes: dict[str, int] | None = None
    score_std: float | None = None


def verdict_consensus(verdicts: Sequence[Verdict]) -> Consensus:
    """Vote counts and agreement of parsed pairwise verdicts. Raises ``ValueError`` for none."""
    if not verdicts:
        raise ValueError("no verdicts to count")
    votes = vote_counts(verdicts)
    return Consensus(samples=len(verdicts), agreement=max(votes.values()) / len(verdicts), votes=votes)


def score_consensus(scores: Sequence[float]) -> Consensus:
    """Spread and agreement of parsed scores. Raises ``ValueError`` for none."""
    if not scores:
        raise ValueError("no scores to count")
    modal = Counter(scores).most_common(1)[0][1]
    spread = statistics.stdev(scores) if len(scores) > 1 else None
    return Consensus(samples=len(scores), agreement=modal / len(scores), score_std=spread)
