"""The numbers behind a report's pictures: the 2-D map, coverage, and filter decisions.

The map is PCA, not UMAP: PCA is exact, deterministic, linear (distances along its axes mean
what they mean in the embedding) and fits 100k samples in seconds with nothing to install,
while UMAP would add numba, take minutes at that size and move between runs. The axes are
fitted on at most FIT_ROWS samples (a seeded choice) and every sample is projected.

Embeddings come compact (float16, `Datapool.compact_embeddings`); whatever touches all of them
goes block by block, so a report of a million samples never holds a float32 copy of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from coresift.selection.greedy import Vectors, squared_distances, widened
from coresift.selection.scores import nearest_distances

FIT_ROWS = 20_000
COVERAGE_ROWS = 20_000  # samples whose distance to the nearest pick is measured (a seeded sample)
PAIRWISE_PICKS = 2_000  # picks whose pairwise distances are measured (a seeded sample)
RANDOM_DRAWS = 20
BLOCK = 1024  # rows widened at a time (5 MB of float32 at 1280 dimensions)


def project(embeddings: Vectors, rows: NDArray[np.intp], seed: int = 0) -> NDArray[np.float32]:
    """The given rows' coordinates on their first two principal axes (zeros for none)."""
    projected = np.zeros((len(rows), 2), np.float32)
    if len(rows) == 0 or embeddings.shape[1] == 0:
        return projected
    rng = np.random.default_rng(seed)
    fitted = rows if len(rows) <= FIT_ROWS else np.sort(rng.choice(rows, FIT_ROWS, False))
    blocks = [fitted[start : start + BLOCK] for start in range(0, len(fitted), BLOCK)]
    total = sum(widened(embeddings[block]).sum(axis=0, dtype=np.float64) for block in blocks)
    centre = np.asarray(total) / len(fitted)
    covariance = np.zeros((embeddings.shape[1],) * 2)
    for block in blocks:
        centred = widened(embeddings[block]) - centre
        covariance += centred.T @ centred
    values, vectors = np.linalg.eigh(covariance / max(len(fitted) - 1, 1))
    axes = vectors[:, np.argsort(values)[::-1][:2]]
    for i in range(axes.shape[1]):  # a fixed sign per axis, so reruns draw the same map
        if axes[np.argmax(np.abs(axes[:, i])), i] < 0:
            axes[:, i] = -axes[:, i]
    for start in range(0, len(rows), BLOCK):
        block = widened(embeddings[rows[start : start + BLOCK]])
        projected[start : start + BLOCK, : axes.shape[1]] = (block - centre) @ axes
    return projected


def embedded_rows(embeddings: Vectors, rows: NDArray[np.intp]) -> NDArray[np.intp]:
    """The rows that hold an embedding (a row without one is zeros)."""
    blocks = [embeddings[rows[s : s + BLOCK]].any(axis=1) for s in range(0, len(rows), BLOCK)]
    return rows[np.concatenate(blocks)] if blocks else rows


@dataclass(frozen=True)
class Coverage:
    """How well the picks cover the samples, and how spread they are against chance."""

    nearest_pick: NDArray[np.float64]  # per measured sample, distance to its nearest pick
    measured: int  # how many samples that is (all, or a seeded sample)
    picks_min_pairwise: float  # the smallest distance between two picks
    random_median: float  # the same for random sets of as many samples: median over draws
    random_max: float  # ... and best over draws


def coverage(
    embeddings: Vectors, picks: list[int], candidates: NDArray[np.intp], seed: int = 0
) -> Coverage | None:
    """Coverage of the candidates by the picks (None with fewer than two picks)."""
    if len(picks) < 2 or not len(candidates):
        return None
    rng = np.random.default_rng(seed)
    measured = candidates
    if len(measured) > COVERAGE_ROWS:
        measured = np.sort(rng.choice(measured, COVERAGE_ROWS, False))
    chosen = np.asarray(picks)
    if len(chosen) > PAIRWISE_PICKS:
        chosen = np.sort(rng.choice(chosen, PAIRWISE_PICKS, False))
    draws = [
        _min_pairwise(embeddings[rng.choice(candidates, min(len(chosen), len(candidates)), False)])
        for _ in range(RANDOM_DRAWS)
    ]
    return Coverage(
        nearest_pick=nearest_distances(embeddings[measured], embeddings[np.asarray(picks)]),
        measured=len(measured),
        picks_min_pairwise=_min_pairwise(embeddings[chosen]),
        random_median=float(np.median(draws)),
        random_max=float(np.max(draws)),
    )


def _min_pairwise(points: Vectors) -> float:
    squared = squared_distances(points, points)
    np.fill_diagonal(squared, np.inf)
    return float(np.sqrt(squared.min()))


def nearest_unpicked(
    embeddings: Vectors, pick: int, unpicked: NDArray[np.intp], count: int
) -> list[tuple[int, float]]:
    """The unpicked samples nearest a pick, with their distances (a filter decision)."""
    if not len(unpicked):
        return []
    point = embeddings[[pick]]
    distances = np.concatenate(
        [
            np.sqrt(squared_distances(point, embeddings[unpicked[start : start + BLOCK]])[0])
            for start in range(0, len(unpicked), BLOCK)
        ]
    )
    order = np.argsort(distances, kind="stable")[:count]
    return [(int(unpicked[i]), float(distances[i])) for i in order]
