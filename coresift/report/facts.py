"""What a report shows, gathered from the datapool alone (the source is never read).

The focus of a report is one or more tags (by default the latest run's): their picks are
coloured apart on the map and shown in the grid, and the run that made the first of them is
told in words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from coresift.datapool import Datapool
from coresift.errors import DatapoolError

# Metrics offered for colouring the map and drawn as histograms.
METRICS = ("luminance", "contrast", "sharpness", "detail", "snr", "width", "height")
_COLUMNS = [
    "sample_id",
    "uri",
    "frame_index",
    "timestamp_s",
    "corrupt_reason",
    "corrupt_code",
    "model",
    *METRICS,
]


@dataclass(frozen=True)
class Facts:
    """The datapool's state as a report needs it; rows of `samples` align with `embeddings`."""

    datapool: str
    focus: list[str]  # the tags in focus, in the order the user gave (or the latest)
    summary: dict[str, Any] | None  # the run that made the first focus tag
    run_id: str | None
    samples: pa.Table  # current samples (corrupt ones included), sorted by sample id
    embeddings: NDArray[np.float16]  # rows of samples (compact); zeros where there is none
    tags: pa.Table  # committed tag rows: tag, sample_id, rank, distance, run_id
    filtered: pa.Table  # the focus run's filtered rows (or every run's without a focus run)
    runs: int

    def picks(self, tag: str) -> pa.Table:
        """A tag's rows in pick order."""
        return self.tags.filter(pc.field("tag") == tag).sort_by("rank")

    def row_of(self) -> dict[str, int]:
        """Sample id -> row in `samples`."""
        return {sid: i for i, sid in enumerate(self.samples["sample_id"].to_pylist())}


def gather(datapool: Datapool, focus: list[str] | None = None, run_id: str | None = None) -> Facts:
    """Read what a report of the given tags (default: the run's, else the latest run's) shows.

    Raises:
        DatapoolError: the datapool has no run yet, or a focus tag does not exist.
    """
    runs = datapool.runs()
    curate_runs = [
        row
        for row in runs.sort_by("sequence").to_pylist()
        if json.loads(row["summary_json"] or "{}").get("kind", "curate") == "curate"
    ]
    if not curate_runs:
        raise DatapoolError(f"datapool {datapool.url} has no run to report on yet")
    tags = datapool.tags()
    known = set(tags["tag"].to_pylist())
    if focus:
        missing = [tag for tag in focus if tag not in known]
        if missing:
            raise DatapoolError(f"tag {missing[0]!r} does not exist in datapool {datapool.url}")
    else:
        chosen = next((r for r in curate_runs if r["run_id"] == run_id), curate_runs[-1])
        focus = [chosen["tag"]] if chosen["tag"] in known else []
    made_by = {
        t: r for t, r in zip(tags["tag"].to_pylist(), tags["run_id"].to_pylist(), strict=True)
    }
    focus_run = run_id or (made_by.get(focus[0]) if focus else curate_runs[-1]["run_id"])
    summary = next(
        (json.loads(r["summary_json"]) for r in curate_runs if r["run_id"] == focus_run), None
    )
    samples = datapool.samples(_COLUMNS)
    embeddings = datapool.compact_embeddings(samples["sample_id"].combine_chunks())
    filtered = datapool.filtered()
    if focus_run is not None:
        filtered = filtered.filter(pc.field("run_id") == focus_run)
    return Facts(
        datapool=datapool.url,
        focus=list(focus),
        summary=summary,
        run_id=focus_run,
        samples=samples,
        embeddings=embeddings,
        tags=tags,
        filtered=filtered,
        runs=len(curate_runs),
    )
