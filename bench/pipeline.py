"""Pipeline throughput, single-pass reads and rerun cost, as ratios (selection: bench.selection).

Run: python -m bench.pipeline [--images 300] [--threads 2] [--runtime onnx]

Every number is measured in this run on this machine; the ratios compare against a baseline
from the same run (the bare model, a bare listing), since shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from coresift.config import ProcessingConfig

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def make_images(folder: Path, count: int, size: tuple[int, int]) -> int:
    """count distinct JPEGs of the given size, cropped from the bundled real photos, made on
    every core (a 12 MP one takes 0.3 s); their total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor() as pool:
        return sum(pool.map(_make_image, [(folder, index, size) for index in range(count)]))


def _make_image(job: tuple[Path, int, tuple[int, int]]) -> int:
    from coresift.testing.media import distinct_image, jpeg_bytes

    folder, index, size = job
    data = jpeg_bytes(distinct_image(index, size))
    (folder / f"img-{index:05d}.jpg").write_bytes(data)
    return len(data)


def bare_model_rate(embedder: Any, inputs: NDArray[Any], batch_size: int) -> float:
    """Images per second of the model alone on already-preprocessed inputs."""
    embedder.embed(inputs[:batch_size])  # warm-up
    start = time.perf_counter()
    for begin in range(0, len(inputs), batch_size):
        embedder.embed(inputs[begin : begin + batch_size])
    return len(inputs) / (time.perf_counter() - start)


def _processing(args: argparse.Namespace) -> ProcessingConfig:
    """The processing settings the benchmark's flags choose."""
    from coresift.config import ProcessingConfig

    return ProcessingConfig(
        runtime=args.runtime,
        threads=args.threads,
        decode_workers=args.decode_workers,
        batch_size=args.batch_size,
    )


def pipeline_rate(args: argparse.Namespace, folder: Path) -> dict[str, float]:
    from PIL import Image

    from coresift.embedding import load_embedder
    from coresift.listing import list_source
    from coresift.process import process_objects

    embedder = load_embedder("efficientnet-lite0", args.runtime, args.threads)
    refs = list_source(str(folder)).refs()
    inputs = np.stack([embedder.preprocess(Image.open(ref.uri)) for ref in refs])
    bare = bare_model_rate(embedder, inputs, args.batch_size)
    with_thumbnails = _processing(args)
    without = with_thumbnails.model_copy(update={"thumbnails": False})
    rates: dict[bool, list[float]] = {True: [], False: []}
    for processing in (without, with_thumbnails, without, with_thumbnails):  # alternate: drift
        start = time.perf_counter()
        result = process_objects(refs, embedder, processing=processing)
        rates[processing.thumbnails].append(len(refs) / (time.perf_counter() - start))
    pipeline, plain = max(rates[True]), max(rates[False])
    sizes = [len(b) for b in result.thumbnails.column("thumbnail").to_pylist()]
    return {
        "bare_model_img_per_s": round(bare, 1),
        "pipeline_img_per_s": round(pipeline, 1),
        "pipeline_over_bare": round(pipeline / bare, 3),
        "pipeline_without_thumbnails_img_per_s": round(plain, 1),
        "thumbnail_time_share": round(1 - pipeline / plain, 3),
        "thumbnail_kb_mean": round(float(np.mean(sizes)) / 1024, 2),
        "shard_bytes_read_over_bytes_new": round(result.bytes_read / sum(r.size for r in refs), 4),
    }


def video_rate(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Frames per second of the pipeline on the bundled real clips, every frame sampled."""
    from coresift.config import FrameSampling
    from coresift.embedding import load_embedder
    from coresift.listing import list_source
    from coresift.process import process_objects
    from coresift.testing.media import REAL_CLIPS, real_clip

    folder = work / "videos"
    folder.mkdir()
    for name in REAL_CLIPS:
        (folder / name).write_bytes(real_clip(name))
    embedder = load_embedder("efficientnet-lite0", args.runtime, args.threads)
    refs = list_source(str(folder)).refs()
    inputs = np.random.default_rng(0).normal(size=(256, 3, 224, 224)).astype(np.float32)
    bare = bare_model_rate(embedder, inputs, args.batch_size)
    start = time.perf_counter()
    processing = _processing(args).model_copy(update={"frames": FrameSampling(mode="all")})
    result = process_objects(refs, embedder, processing=processing)
    rate = len(result.samples) / (time.perf_counter() - start)
    return {
        "video_frames": len(result.samples),
        "video_pipeline_frames_per_s": round(rate, 1),
        "video_pipeline_over_bare": round(rate / bare, 3),
        "video_bytes_read_over_bytes_new": round(result.bytes_read / sum(r.size for r in refs), 4),
    }


def flow_runs(args: argparse.Namespace, folder: Path, work: Path) -> dict[str, float]:
    """Whole-flow numbers: bytes ratio of a first run, cost of an unchanged rerun."""
    from coresift.config import build_config
    from coresift.listing import list_source
    from flows.curate import curate

    def run(source: Path, pool: Path) -> tuple[Any, float]:
        config = build_config(
            {
                "source": {"url": str(source)},
                "datapool": {"url": str(pool)},
                "selection": {"n_samples": 10},
                "processing": _processing(args).model_dump(),
            }
        )
        start = time.perf_counter()
        summary = curate(config)
        return summary, time.perf_counter() - start

    empty = work / "empty"
    empty.mkdir()
    run(empty, work / "warm-up-pool")  # starts the Prefect API once, outside the timings
    _, fixed = run(empty, work / "empty-pool")
    first, first_wall = run(folder, work / "pool")
    start = time.perf_counter()
    list_source(str(folder))
    listing = time.perf_counter() - start
    rerun, rerun_wall = run(folder, work / "pool")
    return {
        "flow_first_run_s": round(first_wall, 2),
        "flow_img_per_s": round(first.objects_new / first_wall, 1),
        "flow_bytes_read_over_bytes_new": round(first.bytes_read / first.bytes_new, 4),
        "rerun_bytes_read": rerun.bytes_read,
        "rerun_s": round(rerun_wall, 3),
        "bare_listing_s": round(listing, 3),
        "flow_fixed_startup_s": round(fixed, 3),
        "rerun_over_listing_plus_startup": round(rerun_wall / (listing + fixed), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--decode-workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--skip-flow", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="coresift-bench-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("PREFECT_HOME", str(work / "prefect-home"))
        folder = work / "images"
        make_images(folder, args.images, (args.width, args.height))
        results: dict[str, Any] = {
            "images": args.images,
            "size": f"{args.width}x{args.height}",
            "runtime": args.runtime,
            "threads": args.threads,
            "decode_workers": args.decode_workers,
            "batch_size": args.batch_size,
        }
        results.update(pipeline_rate(args, folder))
        results.update(video_rate(args, work))
        if not args.skip_flow:
            results.update(flow_runs(args, folder, work))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:>{width}}  {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
