"""Throughput and bytes_read / bytes_new per storage backend, on local servers.

Run: python -m bench.backends [--images 150]   (needs `npm install` for Azurite)

The same images are processed from a local folder, S3 (SeaweedFS), GCS (fake-gcs-server) and
Azure Blob (Azurite); each rate is shown next to the bare model's in the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import fsspec
import numpy as np

from bench.pipeline import bare_model_rate, make_images


def _upload(folder: Path, url: str) -> None:
    fs, root = fsspec.core.url_to_fs(url)
    fs.mkdir(root.split("/", 1)[0], exist_ok=True)
    for path in sorted(folder.iterdir()):
        fs.pipe_file(f"{root}/{path.name}", path.read_bytes())


def measure(url: str, args: argparse.Namespace, bare: float) -> dict[str, float]:
    from coresift.config import ProcessingConfig
    from coresift.embedding import load_embedder
    from coresift.listing import list_source
    from coresift.process import process_objects

    embedder = load_embedder("efficientnet-lite0", "onnx", args.threads)
    refs = list_source(url).refs()
    processing = ProcessingConfig(threads=args.threads, decode_workers=args.decode_workers)
    start = time.perf_counter()
    result = process_objects(refs, embedder, processing=processing)
    rate = len(refs) / (time.perf_counter() - start)
    return {
        "img_per_s": round(rate, 1),
        "over_bare": round(rate / bare, 3),
        "bytes_read_over_bytes_new": round(result.bytes_read / sum(r.size for r in refs), 4),
    }


def main() -> None:
    from coresift.testing import servers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decode-workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coresift-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        folder = work / "images"
        make_images(folder, args.images, (640, 480))
        from coresift.embedding import load_embedder

        embedder = load_embedder("efficientnet-lite0", "onnx", args.threads)
        inputs = np.random.default_rng(0).normal(size=(128, 3, 224, 224)).astype(np.float32)
        bare = bare_model_rate(embedder, inputs, 16)
        backends: dict[str, Callable[[], str]] = {
            "local": lambda: str(folder),
            "s3": lambda: (stack.enter_context(servers.seaweedfs(work)), "s3://bench/images")[1],
            "gcs": lambda: (stack.enter_context(servers.fake_gcs(work)), "gs://bench/images")[1],
            "azure": lambda: (stack.enter_context(servers.azurite(work)), "az://bench/images")[1],
        }
        results: dict[str, Any] = {"images": args.images, "bare_model_img_per_s": round(bare, 1)}
        for name, start in backends.items():
            url = start()
            if name != "local":
                _upload(folder, url)
            results[name] = measure(url, args, bare)
            print(f"{name:>6}: {results[name]}")
        print(json.dumps(results))


if __name__ == "__main__":
    main()
