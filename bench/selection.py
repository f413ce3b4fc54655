"""Selection speed at datapool scale: combined strategies against diversity alone, same run.

Run: python -m bench.selection [--points 1000000] [--dims 128] [--picks 10000]

Both timings go through `choose`, the whole selection step of a run (filters, scores, the
greedy search, reasons), on the same synthetic samples table: unit embeddings, metrics and a
custom camera column. Typicality is timed on its own, since its density estimate is the one
strategy whose cost is not in the greedy search.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import pyarrow as pa


def samples_table(points: int, dims: int, seed: int = 0, start: int = 0) -> pa.Table:
    """points samples of schema.SAMPLES with unit embeddings and plausible metrics (ids
    numbered from start)."""
    from coresift import schema

    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(points, dims)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    ids = [f"{i:012x}" for i in range(start, start + points)]
    cameras = rng.integers(0, 10, points)
    columns: dict[str, Any] = {
        "sample_id": ids,
        "uri": [f"s3://bench/{i}.jpg" for i in ids],
        "content_hash": ids,
        "width": np.full(points, 640),
        "height": np.full(points, 480),
        "luminance": rng.uniform(0, 255, points),
        "sharpness": rng.lognormal(6, 1, points),
        "detail": rng.uniform(5, 60, points),
        "custom": [f'{{"camera": "cam-{c}"}}' for c in cameras],
        "model": ["bench"] * points,
        "embedding": pa.FixedSizeListArray.from_arrays(embeddings.ravel(), dims).cast(
            pa.list_(pa.float32())
        ),
    }
    table = pa.table({name: columns.get(name) for name in columns})
    for field in schema.SAMPLES:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(points, field.type))
    return table.select(schema.SAMPLES.names).cast(schema.SAMPLES)


def timed_choose(samples: pa.Table, picks: int, strategies: list[dict[str, Any]]) -> float:
    from coresift.config import SelectionConfig
    from coresift.selection import choose

    selection = SelectionConfig(n_samples=picks, strategies=strategies)
    start = time.perf_counter()
    result = choose(samples, samples.slice(0, 0), model="bench", selection=selection, tag="b")
    elapsed = time.perf_counter() - start
    assert len(result.tags) == picks, result.notes
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--picks", type=int, default=10_000)
    args = parser.parse_args()
    samples = samples_table(args.points, args.dims)
    luminance = np.asarray(samples["luminance"])
    combined: list[dict[str, Any]] = [
        {"input": "embedding", "type": "diversity"},
        {"input": "metadata.sharpness", "type": "weights"},
        {
            "input": "metadata.luminance",
            "type": "threshold",
            "operation": ">=",
            "value": float(np.percentile(luminance, 10)),
        },
        {"input": "custom.camera", "type": "balance", "target": "uniform"},
    ]
    from coresift.selection import embedding_matrix, k_center_greedy
    from coresift.selection.scores import mean_neighbour_distances

    embeddings = embedding_matrix(samples)
    start = time.perf_counter()
    k_center_greedy(embeddings, n_samples=args.picks)
    search = time.perf_counter() - start
    diversity = timed_choose(samples, args.picks, [])
    together = timed_choose(samples, args.picks, combined)
    start = time.perf_counter()
    mean_neighbour_distances(embeddings, 10)
    typicality = time.perf_counter() - start
    results = {
        "points": args.points,
        "dims": args.dims,
        "picks": args.picks,
        "k_center_search_alone_s": round(search, 1),
        "diversity_s": round(diversity, 1),
        "diversity_weights_threshold_balance_s": round(together, 1),
        "combined_over_diversity": round(together / diversity, 2),
        "typicality_density_s": round(typicality, 1),
    }
    for key, value in results.items():
        print(f"{key:>40}  {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
