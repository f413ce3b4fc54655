"""Dumping a tag: the selected images and video frames as files, plus a Parquet sidecar.

Images are copied (server-side when source and output share a store). Frames are decoded by
seeking each video to the keyframe before the frame (`video.read_frames`), so only the byte
ranges needed are read where the container supports seeking; they are written as PNG
(lossless) or JPEG.
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from typing import Any, Literal

import av
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from coresift.datapool import Datapool
from coresift.errors import SourceError
from coresift.storage import open_url
from coresift.video import read_frames

ImageFormat = Literal["png", "jpeg"]

SIDECAR = pa.schema(
    [
        ("file", pa.string()),
        ("source_uri", pa.string()),
        ("frame_index", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("rank", pa.int64()),
    ]
)


def frame_file_name(uri: str, frame_index: int, image_format: ImageFormat) -> str:
    """'<video stem>_frame<index>.<ext>', e.g. bikes_frame000125.png."""
    stem = os.path.splitext(os.path.basename(uri))[0]
    return f"{stem}_frame{frame_index:06d}.{'jpg' if image_format == 'jpeg' else 'png'}"


def _save(image: Image.Image, image_format: ImageFormat) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=image_format.upper(), quality=95)
    return buffer.getvalue()


def dump_tag(
    datapool: Datapool,
    tag: str,
    output: str,
    image_format: ImageFormat = "png",
    source_options: dict[str, Any] | None = None,
    output_options: dict[str, Any] | None = None,
) -> pa.Table:
    """Write a tag's picks under output and return the sidecar (also written as frames.parquet)."""
    picks = datapool.tag_samples(tag)
    out_fs, out_root = open_url(output, output_options)
    out_fs.makedirs(out_root, exist_ok=True)
    rows: list[dict[str, Any]] = []
    frames_by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pick in picks.to_pylist():
        if pick["frame_index"] is None:
            name = os.path.basename(pick["uri"])
            src_fs, src_path = open_url(pick["uri"], source_options)
            target = f"{out_root}/{name}"
            if type(src_fs) is type(out_fs) and src_fs.storage_options == out_fs.storage_options:
                src_fs.copy(src_path, target)  # server-side copy where the store has one
            else:
                out_fs.pipe_file(target, src_fs.cat_file(src_path))
            rows.append({"file": name, "source_uri": pick["uri"], "rank": pick["rank"]})
        else:
            frames_by_video[pick["uri"]].append(pick)
    for uri, picked in frames_by_video.items():
        src_fs, src_path = open_url(uri, source_options)
        try:
            images, _ = read_frames(
                src_fs, src_path, [(p["frame_index"], p["pts"]) for p in picked]
            )
        except (av.FFmpegError, OSError) as error:
            raise SourceError(f"cannot read frames of {uri}: {error}") from None
        for pick in picked:
            image = images.get(pick["frame_index"])
            if image is None:
                raise SourceError(f"frame {pick['frame_index']} of {uri} could not be decoded")
            name = frame_file_name(uri, pick["frame_index"], image_format)
            out_fs.pipe_file(f"{out_root}/{name}", _save(image, image_format))
            rows.append(
                {
                    "file": name,
                    "source_uri": uri,
                    "frame_index": pick["frame_index"],
                    "timestamp_s": pick["timestamp_s"],
                    "rank": pick["rank"],
                }
            )
    sidecar = pa.Table.from_pylist(sorted(rows, key=lambda r: r["rank"]), schema=SIDECAR)
    with out_fs.open(f"{out_root}/frames.parquet", "wb") as handle:
        pq.write_table(sidecar, handle)
    return sidecar
