"""Checks that fail a run before any work: model known, source reachable, datapool free,
selection inputs present."""

from __future__ import annotations

from typing import Any

from coresift.config import CurateConfig
from coresift.custom import CustomMetadata, check_strategies, read_custom_metadata
from coresift.datapool import Datapool
from coresift.embedding import model_identity
from coresift.errors import ConfigError, DatapoolBusyError
from coresift.listing import probe_source
from coresift.selection.queries import check_query
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
        ConfigError: the tag is taken already, or a similarity query names no tag or file.
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
    for index, strategy in enumerate(config.selection.strategies):
        if strategy.type == "similarity" and strategy.query:
            try:
                check_query(strategy.query, datapool, config.source.url, source_options)
            except ConfigError as error:
                raise ConfigError(f"selection.strategies.{index}.query: {error}") from None


def load_custom(
    config: CurateConfig, source_options: dict[str, Any], custom_options: dict[str, Any]
) -> CustomMetadata | None:
    """Read the run's custom metadata file, if any, and check the strategies against it.

    Raises:
        ConfigError: the file is missing or malformed, or a strategy's column is missing or
            holds a value of the wrong type (the message names the column and row).
    """
    if config.custom_metadata is None:
        check_strategies(None, config.selection.strategies)
        return None
    custom = read_custom_metadata(
        config.custom_metadata.url, custom_options, config.source.url, source_options
    )
    check_strategies(custom, config.selection.strategies)
    return custom
