"""Selection strategies on real photos: each one changes the picks the way it promises, and
a negative strength inverts it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from numpy.typing import NDArray

from coresift import schema
from coresift.config import SelectionConfig
from coresift.embedding import load_embedder
from coresift.listing import list_source
from coresift.process import process_objects
from coresift.selection import Picks, choose, embedding_matrix
from coresift.selection.scores import mean_neighbour_distances, nearest_distances
from coresift.testing.media import distinct_image, jpeg_bytes, photo, photo_count

CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """90 real pictures (the bundled photos and crops of them), processed for real, with a
    custom class per picture: a, b or c by the photo it comes from."""
    folder = tmp_path_factory.mktemp("photos")
    for index in range(photo_count()):
        (folder / f"photo-{index:02d}.jpg").write_bytes(jpeg_bytes(photo(index)))
    for index in range(90 - photo_count()):
        (folder / f"crop-{index:02d}.jpg").write_bytes(jpeg_bytes(distinct_image(index)))
    result = process_objects(list_source(str(folder)).refs(), load_embedder("efficientnet-lite0"))
    assert result.samples.column("corrupt_reason").null_count == 90
    classes = [json.dumps({"class": _class_of(uri)}) for uri in result.samples["uri"].to_pylist()]
    return result.samples.drop_columns(["custom"]).append_column("custom", pa.array(classes))


def _class_of(uri: str) -> str:
    return CLASSES[int(Path(uri).stem.split("-")[1]) % 3]


def _pick(samples: pa.Table, earlier: pa.Table | None = None, **selection: Any) -> Picks:
    """Choose with a selection config given as keyword values (queries: by strategy index)."""
    queries = selection.pop("queries", None)
    return choose(
        samples,
        samples.slice(0, 0) if earlier is None else earlier,
        model=samples["model"][0].as_py(),
        selection=SelectionConfig.model_validate(selection),
        tag="t",
        queries=queries,
    )


def _picked(samples: pa.Table, picks: Picks) -> pa.Table:
    order = {sid: rank for rank, sid in enumerate(picks.tags["sample_id"].to_pylist())}
    chosen = samples.filter(pa.array([s in order for s in samples["sample_id"].to_pylist()]))
    return chosen


def _mean(samples: pa.Table, picks: Picks, column: str) -> float:
    return float(np.mean(_picked(samples, picks)[column].to_pylist()))


DIVERSITY = {"input": "embedding", "type": "diversity"}


def test_a_threshold_leaves_no_pick_outside_it(samples: pa.Table) -> None:
    limit = float(np.median(samples["luminance"].to_pylist()))
    rule = {"input": "metadata.luminance", "type": "threshold", "operation": ">=", "value": limit}
    picks = _pick(samples, n_samples=20, strategies=[DIVERSITY, rule])
    picked = _picked(samples, picks)
    assert len(picked) == 20
    assert min(picked["luminance"].to_pylist()) >= limit
    reasons = Counter(picks.filtered["reason"].to_pylist())
    assert reasons["threshold"] == sum(v < limit for v in samples["luminance"].to_pylist())
    assert set(
        picks.filtered.filter(pa.compute.field("reason") == "threshold")["detail"].to_pylist()
    ) == {f"metadata.luminance >= {limit!r}"}


@pytest.mark.parametrize("strength", [1.0, -1.0])
def test_weights_raise_or_lower_the_weighted_field(samples: pa.Table, strength: float) -> None:
    plain = _pick(samples, n_samples=15)
    weighted = _pick(
        samples,
        n_samples=15,
        strategies=[
            DIVERSITY,
            {"input": "metadata.sharpness", "type": "weights", "strength": 2 * strength},
        ],
    )
    before, after = _mean(samples, plain, "sharpness"), _mean(samples, weighted, "sharpness")
    print(
        f"\nmean sharpness of 15 picks: diversity {before:.0f}, weights x{strength:+g} {after:.0f}"
    )
    assert (after > before) if strength > 0 else (after < before)


def _distance_to(points: NDArray[Any], query: NDArray[Any]) -> float:
    """Mean distance of the points to their nearest query point."""
    return float(np.linalg.norm(points[:, None] - query[None], axis=-1).min(axis=1).mean())


@pytest.mark.parametrize("strength", [1.0, -1.0])
def test_similarity_brings_picks_nearer_or_farther_from_a_query(
    samples: pa.Table, strength: float
) -> None:
    query_rows = [i for i, u in enumerate(samples["uri"].to_pylist()) if "photo-00" in u]
    query = embedding_matrix(samples.take(query_rows))
    plain = _pick(samples, n_samples=10)
    similar = _pick(
        samples,
        n_samples=10,
        strategies=[
            DIVERSITY,
            {"input": "embedding", "type": "similarity", "query": "q", "strength": 3 * strength},
        ],
        queries={1: query},
    )
    before = _distance_to(embedding_matrix(_picked(samples, plain)), query)
    after = _distance_to(embedding_matrix(_picked(samples, similar)), query)
    print(f"\nmean distance of 10 picks to the query: diversity {before:.3f}, {after:.3f}")
    assert (after < before) if strength > 0 else (after > before)


@pytest.mark.parametrize("strength", [1.0, -1.0])
def test_typicality_prefers_dense_regions_or_outliers(samples: pa.Table, strength: float) -> None:
    density = mean_neighbour_distances(embedding_matrix(samples), 5)
    ids = samples["sample_id"].to_pylist()

    def spread(picks: Picks) -> float:
        chosen = set(picks.tags["sample_id"].to_pylist())
        return float(np.mean([d for d, s in zip(density, ids, strict=True) if s in chosen]))

    plain = _pick(samples, n_samples=10)
    typical = _pick(
        samples,
        n_samples=10,
        strategies=[
            DIVERSITY,
            {"input": "embedding", "type": "typicality", "neighbors": 5, "strength": 3 * strength},
        ],
    )
    before, after = spread(plain), spread(typical)
    print(f"\nmean 5-NN distance of picks: diversity {before:.3f}, typicality {after:.3f}")
    assert (after < before) if strength > 0 else (after > before)


def _classes(samples: pa.Table, picks: Picks) -> Counter[str]:
    return Counter(_class_of(uri) for uri in _picked(samples, picks)["uri"].to_pylist())


def test_balance_meets_its_target_counts_exactly(samples: pa.Table) -> None:
    balance = {
        "input": "custom.class",
        "type": "balance",
        "target": {"a": 0.5, "b": 0.25, "c": 0.25},
    }
    picks = _pick(samples, n_samples=12, strategies=[DIVERSITY, balance])
    assert _classes(samples, picks) == {"a": 6, "b": 3, "c": 3}
    assert picks.notes == []
    uniform = _pick(
        samples,
        n_samples=9,
        strategies=[{"input": "custom.class", "type": "balance", "target": "uniform"}],
    )
    assert _classes(samples, uniform) == {"a": 3, "b": 3, "c": 3}


def test_balance_reports_a_class_that_runs_out(samples: pa.Table) -> None:
    rows = [i for i, u in enumerate(samples["uri"].to_pylist()) if _class_of(u) != "c"]
    one_c = [i for i, u in enumerate(samples["uri"].to_pylist()) if _class_of(u) == "c"][:1]
    subset = samples.take(sorted(rows + one_c))
    balance = {"input": "custom.class", "type": "balance", "target": "uniform"}
    picks = _pick(subset, n_samples=9, strategies=[DIVERSITY, balance])
    assert _classes(subset, picks) == {"a": 4, "b": 4, "c": 1}  # the rest spread over a and b
    assert picks.notes == ["balance: class 'c' ran out of candidates (1 of 3 picks)"]


def test_earlier_picks_count_toward_balance(samples: pa.Table) -> None:
    a_rows = [i for i, u in enumerate(samples["uri"].to_pylist()) if _class_of(u) == "a"]
    earlier = samples.take(a_rows[:4])
    rest = samples.take([i for i in range(len(samples)) if i not in a_rows[:4]])
    balance = {"input": "custom.class", "type": "balance", "target": {"a": 0.5, "b": 0.5}}
    picks = _pick(rest, earlier, n_samples=6, strategies=[DIVERSITY, balance])
    assert _classes(rest, picks) == {"a": 1, "b": 5}  # 5 of 10 are a: 4 earlier and 1 new


def test_without_strategies_selection_is_diversity_and_the_guards(samples: pa.Table) -> None:
    default = _pick(samples, n_samples=12)
    explicit = _pick(samples, n_samples=12, strategies=[DIVERSITY])
    assert default.tags["sample_id"].to_pylist() == explicit.tags["sample_id"].to_pylist()


def test_compact_embeddings_pick_what_float32_picks(samples: pa.Table) -> None:
    """Selection on float16 embeddings against full float32: the same picks, or picks that
    cover the photos as well (the largest distance from any sample to its nearest pick,
    measured in float32)."""
    full = embedding_matrix(samples)

    def radius(picks: Picks) -> float:
        rows = [
            samples["sample_id"].to_pylist().index(s) for s in picks.tags["sample_id"].to_pylist()
        ]
        return float(nearest_distances(full, full[rows]).max())

    for n_samples in (5, 20, 45):
        exact = _pick(samples, n_samples=n_samples)
        compact = _pick(schema.compact(samples), n_samples=n_samples)
        same = set(exact.tags["sample_id"].to_pylist()) & set(compact.tags["sample_id"].to_pylist())
        print(
            f"\n{n_samples} picks: {len(same)} the same; covering radius "
            f"{radius(compact):.4f} (float16) vs {radius(exact):.4f} (float32)"
        )
        assert len(same) >= 0.9 * n_samples
        assert radius(compact) <= 1.01 * radius(exact)
