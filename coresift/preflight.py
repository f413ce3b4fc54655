"""Checks that fail a run before any work: model known, source reachable, datapool free,
selection inputs present."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from coresift.config import CurateConfig, ProcessingConfig, is_remote
from coresift.custom import CustomMetadata, check_strategies, read_custom_metadata
from coresift.datapool import Datapool
from coresift.device import resolve_device
from coresift.embedding import model_identity, model_runtime
from coresift.errors import ConfigError
from coresift.listing import probe_source, read_relevant_filenames
from coresift.selection.queries import check_query
from coresift.storage import open_url


def check_locations(config: CurateConfig, *, deployed: bool) -> None:
    """Refuse locations that would quietly read or write the wrong place.

    An empty URL is what `prefect deploy` leaves where an environment variable was unset,
    and an empty path means the working directory. A deployment run's working directory is
    the worker's (often the project checkout): a defaulted or relative datapool there
    would start a second datapool, or write into another source's.

    Raises:
        ConfigError: naming the field.
    """
    unset = "(a deployment made while its environment variable was unset?)"
    if not config.source.url.strip():
        raise ConfigError(f"source.url: empty {unset}: give the source's folder or URL")
    url = config.datapool.url
    if not url.strip():
        raise ConfigError(f"datapool.url: empty {unset}: give the datapool's folder or URL")
    if not deployed:
        return
    if "url" not in config.datapool.model_fields_set:
        raise ConfigError(
            "datapool.url: a deployment run needs the datapool's URL in its parameters; "
            f"the default {url} would land in the worker's working directory {os.getcwd()}"
        )
    if "://" not in url and not os.path.isabs(os.path.expanduser(url)):
        raise ConfigError(
            f"datapool.url: {url!r} is relative, and a deployment run would resolve it in the "
            f"worker's working directory {os.getcwd()}: give an absolute path or a bucket URL"
        )


def check_run(
    config: CurateConfig,
    source_options: dict[str, Any],
    datapool_options: dict[str, Any],
    *,
    wait_for_lock: bool = True,
) -> None:
    """Raise a CoresiftError naming the problem if the run cannot succeed.

    Args:
        source_options, datapool_options: the resolved storage options of each location.
        wait_for_lock: wait (up to datapool.lock_wait_s) while a live run holds the
            datapool; False where taking the lock waits anyway (inside the flow).

    Raises:
        SourceError: the source or its relevant-filenames file cannot be read.
        DatapoolBusyError: a live run still holds the datapool after the wait.
        ConfigError: the datapool is a file, the tag is taken already, a similarity query
            names no tag or file, the runner's engine is not installed, or the device is not
            usable here.
        ModelError: the model is unknown or its file unreadable.
    """
    model_identity(config.processing.model)
    check_processing(config.processing)
    source = config.source
    fs, root = open_url(source.url, source_options)
    probe_source(fs, root, source.url)
    if source.relevant_filenames:
        read_relevant_filenames(source.relevant_filenames, source_options)
    datapool = Datapool(config.datapool.url, datapool_options)
    if datapool.fs.isfile(datapool.root):
        raise ConfigError(
            f"datapool.url: {config.datapool.url} is a file; a datapool is a folder or a prefix"
        )
    if wait_for_lock:
        datapool.wait_until_unlocked(config.datapool.lock_wait_s)
    if config.tag and any(t["tag"] == config.tag for t in datapool.tag_summary()):
        raise ConfigError(f"tag: {config.tag!r} exists already in datapool {config.datapool.url}")
    for index, strategy in enumerate(config.selection.strategies):
        if strategy.type == "similarity" and strategy.query:
            try:
                check_query(strategy.query, datapool, config.source.url, source_options)
            except ConfigError as error:
                raise ConfigError(f"selection.strategies.{index}.query: {error}") from None


# The runners whose engines come as extras, by the module each needs.
_RUNNER_EXTRAS = {"dask": "prefect_dask", "ray": "prefect_ray"}


def check_processing(processing: ProcessingConfig) -> None:
    """The runner's engine is installed, and a local run's device is usable here (a remote
    cluster's workers check their own when they start a shard)."""
    engine = processing.runner.partition("://")[0]
    if engine in _RUNNER_EXTRAS and importlib.util.find_spec(_RUNNER_EXTRAS[engine]) is None:
        raise ConfigError(
            f"processing.runner: {processing.runner!r} needs the {engine} extra: "
            f"pip install 'coresift[{engine}]'"
        )
    if not is_remote(processing.runner):
        resolve_device(processing.device, model_runtime(processing.model, processing.runtime))


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
