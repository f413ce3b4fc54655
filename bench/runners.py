"""Runners on one machine: threads, 1 and 2 worker processes, Dask and Ray, on the same images.

Run: python -m bench.runners [--images 240] [--width 4000 --height 3000] [--rounds 2]

Each runner runs the whole curate flow into a fresh datapool (with a temporary Prefect
server, as `coresift run` does) over the same phone-camera-size JPEGs. The process stage's
time includes starting the pool or cluster and each worker's model load: what a user waits
for. Runners alternate over the rounds (the machine's speed drifts) and the best round counts;
rates are compared with the threads runner's and with the bare model on all the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=list(RUNNERS), help="runners to measure")
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
        for round_ in range(args.rounds):
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
