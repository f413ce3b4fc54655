"""The `coresift` command: run the curate flow, list tags, export picks or a whole datapool.

User errors (bad config, unreachable source, busy datapool) print one line and exit 2;
they never show a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coresift.config import DEFAULT_DATAPOOL, build_config, load_config_file
from coresift.errors import ConfigError, CoresiftError
from coresift.export import FORMATS

if TYPE_CHECKING:
    from coresift.datapool import Datapool

DEFAULT_SAMPLES_FOLDER = "./coresift-samples"
# Short commands whose last act is a scan of the datapool's Delta tables (see `main`).
_SCANS_DELTA_TABLES = ("tags", "export", "dump", "report", "tag", "maintain")


def _quiet_prefect_defaults() -> None:
    """Offline-friendly Prefect settings unless the user chose otherwise."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _check_prefect_server() -> None:
    """A Prefect server the user named must answer; without one, runs start a temporary one."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return
    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise ConfigError(
            f"PREFECT_API_URL: the Prefect server at {url} does not answer ({error}); start "
            "it, or unset PREFECT_API_URL to run with a temporary server"
        )


def _section(values: dict[str, Any], name: str) -> dict[str, Any]:
    """A section of the config values, made a mapping if the file left it out."""
    section = values.get(name)
    if section is None:
        section = values[name] = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{name}: must be a mapping of fields (e.g. {name}: {{url: ...}})")
    return section


def _run_values(args: argparse.Namespace) -> dict[str, Any]:
    values = load_config_file(args.config) if args.config else {}
    flags = {
        ("source", "url"): args.source,
        ("datapool", "url"): args.datapool,
        ("selection", "n_samples"): args.n_samples,
        ("selection", "min_distance"): args.min_distance,
        ("processing", "runner"): args.runner,
        ("processing", "device"): args.device,
    }
    for (section, field), value in flags.items():
        if value is not None:
            _section(values, section)[field] = value
    if args.tag is not None:
        values["tag"] = args.tag
    _section(values, "selection")  # so that a missing stop is named, not the whole section
    if args.process_all:
        values["process_all"] = True
    source = _section(values, "source")
    if "url" not in source:
        from coresift.samples import write_sample_folder

        source["url"] = str(write_sample_folder(DEFAULT_SAMPLES_FOLDER).resolve())
        print(
            f"no --source given: using the bundled sample photos in {source['url']}",
            file=sys.stderr,
        )
    return values


def _run(args: argparse.Namespace) -> int:
    config = build_config(_run_values(args))
    _quiet_prefect_defaults()
    from coresift.preflight import check_locations, check_run, load_custom
    from flows.curate import curate
    from tasks.credentials import storage_options

    check_locations(config, deployed=False)
    _check_prefect_server()
    prefect_logger = logging.getLogger("prefect")
    level = prefect_logger.level
    prefect_logger.setLevel(logging.WARNING)  # an error here is one line, without server news
    source_options = storage_options(config.source)
    check_run(config, source_options, storage_options(config.datapool))
    custom = config.custom_metadata
    load_custom(config, source_options, {} if custom is None else storage_options(custom))
    prefect_logger.setLevel(level)
    summary = curate(config)
    if args.json:
        print(summary.model_dump_json())
        return 0
    from coresift.summary import describe

    print("\n".join(describe(summary)))
    if summary.committed:
        print(f"picks: coresift export --datapool {summary.datapool} --tag {summary.tag}")
    print(f"report: {summary.report or 'none (the run changed nothing)'}")
    return 0


def _open_datapool(args: argparse.Namespace) -> Datapool:
    """The datapool of a command's --datapool, with the credentials of its --block."""
    from coresift.datapool import Datapool

    if not args.block:
        return Datapool(args.datapool)
    from tasks.credentials import block_options

    return Datapool(args.datapool, block_options(args.block))


def _tags(args: argparse.Namespace) -> int:
    for entry in _open_datapool(args).tag_summary():
        print(f"{entry['tag']}\t{entry['samples']}\t{entry['run_id']}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from coresift.export import export

    exported = export(_open_datapool(args), args.tag, args.format, args.output, args.presign)
    if exported.text is not None:
        sys.stdout.write(exported.text)
    else:
        print(f"wrote {exported.samples} samples to {', '.join(exported.written)}")
    return 0


def _dump(args: argparse.Namespace) -> int:
    from coresift.dump import dump_tag

    sidecar = dump_tag(_open_datapool(args), args.tag, args.output, args.image_format)
    print(f"wrote {len(sidecar)} files and frames.parquet to {args.output}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from coresift.report import write_report

    size = write_report(_open_datapool(args), args.output, tags=args.tag or None)
    print(f"wrote the report ({size / 1e6:.1f} MB) to {args.output}")
    return 0


def _tag_create(args: argparse.Namespace) -> int:
    from coresift.tags import create_tag, read_locators

    locators = read_locators(args.source_file)
    count = create_tag(_open_datapool(args), args.name, locators)
    skipped = len(locators) - count
    print(
        f"tag {args.name}: {count} samples"
        + (f" ({skipped} lines named no current sample)" if skipped else "")
    )
    return 0


def _bridge(args: argparse.Namespace) -> int:
    from flows import bridge

    queue: bridge.Queue
    if args.cloud == "s3":
        queue = bridge.SqsQueue(args.queue)
    elif args.cloud == "gcs":
        queue = bridge.PubSubQueue(args.queue)
    else:
        queue = bridge.StorageQueue(args.queue)
    bridge.serve(args.cloud, queue, args.source, args.datapool)
    return 0


def _maintain(args: argparse.Namespace) -> int:
    from coresift.datapool.maintain import describe_upkeep

    for done in _open_datapool(args).maintain(args.retain_hours, args.wait):
        print(describe_upkeep(done))
    return 0


def _datapool_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--datapool", default=DEFAULT_DATAPOOL)
    command.add_argument(
        "--block", help="Prefect block with the datapool's credentials, as datapool.block"
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="coresift", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="process what is new in a source and select samples")
    run.add_argument("--source", help="folder or URL (default: bundled sample photos)")
    run.add_argument("--datapool", help=f"datapool folder or URL (default {DEFAULT_DATAPOOL})")
    run.add_argument("--n-samples", type=int, help="how many new samples to select")
    run.add_argument("--min-distance", type=float, help="stop below this embedding distance")
    run.add_argument(
        "--runner",
        help="where shards run: threads (default), processes, dask, dask://HOST:PORT, ray, "
        "ray://HOST:PORT",
    )
    run.add_argument("--device", help="inference device: auto (default), cpu, cuda, cuda:N")
    run.add_argument("--process-all", action="store_true", help="reprocess and reselect all")
    run.add_argument("--tag", help="name of this run's selection (default: the run id)")
    run.add_argument("--config", type=Path, help="YAML or JSON file with any config fields")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    run.set_defaults(handler=_run)

    tags = commands.add_parser("tags", help="list the datapool's tags")
    _datapool_arguments(tags)
    tags.set_defaults(handler=_tags)

    export = commands.add_parser(
        "export", help="print or write a tag's picks, or every sample, for the next tool"
    )
    _datapool_arguments(export)
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--tag", help="the tag whose picks to export, in pick order")
    which.add_argument(
        "--all", dest="tag", action="store_const", const=None, help="every sample, with its tags"
    )
    export.add_argument("--format", choices=FORMATS, default="txt")
    export.add_argument(
        "--output",
        help="file or URL to write (required for parquet; txt, csv, labelstudio and coco "
        "print without it); for fiftyone the dataset name (default coresift-TAG or "
        "coresift-all)",
    )
    export.add_argument(
        "--presign",
        type=int,
        metavar="SECONDS",
        help="give cloud objects presigned HTTPS URLs valid this long",
    )
    export.set_defaults(handler=_export)

    dump = commands.add_parser("dump", help="write a tag's images and video frames as files")
    _datapool_arguments(dump)
    dump.add_argument("--tag", required=True)
    dump.add_argument("--output", required=True, help="folder or URL to write into")
    dump.add_argument("--image-format", choices=("png", "jpeg"), default="png")
    dump.set_defaults(handler=_dump)

    report = commands.add_parser(
        "report", help="write a static HTML report of the datapool (reads no source)"
    )
    _datapool_arguments(report)
    report.add_argument(
        "--tag", action="append", help="tag to focus on (repeatable; default: the latest run's)"
    )
    report.add_argument("--output", required=True, help="file or URL of the HTML page")
    report.set_defaults(handler=_report)

    tag = commands.add_parser("tag", help="make tags by hand")
    tag_commands = tag.add_subparsers(dest="tag_command", required=True)
    create = tag_commands.add_parser(
        "create", help="turn a list of samples (one URI or URI#frame=N per line) into a tag"
    )
    _datapool_arguments(create)
    create.add_argument("--name", required=True, help="the new tag's name")
    create.add_argument(
        "--from", dest="source_file", required=True, help="file or URL listing the samples"
    )
    create.set_defaults(handler=_tag_create)

    maintain = commands.add_parser(
        "maintain",
        help="compact, checkpoint and vacuum the datapool's tables (waits for a running run)",
    )
    _datapool_arguments(maintain)
    maintain.add_argument(
        "--retain-hours",
        type=int,
        default=168,
        help="keep the files that versions of the last HOURS need (default: a week)",
    )
    maintain.add_argument(
        "--wait",
        type=float,
        default=300,
        help="seconds to wait for a run that holds the datapool (default: 300)",
    )
    maintain.set_defaults(handler=_maintain)

    bridge = commands.add_parser(
        "bridge", help="turn bucket notifications into coresift.object.created Prefect events"
    )
    bridge.add_argument("cloud", choices=("s3", "gcs", "azure"))
    bridge.add_argument(
        "--queue",
        required=True,
        help="SQS queue URL (s3), Pub/Sub subscription path (gcs), or Storage Queue name (azure)",
    )
    bridge.add_argument("--source", required=True, help="the source URL whose objects matter")
    bridge.add_argument(
        "--datapool",
        required=True,
        help="the datapool URL that the triggered runs curate into (absolute or a bucket URL)",
    )
    bridge.set_defaults(handler=_bridge)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except CoresiftError as error:
        # One line: not even the temporary Prefect server's goodbye after it.
        logging.getLogger("prefect").setLevel(logging.WARNING)
        print(f"coresift: error: {error}", file=sys.stderr)
        code = 2
    except BrokenPipeError:  # `coresift tags | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        code = 0
    if args.command in _SCANS_DELTA_TABLES and argv is None:
        # pyarrow's dataset scanner releases its file pieces on an Arrow worker thread after
        # to_table() has returned. For Delta tables those pieces hold delta-rs's Python
        # filesystem (PyFileSystem(DeltaStorageHandler)), and releasing it takes the GIL. If
        # that happens while CPython (<= 3.13) finalizes, the thread is ended by pthread_exit
        # inside a C++ destructor and std::terminate aborts the process ("terminate called
        # without an active exception", reproduced here in about 1 of 100 `tags` runs on a
        # loaded machine; apache/arrow#39862, python/cpython#87135). These commands have
        # written and flushed everything, so they skip interpreter teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
