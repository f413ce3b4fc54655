"""Storage faults between coresift and S3: retried where they happen, never losing a run.

A fault-injecting proxy of our own (`coresift.testing.faults`) sits in front of the S3 server
and fails about one request in five: 500, 503 SlowDown, 429, connection resets, stalls and
short bodies. Source and datapool both go through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pytest

from coresift.config import build_config
from coresift.datapool import Datapool
from coresift.testing.faults import FAULTS, fault_proxy
from coresift.testing.media import real_clip, write_images
from tests.helpers import config_values

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def _state(pool: Datapool) -> dict[str, Any]:
    """What a run left: objects, samples and picks, without run ids and timings."""
    objects = pool.objects()
    samples = pool.samples(["sample_id", "uri", "content_hash", "sharpness", "embedding"])
    tags = pool.tags().sort_by("rank")
    return {
        "objects": sorted((uri, s.version, s.status) for uri, s in objects.items()),
        "samples": samples.drop_columns(["embedding"]).to_pylist(),
        "embeddings": samples.column("embedding").to_pylist(),
        "picks": list(zip(tags["tag"].to_pylist(), tags["sample_id"].to_pylist(), strict=True)),
    }


def test_a_run_through_a_faulty_network_equals_a_clean_run(
    s3_server: str, s3_bucket: str, workdir: Path
) -> None:
    from flows.curate import curate

    folder = workdir / "photos"
    write_images(folder, 0, 40)
    fs = fsspec.filesystem("s3")
    fs.put(str(folder), f"{s3_bucket}/src", recursive=True)
    fs.pipe_file(f"{s3_bucket}/src/sub/bikes.mp4", real_clip("bikes.mp4"))  # read in blocks
    source = f"s3://{s3_bucket}/src"

    def run(pool: str, endpoint: str) -> Any:
        values = config_values(source, pool, n_samples=8, shard_size=8, tag="t")
        values["source"]["storage_options"] = {"endpoint_url": endpoint}
        values["datapool"]["storage_options"] = {"endpoint_url": endpoint}
        return curate(build_config(values)), Datapool(pool, {"endpoint_url": s3_server})

    clean, clean_pool = run(f"s3://{s3_bucket}/clean-pool", s3_server)
    with fault_proxy(s3_server, rate=0.2, stall_s=2.0) as (proxy, stats):
        faulty, faulty_pool = run(f"s3://{s3_bucket}/faulty-pool", proxy)
    print(f"\nproxy: {stats.requests} requests, faults {dict(stats.faults)}")
    assert set(stats.faults) == set(FAULTS), "every kind of fault happened"
    assert sum(stats.faults.values()) >= 0.1 * stats.requests
    assert _state(faulty_pool) == _state(clean_pool)
    assert (faulty.samples_selected, faulty.samples_processed) == (8, clean.samples_processed)
    assert faulty.bytes_read >= faulty.bytes_new == clean.bytes_new
