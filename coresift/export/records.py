"""What every export is made from: one record per sample, with where it lives, its metadata,
the user's custom values and the tags that picked it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from coresift.config import METADATA_FIELDS
from coresift.datapool import Datapool

# The measured metadata carried by every format: what strategies may use, and the model.
METADATA = (
    *(name for name in METADATA_FIELDS if name not in ("frame_index", "timestamp_s")),
    "content_hash",
    "model",
)


def sample_locator(uri: str, frame_index: int | None) -> str:
    """How a sample is named where a format has no frame notion: the object URI, plus
    '#frame=N' for one frame of a video."""
    return uri if frame_index is None else f"{uri}#frame={frame_index}"


@dataclass(eq=False)  # compared by identity: it holds an array
class ExportRecord:
    """One sample as the exports see it."""

    sample_id: str
    uri: str
    frame_index: int | None
    timestamp_s: float | None
    metadata: dict[str, Any]
    custom: dict[str, Any]
    tags: list[str]
    rank: int | None = None  # position in the exported tag's picks (None for --all)
    distance: float | None = None
    corrupt_reason: str | None = None
    embedding: NDArray[np.float32] | None = field(default=None, repr=False)

    @property
    def locator(self) -> str:
        return sample_locator(self.uri, self.frame_index)


def export_records(
    datapool: Datapool, tag: str | None, embeddings: bool = False
) -> list[ExportRecord]:
    """The records of a tag's picks in pick order, or of every current sample (tag None).

    Args:
        embeddings: also read each sample's embedding (for explorers that take vectors).
    """
    vectors: dict[str, NDArray[np.float32]] = {}
    if tag is None:  # one scan, embeddings included when asked for
        wanted = [n for n in _COLUMNS if n not in ("rank", "distance")]
        table = datapool.samples([*wanted, "embedding"] if embeddings else wanted)
        table = table.append_column("rank", pa.nulls(len(table), pa.int64()))
        table = table.append_column("distance", pa.nulls(len(table), pa.float64()))
        if embeddings:
            vectors = _vectors(table)
            table = table.drop_columns(["embedding"])  # not converted row by row below
    else:  # the picks' rows come without embeddings: read only theirs
        table = datapool.tag_samples(tag).select(list(_COLUMNS))
        if embeddings:
            picked = set(table.column("sample_id").to_pylist())
            vectors = _vectors(datapool.samples(["sample_id", "embedding"], picked))
    tags_of = _tags_by_sample(datapool)
    return [
        ExportRecord(
            sample_id=row["sample_id"],
            uri=row["uri"],
            frame_index=row["frame_index"],
            timestamp_s=row["timestamp_s"],
            metadata={name: row[name] for name in METADATA},
            custom=json.loads(row["custom"]) if row["custom"] else {},
            tags=tags_of.get(row["sample_id"], []),
            rank=row["rank"],
            distance=row["distance"],
            corrupt_reason=row["corrupt_reason"],
            embedding=vectors.get(row["sample_id"]),
        )
        for row in table.to_pylist()
    ]


_COLUMNS = (
    "sample_id",
    "uri",
    "frame_index",
    "timestamp_s",
    "corrupt_reason",
    "custom",
    *METADATA,
    "rank",
    "distance",
)


def _tags_by_sample(datapool: Datapool) -> dict[str, list[str]]:
    """Every tag that picked each sample, in commit order."""
    tags: dict[str, list[str]] = {}
    table = datapool.tags()
    for name, sample_id in zip(
        table.column("tag").to_pylist(), table.column("sample_id").to_pylist(), strict=True
    ):
        names = tags.setdefault(sample_id, [])
        if name not in names:
            names.append(name)
    return tags


def _vectors(table: pa.Table) -> dict[str, NDArray[np.float32]]:
    """Each row's embedding by sample id (rows without one are left out)."""
    table = table.filter(pc.invert(pc.is_null(table.column("embedding"))))
    return {
        sample_id: np.asarray(vector, np.float32)
        for sample_id, vector in zip(
            table.column("sample_id").to_pylist(),
            table.column("embedding").to_pylist(),
            strict=True,
        )
    }
