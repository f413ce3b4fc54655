"""The greedy search behind every selection: one pick at a time, exactly, at datapool scale.

Each step picks the eligible candidate with the largest key

    key(x) = prior(x) * d(x) ** exponent * balance_factor(class of x)

where d(x) is the distance from x to the nearest center (earlier picks are fixed centers,
this run's picks join them), prior(x) is the product of the static objectives (weights,
similarity, typicality) and balance_factor comes from the balance strategy. A candidate is
eligible while d(x) stays at least max(min_distance, exclusion): closer ones are near
duplicates of a center, or below the user's stop. With no prior and no balance the key is
d(x) itself, and this is exact greedy k-center (farthest point first): `k_center_reference`
is the textbook version that tests compare it with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

_CHUNK = 65_536  # rows per distance block: bounds temporary memory to about CHUNK x centers

# Embeddings as float32, or float16 (compact: half the memory of a selection's candidates).
# Arithmetic is always float32: blocks are widened as they are used.
Vectors = NDArray[np.floating[Any]]


def widened(vectors: Vectors) -> NDArray[np.float32]:
    """The vectors as float32 (no copy when they are float32 already)."""
    return vectors.astype(np.float32, copy=False)


@dataclass(frozen=True)
class Selection:
    """Indices of the picked candidates in pick order, with each one's distance when picked,
    and every candidate's squared distance to its nearest center (-1 for picks): exact when
    the search excluded near duplicates, else an upper bound."""

    indices: list[int]
    distances: list[float]
    final_sq: NDArray[np.float32] = field(default_factory=lambda: np.empty(0, np.float32))


@dataclass
class Balance:
    """The balance strategy's state: each candidate's class, the target share of each class,
    how many picks each class has (earlier picks included), and which classes ran out of
    eligible candidates (their share then goes to the others, in proportion)."""

    classes: NDArray[np.intp]  # per candidate; -1: a value outside the target
    targets: NDArray[np.float64]  # per class, summing to 1
    counts: NDArray[np.int64]  # per class, updated as picks are made
    total: int | None  # quotas are apportioned over this many picks; None: proportional
    strength: float = 1.0
    exhausted: NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.exhausted = np.zeros(len(self.targets), np.bool_)

    def quotas(self, active: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Largest-remainder quotas of `total` among the active classes, after what the
        others already have; an inactive class's quota is what it has."""
        quotas = self.counts.astype(np.float64)
        assert self.total is not None
        left = self.total - int(self.counts[~active].sum())
        shares = self.targets[active] / max(self.targets[active].sum(), 1e-300)
        ideal = shares * left
        whole = np.floor(ideal)
        short = int(left - whole.sum())
        whole[np.argsort(-(ideal - whole), kind="stable")[:short]] += 1
        quotas[active] = whole
        return quotas

    def remaining(self) -> NDArray[np.float64]:
        """Picks each class still needs: against its quota of `total`, or (without a total)
        against its share of one more pick; 0 for classes that ran out."""
        active = ~self.exhausted
        if self.total is None:
            shares = np.where(active, self.targets, 0.0)
            shares /= max(shares.sum(), 1e-300)
            remaining: NDArray[np.float64] = shares * (self.counts[active].sum() + 1) - self.counts
        else:
            remaining = self.quotas(active) - self.counts
        return np.where(active, remaining, 0.0)

    def factors(self) -> NDArray[np.float64]:
        """Per class: (remaining / largest remaining) ** strength; 0 where nothing remains."""
        remaining = self.remaining()
        top = remaining.max(initial=0.0)
        if top <= 0:
            return np.zeros(len(remaining))
        factors: NDArray[np.float64] = np.where(
            remaining > 0, (np.maximum(remaining, 0) / top) ** self.strength, 0.0
        )
        return factors

    def shortfalls(self) -> list[tuple[int, int, int]]:
        """(class, picks, quota) of each class that ran out before its quota of `total`."""
        if self.total is None:
            return []
        quotas = self.quotas(np.ones(len(self.targets), np.bool_))
        return [
            (int(index), int(self.counts[index]), int(quotas[index]))
            for index in np.flatnonzero(self.exhausted)
            if self.counts[index] < quotas[index]
        ]


def squared_distances(points: Vectors, centers: Vectors) -> NDArray[np.float32]:
    """Squared Euclidean distances, clipped at 0 against rounding."""
    points, centers = widened(points), widened(centers)
    sq = (
        np.einsum("ij,ij->i", points, points)[:, None]
        - 2.0 * points @ centers.T
        + np.einsum("ij,ij->i", centers, centers)[None, :]
    )
    result: NDArray[np.float32] = np.maximum(sq, 0.0).astype(np.float32)
    return result


class _Keys:
    """Turns squared distances into keys that order candidates as the key formula does;
    -inf marks picked or ineligible candidates.

    Without a prior the key is the squared distance itself (exact k-center, ties included);
    with one it is the logarithm of the formula, so many small factors cannot underflow.
    """

    def __init__(
        self, log_prior: NDArray[np.float64] | None, exponent: float, eligible_sq: float
    ) -> None:
        self.log_prior = log_prior
        self.exponent = exponent
        self.eligible_sq = eligible_sq

    def __call__(
        self, squared: NDArray[np.float32], rows: NDArray[np.intp] | slice
    ) -> NDArray[np.float64]:
        usable = (squared >= 0) & (squared >= self.eligible_sq)
        if self.log_prior is None:
            value = squared.astype(np.float64)
        else:
            value = self.log_prior[rows].copy()
            if self.exponent:
                with np.errstate(divide="ignore"):  # a distance of 0 has key -inf
                    value += self.exponent / 2 * np.log(np.maximum(squared, 0).astype(np.float64))
        return np.where(usable, value, -np.inf)


def greedy_select(
    candidates: Vectors,
    fixed_centers: Vectors | None = None,
    *,
    n_samples: int | None = None,
    min_distance: float | None = None,
    seed: int = 0,
    log_prior: NDArray[np.float64] | None = None,
    exponent: float = 1.0,
    exclusion: float = 0.0,
    balance: Balance | None = None,
    batch: int = 256,
) -> Selection:
    """Pick candidates by the largest key until n_samples are picked or none is eligible.

    Args:
        candidates: (n, d) embeddings to choose from.
        fixed_centers: (m, d) earlier picks; they are never picked again.
        n_samples: how many to pick at most (None: until no candidate is eligible).
        min_distance: candidates closer than this to every center stop being eligible.
        seed: chooses the first pick when there are no fixed centers and no prior (with a
            prior, the first pick is the candidate with the best prior).
        log_prior: (n,) logarithm of each candidate's static factor (None: all equal).
        exponent: the diversity strength; 0 ranks by prior and balance alone (distances
            still decide eligibility).
        exclusion: candidates closer than this to a center are near duplicates, never picked.
        balance: classes whose quota is filled are picked only when no other class can be.
        batch: centers folded into every candidate's distance at once (speed only).

    Exact, with ties going to the lowest index. Updating every candidate after each pick is
    one pass over all embeddings per pick (memory-bound: about 20 ms for 1M x 128). Instead,
    the last `batch` picks stay pending: stored distances, and the keys made from them, are
    then upper bounds (distances only shrink as centers are added, and balance factors are
    at most 1). Candidates are scanned in descending bound order and refreshed against the
    pending picks only, and the scan stops once no remaining bound can beat the best key.
    Every `batch` picks one matrix product brings all distances up to date.
    """
    if n_samples is None and min_distance is None and exclusion <= 0:
        raise ValueError("greedy_select needs n_samples, min_distance, or both")
    points = candidates if candidates.dtype == np.float16 else widened(candidates)
    limit = len(points) if n_samples is None else min(n_samples, len(points))
    centers = (
        np.empty((0, points.shape[1]), np.float32)
        if fixed_centers is None
        else widened(fixed_centers)
    )
    if balance is not None and log_prior is None:
        log_prior = np.zeros(len(points))
    keys = _Keys(log_prior, exponent, max(float(min_distance or 0.0), exclusion) ** 2)
    norms = np.empty(len(points), np.float32)
    for start in range(0, len(points), _CHUNK):
        norms[start : start + _CHUNK] = _norms(widened(points[start : start + _CHUNK]))
    nearest = np.full(len(points), np.inf, dtype=np.float32)
    if len(centers):
        _fold(points, norms, nearest, centers)
    picked: list[int] = []
    distances: list[float] = []
    pending: list[int] = []
    order, snapshot = _descending(keys(nearest, slice(None)))
    fold_after = batch
    while len(picked) < limit:
        if len(centers) == 0 and not picked:
            index = _first_pick(len(points), seed, log_prior, balance)
            distance_sq = np.inf
            fold_after = 1  # every bound is infinite until the first pick is folded in
        else:
            while True:
                factors = None if balance is None else balance.factors()
                tiered = factors if factors is not None and factors.max() > 0 else None
                search = _Search(points, nearest, keys, pending, balance, tiered)
                index, distance_sq, scanned = search.best(order, snapshot)
                if scanned == len(order) < len(points):  # the partial order ran out: sort all
                    order, snapshot = _descending(keys(nearest, slice(None)), everything=True)
                    index, distance_sq, scanned = search.best(order, snapshot)
                if index >= 0 or tiered is None or balance is None:
                    break
                # The classes that need picks have no eligible candidate left: their share
                # goes to the others.
                balance.exhausted |= tiered > 0
            if index < 0:
                break
            # A scan that refreshes many candidates costs more than folding now.
            fold_after = 1 if scanned > max(8 * _SCAN, len(points) // 16) else batch
        picked.append(index)
        distances.append(float(np.sqrt(distance_sq)))
        pending.append(index)
        nearest[index] = -1.0  # picked: below every real distance from now on
        if balance is not None and balance.classes[index] >= 0:
            balance.counts[balance.classes[index]] += 1
        if len(pending) >= fold_after:
            _fold(points, norms, nearest, points[pending])
            pending.clear()
            order, snapshot = _descending(keys(nearest, slice(None)))
    if pending and exclusion > 0:  # near duplicates are told by exact final distances
        _fold(points, norms, nearest, points[pending])
    return Selection(picked, distances, nearest)


def k_center_greedy(
    candidates: Vectors,
    fixed_centers: Vectors | None = None,
    n_samples: int | None = None,
    min_distance: float | None = None,
    seed: int = 0,
    batch: int = 256,
) -> Selection:
    """Exact greedy k-center (farthest point first): `greedy_select` with distance alone."""
    return greedy_select(
        candidates,
        fixed_centers,
        n_samples=n_samples,
        min_distance=min_distance,
        seed=seed,
        batch=batch,
    )


def _first_pick(
    count: int, seed: int, log_prior: NDArray[np.float64] | None, balance: Balance | None
) -> int:
    """With no center yet every distance is infinite: a seeded random pick for diversity
    alone, else the best prior within the classes that most need a pick."""
    if log_prior is None:
        return int(np.random.default_rng(seed).integers(count))
    while balance is not None:
        factors = balance.factors()
        if factors.max() <= 0:
            break
        factor = _class_factors(balance, factors, np.arange(count))
        if factor.max() > 0:
            with np.errstate(divide="ignore"):
                return int(np.argmax(log_prior + np.log(factor)))
        balance.exhausted |= factors > 0
    return int(np.argmax(log_prior))


def _class_factors(
    balance: Balance, factors: NDArray[np.float64], rows: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Each row's class factor (0 for a value outside the target)."""
    classes = balance.classes[rows]
    return np.where(classes >= 0, factors[np.maximum(classes, 0)], 0.0)


_TOP = 65_536  # candidates kept in scan order after a fold; scans rarely go deeper


def _descending(
    bounds: NDArray[np.float64], everything: bool = False
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The candidates with the largest bounds in descending order (all of them, or the top
    _TOP: a partial sort is much cheaper), and their bounds in that order as of now."""
    if everything or len(bounds) <= _TOP:
        order = np.argsort(-bounds, kind="stable")
    else:
        top = np.argpartition(-bounds, _TOP)[:_TOP]
        order = top[np.lexsort((top, -bounds[top]))]  # ties by index, as a stable sort
    return order, bounds[order]


_SCAN = 512  # candidates refreshed per step of the scan


@dataclass
class _Search:
    """One step's scan for the candidate with the largest key.

    `nearest` holds each candidate's squared distance to all centers but the pending ones
    (-1: picked). With class factors, candidates of classes whose factor is 0 are skipped
    (the keys are logarithms then, since balance implies a prior).
    """

    points: Vectors
    nearest: NDArray[np.float32]
    keys: _Keys
    pending: list[int]
    balance: Balance | None
    factors: NDArray[np.float64] | None

    def best(
        self, order: NDArray[np.intp], snapshot: NDArray[np.float64]
    ) -> tuple[int, float, int]:
        """The best candidate (-1: none), its squared distance, and how many were scanned.

        snapshot holds the bounds in scan order as they were when `order` was made, so they
        bound every later key.
        """
        best_index, best, best_sq = -1, -np.inf, -1.0
        scanned = 0
        for start in range(0, len(order), _SCAN):
            if snapshot[start] < best or snapshot[start] == -np.inf:
                break  # no candidate left can beat (or tie) the best key
            block = order[start : start + _SCAN]
            scanned += len(block)
            squared = self.nearest[block]
            if self.pending:
                refreshed = squared_distances(self.points[block], self.points[self.pending]).min(
                    axis=1
                )
                squared = np.where(squared < 0, squared, np.minimum(squared, refreshed))
            values = self.keys(squared, block)
            if self.factors is not None and self.balance is not None:
                factor = _class_factors(self.balance, self.factors, block)
                with np.errstate(divide="ignore"):  # a factor of 0 is -inf: skipped
                    values = values + np.log(factor)
            top = float(values.max())
            if top == -np.inf or top < best:
                continue
            at = np.flatnonzero(values == top)
            candidate = int(block[at].min())
            if top > best or candidate < best_index:
                best_index, best = candidate, top
                best_sq = float(squared[at[block[at] == candidate][0]])
        return best_index, best_sq, scanned


def _fold(
    points: Vectors,
    norms: NDArray[np.float32],
    nearest: NDArray[np.float32],
    centers: Vectors,
) -> None:
    """Lower every stored distance to account for new centers (picked ones stay at -1).

    min_j |x - c_j|^2 = |x|^2 + min_j (|c_j|^2 - 2 x.c_j): one matrix product and two
    in-place passes per block, the cost that dominates large selections.
    """
    centers = widened(centers)
    center_norms = _norms(centers)
    for start in range(0, len(points), _CHUNK):
        products = widened(points[start : start + _CHUNK]) @ centers.T
        products *= -2.0
        products += center_norms
        block = products.min(axis=1)
        block += norms[start : start + _CHUNK]
        np.maximum(block, 0.0, out=block)
        part = nearest[start : start + _CHUNK]
        np.minimum(part, block, out=part, where=part >= 0)


def _norms(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms: NDArray[np.float32] = np.einsum("ij,ij->i", vectors, vectors)
    return norms


def nearest_centers(points: Vectors, centers: Vectors) -> NDArray[np.intp]:
    """For each point, the index of its nearest center (blocked, so memory stays bounded)."""
    centers = widened(centers)
    result = np.empty(len(points), np.intp)
    for start in range(0, len(points), _CHUNK):
        result[start : start + _CHUNK] = squared_distances(
            points[start : start + _CHUNK], centers
        ).argmin(axis=1)
    return result


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
