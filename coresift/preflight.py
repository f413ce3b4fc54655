"""Checks that fail a run before any work: model known, source reachable, datapool free."""

from __future__ import annotations

from typing import Any

from coresift.config import CurateConfig
from coresift.datapool import Datapool
from coresift.embedding import model_identity
from coresift.errors import ConfigError, DatapoolBusyError
from coresift.listing import probe_source
from coresift.storage import open_url


def check_run(
    config: CurateConfig,
    source_options: dict[str, Any],
    datapool_options: dict[str, Any],
    *,
    lock_held: bool = False,
) -> None:
    """Raise a CoresiftError naming the problem if the run cannot succeed.

    Args:
        source_options, datapool_options: the resolved storage options of each location.
        lock_held: the caller holds the datapool lock already (inside the flow).

    Raises:
        SourceError: the source does not exist or cannot be reached.
        DatapoolBusyError: a live run holds the datapool.
        ConfigError: the tag is taken already.
        ModelError: the model is unknown or its file unreadable.
    """
    model_identity(config.processing.model)
    fs, root = open_url(config.source.url, source_options)
    probe_source(fs, root, config.source.url)
    datapool = Datapool(config.datapool.url, datapool_options)
    busy = None if lock_held else datapool.is_locked_by_other()
    if busy:
        raise DatapoolBusyError(busy)
    if config.tag and any(t["tag"] == config.tag for t in datapool.tag_summary()):
        raise ConfigError(f"tag: {config.tag!r} exists already in datapool {config.datapool.url}")
