"""Report scale: a datapool of many samples gives its report within a time and size bound.

Run: python -m bench.report [--samples 100000] [--dims 1280] [--picks 1000]

The datapool is synthetic (clustered unit embeddings, real metrics' ranges, a thumbnail for
every sample, two runs' tags) and written through the same commit as real runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def synthetic_datapool(url: str, samples: int, dims: int, picks: int, seed: int = 0) -> None:
    """A datapool with `samples` samples in one run, and two tags of `picks` picks each."""
    from coresift import schema
    from coresift.datapool import Datapool, commit_run
    from coresift.testing.media import distinct_image
    from coresift.thumbnails import make_thumbnail

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dims)).astype(np.float32)
    embeddings = centres[rng.integers(0, 50, samples)] + 0.5 * rng.normal(size=(samples, dims))
    embeddings = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"{i:032x}" for i in range(samples)]
    columns = {
        "sample_id": ids,
        "uri": [f"s3://bench/camera-{i % 17}/{i:07d}.jpg" for i in range(samples)],
        "version": ["1"] * samples,
        "content_hash": ids,
        "width": np.full(samples, 4000),
        "height": np.full(samples, 3000),
        "luminance": rng.uniform(0, 255, samples),
        "contrast": rng.uniform(5, 80, samples),
        "sharpness": rng.lognormal(6, 1, samples),
        "detail": rng.uniform(2, 60, samples),
        "snr": rng.uniform(0.5, 8, samples),
        "model": ["bench"] * samples,
        "embedding": pa.FixedSizeListArray.from_arrays(embeddings.ravel(), dims).cast(
            pa.list_(pa.float32())
        ),
    }
    table = pa.table(columns)
    for field in schema.SAMPLES:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(samples, field.type))
    samples_table = table.select(schema.SAMPLES.names).cast(schema.SAMPLES)
    objects = pa.table(
        {
            "uri": columns["uri"],
            "version": columns["version"],
            "size": np.full(samples, 2_500_000),
            "status": ["ok"] * samples,
            "media": ["image"] * samples,
        }
    )
    for field in schema.OBJECTS:
        if field.name not in objects.column_names:
            objects = objects.append_column(field, pa.nulls(samples, field.type))
    thumbs = [make_thumbnail(distinct_image(i, (400, 300))) for i in range(64)]
    thumbnails = pa.table(
        {"sample_id": ids, "thumbnail": [thumbs[i % len(thumbs)] for i in range(samples)]},
        schema=schema.THUMBNAILS,
    )
    datapool = Datapool(url)
    chosen = rng.choice(samples, 2 * picks, replace=False)
    for run, (tag, rows) in enumerate((("earlier", chosen[:picks]), ("latest", chosen[picks:]))):
        tags = pa.Table.from_pylist(
            [
                {"tag": tag, "sample_id": ids[r], "rank": k, "distance": 1.0 / (k + 1)}
                for k, r in enumerate(rows)
            ],
            schema=schema.TAGS,
        )
        rows_by_table = {"tags": tags}
        if run == 0:
            rows_by_table |= {
                "samples": samples_table,
                "objects": objects.select(schema.OBJECTS.names).cast(schema.OBJECTS),
                "thumbnails": thumbnails,
            }
        summary = {"run_id": f"run-{run}", "tag": tag, "objects_new": samples if run == 0 else 0}
        commit_run(
            datapool.tables,
            run_id=f"run-{run}",
            expected_version=run - 1,
            rows=rows_by_table,
            run_row={"tag": tag, "started_at": "", "summary_json": json.dumps(summary)},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=1280)
    parser.add_argument("--picks", type=int, default=1_000)
    args = parser.parse_args()
    from coresift.datapool import Datapool
    from coresift.report import write_report

    with tempfile.TemporaryDirectory(prefix="coresift-bench-") as tmp:
        pool = str(Path(tmp) / "pool")
        start = time.perf_counter()
        synthetic_datapool(pool, args.samples, args.dims, args.picks)
        built = time.perf_counter() - start
        start = time.perf_counter()
        size = write_report(Datapool(pool), str(Path(tmp) / "report.html"))
        elapsed = time.perf_counter() - start
    results = {
        "samples": args.samples,
        "dims": args.dims,
        "picks_per_tag": args.picks,
        "datapool_build_s": round(built, 1),
        "report_s": round(elapsed, 1),
        "report_mb": round(size / 1e6, 1),
    }
    for key, value in results.items():
        print(f"{key:>16}  {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
