"""The user's own metadata through a run: read once, checked, stored with the samples, used by
the strategies, and unmatched paths counted."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from coresift.datapool import Datapool
from coresift.testing.media import real_clip, write_images
from tests.helpers import curate_once

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def _metadata() -> pa.Table:
    """Two cameras over twelve images, a third for the video, one frame scored apart, and two
    paths that match nothing."""
    paths = [f"img-{i:04d}.jpg" for i in range(12)] + ["bikes.mp4", "bikes.mp4"]
    paths += ["gone/missing.jpg", "also-missing.png"]
    return pa.table(
        {
            "path": paths,
            "frame_index": [None] * 13 + [0, None, None],
            "camera": ["cam-a", "cam-b"] * 6 + ["cam-c", None, "cam-a", "cam-b"],
            "score": [float(i) for i in range(12)] + [None, 99.0, 0.0, 0.0],
        }
    )


def _write(table: pa.Table, path: Path) -> None:
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))


@pytest.mark.parametrize("name", ["meta.csv", "meta.parquet", "meta.jsonl"])
def test_custom_metadata_steers_the_picks_and_stays_with_the_samples(
    workdir: Path, name: str
) -> None:
    folder, pool = workdir / "in", str(workdir / "pool")
    write_images(folder, 0, 12)
    (folder / "bikes.mp4").write_bytes(real_clip("bikes.mp4"))
    _write(_metadata(), workdir / name)
    run = curate_once(
        str(folder),
        pool,
        n_samples=6,
        tag="t",
        custom_metadata={"url": str(workdir / name)},
        strategies=[
            {"input": "embedding", "type": "diversity"},
            {"input": "custom.camera", "type": "balance", "target": "uniform"},
        ],
    )
    assert run.custom_paths_unmatched == 2
    samples = Datapool(pool).samples(["sample_id", "uri", "frame_index", "custom"])
    values = {
        (uri.rsplit("/", 1)[1], frame): json.loads(custom)
        for uri, frame, custom in zip(
            samples["uri"].to_pylist(),
            samples["frame_index"].to_pylist(),
            samples["custom"].to_pylist(),
            strict=True,
        )
    }
    assert values[("img-0003.jpg", None)] == {"camera": "cam-b", "score": 3.0}
    assert values[("bikes.mp4", 0)] == {"camera": "cam-c", "score": 99.0}  # frame over video
    other_frames = [v for (name, f), v in values.items() if name == "bikes.mp4" and f]
    assert other_frames and all(v == {"camera": "cam-c"} for v in other_frames)
    picked = Datapool(pool).tag_samples("t")
    cameras = Counter(
        values[(u.rsplit("/", 1)[1], f)]["camera"]
        for u, f in zip(picked["uri"].to_pylist(), picked["frame_index"].to_pylist(), strict=True)
    )
    assert cameras == {"cam-a": 2, "cam-b": 2, "cam-c": 2}
