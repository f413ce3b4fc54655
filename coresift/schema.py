"""Arrow schemas of the datapool tables and of processing shards (one definition for both).

Rows of objects, samples and tags get a run_id column appended when their run commits.
"""

from __future__ import annotations

import pyarrow as pa

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


def with_run_id(table: pa.Table, run_id: str) -> pa.Table:
    """The table with a run_id column appended (how rows are tied to their commit)."""
    return table.append_column("run_id", pa.array([run_id] * len(table), pa.string()))
