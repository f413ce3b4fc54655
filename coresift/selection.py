"""Diverse selection: exact greedy k-center (farthest point first).

Earlier picks are fixed centers: they shape the distances but are not re-picked and do not
count toward n_samples. Each step picks the candidate farthest from every center so far, so a
second copy of a picture (at another size, say) is only picked after every distinct picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_CHUNK = 65_536  # rows per distance block: bounds temporary memory to about CHUNK x centers


@dataclass(frozen=True)
class Selection:
    """Indices of the picked candidates in pick order, with each one's distance when picked."""

    indices: list[int]
    distances: list[float]


def _squared_distances(
    points: NDArray[np.float32], centers: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Squared Euclidean distances, clipped at 0 against rounding."""
    sq = (
        np.einsum("ij,ij->i", points, points)[:, None]
        - 2.0 * points @ centers.T
        + np.einsum("ij,ij->i", centers, centers)[None, :]
    )
    result: NDArray[np.float32] = np.maximum(sq, 0.0).astype(np.float32)
    return result


def _min_squared_distances(
    points: NDArray[np.float32], centers: NDArray[np.float32]
) -> NDArray[np.float32]:
    nearest = np.full(len(points), np.inf, dtype=np.float32)
    if len(centers) == 0:
        return nearest
    for start in range(0, len(points), _CHUNK):
        block = _squared_distances(points[start : start + _CHUNK], centers)
        nearest[start : start + _CHUNK] = block.min(axis=1)
    return nearest


def k_center_greedy(
    candidates: NDArray[np.float32],
    fixed_centers: NDArray[np.float32] | None = None,
    n_samples: int | None = None,
    min_distance: float | None = None,
    seed: int = 0,
) -> Selection:
    """Pick candidates farthest-first until n_samples are picked or none is min_distance away.

    Args:
        candidates: (n, d) embeddings to choose from.
        fixed_centers: (m, d) earlier picks; they are never picked again.
        n_samples: how many to pick at most (None: until min_distance stops it).
        min_distance: stop when the farthest candidate is closer than this to every center.
        seed: chooses the first pick when there are no fixed centers.

    Ties go to the lowest index, so the result depends only on the inputs and the seed.
    """
    if n_samples is None and min_distance is None:
        raise ValueError("k_center_greedy needs n_samples, min_distance, or both")
    points = np.ascontiguousarray(candidates, dtype=np.float32)
    limit = len(points) if n_samples is None else min(n_samples, len(points))
    if limit == 0:
        return Selection([], [])
    centers = (
        np.empty((0, points.shape[1]), np.float32)
        if fixed_centers is None
        else np.ascontiguousarray(fixed_centers, dtype=np.float32)
    )
    nearest = _min_squared_distances(points, centers)
    norms = np.einsum("ij,ij->i", points, points)
    # Stop below min_distance; without one, stop only when every candidate is picked (-1).
    threshold = 0.0 if min_distance is None else float(min_distance) ** 2
    picked: list[int] = []
    distances: list[float] = []
    while len(picked) < limit:
        if len(centers) == 0 and not picked:
            index = int(np.random.default_rng(seed).integers(len(points)))
            distance_sq = float("inf")
        else:
            index = int(np.argmax(nearest))
            distance_sq = float(nearest[index])
            if distance_sq < 0.0 or distance_sq < threshold:
                break
        picked.append(index)
        distances.append(float(np.sqrt(distance_sq)))
        center = points[index]
        update = norms - 2.0 * (points @ center) + norms[index]
        np.minimum(nearest, np.maximum(update, 0.0), out=nearest)
        nearest[index] = -1.0  # picked: stays below every real distance from now on
    return Selection(picked, distances)


def k_center_reference(
    candidates: NDArray[np.float64],
    fixed_centers: NDArray[np.float64] | None = None,
    n_samples: int | None = None,
    min_distance: float | None = None,
    seed: int = 0,
) -> Selection:
    """The textbook algorithm, written for clarity; tests compare `k_center_greedy` to it."""
    points = [np.asarray(p, dtype=np.float64) for p in candidates]
    centers = [] if fixed_centers is None else [np.asarray(c, np.float64) for c in fixed_centers]
    limit = len(points) if n_samples is None else min(n_samples, len(points))
    picked: list[int] = []
    distances: list[float] = []
    while len(picked) < limit:
        if not centers:
            index = int(np.random.default_rng(seed).integers(len(points)))
            best = float("inf")
        else:
            best, index = -1.0, -1
            for i, p in enumerate(points):
                if i in picked:
                    continue
                d = min(float(np.linalg.norm(p - c)) for c in centers)
                if d > best:
                    best, index = d, i
            if index < 0 or (min_distance is not None and best < min_distance):
                break
        picked.append(index)
        distances.append(best)
        centers.append(points[index])
    return Selection(picked, distances)
