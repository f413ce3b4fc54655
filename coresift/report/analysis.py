"""The numbers behind a report's pictures: the 2-D map, coverage, and filter decisions.

The map is PCA, not UMAP: PCA is exact, deterministic, linear (distances along its axes mean
what they mean in the embedding) and fits 100k samples in seconds with nothing to install,
while UMAP would add numba, take minutes at that size and move between runs. The axes are
fitted on at most FIT_ROWS samples (a seeded choice) and every sample is projected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from coresift.selection.greedy import squared_distances
from coresift.selection.scores import nearest_distances

FIT_ROWS = 20_000
COVERAGE_ROWS = 20_000  # samples whose distance to the nearest pick is measured (a seeded sample)
PAIRWISE_PICKS = 2_000  # picks whose pairwise distances are measured (a seeded sample)
RANDOM_DRAWS = 20


def project(embeddings: NDArray[np.float32], seed: int = 0) -> NDArray[np.float32]:
    """Each row's coordinates on the first two principal axes (zeros for an empty input)."""
    rows = len(embeddings)
    if rows == 0 or embeddings.shape[1] == 0:
        return np.zeros((rows, 2), np.float32)
    rng = np.random.default_rng(seed)
    fit = embeddings if rows <= FIT_ROWS else embeddings[rng.choice(rows, FIT_ROWS, False)]
    centre = fit.mean(axis=0, dtype=np.float64)
    centred = fit - centre
    covariance = centred.T.astype(np.float64) @ centred / max(len(fit) - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    axes = vectors[:, np.argsort(values)[::-1][:2]]
    for i in range(axes.shape[1]):  # a fixed sign per axis, so reruns draw the same map
        if axes[np.argmax(np.abs(axes[:, i])), i] < 0:
            axes[:, i] = -axes[:, i]
    projected: NDArray[np.float32] = ((embeddings - centre) @ axes).astype(np.float32)
    if projected.shape[1] < 2:
        projected = np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))
    return projected


@dataclass(frozen=True)
class Coverage:
    """How well the picks cover the samples, and how spread they are against chance."""

    nearest_pick: NDArray[np.float64]  # per measured sample, distance to its nearest pick
    measured: int  # how many samples that is (all, or a seeded sample)
    picks_min_pairwise: float  # the smallest distance between two picks
    random_median: float  # the same for random sets of as many samples: median over draws
    random_max: float  # ... and best over draws


def coverage(
    embeddings: NDArray[np.float32], picks: list[int], candidates: list[int], seed: int = 0
) -> Coverage | None:
    """Coverage of the candidates by the picks (None with fewer than two picks)."""
    if len(picks) < 2 or not candidates:
        return None
    rng = np.random.default_rng(seed)
    measured = np.asarray(candidates)
    if len(measured) > COVERAGE_ROWS:
        measured = np.sort(rng.choice(measured, COVERAGE_ROWS, False))
    chosen = np.asarray(picks)
    if len(chosen) > PAIRWISE_PICKS:
        chosen = np.sort(rng.choice(chosen, PAIRWISE_PICKS, False))
    pool = np.asarray(candidates)
    draws = [
        _min_pairwise(embeddings[rng.choice(pool, min(len(chosen), len(pool)), False)])
        for _ in range(RANDOM_DRAWS)
    ]
    return Coverage(
        nearest_pick=nearest_distances(embeddings[measured], embeddings[np.asarray(picks)]),
        measured=len(measured),
        picks_min_pairwise=_min_pairwise(embeddings[chosen]),
        random_median=float(np.median(draws)),
        random_max=float(np.max(draws)),
    )


def _min_pairwise(points: NDArray[np.float32]) -> float:
    squared = squared_distances(points, points)
    np.fill_diagonal(squared, np.inf)
    return float(np.sqrt(squared.min()))


def nearest_unpicked(
    embeddings: NDArray[np.float32], pick: int, unpicked: list[int], count: int
) -> list[tuple[int, float]]:
    """The unpicked samples nearest a pick, with their distances (a filter decision)."""
    if not unpicked:
        return []
    pool = np.asarray(unpicked)
    distances = np.sqrt(squared_distances(embeddings[[pick]], embeddings[pool])[0])
    order = np.argsort(distances, kind="stable")[:count]
    return [(int(pool[i]), float(distances[i])) for i in order]
