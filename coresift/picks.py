"""Choosing a run's picks: which samples are candidates, which earlier picks are fixed centers.

Corrupt samples and exact duplicates (same content hash as an earlier candidate or pick) are
never candidates. Earlier picks count as fixed centers only when they were embedded by the same
model, since embeddings of different models are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from coresift import schema
from coresift.selection import k_center_greedy


@dataclass(frozen=True)
class Picks:
    """The new picks as tag rows (schema.TAGS), and how many earlier picks were fixed centers."""

    tags: pa.Table
    preselected: int


def embedding_matrix(table: pa.Table) -> NDArray[np.float32]:
    """The embedding column as an (n, d) float32 array, without a Python loop."""
    if len(table) == 0:
        return np.empty((0, 0), np.float32)
    column = table.column("embedding").combine_chunks()
    values = np.asarray(pc.list_flatten(column), dtype=np.float32)
    return values.reshape(len(table), -1)


def candidates_of(samples: pa.Table, excluded_hashes: set[str]) -> pa.Table:
    """Samples that may be picked: decoded, embedded, and first of their content hash."""
    usable = samples.filter(
        pc.field("corrupt_reason").is_null() & pc.field("embedding").is_valid()
    ).sort_by([("uri", "ascending"), ("frame_index", "ascending")])
    keep: list[bool] = []
    seen = set(excluded_hashes)
    for content_hash in usable.column("content_hash").to_pylist():
        keep.append(content_hash not in seen)
        seen.add(content_hash)
    return usable.filter(pa.array(keep, pa.bool_()))


def clips_of(samples: pa.Table, length: int) -> list[list[int]]:
    """Row indices of clips: runs of `length` consecutive sampled frames of one video.

    Windows do not overlap; a video's last frames that do not fill a window are left out.
    """
    usable = samples.column("embedding").is_valid().to_pylist()
    frames = samples.column("frame_index").to_pylist()
    order = sorted(
        (uri, frame, row)
        for row, (uri, frame) in enumerate(
            zip(samples.column("uri").to_pylist(), frames, strict=True)
        )
        if frame is not None and usable[row]
    )
    clips: list[list[int]] = []
    current: list[int] = []
    current_uri = None
    for uri, _, row in order:
        if uri != current_uri:
            current, current_uri = [], uri
        current.append(row)
        if len(current) == length:
            clips.append(current)
            current = []
    return clips


def choose(
    new_samples: pa.Table,
    earlier_picks: pa.Table,
    *,
    model: str,
    n_samples: int | None,
    min_distance: float | None,
    seed: int,
    tag: str,
    sequence_length: int | None = None,
) -> Picks:
    """Pick among new_samples by greedy k-center around the earlier picks (fixed centers).

    Args:
        new_samples: this run's processed samples (schema.SAMPLES).
        earlier_picks: samples picked by earlier runs that are still current.
        model: identity of the model that embedded new_samples.
        sequence_length: pick clips of this many consecutive sampled frames; a clip's
            embedding is the mean of its frames', and n_samples counts clips.
    """
    centers = earlier_picks.filter(pc.field("model") == model)
    fixed = embedding_matrix(centers) if len(centers) else None
    if sequence_length is None:
        candidates = candidates_of(
            new_samples, set(earlier_picks.column("content_hash").to_pylist())
        )
        groups = [[row] for row in range(len(candidates))]
        points = embedding_matrix(candidates)
    else:
        candidates = new_samples
        groups = clips_of(new_samples, sequence_length)
        frames = embedding_matrix(new_samples)
        points = np.stack([frames[g].mean(axis=0) for g in groups]) if groups else frames[:0]
    selection = k_center_greedy(
        points, fixed, n_samples=n_samples, min_distance=min_distance, seed=seed
    )
    sample_ids = candidates.column("sample_id").to_pylist()
    rows = [
        {
            "tag": tag,
            "sample_id": sample_ids[row],
            "distance": distance,
            "clip": None if sequence_length is None else clip,
        }
        for clip, (group, distance) in enumerate(
            zip((groups[i] for i in selection.indices), selection.distances, strict=True)
        )
        for row in group
    ]
    for rank, row in enumerate(rows):
        row["rank"] = rank
    return Picks(pa.Table.from_pylist(rows, schema=schema.TAGS), preselected=len(centers))
