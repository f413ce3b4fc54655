"""A FiftyOne dataset of the picks (or of the whole datapool), written through FiftyOne's own
API into the database it is configured for (`FIFTYONE_DATABASE_URI`), with our embeddings,
metadata and tags, so that its App and Brain work on them without embedding anything again.

Images go into the dataset NAME. Video frames have a frame notion in FiftyOne: they go into
NAME-videos, one video sample per video with the picked frames as frame records (FiftyOne
counts frames from 1, so frame index N is frame N + 1).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from typing import Any

from coresift.errors import ConfigError
from coresift.export.records import ExportRecord
from coresift.media import IMAGE_FORMATS, VIDEO_EXTENSIONS, kind_of

# Fields FiftyOne defines itself (custom values of these names get a custom_ prefix).
_RESERVED = {"id", "filepath", "tags", "metadata", "media_type", "frames", "frame_number"}
_MARKER = "coresift"  # the key in dataset.info that marks a dataset this command made


def to_fiftyone(records: Sequence[ExportRecord], name: str, description: str) -> list[str]:
    """Write the records as FiftyOne datasets and return their names.

    Raises:
        ConfigError: naming --output, when a dataset of that name exists that coresift did
            not make (a coresift export of the same name is replaced).
    """
    try:
        import fiftyone as fo
    except ImportError:
        raise ConfigError(
            "--format fiftyone needs the fiftyone extra: pip install 'coresift[fiftyone]'"
        ) from None
    _register_media_types()
    images: list[ExportRecord] = []
    videos: list[ExportRecord] = []
    for record in records:
        is_video = record.frame_index is not None or kind_of(record.uri) == "video"
        (videos if is_video else images).append(record)
    written = []
    if images or not videos:
        dataset = _fresh_dataset(fo, name, description)
        dataset.add_samples([_image_sample(fo, r) for r in images], progress=False)
        written.append(name)
    if videos:
        dataset = _fresh_dataset(fo, f"{name}-videos", description)
        dataset.add_samples(_video_samples(fo, videos), progress=False)
        written.append(dataset.name)
    return written


def _register_media_types() -> None:
    """FiftyOne tells images from videos by MIME type; some containers we read (.ts, .mts,
    .y4m, ...) have none in Python's table."""
    for extension in IMAGE_FORMATS:
        if mimetypes.guess_type(f"x{extension}")[0] is None:
            mimetypes.add_type(f"image/x-{extension[1:]}", extension)
    for extension in VIDEO_EXTENSIONS:
        if not (mimetypes.guess_type(f"x{extension}")[0] or "").startswith("video/"):
            mimetypes.add_type(f"video/x-{extension[1:]}", extension)


def _fresh_dataset(fo: Any, name: str, description: str) -> Any:
    if fo.dataset_exists(name):
        if _MARKER not in (fo.load_dataset(name).info or {}):
            raise ConfigError(f"--output: FiftyOne dataset {name!r} exists and is not ours")
        fo.delete_dataset(name)
    dataset = fo.Dataset(name, persistent=True)
    dataset.info = {_MARKER: description}
    dataset.save()
    return dataset


def _image_sample(fo: Any, record: ExportRecord) -> Any:
    metadata = record.metadata
    image = None
    if metadata["width"] is not None:
        image = fo.ImageMetadata(
            width=metadata["width"],
            height=metadata["height"],
            num_channels=metadata["channels"],
            size_bytes=metadata["size_bytes"],
        )
    return fo.Sample(filepath=record.uri, tags=record.tags, metadata=image, **_fields(record))


def _video_samples(fo: Any, records: Sequence[ExportRecord]) -> list[Any]:
    """One sample per video; its frames as frame records, a whole-video record (a video that
    could not be decoded) as the sample's own fields."""
    videos: dict[str, Any] = {}
    for record in records:
        video = videos.get(record.uri)
        if video is None:
            video = videos[record.uri] = fo.Sample(filepath=record.uri, tags=[])
        video.tags = sorted({*video.tags, *record.tags})
        if record.frame_index is None:
            for key, value in _fields(record).items():
                video[key] = value
            continue
        video.frames[record.frame_index + 1] = fo.Frame(
            timestamp_s=record.timestamp_s, coresift_tags=record.tags, **_fields(record)
        )
    return list(videos.values())


def _fields(record: ExportRecord) -> dict[str, Any]:
    """The record's own fields: where it is, why it was picked, its measures, then the
    user's values (a name FiftyOne or coresift already uses gets a custom_ prefix)."""
    fields = {
        "source": record.locator,
        "coresift_id": record.sample_id,
        "rank": record.rank,
        "distance": record.distance,
        "corrupt_reason": record.corrupt_reason,
        "embedding": record.embedding,
        **{k: v for k, v in record.metadata.items() if k not in ("channels", "size_bytes")},
    }
    for key, value in record.custom.items():
        name = re.sub(r"\W", "_", key)
        if name in fields or name in _RESERVED or name.startswith("_"):
            name = f"custom_{name}"
        fields[name] = value
    return fields
