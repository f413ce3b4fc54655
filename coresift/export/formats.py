"""The file formats of `coresift export`: each turns records into the bytes of one file.

txt, csv and parquet are for scripts; `labelstudio` is a Label Studio task list and `coco` an
images-only COCO file, both for labelling. Formats without a frame notion name a frame
`URI#frame=N`; COCO gets video and frame ids as well (as COCO-VID does).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from coresift.export.records import ExportRecord
from coresift.export.urls import label_studio_url

# The URL a record is opened by: its own scheme, or a presigned HTTPS URL.
UrlOf = Callable[[ExportRecord], str | None]


def to_txt(records: Sequence[ExportRecord], url_of: UrlOf) -> bytes:
    """One locator per line (or one URL, when they are presigned)."""
    return "".join(f"{_with_frame(url_of(r), r) or r.locator}\n" for r in records).encode()


def flat_rows(records: Sequence[ExportRecord], url_of: UrlOf) -> list[dict[str, Any]]:
    """One flat row per record: where it is, why it was picked, metadata, custom values."""
    custom_keys = sorted({key for r in records for key in r.custom})
    return [
        {
            "locator": r.locator,
            "uri": r.uri,
            "frame_index": r.frame_index,
            "timestamp_s": r.timestamp_s,
            "url": url_of(r),
            "rank": r.rank,
            "distance": r.distance,
            "tags": ";".join(r.tags),
            "corrupt_reason": r.corrupt_reason,
            **r.metadata,
            **{f"custom.{key}": r.custom.get(key) for key in custom_keys},
        }
        for r in records
    ]


def to_csv(records: Sequence[ExportRecord], url_of: UrlOf) -> bytes:
    rows = flat_rows(records, url_of)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["locator"])
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    return text.getvalue().encode()


def to_parquet(records: Sequence[ExportRecord], url_of: UrlOf) -> bytes:
    rows = flat_rows(records, url_of)
    for row, record in zip(rows, records, strict=True):
        row["tags"] = record.tags
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def to_label_studio(records: Sequence[ExportRecord], url_of: UrlOf) -> bytes:
    """Label Studio's import format: a list of tasks whose `data.image` the config's
    `<Image value="$image"/>` opens; everything else shows as Data Manager columns."""
    tasks = []
    for r in _labelable(records):
        data = {
            "image": _with_frame(url_of(r) or label_studio_url(r.uri), r),
            "source": r.locator,
            "frame_index": r.frame_index,
            "rank": r.rank,
            "distance": r.distance,
            "coresift_tags": r.tags,
            **r.metadata,
            "custom": r.custom,
        }
        tasks.append({"data": data, "meta": {"coresift_sample_id": r.sample_id}})
    return json.dumps(tasks, indent=1).encode()


def to_coco(records: Sequence[ExportRecord], url_of: UrlOf) -> bytes:
    """An images-only COCO file: `file_name` is the locator in the source, `coco_url` the
    presigned URL if any; metadata and custom values are the image's `attributes`."""
    videos: dict[str, int] = {}
    images = []
    for number, r in enumerate(_labelable(records), start=1):
        image: dict[str, Any] = {
            "id": number,
            "file_name": r.locator,
            "width": r.metadata["width"],
            "height": r.metadata["height"],
            "attributes": {
                **r.metadata,
                "rank": r.rank,
                "distance": r.distance,
                "tags": r.tags,
                **r.custom,
            },
        }
        if url_of(r):
            image["coco_url"] = url_of(r)
        if r.frame_index is not None:
            image["video_id"] = videos.setdefault(r.uri, len(videos) + 1)
            image["frame_id"] = r.frame_index
            image["timestamp_s"] = r.timestamp_s
        images.append(image)
    document = {
        "info": {
            "description": "exported by coresift",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": images,
        "annotations": [],
        "categories": [],
    }
    if videos:
        document["videos"] = [{"id": vid, "name": uri} for uri, vid in videos.items()]
    return json.dumps(document, indent=1).encode()


def _with_frame(url: str | None, record: ExportRecord) -> str | None:
    """A URL of a video, pointed at the record's frame where it is one."""
    if url is None or record.frame_index is None:
        return url
    return f"{url}#frame={record.frame_index}"


def _labelable(records: Sequence[ExportRecord]) -> list[ExportRecord]:
    """The records a labelling tool can open (corrupt samples appear only in --all)."""
    return [r for r in records if r.corrupt_reason is None]


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value
