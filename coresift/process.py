"""Processing a shard of objects in a single pass over their bytes.

Each object is fetched once. An image's one buffer is hashed, fully decoded (the corruptness
check), measured and embedded; a video is streamed through the decoder once, and each sampled
frame is measured and embedded. Reads and decodes run in worker threads ahead of inference
(see `pipeline`), in a fixed order, so batches and results are the same on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from coresift import schema
from coresift.embedding import Embedder
from coresift.errors import MediaError
from coresift.images import channels_of, decode_image
from coresift.listing import ObjectRef
from coresift.metadata import image_metrics
from coresift.pipeline import OrderedProducer
from coresift.storage import BlockReader, open_url
from coresift.video import (
    VIDEO_EXTENSIONS,
    FrameSampling,
    VideoError,
    VideoLimits,
    VideoOutcome,
    decode_frames,
)


class ProcessingSettings(BaseModel):
    """What decides the samples that processing produces (part of shard cache keys)."""

    model_config = ConfigDict(frozen=True)

    max_image_pixels: int = 178_956_970
    frames: FrameSampling = Field(default_factory=FrameSampling)
    video_limits: VideoLimits = Field(default_factory=VideoLimits)


VANISHED = "deleted between listing and reading"


def sample_id(uri: str, version: str, frame_index: int | None) -> str:
    """Stable id of a sample: the same object version and frame always get the same id."""
    key = f"{uri}\n{version}\n{'' if frame_index is None else frame_index}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def shard_key(
    refs: Sequence[ObjectRef],
    model_identity: str,
    settings: dict[str, Any],
    datapool: str,
    work_key: str,
) -> str:
    """Cache key of a shard: its objects' identities, the model, the processing settings, the
    datapool, and the plan's work key (a commit or a cleared work area retires old keys)."""
    payload = json.dumps(
        [[r.uri, r.version, r.size] for r in refs] + [model_identity, settings, datapool, work_key],
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def is_video(uri: str) -> bool:
    return os.path.splitext(uri.split("?")[0])[1].lower() in VIDEO_EXTENSIONS


@dataclass
class Sample:
    """One image or frame after decoding: its row (no embedding yet) and its model input."""

    row: dict[str, Any]
    model_input: NDArray[np.float32] | None = None


@dataclass
class ObjectDone:
    """Closes an object's samples: its objects-table row and the bytes fetched for it."""

    row: dict[str, Any]
    bytes_read: int


@dataclass
class ShardResult:
    """The samples and object rows of a shard, and how many bytes were fetched."""

    samples: pa.Table
    objects: pa.Table
    bytes_read: int


def _object_row(ref: ObjectRef, media: str) -> dict[str, Any]:
    return {"uri": ref.uri, "version": ref.version, "size": ref.size, "media": media}


class _Decoder:
    """Turns one object into its samples and closing record, never raising for bad media."""

    def __init__(self, embedder: Embedder, options: dict[str, Any], settings: ProcessingSettings):
        self.embedder = embedder
        self.options = options
        self.settings = settings

    def __call__(self, ref: ObjectRef) -> Iterator[Sample | ObjectDone]:
        fs, path = open_url(ref.uri, self.options)
        video = is_video(ref.uri)
        done = _object_row(ref, "video" if video else "image")
        try:  # the first fetch: where a vanished or forbidden object shows itself
            source = BlockReader(fs, path, ref.size) if video else fs.cat_file(path)
        except FileNotFoundError:
            yield ObjectDone({**done, "status": "gone", "reason": VANISHED}, 0)
            return
        except PermissionError:
            row = self._sample_row(ref, None)
            yield from self._unreadable(row, done, "access denied reading the object")
            return
        if isinstance(source, BlockReader):
            yield from self._video(ref, source, done)
        else:
            yield from self._image(ref, bytes(source), done)

    def _sample_row(self, ref: ObjectRef, frame_index: int | None) -> dict[str, Any]:
        return {
            "sample_id": sample_id(ref.uri, ref.version, frame_index),
            "uri": ref.uri,
            "version": ref.version,
            "frame_index": frame_index,
            "model": self.embedder.identity,
        }

    def _measured(self, row: dict[str, Any], image: Image.Image) -> Sample:
        row["channels"] = channels_of(image)
        row.update(image_metrics(image))
        return Sample(row, self.embedder.preprocess(image))

    def _image(
        self, ref: ObjectRef, data: bytes, done: dict[str, Any]
    ) -> Iterator[Sample | ObjectDone]:
        row = self._sample_row(ref, None)
        row["content_hash"] = hashlib.sha256(data).hexdigest()
        row["size_bytes"] = len(data)
        try:
            image = decode_image(data, ref.uri, self.settings.max_image_pixels)
        except MediaError as error:
            yield from self._unreadable(row, done, str(error), len(data))
            return
        yield self._measured(row, image)
        yield ObjectDone({**done, "status": "ok"}, len(data))

    def _unreadable(
        self, row: dict[str, Any], done: dict[str, Any], reason: str, bytes_read: int = 0
    ) -> Iterator[Sample | ObjectDone]:
        row["corrupt_reason"] = reason
        yield Sample(row)
        yield ObjectDone({**done, "status": "corrupt", "reason": reason}, bytes_read)

    def _video(
        self, ref: ObjectRef, reader: BlockReader, done: dict[str, Any]
    ) -> Iterator[Sample | ObjectDone]:
        outcome = VideoOutcome()
        with reader:
            try:
                if ref.size == 0:
                    raise VideoError("empty file (0 bytes)")
                for frame in decode_frames(
                    cast(IO[bytes], reader),
                    self.settings.frames,
                    self.settings.video_limits,
                    outcome,
                ):
                    row = self._sample_row(ref, frame.index)
                    row["pts"] = frame.pts
                    row["timestamp_s"] = frame.timestamp_s
                    row["content_hash"] = hashlib.blake2b(
                        frame.image.tobytes(), digest_size=16
                    ).hexdigest()
                    yield self._measured(row, frame.image)
            except VideoError as error:
                yield from self._unreadable(
                    self._sample_row(ref, None), done, str(error), reader.fetched
                )
                return
        info = outcome.info
        yield ObjectDone(
            {
                **done,
                "status": "ok",
                "reason": outcome.stopped,
                "frame_count": info.frame_count if info else None,
                "duration_s": info.duration_s if info else None,
            },
            reader.fetched,
        )


def process_objects(
    refs: Sequence[ObjectRef],
    embedder: Embedder,
    *,
    options: dict[str, Any] | None = None,
    settings: ProcessingSettings | None = None,
    workers: int = 2,
    batch_size: int = 16,
) -> ShardResult:
    """Read, check, measure and embed objects; corrupt ones become rows with a reason.

    Raises only for failures worth a retry (network, throttling): an unreadable or undecodable
    object is a recorded reason, never an exception.
    """
    decoder = _Decoder(embedder, options or {}, settings or ProcessingSettings())
    samples: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], NDArray[np.float32]]] = []
    bytes_read = 0

    def flush() -> None:
        if pending:
            vectors = embedder.embed(np.stack([model_input for _, model_input in pending]))
            for (row, _), vector in zip(pending, vectors, strict=True):
                row["embedding"] = vector
            pending.clear()

    producer: OrderedProducer[ObjectRef, Sample | ObjectDone] = OrderedProducer(
        refs, decoder, workers=workers, lookahead=2 * batch_size, queue_size=batch_size
    )
    for item in producer:
        if isinstance(item, ObjectDone):
            objects.append(item.row)
            bytes_read += item.bytes_read
            continue
        samples.append(item.row)
        if item.model_input is not None:
            pending.append((item.row, item.model_input))
            if len(pending) >= batch_size:
                flush()
    flush()
    return ShardResult(
        pa.Table.from_pylist(samples, schema=schema.SAMPLES),
        pa.Table.from_pylist(objects, schema=schema.OBJECTS),
        bytes_read,
    )
