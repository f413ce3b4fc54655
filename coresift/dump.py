"""Dumping a tag: the selected images and video frames as files, plus a Parquet sidecar.

The output mirrors the picks' paths relative to their source (frames go under
`<relative path of the video>/frame_<index>.<ext>`), so equal names in different folders
never meet. Every key is made safe first: it can never leave the output root, whatever it
holds (`..`, absolute paths, control characters), and a file is never overwritten by
different bytes: an equal file is kept, a different one gets a `~N` suffix. Files are written
atomically (a temporary name, then a rename; object stores put whole objects anyway).

Frames are decoded by seeking each video to the keyframe before the frame
(`video.read_frames`), so only the byte ranges needed are read where the container supports
seeking; they are written as PNG (lossless) or JPEG.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import secrets
from collections import defaultdict
from typing import Any, Literal

import av
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from PIL import Image

from coresift.datapool import Datapool
from coresift.errors import SourceError
from coresift.storage import is_local_fs, open_url
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
_MAX_SEGMENT_BYTES = 200


def safe_relative_path(key: str) -> str:
    """A relative path that stays inside any root, made from any object key.

    Empty, '.' and '..' segments are dropped, control characters and backslashes become
    '_', and overlong segments are shortened with a hash of what was cut.
    """
    parts = []
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            continue
        segment = "".join("_" if ord(c) < 32 or c in "\\\x7f" else c for c in segment)
        if len(segment.encode()) > _MAX_SEGMENT_BYTES:
            digest = hashlib.sha256(segment.encode()).hexdigest()[:12]
            stem, ext = os.path.splitext(segment)
            cut = stem.encode()[: _MAX_SEGMENT_BYTES - len(ext.encode()) - 13]
            segment = f"{cut.decode(errors='ignore')}~{digest}{ext}"
        parts.append(segment)
    return "/".join(parts) or "_"


def frame_file_name(relative: str, frame_index: int, image_format: ImageFormat) -> str:
    """'<relative path of the video>/frame_<index>.<ext>', e.g. clips/bikes.mp4/frame_000125.png."""
    return f"{relative}/frame_{frame_index:06d}.{'jpg' if image_format == 'jpeg' else 'png'}"


def _common_root(uris: list[str], source: str | None) -> str:
    """The folder that the relative paths start from: the run's source when it holds every
    pick, else the deepest folder that does."""
    if source and all(uri.startswith(source.rstrip("/") + "/") for uri in uris):
        return source.rstrip("/")
    common: list[str] = []
    for segments in zip(*(uri.split("/")[:-1] for uri in uris), strict=False):
        if len(set(segments)) > 1:
            break
        common.append(segments[0])
    return "/".join(common)


class _Writer:
    """Writes files under one root: atomically, never over different bytes."""

    def __init__(self, fs: AbstractFileSystem, root: str):
        self.fs, self.root = fs, root.rstrip("/")
        self.taken: set[str] = set()

    def write(self, relative: str, data: bytes) -> str:
        """Write data at relative (or a free variant of it); returns the name it got."""
        stem, ext = posixpath.splitext(relative)
        name, n = relative, 1
        while name in self.taken or (there := self._existing(name, data)) == "different":
            n += 1
            name = f"{stem}~{n}{ext}"
        self.taken.add(name)
        target = f"{self.root}/{name}"
        assert posixpath.normpath(target).startswith(self.root + "/"), target
        if there == "equal":
            return name  # the same bytes are there already
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        if is_local_fs(self.fs):
            temporary = f"{target}.{secrets.token_hex(4)}.partial"
            self.fs.pipe_file(temporary, data)
            os.replace(temporary, target)
        else:
            self.fs.pipe_file(target, data)
        return name

    def _existing(self, name: str, data: bytes) -> Literal["absent", "equal", "different"]:
        """What is at name already, compared with data (read only when the sizes agree)."""
        try:
            size = self.fs.size(f"{self.root}/{name}")
        except FileNotFoundError:
            return "absent"
        same = size == len(data) and self.fs.cat_file(f"{self.root}/{name}") == data
        return "equal" if same else "different"


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
    """Write a tag's picks under output and return the sidecar (also written as frames.parquet).

    The sidecar's `file` column holds each file's path relative to output, one row per file.
    """
    picks = datapool.tag_samples(tag)
    out_fs, out_root = open_url(output, output_options)
    out_fs.makedirs(out_root, exist_ok=True)
    writer = _Writer(out_fs, out_root)
    root = _common_root(picks.column("uri").to_pylist(), _tag_source(datapool, tag))

    def relative(uri: str) -> str:
        return safe_relative_path(uri[len(root) :] if root else uri.split("://", 1)[-1])

    rows: list[dict[str, Any]] = []
    frames_by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pick in picks.to_pylist():
        if pick["frame_index"] is None:
            src_fs, src_path = open_url(pick["uri"], source_options)
            name = writer.write(relative(pick["uri"]), src_fs.cat_file(src_path))
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
            name = frame_file_name(relative(uri), pick["frame_index"], image_format)
            rows.append(
                {
                    "file": writer.write(name, _save(image, image_format)),
                    "source_uri": uri,
                    "frame_index": pick["frame_index"],
                    "timestamp_s": pick["timestamp_s"],
                    "rank": pick["rank"],
                }
            )
    sidecar = pa.Table.from_pylist(sorted(rows, key=lambda r: r["rank"]), schema=SIDECAR)
    buffer = io.BytesIO()
    pq.write_table(sidecar, buffer)
    out_fs.pipe_file(f"{out_root.rstrip('/')}/frames.parquet", buffer.getvalue())
    return sidecar


def _tag_source(datapool: Datapool, tag: str) -> str | None:
    """The source of the run that made the tag, where the run recorded it."""
    made_by = datapool.tags().filter(pc.field("tag") == tag).column("run_id")
    summary = datapool.run_summary(made_by[0].as_py()) if len(made_by) else None
    source = (summary or {}).get("source")
    return str(source) if source else None
