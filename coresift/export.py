"""Exporting a tag: the selected URIs as text, or a Parquet file with their metadata."""

from __future__ import annotations

import pyarrow.parquet as pq

from coresift.datapool import Datapool
from coresift.errors import ConfigError
from coresift.storage import open_url


def sample_locator(uri: str, frame_index: int | None) -> str:
    """How a sample is named in exports: the object URI, plus '#frame=N' for video frames."""
    return uri if frame_index is None else f"{uri}#frame={frame_index}"


def export_tag(datapool: Datapool, tag: str, fmt: str, output: str | None) -> str | None:
    """Write the tag's picks to output, or return them as text (one per line) when no output.

    Args:
        fmt: 'txt' (one locator per line) or 'parquet' (one row per pick with metadata).
    """
    picks = datapool.tag_samples(tag)
    if fmt == "parquet":
        if output is None:
            raise ConfigError("output: --format parquet needs --output FILE")
        fs, path = open_url(output)
        with fs.open(path, "wb") as handle:
            pq.write_table(picks, handle)
        return None
    text = "".join(
        sample_locator(uri, frame) + "\n"
        for uri, frame in zip(
            picks.column("uri").to_pylist(), picks.column("frame_index").to_pylist(), strict=True
        )
    )
    if output is None:
        return text
    fs, path = open_url(output)
    fs.pipe_file(path, text.encode())
    return None
