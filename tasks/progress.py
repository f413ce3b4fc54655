"""Progress of mapped shards: a terminal bar and a Prefect progress artifact."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TypeVar, cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.logging import get_run_logger
from rich.progress import Progress

T = TypeVar("T")


def wait_with_progress(
    futures: Sequence[PrefectFuture[T]], sizes: Sequence[int], what: str
) -> list[tuple[T, bool]]:
    """Each future's result (in input order) and whether it came from the cache.

    sizes holds how many objects each future covers; progress advances by object.
    """
    logger = get_run_logger()
    total = sum(sizes)
    artifact = cast(UUID, create_progress_artifact(0.0, description=f"{what}: 0/{total}"))
    done = 0
    index = {id(future): i for i, future in enumerate(futures)}
    results: list[tuple[T, bool] | None] = [None] * len(futures)
    with Progress(disable=not sys.stderr.isatty(), transient=True) as bar:
        bar_task = bar.add_task(what, total=total)
        for future in as_completed(list(futures)):
            i = index[id(future)]
            results[i] = (future.result(), future.state.name == "Cached")
            done += sizes[i]
            bar.update(bar_task, completed=done)
            update_progress_artifact(
                artifact, 100.0 * done / total, description=f"{what}: {done}/{total}"
            )
            logger.info("%s: %d/%d objects", what, done, total)
    return [r for r in results if r is not None]
