"""Greedy k-center: identical to the textbook version, deterministic, duplicate-free."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from numpy.typing import NDArray

from coresift import schema
from coresift.config import SelectionConfig
from coresift.selection import choose, greedy_select, k_center_greedy, k_center_reference
from coresift.selection.greedy import Balance

TEN = SelectionConfig(n_samples=10)


def _points(n: int, d: int, seed: int) -> NDArray[Any]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_reference_without_fixed_centers(seed: int) -> None:
    points = _points(300, 16, seed)
    fast = k_center_greedy(points, n_samples=25, seed=seed)
    slow = k_center_reference(points.astype(np.float64), n_samples=25, seed=seed)
    assert fast.indices == slow.indices
    assert fast.distances[1:] == pytest.approx(slow.distances[1:], rel=1e-4)


def test_matches_the_reference_with_fixed_centers_and_min_distance() -> None:
    points, centers = _points(400, 8, 5), _points(7, 8, 6)
    fast = k_center_greedy(points, centers, n_samples=None, min_distance=2.5)
    slow = k_center_reference(points.astype(np.float64), centers.astype(np.float64), None, 2.5)
    assert fast.indices == slow.indices
    assert 0 < len(fast.indices) < 400
    assert min(fast.distances) >= 2.5


def test_fixed_centers_are_respected() -> None:
    centers = np.array([[0.0, 0.0]], np.float32)
    points = np.array([[0.1, 0.0], [5.0, 0.0], [0.0, 3.0]], np.float32)
    assert k_center_greedy(points, centers, n_samples=2).indices == [1, 2]


def test_same_seed_same_result_and_stops_when_exhausted() -> None:
    points = _points(50, 4, 9)
    assert (
        k_center_greedy(points, n_samples=60, seed=3).indices
        == k_center_greedy(points, n_samples=60, seed=3).indices
    )
    assert sorted(k_center_greedy(points, n_samples=60).indices) == list(range(50))


def _sample_rows(embeddings: NDArray[Any], hashes: list[str], corrupt: set[int]) -> pa.Table:
    rows = [
        {
            "sample_id": f"s{i}",
            "uri": f"file:///{i:03d}.jpg",
            "content_hash": hashes[i],
            "corrupt_reason": "truncated" if i in corrupt else None,
            "model": "m",
            "embedding": None if i in corrupt else embeddings[i].tolist(),
        }
        for i in range(len(hashes))
    ]
    return pa.Table.from_pylist(rows, schema=schema.SAMPLES)


def test_corrupt_samples_and_exact_duplicates_are_never_picked() -> None:
    embeddings = _points(6, 4, 1)
    embeddings[3] = embeddings[0]
    samples = _sample_rows(embeddings, ["h0", "h1", "h2", "h0", "h4", "h5"], corrupt={5})
    picks = choose(samples, samples.slice(0, 0), model="m", selection=TEN, tag="t")
    picked = set(picks.tags.column("sample_id").to_pylist())
    assert picked == {"s0", "s1", "s2", "s4"}


def test_earlier_picks_are_centers_and_their_copies_are_excluded() -> None:
    embeddings = _points(5, 4, 2)
    samples = _sample_rows(embeddings, ["a", "b", "c", "d", "e"], corrupt=set())
    earlier = samples.slice(0, 2)
    new = _sample_rows(embeddings, ["a", "x", "y", "z", "w"], corrupt=set()).slice(0, 5)
    picks = choose(new, earlier, model="m", selection=TEN, tag="t")
    assert picks.preselected == 2
    assert "s0" not in picks.tags.column("sample_id").to_pylist()  # same bytes as a pick
    assert picks.tags.column("distance").to_pylist()[0] < float("inf")


@pytest.mark.parametrize(("batch", "fixed"), [(1, False), (3, False), (7, True), (64, True)])
def test_lazy_batched_updates_change_nothing(batch: int, fixed: bool) -> None:
    points = _points(500, 12, batch)
    centers = _points(5, 12, 99) if fixed else None
    fast = k_center_greedy(points, centers, n_samples=60, seed=4, batch=batch)
    slow = k_center_reference(
        points.astype(np.float64),
        None if centers is None else centers.astype(np.float64),
        60,
        None,
        4,
    )
    assert fast.indices == slow.indices


def test_ties_go_to_the_lowest_index() -> None:
    points = np.array([[0, 0], [3, 0], [0, 3], [-3, 0], [0, -3]], np.float32)
    assert k_center_greedy(points, points[:1], n_samples=4, batch=2).indices == [1, 2, 3, 4]


def test_a_partial_scan_order_that_runs_out_falls_back_to_a_full_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coresift.selection import greedy

    monkeypatch.setattr(greedy, "_TOP", 40)
    monkeypatch.setattr(greedy, "_SCAN", 16)
    points = _points(400, 6, 11)
    fast = k_center_greedy(points, _points(3, 6, 12), n_samples=80, batch=9)
    slow = k_center_reference(
        points.astype(np.float64), _points(3, 6, 12).astype(np.float64), 80, None, 0
    )
    assert fast.indices == slow.indices


def keyed_reference(
    points: NDArray[Any],
    fixed: NDArray[Any] | None,
    n_samples: int,
    log_prior: NDArray[Any],
    exponent: float,
    exclusion: float,
    balance: Balance | None = None,
) -> list[int]:
    """The key formula evaluated for every candidate at every step, written for clarity."""
    centers = [] if fixed is None else list(fixed.astype(np.float64))
    picked: list[int] = []
    while len(picked) < n_samples:
        with np.errstate(divide="ignore"):
            if centers:
                d = np.array([min(np.linalg.norm(p - c) for c in centers) for p in points])
                key = log_prior + (exponent * np.log(d) if exponent else 0.0)
            else:
                d, key = np.full(len(points), np.inf), log_prior.copy()
        key[d < exclusion] = -np.inf
        key[picked] = -np.inf
        choice = key
        while balance is not None and balance.factors().max() > 0:
            factors = balance.factors()
            tier = np.where(balance.classes >= 0, factors[np.maximum(balance.classes, 0)], 0)
            with np.errstate(divide="ignore"):
                tiered = np.where(tier > 0, key + np.log(tier), -np.inf)
            if tiered.max() > -np.inf:
                choice = tiered
                break
            balance.exhausted |= factors > 0
        if choice.max() == -np.inf:
            break
        index = int(np.argmax(choice))
        picked.append(index)
        centers.append(points[index].astype(np.float64))
        if balance is not None and balance.classes[index] >= 0:
            balance.counts[balance.classes[index]] += 1
    return picked


def _balance(classes: NDArray[Any], total: int | None) -> Balance:
    targets = np.array([0.5, 0.3, 0.2])
    return Balance(classes.copy(), targets, np.array([1, 0, 0]), total)


@pytest.mark.parametrize(
    ("batch", "fixed", "exponent", "total"),
    [(1, False, 1.0, 12), (5, True, 2.0, 12), (64, True, 0.5, None), (7, False, 0.0, 15)],
)
def test_weighted_and_balanced_greedy_matches_the_formula(
    batch: int, fixed: bool, exponent: float, total: int | None
) -> None:
    """Priors, a diversity exponent, near-duplicate exclusion and balance (with a class that
    runs short) pick exactly what evaluating the formula everywhere picks."""
    rng = np.random.default_rng(batch)
    points = _points(300, 6, batch)
    points[1] = points[0] + 0.01  # a near duplicate
    centers = _points(4, 6, 7) if fixed else None
    log_prior = np.log(rng.uniform(0.05, 1.0, 300))
    classes = rng.choice([0, 1, 2, -1], 300, p=[0.6, 0.37, 0.01, 0.02])
    fast = greedy_select(
        points,
        centers,
        n_samples=14,
        log_prior=log_prior,
        exponent=exponent,
        exclusion=0.5,
        balance=_balance(classes, total),
        batch=batch,
    )
    slow = keyed_reference(points, centers, 14, log_prior, exponent, 0.5, _balance(classes, total))
    assert fast.indices == slow
