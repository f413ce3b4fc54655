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

from coresift import schema
from coresift.config import ProcessingConfig
from coresift.device import CPU
from coresift.embedding import Embedder
from coresift.errors import ACCESS_DENIED, VANISHED, EmptyFileError, MediaError, Reason
from coresift.images import WORKING_SIZE, decode_image
from coresift.listing import ObjectRef
from coresift.metadata import image_metrics
from coresift.pipeline import OrderedProducer
from coresift.storage import BlockReader, open_url, retried
from coresift.thumbnails import make_thumbnail
from coresift.video import VideoOutcome, decode_frames


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


@dataclass
class Sample:
    """One image or frame after decoding: its row (no embedding yet), its model input and
    its thumbnail."""

    row: dict[str, Any]
    model_input: NDArray[np.float32] | None = None
    thumbnail: bytes | None = None


@dataclass
class ObjectDone:
    """Closes an object's samples: its objects-table row and the bytes fetched for it."""

    row: dict[str, Any]
    bytes_read: int


@dataclass
class ShardResult:
    """The samples, object rows and thumbnails of a shard, and how many bytes were fetched."""

    samples: pa.Table
    objects: pa.Table
    thumbnails: pa.Table
    bytes_read: int


def _object_reason(reason: Reason | None) -> dict[str, str | None]:
    """A reason as the objects table's columns."""
    return {"reason": reason.message, "reason_code": reason.code} if reason else {}


def _corrupt(reason: Reason) -> dict[str, str]:
    """A reason as the samples table's columns."""
    return {"corrupt_reason": reason.message, "corrupt_code": reason.code}


class _Decoder:
    """Turns one object into its samples and closing record, never raising for bad media."""

    def __init__(self, embedder: Embedder, options: dict[str, Any], processing: ProcessingConfig):
        self.embedder = embedder
        self.options = options
        self.processing = processing

    def __call__(self, ref: ObjectRef) -> Iterator[Sample | ObjectDone]:
        done = {"uri": ref.uri, "version": ref.version, "size": ref.size, "media": ref.kind}
        fs, path = open_url(ref.uri, self.options)
        try:  # the first fetch: where a vanished or forbidden object shows itself
            source = (
                BlockReader(fs, path, ref.size)
                if ref.kind == "video"
                else retried(lambda: bytes(fs.cat_file(path)), f"reading {ref.uri}")
            )
        except FileNotFoundError:
            yield ObjectDone({**done, "status": "gone"} | _object_reason(VANISHED), 0)
            return
        except PermissionError:
            yield from self._unreadable(self._sample_row(ref, None), done, ACCESS_DENIED)
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

    def _measured(
        self, row: dict[str, Any], picture: Image.Image, width: int, height: int, channels: int
    ) -> Sample:
        """Metrics, model input and thumbnail of a working picture (of an original of width
        x height with `channels` bands)."""
        row["channels"] = channels
        row.update(image_metrics(picture, width, height))
        preprocess = self.embedder.preprocess
        fitted = preprocess.fit(picture)  # the thumbnail comes from the model's own picture
        thumbnail = make_thumbnail(fitted) if self.processing.thumbnails else None
        return Sample(row, preprocess.to_input(fitted), thumbnail)

    def _image(
        self, ref: ObjectRef, data: bytes, done: dict[str, Any]
    ) -> Iterator[Sample | ObjectDone]:
        row = self._sample_row(ref, None)
        row["content_hash"] = hashlib.sha256(data).hexdigest()
        row["size_bytes"] = len(data)
        try:
            image = decode_image(data, ref.uri, self.processing.max_image_pixels)
        except MediaError as error:
            yield from self._unreadable(row, done, error.reason, len(data))
            return
        yield self._measured(row, image.picture, image.width, image.height, image.channels)
        yield ObjectDone({**done, "status": "ok"}, len(data))

    def _unreadable(
        self, row: dict[str, Any], done: dict[str, Any], reason: Reason, bytes_read: int = 0
    ) -> Iterator[Sample | ObjectDone]:
        yield Sample(row | _corrupt(reason))
        yield ObjectDone({**done, "status": "corrupt"} | _object_reason(reason), bytes_read)

    def _video(
        self, ref: ObjectRef, reader: BlockReader, done: dict[str, Any]
    ) -> Iterator[Sample | ObjectDone]:
        outcome = VideoOutcome()
        with reader:
            try:
                if ref.size == 0:
                    raise EmptyFileError("empty file (0 bytes)")
                for frame in decode_frames(
                    cast(IO[bytes], reader),
                    self.processing.frames,
                    self.processing.video_limits,
                    outcome,
                    size=WORKING_SIZE,
                ):
                    row = self._sample_row(ref, frame.index)
                    row["pts"] = frame.pts
                    row["timestamp_s"] = frame.timestamp_s
                    row["content_hash"] = hashlib.blake2b(
                        frame.image.tobytes(), digest_size=16
                    ).hexdigest()
                    info = outcome.info
                    assert info is not None, "the container is read before any frame"
                    yield self._measured(row, frame.image, info.width, info.height, 3)
            except MediaError as error:
                yield from self._unreadable(
                    self._sample_row(ref, None), done, error.reason, reader.fetched
                )
                return
        info = outcome.info
        yield ObjectDone(
            {
                **done,
                "status": "ok",
                "frame_count": info.frame_count if info else None,
                "duration_s": info.duration_s if info else None,
            }
            | _object_reason(outcome.stopped),
            reader.fetched,
        )


def process_objects(
    refs: Sequence[ObjectRef],
    embedder: Embedder,
    *,
    processing: ProcessingConfig | None = None,
    options: dict[str, Any] | None = None,
    cores: int | None = None,
) -> ShardResult:
    """Read, check, measure and embed objects; corrupt ones become rows with a reason.

    Args:
        processing: limits, frame sampling, decode threads and batch size (defaults if None).
        options: fsspec storage options of the objects' store.
        cores: the cores this call may use (default: all of the machine's); the decode
            threads and batch size follow them and the embedder's device unless set.

    Raises only for failures worth a retry (network, throttling): an unreadable or undecodable
    object is a recorded reason, never an exception.
    """
    if any(ref.kind == "unsupported" for ref in refs):
        raise ValueError("process_objects takes images and videos (plan_run sets the rest aside)")
    processing = processing or ProcessingConfig()
    gpu = embedder.device != CPU
    _, decode_workers = processing.threads_for(cores or os.cpu_count() or 1, gpu)
    batch_size = processing.batch_for(gpu)
    decoder = _Decoder(embedder, options or {}, processing)
    samples: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    thumbnails: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], NDArray[np.float32]]] = []
    bytes_read = 0

    def flush() -> None:
        if pending:
            vectors = embedder.embed(np.stack([model_input for _, model_input in pending]))
            for (row, _), vector in zip(pending, vectors, strict=True):
                row["embedding"] = vector
            pending.clear()

    producer: OrderedProducer[ObjectRef, Sample | ObjectDone] = OrderedProducer(
        refs,
        decoder,
        workers=decode_workers,
        lookahead=2 * batch_size,
        queue_size=batch_size,
    )
    for item in producer:
        if isinstance(item, ObjectDone):
            objects.append(item.row)
            bytes_read += item.bytes_read
            continue
        samples.append(item.row)
        if item.thumbnail is not None:
            thumbnails.append({"sample_id": item.row["sample_id"], "thumbnail": item.thumbnail})
        if item.model_input is not None:
            pending.append((item.row, item.model_input))
            if len(pending) >= batch_size:
                flush()
    flush()
    return ShardResult(
        pa.Table.from_pylist(samples, schema=schema.SAMPLES),
        pa.Table.from_pylist(objects, schema=schema.OBJECTS),
        pa.Table.from_pylist(thumbnails, schema=schema.THUMBNAILS),
        bytes_read,
    )
