"""Agreement between judges that rated the same items: Cohen's kappa for a pair of judges
(scikit-learn's ``cohen_kappa_score``) and Fleiss' kappa for all of them together. Pure.

Fleiss' kappa (Fleiss 1971) over N items, each rated by the same number n of judges into k
categories: with ``n_ij`` the judges putting item i in category j, ``p_j = sum_i n_ij / (N n)``,
``P_i = (sum_j n_ij^2 - n) / (n (n - 1))``, ``P = mean_i P_i``, ``Pe = sum_j p_j^2``,
``kappa = (P - Pe) / (1 - Pe)``. Either kappa is undefined (None) when chance agreement is already
total (every rating in one category), or with fewer than two items.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import cohen_kappa_score


def cohen_kappa(
    first: Sequence[Hashable], second: Sequence[Hashable], weights: str | None = None
) -> float | None:
    """Cohen's kappa of two judges' ratings of the same items (``weights``: None for categories,
    ``"quadratic"`` for ordered scores); None when undefined."""
    if len(first) != len(second):
        raise ValueError("both judges must rate the same items")
    if len(first) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined (0/0) when both rate everything alike: None below
        kappa = float(cohen_kappa_score(list(first), list(second), weights=weights))
    return None if math.isnan(kappa) else kappa


def fleiss_table(ratings: Sequence[Sequence[Hashable]]) -> np.ndarray:
    """Per item (rows), how many judges gave each category (columns, in sorted order of the categories
    seen). ``ratings[i]`` holds item i's ratings, one per judge."""
    categories = sorted({r for row in ratings for r in row}, key=repr)
    column = {c: j for j, c in enumerate(categories)}
    table = np.zeros((len(ratings), len(categories)), dtype=float)
    for i, row in enumerate(ratings):
        for rating in row:
            table[i, column[rating]] += 1
    return table


def fleiss_kappa(table: np.ndarray) -> float | None:
    """Fleiss' kappa of an items x categories table of counts (every row the same number of judges, at
    least two); None when undefined."""
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] < 2:
        return None
    raters = counts.sum(axis=1)
    if raters[0] < 2 or not np.allclose(raters, raters[0]):
        raise ValueError("every item needs the same number of ratings, at least two")
    n = raters[0]
    shares = counts.sum(axis=0) / counts.sum()
    per_item = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    expected = float((shares**2).sum())
    if math.isclose(expected, 1.0):
        return None
    return (float(per_item.mean()) - expected) / (1.0 - expected)


@dataclass(frozen=True)
class PairKappa:
    first: int
    second: int
    items: int
    kappa: float | None


@dataclass(frozen=True)
class PanelAgreement:
    """Agreement of a panel of judges: Cohen's kappa for every pair (over the items both rated) and
    Fleiss' kappa over the items every judge rated."""

    pairs: list[PairKappa]
    fleiss: float | None
    fleiss_items: int


def panel_agreement(
    ratings: Sequence[Sequence[Hashable | None]], weights: str | None = None
) -> PanelAgreement:
    """``ratings[j][i]``: judge j's rating of item i (None: none). ``weights`` applies to the pairs'
    Cohen's kappa (``"quadratic"`` for ordered scores); Fleiss' kappa treats ratings as categories."""
    pairs = []
    for a, b in itertools.combinations(range(len(ratings)), 2):
        both = [
            (x, y) for x, y in zip(ratings[a], ratings[b], strict=True) if x is not None and y is not None
        ]
        kappa = cohen_kappa([x for x, _ in both], [y for _, y in both], weights) if both else None
        pairs.append(PairKappa(a, b, len(both), kappa))
    complete = [list(row) for row in zip(*ratings, strict=True) if all(r is not None for r in row)]
    fleiss = fleiss_kappa(fleiss_table(complete)) if complete and len(ratings) >= 2 else None
    return PanelAgreement(pairs, fleiss, len(complete))
