"""Runners on one machine: threads, 1 and 2 worker processes, Dask and Ray, on the same images.

Run: python -m bench.runners [--images 240] [--width 4000 --height 3000] [--rounds 2]

Each runner runs the whole curate flow into a fresh datapool (with a temporary Prefect
server, as `coresift run` does) over the same phone-camera-size JPEGs. The process stage's
time includes starting the pool or cluster and each worker's model load: what a user waits
for. Runners alternate over the rounds (the machine's speed drifts) and the best round counts;
rates are compared with the threads runner's and with the bare model on all the cores.

`--split` also measures the library alone (no Prefect, no start-up: warmed-up processes,
timed together) on the same images, in one process with all the cores and in one process per
core: what the runners would reach without their fixed costs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.pipeline import bare_model_rate, make_images

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# a fresh Prefect home's database takes longer than the default 20 s on a busy 2-core machine
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

# name: processing fields
RUNNERS: dict[str, dict[str, Any]] = {
    "threads": {"runner": "threads"},
    "processes, 1 worker": {"runner": "processes", "workers": 1},
    "processes, 2 workers": {"runner": "processes", "workers": 2},
    "processes, 2 workers, shard_size 64": {"runner": "processes", "workers": 2, "shard_size": 64},
    "dask, 2 workers": {"runner": "dask", "workers": 2},
    "ray, 2 workers": {"runner": "ray", "workers": 2},
    "processes, 2 workers, 2 decoders each": {
        "runner": "processes",
        "workers": 2,
        "decode_workers": 2,
    },
    "processes, 2 workers, all cores each": {
        "runner": "processes",
        "workers": 2,
        "threads": 2,
        "decode_workers": 2,
    },
}


def process_seconds(folder: Path, pool: Path, processing: dict[str, Any]) -> tuple[float, int]:
    """(seconds of the process stage, distinct workers) of one flow run into a new datapool."""
    from coresift.config import build_config
    from flows.curate import curate

    config = build_config(
        {
            "source": {"url": str(folder)},
            "datapool": {"url": str(pool)},
            "selection": {"n_samples": 10},
            "processing": processing,
        }
    )
    summary = curate(config)
    return summary.stage_seconds["process"], summary.workers


def split_rate(folder: Path, processes: int) -> float:
    """Images per second of the library alone, the cores split among `processes` spawned
    processes that each take every n-th image, in shards of 64, after a warm-up."""
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(processes, timeout=600), context.Queue()
    cores = max(1, (os.cpu_count() or 1) // processes)
    workers = [
        context.Process(target=_split_part, args=(folder, part, processes, cores, ready, results))
        for part in range(processes)
    ]
    for worker in workers:
        worker.start()
    parts: list[tuple[int, float]] = [results.get(timeout=3600) for _ in workers]
    for worker in workers:
        worker.join()
    return sum(count for count, _ in parts) / max(seconds for _, seconds in parts)


def _split_part(folder: Path, part: int, parts: int, cores: int, ready: Any, results: Any) -> None:
    """One process of split_rate: (images, seconds) of its share, onto results."""
    from coresift.config import ProcessingConfig
    from coresift.embedding import load_embedder
    from coresift.listing import list_source
    from coresift.process import process_objects

    refs = sorted(list_source(str(folder)).refs(), key=lambda ref: ref.uri)[part::parts]
    processing = ProcessingConfig()
    threads, _ = processing.threads_for(cores, gpu=False)
    embedder = load_embedder(processing.model, processing.runtime, threads, "cpu")
    process_objects(refs[:8], embedder, processing=processing, cores=cores)  # warm-up
    ready.wait()
    start = time.perf_counter()
    size = processing.objects_per_shard()
    for begin in range(0, len(refs), size):
        process_objects(refs[begin : begin + size], embedder, processing=processing, cores=cores)
    results.put((len(refs), time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=list(RUNNERS), help="runners to measure")
    parser.add_argument("--split", action="store_true", help="also the library alone, split")
    args = parser.parse_args()
    from coresift.device import resolve_device
    from coresift.embedding import load_embedder

    cores = os.cpu_count() or 1
    runners = {name: RUNNERS[name] for name in args.only or RUNNERS}
    with tempfile.TemporaryDirectory(prefix="coresift-bench-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("PREFECT_HOME", str(work / "prefect-home"))
        folder = work / "images"
        make_images(folder, args.images, (args.width, args.height))
        inputs = np.random.default_rng(0).normal(size=(256, 3, 224, 224)).astype(np.float32)
        model = load_embedder("efficientnet-lite0", "onnx", cores, resolve_device("auto", "onnx"))
        bare = bare_model_rate(model, inputs, 16)
        best: dict[str, tuple[float, int]] = {}
        split: dict[int, float] = {}
        for round_ in range(args.rounds):
            for processes in sorted({1, cores}) if args.split else ():
                rate = split_rate(folder, processes)
                print(f"round {round_}: library, {processes} process(es): {rate:.1f} img/s")
                split[processes] = max(rate, split.get(processes, 0.0))
            for index, (name, processing) in enumerate(runners.items()):
                pool = work / f"pool-{round_}-{index}"
                seconds, workers = process_seconds(folder, pool, processing)
                print(f"round {round_}: {name}: {seconds:.2f} s, {workers} workers", flush=True)
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, workers)
    threads = best.get("threads", (float("nan"), 0))[0]
    results: dict[str, Any] = {
        "images": f"{args.images} JPEGs of {args.width}x{args.height}",
        "cores": cores,
        "bare_model_img_per_s": round(bare, 1),
    }
    if split:
        results["library_img_per_s"] = {f"{n} process(es)": round(r, 1) for n, r in split.items()}
    for name, (seconds, workers) in best.items():
        rate = args.images / seconds
        results[name] = {
            "process_s": round(seconds, 2),
            "img_per_s": round(rate, 1),
            "over_threads": round(threads / seconds, 3),
            "over_bare_model": round(rate / bare, 3),
            "workers": workers,
        }
        print(f"{name:>22}: {results[name]}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
