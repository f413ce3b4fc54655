"""Flow `curate`: list -> plan -> process shards -> select -> commit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prefect import flow
from prefect.runtime import deployment

from coresift.config import CurateConfig
from coresift.datapool import Datapool, new_run_id
from coresift.plan import shards
from coresift.preflight import check_locations
from coresift.summary import RunSummary
from tasks.concurrency import datapool_slot
from tasks.credentials import storage_options
from tasks.curate import (
    check_config,
    commit_run,
    list_objects,
    plan_objects,
    process_shards,
    read_custom,
    resolve_model,
    select_samples,
)
from tasks.report import write_run_report
from tasks.runners import parallel_shards


@contextmanager
def _stage(seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start


@flow(name="curate")
def curate(config: CurateConfig) -> RunSummary:
    """Process what is new in the source and select the most diverse new samples."""
    run_id = new_run_id()
    tag = config.tag or run_id
    started_at = datetime.now(UTC).isoformat()
    seconds: dict[str, float] = {}
    check_locations(config, deployed=deployment.id is not None)
    check_config(config)
    datapool = Datapool(config.datapool.url, storage_options(config.datapool))
    with datapool_slot(datapool.url), datapool.lock(run_id, config.datapool.lock_wait_s):
        with _stage(seconds, "list"):
            listing = list_objects(config)
        with _stage(seconds, "plan"):
            plan = plan_objects(config, listing)
            custom = read_custom(config, run_id, listing)
        with _stage(seconds, "process"):
            processing = config.processing
            groups = shards(
                plan.to_process, processing.objects_per_shard(), parallel_shards(processing)
            )
            model = resolve_model(config)
            outputs = process_shards(config, groups, model, plan.work_key)
        with _stage(seconds, "select"):
            picks = select_samples(
                config, run_id, tag, model, [o for o, _ in outputs], custom, plan.gone
            )
        summary = commit_run(
            config,
            run_id,
            tag,
            plan,
            len(listing),
            outputs,
            picks,
            custom,
            started_at,
            seconds,
        )
    # After the lock: the report only reads the datapool. A report that fails leaves the run
    # committed; the log says why, and `coresift report` can write it again.
    report = write_run_report(config, summary, return_state=True)
    url = report.result() if report.is_completed() else None
    return summary.model_copy(update={"report": url})
