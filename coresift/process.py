"""Processing a shard of objects in a single pass over their bytes.

Each object is fetched once; that one buffer is hashed, fully decoded (the corruptness check),
measured, and embedded. Reads and decodes run in a small thread pool ahead of inference, so
I/O and decoding hide behind the model; read-ahead is bounded, so memory stays flat however
many objects a shard holds.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from coresift import schema
from coresift.embedding import Embedder
from coresift.errors import MediaError
from coresift.images import channels_of, decode_image
from coresift.listing import ObjectRef
from coresift.metadata import image_metrics
from coresift.storage import open_url


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
class Decoded:
    """One object after read and decode: its sample row (without embedding) and model input."""

    row: dict[str, Any]
    bytes_read: int
    model_input: NDArray[np.float32] | None = None


@dataclass
class ShardResult:
    """The samples of a shard and how many bytes were fetched to produce them."""

    samples: pa.Table
    bytes_read: int
    corrupt: list[str] = field(default_factory=list)


def _read_and_decode(
    ref: ObjectRef, embedder: Embedder, options: dict[str, Any], max_pixels: int
) -> Decoded:
    row: dict[str, Any] = {
        "sample_id": sample_id(ref.uri, ref.version, None),
        "uri": ref.uri,
        "version": ref.version,
        "frame_index": None,
        "size_bytes": ref.size,
        "model": embedder.identity,
    }
    fs, path = open_url(ref.uri, options)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        row["corrupt_reason"] = "object vanished between listing and reading"
        return Decoded(row, 0)
    except PermissionError:
        row["corrupt_reason"] = "access denied reading the object"
        return Decoded(row, 0)
    row["content_hash"] = hashlib.sha256(data).hexdigest()
    row["size_bytes"] = len(data)
    try:
        image = decode_image(data, ref.uri, max_pixels)
    except MediaError as error:
        row["corrupt_reason"] = str(error)
        return Decoded(row, len(data))
    row["channels"] = channels_of(image)
    row.update(image_metrics(image))
    return Decoded(row, len(data), embedder.preprocess(image))


def _decoded_in_order(
    refs: Sequence[ObjectRef],
    embedder: Embedder,
    options: dict[str, Any],
    max_pixels: int,
    workers: int,
    read_ahead: int,
) -> Iterator[Decoded]:
    """Decode objects in a thread pool, yielding in input order, at most read_ahead in flight."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coresift-read") as pool:
        pending: deque[Future[Decoded]] = deque()
        for ref in refs:
            pending.append(pool.submit(_read_and_decode, ref, embedder, options, max_pixels))
            if len(pending) >= read_ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def process_objects(
    refs: Sequence[ObjectRef],
    embedder: Embedder,
    *,
    options: dict[str, Any] | None = None,
    max_pixels: int = 178_956_970,
    workers: int = 2,
    batch_size: int = 16,
    on_object: Callable[[Decoded], None] | None = None,
) -> ShardResult:
    """Read, check, measure and embed objects; corrupt ones become rows with a reason.

    Raises only for failures worth a retry (network, throttling): an unreadable or undecodable
    object is a recorded reason, never an exception.
    """
    rows: list[dict[str, Any]] = []
    batch_rows: list[dict[str, Any]] = []
    batch_inputs: list[NDArray[np.float32]] = []
    bytes_read = 0

    def flush() -> None:
        if batch_inputs:
            embeddings = embedder.embed(np.stack(batch_inputs))
            for batch_row, vector in zip(batch_rows, embeddings, strict=True):
                batch_row["embedding"] = vector
            batch_rows.clear()
            batch_inputs.clear()

    for decoded in _decoded_in_order(
        refs, embedder, options or {}, max_pixels, workers, read_ahead=max(2 * batch_size, workers)
    ):
        bytes_read += decoded.bytes_read
        rows.append(decoded.row)
        if decoded.model_input is not None:
            batch_rows.append(decoded.row)
            batch_inputs.append(decoded.model_input)
            if len(batch_inputs) >= batch_size:
                flush()
        if on_object is not None:
            on_object(decoded)
    flush()
    table = pa.Table.from_pylist(rows, schema=schema.SAMPLES)
    corrupt = [row["uri"] for row in rows if row.get("corrupt_reason")]
    return ShardResult(table, bytes_read, corrupt)
