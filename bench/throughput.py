"""Throughput of the process stage on real-sized media, against the bare model on the same
total threads, in one run.

Run: python -m bench.throughput [--cores 2] [--scale 1.0]

Datasets: JPEGs of 640x480, 1600x1200 and 4000x3000 (phone-camera size), a mixed set of
those, PNGs, and the bundled real videos plus a 1080p clip, every frame and at fps 1. Each
ratio divides the pipeline's rate by the bare model's on `--cores` threads (the cores the
pipeline uses in all), so a pipeline that leaves a core idle cannot look good. The pipeline
runs with its defaults for that many cores, and both run on a GPU where `device: auto` finds
one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.pipeline import bare_model_rate


def make_media(folder: Path, scale: float) -> dict[str, Path]:
    """The datasets, written once into folder; returns each one's sub-folder."""
    from coresift.testing.media import REAL_CLIPS, distinct_image, encode_video, real_clip

    sets = {
        "jpeg_640x480": ((640, 480), int(200 * scale), "JPEG"),
        "jpeg_1600x1200": ((1600, 1200), int(60 * scale), "JPEG"),
        "jpeg_4000x3000": ((4000, 3000), int(24 * scale), "JPEG"),
        "png_1024x768": ((1024, 768), int(40 * scale), "PNG"),
    }
    paths: dict[str, Path] = {}
    for name, (size, count, kind) in sets.items():
        target = folder / name
        target.mkdir(parents=True)
        for index in range(max(count, 4)):
            picture = distinct_image(index, size)
            suffix = "jpg" if kind == "JPEG" else "png"
            picture.save(target / f"{index:04d}.{suffix}", kind, quality=90)
        paths[name] = target
    mixed = folder / "mixed"
    mixed.mkdir()
    for name in ("jpeg_640x480", "jpeg_1600x1200", "jpeg_4000x3000"):
        for source in sorted(paths[name].iterdir())[: max(4, int(20 * scale))]:
            (mixed / f"{name}-{source.name}").write_bytes(source.read_bytes())
    paths["mixed"] = mixed
    videos = folder / "videos"
    videos.mkdir()
    for clip in REAL_CLIPS:
        (videos / clip).write_bytes(real_clip(clip))
    encode_video(videos / "pan-1080p.mp4", frames=120, size=(1920, 1080), fps=30, gop=60)
    paths["videos"] = videos
    return paths


def process_rate(folder: Path, cores: int, **changes: Any) -> tuple[float, int, float]:
    """(samples per second, samples, bytes_read / bytes_new) of process_objects on a folder."""
    from coresift.config import ProcessingConfig
    from coresift.device import CPU, resolve_device
    from coresift.embedding import load_embedder
    from coresift.listing import list_source
    from coresift.process import process_objects

    processing = ProcessingConfig(**changes)
    device = resolve_device(processing.device, processing.runtime)
    threads, _ = processing.threads_for(cores, device != CPU)
    embedder = load_embedder("efficientnet-lite0", processing.runtime, threads, device)
    refs = list_source(str(folder)).refs()
    start = time.perf_counter()
    result = process_objects(refs, embedder, processing=processing, cores=cores)
    elapsed = time.perf_counter() - start
    samples = len(result.samples)
    return samples / elapsed, samples, result.bytes_read / sum(r.size for r in refs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size factor")
    args = parser.parse_args()
    from coresift.config import FrameSampling
    from coresift.device import resolve_device
    from coresift.embedding import load_embedder

    results: dict[str, Any] = {"cores": args.cores}
    with tempfile.TemporaryDirectory(prefix="coresift-bench-") as tmp:
        paths = make_media(Path(tmp), args.scale)
        inputs = np.random.default_rng(0).normal(size=(256, 3, 224, 224)).astype(np.float32)
        device = resolve_device("auto", "onnx")
        model = load_embedder("efficientnet-lite0", "onnx", args.cores, device)
        before = bare_model_rate(model, inputs, 16)
        runs: dict[str, dict[str, Any]] = {
            name: {} for name in ("jpeg_640x480", "jpeg_1600x1200", "jpeg_4000x3000", "mixed")
        }
        runs["png_1024x768"] = {}
        runs["video_all"] = {"frames": FrameSampling(mode="all")}
        runs["video_fps1"] = {"frames": FrameSampling(mode="fps", fps=1.0)}
        measured = {
            name: process_rate(
                paths["videos" if name.startswith("video") else name], args.cores, **changes
            )
            for name, changes in runs.items()
        }
        # The machine's speed drifts: the bare model is timed before and after, and averaged.
        bare = (before + bare_model_rate(model, inputs, 16)) / 2
        results["bare_model_per_s"] = round(bare, 1)
        for name, (rate, samples, read) in measured.items():
            results[name] = {
                "per_s": round(rate, 1),
                "samples": samples,
                "over_bare": round(rate / bare, 3),
                "bytes_read_over_new": round(read, 4),
            }
            print(f"{name:>16}: {results[name]}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
