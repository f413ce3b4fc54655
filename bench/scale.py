"""Datapools at scale, without a million real images.

Run: python -m bench.scale run [--samples 100000 1000000] [--picks 1000]
     python -m bench.scale upkeep [--base 20000] [--runs 200] [--new 20]
     python -m bench.scale listing [--objects 100000] [--prefixes 100]
     python -m bench.scale memory [--objects 1000 8000]
     python -m bench.scale rerun [--objects 1000000]

`run` writes synthetic shard outputs (rows of schema.SAMPLES with 1280-d float32 embeddings,
an objects row and a 3 KB thumbnail per sample, 1,000 samples per shard), then selects and
commits them as a first run does: selection reads the shards into compact (float16)
embeddings, `choose` picks, and the commit streams the shards into the tables. Select and
commit each run in a fresh process, so each peak RSS is that step's own.

`upkeep` times plan and commit of many small runs on top of a large datapool, with the
automatic upkeep every 50 runs, and counts the samples table's files (those of its current
version, the ones a read opens).

`memory` samples the peak RSS of a whole `coresift run` process tree over small JPEGs.

`rerun` times an unchanged rerun (`coresift run`) over a local folder of empty .jpg files
whose datapool knows every one of them, against a bare listing of that folder plus the
fixed cost of a flow (an unchanged rerun over one object). Such a rerun reads no object and
no sample, so the bench writes 8-d embeddings to keep the datapool small.

`listing` fills SeaweedFS with small objects under many prefixes and lists them with one
paginated walk and with the parallel split, in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

SHARD = 1000
DIMS = 1280


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _shard_names(count: int, part: str) -> list[str]:
    return [f"shards/bench-{index:05d}-{part}" for index in range(count)]


def write_shards(pool: str, samples: int) -> None:
    """Synthetic shard outputs in the datapool's work area, as processing leaves them."""
    from bench.selection import samples_table
    from coresift import schema
    from coresift.datapool import Datapool

    datapool = Datapool(pool)
    rng = np.random.default_rng(0)
    for index in range(-(-samples // SHARD)):
        rows = min(SHARD, samples - index * SHARD)
        table = samples_table(rows, DIMS, seed=index, start=index * SHARD)
        objects = pa.table(
            {
                "uri": table.column("uri"),
                "version": pa.array(["v1"] * rows),
                "size": pa.array(np.full(rows, 120_000)),
                "status": pa.array(["ok"] * rows),
                "media": pa.array(["image"] * rows),
            }
        )
        objects = schema.conform(objects, schema.OBJECTS)
        thumbnails = pa.table(
            {
                "sample_id": table.column("sample_id"),
                "thumbnail": pa.array([rng.bytes(3000) for _ in range(rows)], pa.binary()),
            }
        )
        name = f"shards/bench-{index:05d}"
        datapool.work.write(f"{name}-objects", objects)
        datapool.work.write(f"{name}-thumbnails", thumbnails)
        datapool.work.write(f"{name}-samples", table)


def select_step(pool: str, samples: int, picks: int) -> dict[str, float]:
    """What the select task does on a first run: compact shards, then choose."""
    from coresift import schema
    from coresift.config import SelectionConfig
    from coresift.datapool import Datapool
    from coresift.selection import choose

    datapool = Datapool(pool)
    start = time.perf_counter()
    names = _shard_names(-(-samples // SHARD), "samples")
    table = schema.compact_tables(datapool.work.tables(names), samples)
    earlier = datapool.picked_samples()
    chosen = choose(
        table, earlier, model="bench", selection=SelectionConfig(n_samples=picks), tag="b"
    )
    picked = pa.compute.is_in(table.column("sample_id"), value_set=chosen.tags.column("sample_id"))
    datapool.work.write("runs/bench/tags", chosen.tags)
    datapool.work.write("runs/bench/filtered", chosen.filtered)
    datapool.work.write(
        "runs/bench/picks", schema.pack_compact(table.filter(picked).select(schema.PICKS.names))
    )
    return {"select_s": time.perf_counter() - start, "select_peak_mb": _peak_mb()}


def commit_step(pool: str, samples: int) -> dict[str, float]:
    """What the commit task does: stream every shard's parts into the tables, runs row last."""
    from coresift.datapool import Datapool, commit_run

    datapool = Datapool(pool)
    shards = -(-samples // SHARD)
    work = datapool.work
    start = time.perf_counter()
    with datapool.lock("bench"):
        commit_run(
            datapool.tables,
            run_id="bench",
            expected_version=datapool.version(),
            rows={
                "samples": lambda: work.tables(_shard_names(shards, "samples")),
                "objects": lambda: work.tables(_shard_names(shards, "objects")),
                "thumbnails": lambda: work.tables(_shard_names(shards, "thumbnails")),
                "tags": work.read("runs/bench/tags"),
                "filtered": work.read("runs/bench/filtered"),
                "picks": work.read("runs/bench/picks"),
            },
            run_row={"tag": "b", "started_at": "", "summary_json": "{}"},
        )
    return {"commit_s": time.perf_counter() - start, "commit_peak_mb": _peak_mb()}


def _in_fresh_process(*args: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.scale", "step", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def bench_run(sizes: list[int], picks: int) -> list[dict[str, Any]]:
    results = []
    for samples in sizes:
        folder = Path(tempfile.mkdtemp(prefix="coresift-scale-"))
        pool = str(folder / "pool")
        try:
            start = time.perf_counter()
            _in_fresh_process("shards", pool, str(samples), str(picks))
            written = time.perf_counter() - start
            result: dict[str, Any] = {"samples": samples, "picks": picks}
            result |= _in_fresh_process("select", pool, str(samples), str(picks))
            result |= _in_fresh_process("commit", pool, str(samples), str(picks))
            result["writing_shards_s"] = written
            result["datapool_gb"] = (
                sum(p.stat().st_size for p in (folder / "pool").rglob("*") if p.is_file()) / 1e9
            )
            results.append(
                {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
            )
            print(json.dumps(results[-1]), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def bench_upkeep(base: int, runs: int, new: int) -> dict[str, Any]:
    """Plan and commit times of `runs` runs of `new` objects on a `base`-object datapool."""
    from coresift.datapool import Datapool, commit_run
    from coresift.datapool.maintain import upkeep
    from coresift.listing import LISTED, Listing, SourceScope
    from coresift.plan import plan_run

    folder = Path(tempfile.mkdtemp(prefix="coresift-upkeep-"))
    datapool = Datapool(str(folder / "pool"))
    listed = LISTED.empty_table()
    timings: list[tuple[float, float, int, float]] = []
    try:
        for run in range(runs + 1):
            count = base if run == 0 else new
            from bench.selection import samples_table

            table = samples_table(count, DIMS, seed=run, start=len(listed))
            uris = table.column("uri")
            added = pa.table(
                [
                    uris,
                    pa.repeat("v1", len(uris)),
                    pa.repeat(1, len(uris)),
                    pa.repeat("image", len(uris)),
                ],
                schema=LISTED,
            )
            listed = pa.concat_tables([listed, added])
            start = time.perf_counter()
            plan = plan_run(
                Listing(listed, SourceScope("s3://bench")),
                datapool.object_states(),
                datapool.version(),
                "e",
            )
            planned = time.perf_counter() - start
            objects = plan.new.select(["uri", "version", "size"]).append_column(
                "status", pa.repeat("ok", len(plan.new))
            )
            run_id = f"r{run:04d}"
            start = time.perf_counter()
            with datapool.lock(run_id):
                version = commit_run(
                    datapool.tables,
                    run_id=run_id,
                    expected_version=plan.datapool_version,
                    rows={"samples": table, "objects": objects},
                    run_row={"tag": run_id, "started_at": "", "summary_json": "{}"},
                )
            committed = time.perf_counter() - start
            start = time.perf_counter()
            if (version + 1) % 50 == 0:
                with datapool.lock(run_id):
                    upkeep(datapool.tables)
            upkept = time.perf_counter() - start if (version + 1) % 50 == 0 else 0.0
            samples = datapool.tables.open("samples")
            files = 0 if samples is None else len(samples.file_uris())  # in the current version
            if run:
                timings.append((planned, committed, files, upkept))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    windows = [timings[start : start + 50] for start in range(0, len(timings), 50)]
    return {
        "base": base,
        "runs": runs,
        "new_per_run": new,
        "plan_s_median_per_50_runs": [_median(w, 0) for w in windows],
        "commit_s_median_per_50_runs": [_median(w, 1) for w in windows],
        "upkeep_s": [round(t[3], 2) for t in timings if t[3]],
        "samples_files_max": max(t[2] for t in timings),
        "samples_files_last": timings[-1][2],
    }


def _median(rows: list[tuple[float, float, int, float]], at: int) -> float:
    return round(statistics.median(r[at] for r in rows), 3)


def bench_listing(objects: int, prefixes: int) -> dict[str, Any]:
    """One walk against the parallel split, over objects spread across prefixes."""
    import s3fs

    from coresift.listing import list_source
    from coresift.testing.servers import seaweedfs

    folder = Path(tempfile.mkdtemp(prefix="coresift-listing-"))
    try:
        with seaweedfs(folder):
            fs = s3fs.S3FileSystem()
            fs.mkdir("bench")
            keys = [f"bench/p{i % prefixes:04d}/{i:08d}.jpg" for i in range(objects)]
            for start in range(0, objects, 10_000):
                fs.pipe({key: b"x" for key in keys[start : start + 10_000]})
            times = {}
            for name, threads in (("one_walk", 1), ("parallel", 16)):
                start_s = time.perf_counter()
                listed = list_source("s3://bench", threads=threads)
                times[name] = time.perf_counter() - start_s
                assert len(listed) == objects
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "objects": objects,
        "prefixes": prefixes,
        "one_walk_s": round(times["one_walk"], 1),
        "parallel_s": round(times["parallel"], 1),
        "speedup": round(times["one_walk"] / times["parallel"], 2),
    }


def tree_rss(pid: int) -> int:
    """Bytes resident in a process and all its descendants now (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


def bench_memory(counts: list[int]) -> list[dict[str, Any]]:
    """Peak RSS of the whole process tree of `coresift run` (the run and its temporary
    Prefect server) over counts of small JPEGs, and its growth per object."""
    from bench.pipeline import make_images

    results: list[dict[str, Any]] = []
    for count in counts:
        folder = Path(tempfile.mkdtemp(prefix="coresift-memory-"))
        try:
            make_images(folder / "src", count, (256, 192))
            command = [
                str(Path(sys.executable).parent / "coresift"),
                "run",
                "--source",
                str(folder / "src"),
                "--datapool",
                str(folder / "pool"),
                "--n-samples",
                "100",
                "--json",
            ]
            start = time.perf_counter()
            run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            peak = 0
            while run.poll() is None:
                peak = max(peak, tree_rss(run.pid))
                time.sleep(0.2)  # sampling, not waiting for an outcome
            summary = json.loads((run.stdout.read() if run.stdout else b"").splitlines()[-1])
            result: dict[str, Any] = {
                "objects": count,
                "peak_rss_mb": round(peak / 1e6, 1),
                "run_s": round(time.perf_counter() - start, 1),
                "selected": summary["samples_selected"],
            }
            if results:
                before = results[-1]
                grown = (peak / 1e6 - before["peak_rss_mb"]) * 1e6 / (count - before["objects"])
                result["kb_per_object_since_previous"] = round(grown / 1e3, 2)
            results.append(result)
            print(json.dumps(result), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def bench_rerun(objects: int) -> dict[str, Any]:
    """An unchanged rerun over `objects` objects, its bare listing, and a one-object rerun."""
    from coresift.listing import list_source

    folder = Path(tempfile.mkdtemp(prefix="coresift-rerun-"))
    result: dict[str, Any] = {"objects": objects}
    try:
        for count in (1, objects):
            source, pool = folder / f"source-{count}", folder / f"pool-{count}"
            for index in range(count):  # 1,000 files per folder
                path = source / f"{index // 1000:04d}" / f"{index:08d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            listed = float("inf")
            for _ in range(2):  # the faster of two: the first one imports and warms caches
                start = time.perf_counter()
                listing = list_source(str(source))
                listed = min(listed, time.perf_counter() - start)
            _seed_datapool(str(pool), listing.objects)
            start = time.perf_counter()
            command = [
                str(Path(sys.executable).parent / "coresift"),
                "run",
                "--json",
                "--n-samples",
                "10",
            ]
            run = subprocess.run(
                [*command, "--source", str(source), "--datapool", str(pool)],
                capture_output=True,
                text=True,
            )
            if run.returncode:
                raise RuntimeError(f"coresift run failed: {run.stderr[-2000:]}")
            wall = time.perf_counter() - start
            summary = json.loads(run.stdout.splitlines()[-1])
            assert summary["objects_skipped"] == count and not summary["committed"], summary
            result[f"{count}_listing_s"] = round(listed, 2)
            result[f"{count}_flow_s"] = summary["duration_s"]
            result[f"{count}_stages_s"] = summary["stage_seconds"]
            result[f"{count}_command_s"] = round(wall, 2)
            shutil.rmtree(source)
        fixed = result["1_flow_s"]
        result["rerun_vs_listing_plus_fixed"] = round(
            result[f"{objects}_flow_s"] / (result[f"{objects}_listing_s"] + fixed), 2
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _seed_datapool(pool: str, listed: pa.Table) -> None:
    """A datapool that processed every listed object: one sample (8-d) each, 1,000 picks."""
    from coresift import schema
    from coresift.datapool import Datapool, commit_run

    rows = len(listed)
    ids = pa.array([f"{i:012x}" for i in range(rows)])
    objects = listed.select(["uri", "version", "size"])
    objects = objects.append_column("status", pa.repeat("ok", rows))
    objects = objects.append_column("media", pa.repeat("image", rows))
    embeddings = np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32)
    samples = {
        "sample_id": ids,
        "uri": listed.column("uri"),
        "version": listed.column("version"),
        "model": pa.repeat("bench", rows),
        "embedding": pa.FixedSizeListArray.from_arrays(embeddings.ravel(), 8),
    }
    picks = min(rows, 1000)
    tags = {
        "tag": pa.repeat("seed", picks),
        "sample_id": ids[:picks],
        "rank": pa.array(range(picks), pa.int64()),
    }
    datapool = Datapool(pool)
    with datapool.lock("seed"):
        commit_run(
            datapool.tables,
            run_id="seed",
            expected_version=-1,
            rows={
                "objects": schema.conform(objects, schema.OBJECTS),
                "samples": schema.conform(pa.table(samples), schema.SAMPLES),
                "tags": schema.conform(pa.table(tags), schema.TAGS),
            },
            run_row={"tag": "seed", "started_at": "", "summary_json": "{}"},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--samples", type=int, nargs="+", default=[100_000, 1_000_000])
    run.add_argument("--picks", type=int, default=1000)
    upkeep = commands.add_parser("upkeep")
    upkeep.add_argument("--base", type=int, default=20_000)
    upkeep.add_argument("--runs", type=int, default=200)
    upkeep.add_argument("--new", type=int, default=20)
    listing = commands.add_parser("listing")
    listing.add_argument("--objects", type=int, default=100_000)
    listing.add_argument("--prefixes", type=int, default=100)
    memory = commands.add_parser("memory")
    memory.add_argument("--objects", type=int, nargs="+", default=[1000, 8000])
    rerun = commands.add_parser("rerun")
    rerun.add_argument("--objects", type=int, default=1_000_000)
    step = commands.add_parser("step")  # one step of `run`, in its own process
    step.add_argument("step", choices=("shards", "select", "commit"))
    step.add_argument("pool")
    step.add_argument("samples", type=int)
    step.add_argument("picks", type=int)
    args = parser.parse_args()
    if args.command == "run":
        bench_run(args.samples, args.picks)
    elif args.command == "upkeep":
        print(json.dumps(bench_upkeep(args.base, args.runs, args.new)))
    elif args.command == "listing":
        print(json.dumps(bench_listing(args.objects, args.prefixes)))
    elif args.command == "memory":
        bench_memory(args.objects)
    elif args.command == "rerun":
        print(json.dumps(bench_rerun(args.objects)))
    elif args.step == "shards":
        write_shards(args.pool, args.samples)
        print("{}")
    elif args.step == "select":
        print(json.dumps(select_step(args.pool, args.samples, args.picks)))
    else:
        print(json.dumps(commit_step(args.pool, args.samples)))


if __name__ == "__main__":
    main()
