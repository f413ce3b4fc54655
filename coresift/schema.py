"""Arrow schemas of the datapool tables and of processing shards (one definition for both).

Rows of objects, samples and tags get a run_id column appended when their run commits.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

SAMPLES = pa.schema(
    [
        ("sample_id", pa.string()),
        ("uri", pa.string()),
        ("version", pa.string()),
        ("frame_index", pa.int64()),
        ("pts", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("content_hash", pa.string()),
        ("size_bytes", pa.int64()),
        ("corrupt_reason", pa.string()),
        ("corrupt_code", pa.string()),  # stable code of corrupt_reason (coresift.errors)
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("channels", pa.int64()),
        ("mean", pa.list_(pa.float64())),
        ("std", pa.list_(pa.float64())),
        ("luminance", pa.float64()),
        ("contrast", pa.float64()),
        ("sharpness", pa.float64()),
        ("snr", pa.float64()),
        ("uniform_row_ratio", pa.float64()),
        ("detail", pa.float64()),
        ("custom", pa.string()),  # the user's values for this sample, a JSON object
        ("model", pa.string()),
        ("embedding", pa.list_(pa.float32())),
    ]
)

OBJECTS = pa.schema(
    [
        ("uri", pa.string()),
        ("version", pa.string()),
        ("size", pa.int64()),
        ("status", pa.string()),  # ok | corrupt | gone | unsupported
        ("media", pa.string()),  # image | video (the kind decided at listing)
        ("reason", pa.string()),  # why it is corrupt, or where a damaged video stopped
        ("reason_code", pa.string()),  # stable code of reason (coresift.errors)
        ("frame_count", pa.int64()),
        ("duration_s", pa.float64()),
    ]
)

TAGS = pa.schema(
    [
        ("tag", pa.string()),
        ("sample_id", pa.string()),
        ("rank", pa.int64()),
        ("distance", pa.float64()),
        ("clip", pa.int64()),  # sequence selection: the clip a frame belongs to
    ]
)

FILTERED = pa.schema(
    [
        ("sample_id", pa.string()),
        # corrupt | duplicate | low_information | threshold | near_duplicate
        ("reason", pa.string()),
        ("detail", pa.string()),  # the corrupt code, the threshold, what makes it junk, ...
        ("related_sample_id", pa.string()),  # what it duplicates (duplicates, near duplicates)
    ]
)

# In memory; stored packed (Delta has no float16). Large lists: a million 1280-d vectors
# pass the 2**31 values that 32-bit list offsets can address.
COMPACT_EMBEDDING = pa.large_list(pa.float16())

# One row per picked sample, with what a later run's selection needs of it: its embedding in
# float16 (compact), so that runs find the earlier picks without reading the samples table.
# The embedding is stored as the float16 values' little-endian bytes (`pack_compact`).
PICKS = pa.schema(
    [
        ("sample_id", pa.string()),
        ("uri", pa.string()),
        ("version", pa.string()),
        ("frame_index", pa.int64()),
        ("content_hash", pa.string()),
        ("model", pa.string()),
        ("embedding", pa.binary()),
    ]
)

THUMBNAILS = pa.schema(
    [
        ("sample_id", pa.string()),
        ("thumbnail", pa.binary()),  # JPEG, 128 px on the longer side (coresift.thumbnails)
    ]
)

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("sequence", pa.int64()),
        ("tag", pa.string()),
        ("started_at", pa.string()),
        ("summary_json", pa.string()),
    ]
)


def conform(table: pa.Table, target: pa.Schema) -> pa.Table:
    """The table as target: its columns in target's order and types, nulls where it has none."""
    rows = len(table)
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(rows, f.type)
        for f in target
    ]
    return pa.table(columns, names=target.names).cast(target)


def with_run_id(table: pa.Table, run_id: str) -> pa.Table:
    """The table with a run_id column appended (how rows are tied to their commit)."""
    return table.append_column("run_id", pa.array([run_id] * len(table), pa.string()))


def compact(table: pa.Table) -> pa.Table:
    """The table with its embedding column in float16: half the memory, and distances that
    differ from float32's by about 1e-3 relative (what selection works on)."""
    at = table.schema.get_field_index("embedding")
    embeddings = table.column(at).cast(COMPACT_EMBEDDING)
    return table.set_column(at, pa.field("embedding", COMPACT_EMBEDDING), embeddings)


def compact_tables(parts: Iterable[pa.Table], rows: int) -> pa.Table:
    """Samples tables with `rows` rows in all as one table with compact embeddings in a
    single buffer, filled part by part: the most it holds is that buffer and one part
    (compacting the parts and then concatenating them would hold the embeddings twice).
    Rows without an embedding hold zeros in the buffer, hidden by a null."""
    vectors: NDArray[np.float16] | None = None
    others: list[pa.Table] = []
    missing: list[NDArray[np.bool_]] = []
    at = 0
    for part in parts:
        column = part.column("embedding")
        present = column.is_valid().to_numpy(zero_copy_only=False)
        values = np.asarray(pc.list_flatten(column), np.float16)
        if vectors is None and len(values):
            vectors = np.zeros((rows, len(values) // int(present.sum())), np.float16)
        if len(values):
            assert vectors is not None
            vectors[at : at + len(part)][present] = values.reshape(-1, vectors.shape[1])
        others.append(part.drop_columns(["embedding"]))
        missing.append(~present)
        at += len(part)
    if at != rows:
        raise ValueError(f"compact_tables: the parts have {at} rows, not {rows}")
    if vectors is None:
        vectors = np.zeros((rows, 0), np.float16)
    table = (
        pa.concat_tables(others) if others else SAMPLES.empty_table().drop_columns(["embedding"])
    )
    width = vectors.shape[1]
    embeddings = pa.LargeListArray.from_arrays(
        pa.array(np.arange(rows + 1, dtype=np.int64) * width),
        pa.array(vectors.reshape(-1)),  # no copy
        mask=pa.array(np.concatenate(missing) if missing else np.zeros(0, np.bool_)),
    )
    return table.append_column(pa.field("embedding", COMPACT_EMBEDDING), embeddings)


def pack_compact(table: pa.Table) -> pa.Table:
    """The table with its compact embeddings stored as bytes (how the picks table keeps them)."""
    column = table.column("embedding").combine_chunks()
    offsets = np.asarray(column.offsets)
    values = column.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    data = np.asarray(values, np.float16).astype("<f2").tobytes()  # null rows' spans too
    packed = pa.Array.from_buffers(
        pa.binary(),
        len(column),
        [None, pa.py_buffer(((offsets - offsets[0]) * 2).astype(np.int32)), pa.py_buffer(data)],
    )
    packed = pc.if_else(column.is_null(), pa.scalar(None, pa.binary()), packed)
    return table.set_column(table.schema.get_field_index("embedding"), "embedding", packed)


def unpack_compact(table: pa.Table) -> pa.Table:
    """The inverse of `pack_compact`: embeddings as float16 lists again."""
    column = table.column("embedding").combine_chunks()
    offsets = np.frombuffer(column.buffers()[1] or b"\0\0\0\0", np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(column.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
    values = pa.array(data.view("<f2").astype(np.float16))
    lists = pa.LargeListArray.from_arrays(
        pa.array((offsets - offsets[0]) // 2, pa.int64()), values, mask=column.is_null()
    )
    at = table.schema.get_field_index("embedding")
    return table.set_column(at, pa.field("embedding", COMPACT_EMBEDDING), lists)
