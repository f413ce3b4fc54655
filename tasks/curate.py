"""The tasks of a curation run: list, plan, process shards, select, commit.

Tasks pass references (identities, keys, config values) to each other; bulky data lives in
Parquet artifacts under the datapool's `_work/` area and in the datapool tables.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
from prefect import Task, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from pydantic import BaseModel

from coresift import schema
from coresift.config import CurateConfig
from coresift.custom import CustomMetadata, attach
from coresift.datapool import Datapool, commit, gone_rows, unsupported_rows
from coresift.datapool.delta import Rows
from coresift.datapool.maintain import describe_upkeep, upkeep
from coresift.device import CPU, resolve_device
from coresift.embedding import load_embedder, model_identity, model_runtime
from coresift.errors import ConfigError, DatapoolBusyError, ModelError, SourceNotFoundError
from coresift.listing import Listing, ObjectRef, list_source
from coresift.plan import Plan, plan_run
from coresift.preflight import check_run, load_custom
from coresift.process import process_objects, shard_key
from coresift.selection import choose
from coresift.selection.queries import query_embeddings
from coresift.summary import RunSummary, describe
from tasks.credentials import storage_options
from tasks.progress import wait_with_progress
from tasks.runners import shard_runner, worker_cores, worker_name, worker_slot

# Errors that another attempt cannot fix: the run fails at once, in the user's words.
_PERMANENT = (ConfigError, ModelError, DatapoolBusyError, SourceNotFoundError)


def _worth_retrying(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    return not isinstance(state.result(raise_on_failure=False), _PERMANENT)


IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 5, 15],
    "retry_condition_fn": _worth_retrying,
}
# The steps that are cheap to redo. A run resumes through process_shard's cache alone; the
# default cache policy would hash these steps' inputs, a copy of a million-object listing.
STEP: dict[str, Any] = {**IO_RETRIES, "cache_policy": NO_CACHE}


class ShardOutput(BaseModel):
    """What a processed shard left in the datapool's work area."""

    name: str
    objects: int
    samples: int
    corrupt_by_code: dict[str, int] = {}
    bytes_read: int
    worker: str = ""  # host:pid of the process that processed it

    @property
    def corrupt(self) -> int:
        return sum(self.corrupt_by_code.values())


class PicksOutput(BaseModel):
    """Where a run's picks and filtered samples are, how many earlier picks shaped them,
    and what the user should know about them."""

    name: str
    filtered_name: str
    picks_name: str
    selected: int
    preselected: int
    filtered: dict[str, int]
    notes: list[str]


class CustomOutput(BaseModel):
    """Where the run's custom metadata is kept (None: the run has none), and how many of
    its paths matched no listed object."""

    name: str | None = None
    unmatched: int = 0


def _datapool(config: CurateConfig) -> Datapool:
    return Datapool(config.datapool.url, storage_options(config.datapool))


@task(**STEP)
def check_config(config: CurateConfig) -> None:
    """Fail before any work, and before the datapool is touched, if the run cannot succeed."""
    check_run(
        config,
        storage_options(config.source),
        storage_options(config.datapool),
        wait_for_lock=False,
    )


@task(**STEP)
def list_objects(config: CurateConfig) -> Listing:
    """List the source's objects and their kinds (no object bodies are read)."""
    source = config.source
    options = storage_options(source)
    listing = list_source(
        source.url, options, source.include, source.exclude, source.relevant_filenames
    )
    get_run_logger().info("listed %d objects under %s", len(listing), source.url)
    return listing


@task(**STEP)
def plan_objects(config: CurateConfig, listing: Listing) -> Plan:
    """Split the listing into new, changed, skipped, gone and unsupported objects."""
    datapool = _datapool(config)
    plan = plan_run(
        listing,
        datapool.object_states(),
        datapool.version(),
        datapool.work.epoch(),
        config.process_all,
    )
    get_run_logger().info(
        "plan: %d new, %d changed, %d unchanged, %d gone, %d unsupported",
        len(plan.new),
        len(plan.changed),
        plan.skipped,
        len(plan.gone),
        plan.unsupported,
    )
    for uri in plan.unsupported_new.column("uri").to_pylist():
        get_run_logger().warning("unsupported (neither image nor video): %s", uri)
    return plan


@task(**STEP)
def read_custom(config: CurateConfig, run_id: str, listing: Listing) -> CustomOutput:
    """Read the user's metadata file once, check it, and keep it for the run's later steps."""
    if config.custom_metadata is None:
        return CustomOutput()
    custom = load_custom(
        config, storage_options(config.source), storage_options(config.custom_metadata)
    )
    assert custom is not None
    unmatched = custom.unmatched(listing.objects.column("uri"))
    if unmatched:
        get_run_logger().warning(
            "custom metadata: %d of %d paths match no listed object, e.g. %s",
            len(unmatched),
            len({uri for uri, _ in custom.rows}),
            ", ".join(unmatched[:3]),
        )
    name = f"runs/{run_id}/custom"
    _datapool(config).work.write(name, custom.to_table())
    return CustomOutput(name=name, unmatched=len(unmatched))


def _custom(datapool: Datapool, output: CustomOutput) -> CustomMetadata | None:
    return (
        None if output.name is None else CustomMetadata.from_table(datapool.work.read(output.name))
    )


@task(cache_policy=NO_CACHE)
def resolve_model(config: CurateConfig) -> str:
    """The model's identity (name plus weights hash), without loading it."""
    return model_identity(config.processing.model)


def _shard_name(refs: list[ObjectRef], model: str, work_key: str, config: CurateConfig) -> str:
    settings = config.processing.output_settings()
    key = shard_key(refs, model, settings, config.datapool.url, work_key)
    return f"shards/{key}"


def _shard_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    name = _shard_name(
        parameters["refs"],
        parameters["model_identity"],
        parameters["work_key"],
        parameters["config"],
    )
    return "coresift-" + name.replace("/", "-")


@task(cache_key_fn=_shard_cache_key, persist_result=True, **IO_RETRIES)
def process_shard(
    refs: list[ObjectRef], model_identity: str, work_key: str, config: CurateConfig, cores: int
) -> ShardOutput:
    """Read each object once: check, measure and embed it; write the shard's samples.

    `cores` is this worker's share of its machine (see tasks.runners.worker_cores).
    """
    processing = config.processing
    runtime = model_runtime(processing.model, processing.runtime)
    device = resolve_device(processing.device, runtime, worker_slot())
    threads, decoders = processing.threads_for(cores, device != CPU)
    embedder = load_embedder(processing.model, processing.runtime, threads, device)
    logger = get_run_logger()
    logger.info(
        "%d objects on %s: %s, %d inference and %d decode threads",
        len(refs),
        worker_name(),
        device,
        threads,
        decoders,
    )
    result = process_objects(
        refs, embedder, processing=processing, options=storage_options(config.source), cores=cores
    )
    name = _shard_name(refs, model_identity, work_key, config)
    datapool = _datapool(config)
    datapool.work.write(f"{name}-objects", result.objects)
    datapool.work.write(f"{name}-thumbnails", result.thumbnails)
    datapool.work.write(f"{name}-samples", result.samples)  # last: its presence means done
    for row in result.objects.to_pylist():
        if row["reason"]:
            logger.warning("%s: %s: %s", row["status"], row["uri"], row["reason"])
    codes = result.samples.column("corrupt_code").drop_null().to_pylist()
    return ShardOutput(
        name=name,
        objects=len(refs),
        samples=len(result.samples),
        corrupt_by_code=_counts(codes),
        bytes_read=result.bytes_read,
        worker=worker_name(),
    )


def process_shards(
    config: CurateConfig, groups: list[list[ObjectRef]], model_identity: str, work_key: str
) -> list[tuple[ShardOutput, bool]]:
    """Run process_shard on every group on the config's runner, with progress; each
    output in input order, and whether it came from the cache."""
    if not groups:  # an unchanged rerun starts no pool or cluster
        return []
    with shard_runner(config.processing) as runner:
        parameters = {
            "refs": groups,
            "model_identity": unmapped(model_identity),
            "work_key": unmapped(work_key),
            "config": unmapped(config),
            "cores": unmapped(worker_cores(config.processing)),
        }
        futures = runner.map(process_shard, parameters)  # type: ignore[arg-type]
        return wait_with_progress(futures, [len(g) for g in groups], "processing")


_PARTS = ("samples", "objects", "thumbnails")


def _parts(shards: list[ShardOutput], part: str) -> list[str]:
    """The work artifacts of one part of every shard."""
    return [f"{s.name}-{part}" for s in shards]


@task(**STEP)
def select_samples(
    config: CurateConfig,
    run_id: str,
    tag: str,
    model_identity: str,
    shards: list[ShardOutput],
    custom_output: CustomOutput,
    gone: list[str],
) -> PicksOutput:
    """Pick this run's samples by the strategies, around the earlier picks of every source
    whose objects are still there (those this run found gone are not)."""
    datapool = _datapool(config)
    custom = _custom(datapool, custom_output)
    parts = (attach(t, custom) for t in datapool.work.tables(_parts(shards, "samples")))
    samples = schema.compact_tables(parts, sum(s.samples for s in shards))
    earlier = schema.compact(schema.SAMPLES.empty_table())
    if len(samples) and not config.process_all:  # no new samples: no earlier pick is read
        earlier = attach(datapool.picked_samples(_pick_columns(config), leave_out=gone), custom)
    queries = {
        index: query_embeddings(
            strategy.query,
            datapool,
            samples,
            config.source.url,
            storage_options(config.source),
            model_identity,
        )
        for index, strategy in enumerate(config.selection.strategies)
        if strategy.type == "similarity" and strategy.query
    }
    picks = choose(
        samples, earlier, model=model_identity, selection=config.selection, tag=tag, queries=queries
    )
    names = f"runs/{run_id}/tags", f"runs/{run_id}/filtered", f"runs/{run_id}/picks"
    datapool.work.write(names[0], picks.tags)
    datapool.work.write(names[1], picks.filtered)
    picked = pc.is_in(samples.column("sample_id"), value_set=picks.tags.column("sample_id"))
    datapool.work.write(
        names[2], schema.pack_compact(samples.filter(picked).select(schema.PICKS.names))
    )
    filtered = _counts(picks.filtered.column("reason").to_pylist())
    logger = get_run_logger()
    logger.info(
        "selected %d of %d new samples around %d earlier picks; not candidates: %s",
        len(picks.tags),
        len(samples),
        picks.preselected,
        filtered or "none",
    )
    for note in picks.notes:
        logger.warning(note)
    return PicksOutput(
        name=names[0],
        filtered_name=names[1],
        picks_name=names[2],
        selected=len(picks.tags),
        preselected=picks.preselected,
        filtered=filtered,
        notes=picks.notes,
    )


def _pick_columns(config: CurateConfig) -> list[str]:
    """What selection needs of earlier picks: schema.PICKS, and the inputs of balance
    strategies (their classes count the earlier picks)."""
    inputs = [s.input for s in config.selection.strategies if s.type == "balance"]
    extra = ["custom" if i.startswith("custom.") else i.removeprefix("metadata.") for i in inputs]
    return list(dict.fromkeys([*schema.PICKS.names, *extra]))


def _counts(reasons: list[str]) -> dict[str, int]:
    """How often each reason occurs, by reason."""
    return dict(sorted(Counter(reasons).items()))


@task(**STEP)
def commit_run(
    config: CurateConfig,
    run_id: str,
    tag: str,
    plan: Plan,
    listed: int,
    shards: list[tuple[ShardOutput, bool]],
    picks: PicksOutput,
    custom_output: CustomOutput,
    started_at: str,
    stage_seconds: dict[str, float],
) -> RunSummary:
    """Append the run to the datapool in one commit, clean up, then publish its summary.

    A run that found nothing new, changed or gone commits nothing: an idle schedule leaves
    the datapool as it was. A retry after the commit landed (say, the artifact failed) finds
    the run committed and only finishes the cleanup and the artifact: it never reads the
    removed work files.
    """
    datapool = _datapool(config)
    outputs = [output for output, _ in shards]
    stored = datapool.run_summary(run_id)
    if stored is not None:
        summary = RunSummary.model_validate(stored)
        get_run_logger().info("run %s is committed already; finishing its cleanup", run_id)
    else:
        summary = _summary(
            config,
            datapool.url,
            run_id,
            tag,
            plan,
            listed,
            shards,
            picks,
            started_at,
            stage_seconds,
        ).model_copy(update={"custom_paths_unmatched": custom_output.unmatched})
        if plan.changes_nothing:
            get_run_logger().info("nothing new, changed or gone: nothing to commit")
        else:
            get_run_logger().info("committing run %s to %s", run_id, datapool.url)
            _commit(datapool, plan, outputs, picks, custom_output, summary, started_at)
            every = config.datapool.maintain_every
            if every and (summary.datapool_version + 1) % every == 0:
                for done in upkeep(datapool.tables):
                    get_run_logger().info("maintenance: %s", describe_upkeep(done))
    work = [picks.name, picks.filtered_name, picks.picks_name]
    work += [custom_output.name] if custom_output.name else []
    datapool.work.remove([*work, *(name for part in _PARTS for name in _parts(outputs, part))])
    create_markdown_artifact(
        "\n".join(["```", *describe(summary), "```"]),
        key="coresift-run",
        description=f"coresift run {run_id} in words",
    )
    create_table_artifact(
        [
            {"key": k, "value": json.dumps(v) if isinstance(v, dict | list) else v}
            for k, v in summary.model_dump().items()
        ],
        key="coresift-run-summary",
        description=f"coresift run {run_id} (tag {tag})",
    )
    return summary


def _commit(
    datapool: Datapool,
    plan: Plan,
    outputs: list[ShardOutput],
    picks: PicksOutput,
    custom_output: CustomOutput,
    summary: RunSummary,
    started_at: str,
) -> None:
    """Append the run's rows from its work artifacts to the datapool tables, runs row last,
    one shard at a time."""
    custom = _custom(datapool, custom_output)
    work = datapool.work

    def objects() -> Iterator[pa.Table]:
        yield from work.tables(_parts(outputs, "objects"))
        yield gone_rows(plan.gone)
        yield unsupported_rows(plan.unsupported_new)

    rows: dict[str, Rows] = {
        "samples": lambda: (attach(t, custom) for t in work.tables(_parts(outputs, "samples"))),
        "objects": objects,
        "tags": work.read(picks.name),
        "filtered": work.read(picks.filtered_name),
        "picks": work.read(picks.picks_name),
        "thumbnails": lambda: work.tables(_parts(outputs, "thumbnails")),
    }
    commit.commit_run(
        datapool.tables,
        run_id=summary.run_id,
        expected_version=plan.datapool_version,
        rows=rows,
        run_row={
            "tag": summary.tag,
            "started_at": started_at,
            "summary_json": summary.model_dump_json(),
        },
    )


def _summary(
    config: CurateConfig,
    datapool_url: str,
    run_id: str,
    tag: str,
    plan: Plan,
    listed: int,
    shards: list[tuple[ShardOutput, bool]],
    picks: PicksOutput,
    started_at: str,
    stage_seconds: dict[str, float],
) -> RunSummary:
    outputs = [output for output, _ in shards]
    return RunSummary(
        run_id=run_id,
        tag=tag,
        source=config.source.url,
        datapool=datapool_url,
        objects_listed=listed,
        objects_new=len(plan.new),
        objects_changed=len(plan.changed),
        objects_skipped=plan.skipped,
        objects_gone=len(plan.gone),
        objects_unsupported=plan.unsupported,
        samples_processed=sum(o.samples for o in outputs),
        samples_corrupt=sum(o.corrupt for o in outputs),
        samples_corrupt_by_code=dict(
            sorted(sum((Counter(o.corrupt_by_code) for o in outputs), Counter[str]()).items())
        ),
        samples_filtered=picks.filtered,
        samples_selected=picks.selected,
        samples_asked=config.selection.n_samples,
        samples_preselected=picks.preselected,
        selection_notes=picks.notes,
        bytes_read=sum(o.bytes_read for o, cached in shards if not cached),
        workers=len({o.worker for o, cached in shards if not cached}),
        bytes_new=plan.bytes_new,
        datapool_version=plan.datapool_version + (0 if plan.changes_nothing else 1),
        committed=not plan.changes_nothing,
        duration_s=round(
            (datetime.now(UTC) - datetime.fromisoformat(started_at)).total_seconds(), 3
        ),
        stage_seconds={k: round(v, 3) for k, v in stage_seconds.items()},
    )


@task(**STEP)
def start_curate(deployment: str, config: CurateConfig) -> str:
    """Start a run of the curate deployment without waiting for it; returns its id."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = cast(
        FlowRun,
        run_deployment(
            deployment,
            # None means "left out" in the deployment's form schema
            parameters={"config": config.model_dump(mode="json", exclude_none=True)},
            timeout=0,
            as_subflow=False,
        ),
    )
    get_run_logger().info("started %s run %s", deployment, run.id)
    return str(run.id)
