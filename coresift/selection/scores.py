"""The strategies' objectives, as scores in (0, 1] that combine by one rule.

Every static objective (weights, similarity, typicality) becomes a candidate's percentile
rank among the candidates: 1 for the best, 1/n for the worst, the average rank for ties, the
lowest for a missing value. Ranks do not care about units or scale, so strengths trade ranks,
never units. Diversity scores d(x) / max d, balance scores a class's remaining picks over the
largest remaining (see `greedy.Balance`). The pick is the candidate with the largest product

    prod_i score_i(x) ** |strength_i|

(a negative strength ranks the reverse way). As a sum of logarithms, each strength is the
weight of its objective's log-score; the product is zero-free, since ranks are at least 1/n.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coresift.config import Strategy
from coresift.selection.greedy import Balance, Vectors, squared_distances, widened

# Typicality measures density against at most this many candidates (a seeded sample of them
# beyond that), so its cost grows linearly with the number of candidates, never with n^2.
TYPICALITY_REFERENCE = 4096
_BLOCK = 2048

_OPERATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def percentile_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks scaled into (0, 1], larger values ranking higher; NaN ranks lowest."""
    if len(values) == 0:
        return values
    filled = np.where(np.isnan(values), -np.inf, values)
    _, position, counts = np.unique(filled, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # 1-based rank of each distinct value's last occurrence
    average: NDArray[np.float64] = (last - (counts - 1) / 2.0)[position] / len(values)
    return average


def numeric(values: Sequence[Any]) -> NDArray[np.float64]:
    """Values as floats, missing ones (None) as NaN."""
    return np.array([np.nan if v is None else float(v) for v in values], np.float64)


def passes(strategy: Strategy, values: Sequence[Any]) -> NDArray[np.bool_]:
    """Which values pass a threshold; a missing value never does."""
    compare = _OPERATIONS[str(strategy.operation)]
    target = strategy.value
    return np.array(
        [value is not None and bool(compare(value, target)) for value in values], np.bool_
    )


def describe_threshold(strategy: Strategy) -> str:
    return f"{strategy.input} {strategy.operation} {strategy.value!r}"


def nearest_distances(points: Vectors, others: Vectors) -> NDArray[np.float64]:
    """Each point's distance to its nearest point of `others` (blocked)."""
    others = widened(others)
    result = np.empty(len(points), np.float64)
    for start in range(0, len(points), _BLOCK):
        squared = squared_distances(points[start : start + _BLOCK], others)
        result[start : start + _BLOCK] = np.sqrt(squared.min(axis=1))
    return result


def mean_neighbour_distances(points: Vectors, neighbors: int, seed: int = 0) -> NDArray[np.float64]:
    """Each point's mean distance to its `neighbors` nearest other points, measured against
    all points or, beyond TYPICALITY_REFERENCE, a seeded sample of them (blocked: no n x n
    matrix is ever built)."""
    count = len(points)
    reference: NDArray[np.signedinteger[Any]]
    if count <= TYPICALITY_REFERENCE:
        reference = np.arange(count)
    else:
        reference = np.sort(np.random.default_rng(seed).choice(count, TYPICALITY_REFERENCE, False))
    others = widened(points[reference])
    k = min(neighbors, len(reference) - 1)
    result = np.zeros(count, np.float64)
    if k < 1:
        return result
    for start in range(0, count, _BLOCK):
        squared = squared_distances(points[start : start + _BLOCK], others)
        rows = np.arange(start, min(start + _BLOCK, count))
        # a point is not its own neighbour
        own = np.searchsorted(reference, rows)
        mine = (own < len(reference)) & (reference[np.minimum(own, len(reference) - 1)] == rows)
        squared[np.flatnonzero(mine), own[mine]] = np.inf
        nearest = np.partition(squared, k - 1, axis=1)[:, :k]
        result[rows] = np.sqrt(nearest).mean(axis=1)
    return result


def static_log_score(
    strategy: Strategy,
    values: Sequence[Any] | None,
    points: Vectors,
    queries: Vectors | None,
    seed: int,
) -> NDArray[np.float64]:
    """|strength| * log(score) of a static strategy for every candidate."""
    if strategy.type == "weights":
        assert values is not None
        goodness = numeric(values)
    elif strategy.type == "similarity":
        assert queries is not None and len(queries)
        goodness = -nearest_distances(points, queries)
    elif strategy.type == "typicality":
        goodness = -mean_neighbour_distances(points, strategy.neighbors, seed)
    else:
        raise ValueError(f"{strategy.type} is not a static strategy")
    if strategy.strength < 0:
        goodness = np.where(np.isnan(goodness), np.nan, -goodness)
    return abs(strategy.strength) * np.log(percentile_ranks(goodness))


def balance_of(
    strategy: Strategy,
    values: Sequence[Any],
    earlier: Sequence[Any],
    n_samples: int | None,
) -> tuple[Balance, list[str]]:
    """The balance state for the candidates' class values, with earlier picks counted.

    With n_samples, quotas are apportioned over the earlier picks plus n_samples, so earlier
    picks count toward the target; without it, each pick goes to the class furthest below
    its share of the picks so far. Values outside a target mapping belong to no class.

    Returns the state and the class names (index order).
    """
    labels = [_label(v) for v in values]
    earlier_labels = [_label(v) for v in earlier]
    if strategy.target == "uniform":
        names = sorted({label for label in labels if label is not None})
        targets = np.full(len(names), 1.0 / max(len(names), 1))
    else:
        assert isinstance(strategy.target, dict)
        names = list(strategy.target)
        weights = np.array([strategy.target[name] for name in names], np.float64)
        targets = weights / weights.sum()
    index = {name: i for i, name in enumerate(names)}
    classes = np.array([index.get(label, -1) if label else -1 for label in labels], np.intp)
    counts = np.zeros(len(names), np.int64)
    for label in earlier_labels:
        if label in index:
            counts[index[label]] += 1
    total = None if n_samples is None else int(counts.sum()) + n_samples
    return Balance(classes, targets, counts, total, strategy.strength), names


def _label(value: Any) -> str | None:
    """A class name: text as it is, booleans as 'true'/'false', numbers as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
