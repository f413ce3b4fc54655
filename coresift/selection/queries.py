"""Similarity queries: the samples a `similarity` strategy measures closeness to.

A query is the name of a tag of the datapool, or the URL or path (with a '/': ./examples.txt)
of a text file listing example objects, one per line: a path relative to the source or a
full URL, with `#frame=N` for one frame of a video (as `coresift export` writes them); a
video without a frame stands for all its frames. Examples are looked up among this run's
samples and the datapool's current ones.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from coresift.datapool import Datapool
from coresift.errors import ConfigError, DatapoolError
from coresift.selection.greedy import Vectors
from coresift.selection.picks import embedding_matrix
from coresift.storage import full_url, open_url


def is_tag_query(query: str) -> bool:
    """A tag name has no '/', which every URL or path of a file has (write ./examples.txt
    for a file in the working folder)."""
    return "/" not in query


def read_query_file(
    url: str, source_url: str, options: dict[str, Any]
) -> list[tuple[str, int | None]]:
    """The (object URL, frame or None) pairs a query file lists."""
    fs, path = open_url(url, options)
    try:
        text = fs.cat_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"similarity query {url} cannot be read: {error}") from None
    source_fs, root = open_url(source_url, options)
    scheme = source_url.split("://", 1)[0] if "://" in source_url else None
    prefix = full_url(source_fs, root.rstrip("/"), scheme)
    examples = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        locator, _, frame = line.partition("#frame=")
        uri = locator if "://" in locator or locator.startswith("/") else f"{prefix}/{locator}"
        examples.append((uri, int(frame) if frame else None))
    if not examples:
        raise ConfigError(f"similarity query {url} lists no objects")
    return examples


def check_query(query: str, datapool: Datapool, source_url: str, options: dict[str, Any]) -> None:
    """Fail before any work if a query names no tag of the datapool or no readable file."""
    if is_tag_query(query):
        try:
            datapool.tag_samples(query)
        except DatapoolError:
            raise ConfigError(
                f"similarity query {query!r} is not a tag of datapool {datapool.url} (nor a file)"
            ) from None
    else:
        read_query_file(query, source_url, options)


def query_embeddings(
    query: str,
    datapool: Datapool,
    run_samples: pa.Table,
    source_url: str,
    options: dict[str, Any],
    model: str,
) -> Vectors:
    """The embeddings (by `model`) of a query's samples.

    Raises:
        ConfigError: the query matches no sample embedded by this model.
    """
    columns = ["sample_id", "uri", "frame_index", "model", "embedding"]
    if is_tag_query(query):
        wanted = set(datapool.tag_samples(query).column("sample_id").to_pylist())
        found = datapool.samples(columns, sample_ids=wanted)
        found = pa.concat_tables(
            [
                found,
                run_samples.select(columns).filter(
                    pc.field("sample_id").isin(pa.array(sorted(wanted), pa.string()))
                ),
            ]
        )
    else:
        examples = read_query_file(query, source_url, options)
        known = pa.concat_tables([datapool.samples(columns), run_samples.select(columns)])
        keep = _matches(known, examples)
        found = known.filter(pa.array(keep, pa.bool_()))
    found = found.filter(pc.field("model") == model).filter(pc.field("embedding").is_valid())
    if len(found) == 0:
        raise ConfigError(f"similarity query {query!r} matches no sample embedded by {model}")
    return embedding_matrix(found)


def _matches(table: pa.Table, examples: list[tuple[str, int | None]]) -> list[bool]:
    whole = {uri for uri, frame in examples if frame is None}
    frames = {(uri, frame) for uri, frame in examples if frame is not None}
    return [
        uri in whole or (uri, frame) in frames
        for uri, frame in zip(
            table.column("uri").to_pylist(), table.column("frame_index").to_pylist(), strict=True
        )
    ]
