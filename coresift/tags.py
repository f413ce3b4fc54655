"""Tags made by hand: a list of samples (say, a lasso selection downloaded from a report)
becomes a tag of the datapool, usable as a similarity query or an export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from coresift import schema
from coresift.config import check_tag_name
from coresift.datapool import Datapool, commit_run, new_run_id
from coresift.errors import ConfigError
from coresift.storage import open_url


def read_locators(url: str, options: dict[str, Any] | None = None) -> list[tuple[str, int | None]]:
    """The (URI, frame or None) pairs of a file with one sample per line ('URI#frame=N')."""
    fs, path = open_url(url, options)
    try:
        text = fs.cat_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--from: cannot read {url}: {error}") from None
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            uri, _, frame = line.partition("#frame=")
            pairs.append((uri, int(frame) if frame.isdigit() else None))
    return pairs


def create_tag(datapool: Datapool, name: str, locators: list[tuple[str, int | None]]) -> int:
    """Commit a tag of the current samples the locators name; returns how many it holds.

    Raises:
        ConfigError: a bad or taken name, or no locator names a current sample.
    """
    try:
        check_tag_name(name)
    except ValueError as error:
        raise ConfigError(f"--name: {error}") from None
    if any(t["tag"] == name for t in datapool.tag_summary()):
        raise ConfigError(f"--name: tag {name!r} exists already in datapool {datapool.url}")
    samples = datapool.samples(["sample_id", "uri", "frame_index"])
    by_locator = {
        (uri, frame): sample
        for sample, uri, frame in zip(
            samples["sample_id"].to_pylist(),
            samples["uri"].to_pylist(),
            samples["frame_index"].to_pylist(),
            strict=True,
        )
    }
    chosen = list(dict.fromkeys(by_locator[p] for p in locators if p in by_locator))
    if not chosen:
        raise ConfigError(f"--from: none of its {len(locators)} lines names a current sample")
    rows = [
        {"tag": name, "sample_id": sample, "rank": rank, "distance": None, "clip": None}
        for rank, sample in enumerate(chosen)
    ]
    run_id = new_run_id()
    record = {"kind": "tag", "run_id": run_id, "tag": name, "samples": len(chosen)}
    with datapool.lock(run_id):
        commit_run(
            datapool.tables,
            run_id=run_id,
            expected_version=datapool.version(),
            rows={"tags": pa.Table.from_pylist(rows, schema=schema.TAGS)},
            run_row={
                "tag": name,
                "started_at": datetime.now(UTC).isoformat(),
                "summary_json": json.dumps(record),
            },
        )
    return len(chosen)
