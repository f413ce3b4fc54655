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


def k_center_greedy(
    candidates: NDArray[np.float32],
    fixed_centers: NDArray[np.float32] | None = None,
    n_samples: int | None = None,
    min_distance: float | None = None,
    seed: int = 0,
    batch: int = 256,
) -> Selection:
    """Pick candidates farthest-first until n_samples are picked or none is min_distance away.

    Args:
        candidates: (n, d) embeddings to choose from.
        fixed_centers: (m, d) earlier picks; they are never picked again.
        n_samples: how many to pick at most (None: until min_distance stops it).
        min_distance: stop when the farthest candidate is closer than this to every center.
        seed: chooses the first pick when there are no fixed centers.
        batch: centers folded into every candidate's distance at once (speed only).

    Exact, with ties going to the lowest index. Updating every candidate after each pick is
    one pass over all embeddings per pick (memory-bound: about 20 ms for 1M x 128). Instead,
    the last `batch` picks stay pending: stored distances are then upper bounds, candidates
    are scanned in descending bound order and refreshed against the pending picks only, and
    the scan stops once no remaining bound can beat the best refreshed distance. Every
    `batch` picks one matrix product brings all distances up to date.
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
    norms = np.einsum("ij,ij->i", points, points)
    nearest = np.full(len(points), np.inf, dtype=np.float32)
    if len(centers):
        _fold(points, norms, nearest, centers)
    # Stop below min_distance; without one, stop only when every candidate is picked (-1).
    threshold = 0.0 if min_distance is None else float(min_distance) ** 2
    picked: list[int] = []
    distances: list[float] = []
    pending: list[int] = []
    order, snapshot = _descending(nearest)
    fold_after = batch
    while len(picked) < limit:
        if len(centers) == 0 and not picked:
            index, distance_sq = int(np.random.default_rng(seed).integers(len(points))), np.inf
            fold_after = 1  # every bound is infinite until the first pick is folded in
        else:
            index, distance_sq, scanned = _farthest(points, nearest, order, snapshot, pending)
            if scanned == len(order) < len(points):  # the partial order ran out: sort all
                order, snapshot = _descending(nearest, everything=True)
                index, distance_sq, scanned = _farthest(points, nearest, order, snapshot, pending)
            if index < 0 or distance_sq < threshold:
                break
            # A scan that refreshes many candidates costs more than folding now.
            fold_after = 1 if scanned > max(8 * _SCAN, len(points) // 16) else batch
        picked.append(index)
        distances.append(float(np.sqrt(distance_sq)))
        pending.append(index)
        nearest[index] = -1.0  # picked: below every real distance from now on
        if len(pending) >= fold_after:
            _fold(points, norms, nearest, points[pending])
            pending.clear()
            order, snapshot = _descending(nearest)
    return Selection(picked, distances)


_TOP = 65_536  # candidates kept in scan order after a fold; scans rarely go deeper


def _descending(
    bounds: NDArray[np.float32], everything: bool = False
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """The candidates with the largest bounds in descending order (all of them, or the top
    _TOP: a partial sort is much cheaper), and their bounds in that order as of now."""
    if everything or len(bounds) <= _TOP:
        order = np.argsort(-bounds, kind="stable")
    else:
        top = np.argpartition(-bounds, _TOP)[:_TOP]
        order = top[np.lexsort((top, -bounds[top]))]  # ties by index, as a stable sort
    return order, bounds[order]


_SCAN = 512  # candidates refreshed per step of the scan


def _farthest(
    points: NDArray[np.float32],
    bounds: NDArray[np.float32],
    order: NDArray[np.intp],
    snapshot: NDArray[np.float32],
    pending: list[int],
) -> tuple[int, float, int]:
    """The candidate farthest from all centers, its squared distance, and how many were scanned.

    bounds hold each candidate's distance to all centers but the pending ones (-1: picked);
    snapshot holds them in scan order as they were when `order` was made, so they bound
    every later candidate. Returns index -1 when every candidate is picked.
    """
    best_index, best = -1, -1.0
    scanned = 0
    for start in range(0, len(order), _SCAN):
        if snapshot[start] < best or snapshot[start] < 0:
            break  # no candidate left can beat (or tie) the best true distance
        block = order[start : start + _SCAN]
        scanned += len(block)
        values = bounds[block]
        if pending:
            refreshed = _squared_distances(points[block], points[pending]).min(axis=1)
            values = np.where(values < 0, values, np.minimum(values, refreshed))
        top = float(values.max())
        if top < 0 or top < best:
            continue
        candidate = int(block[values == top].min())
        if top > best or candidate < best_index:
            best_index, best = candidate, top
    return best_index, best, scanned


def _fold(
    points: NDArray[np.float32],
    norms: NDArray[np.float32],
    nearest: NDArray[np.float32],
    centers: NDArray[np.float32],
) -> None:
    """Lower every stored distance to account for new centers (picked ones stay at -1).

    min_j |x - c_j|^2 = |x|^2 + min_j (|c_j|^2 - 2 x.c_j): one matrix product and two
    in-place passes per block, the cost that dominates large selections.
    """
    center_norms = np.einsum("ij,ij->i", centers, centers)
    for start in range(0, len(points), _CHUNK):
        products = points[start : start + _CHUNK] @ centers.T
        products *= -2.0
        products += center_norms
        block = products.min(axis=1)
        block += norms[start : start + _CHUNK]
        np.maximum(block, 0.0, out=block)
        part = nearest[start : start + _CHUNK]
        np.minimum(part, block, out=part, where=part >= 0)


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
