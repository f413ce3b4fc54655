"""Shards beyond one process: a process pool, Dask (a local cluster, and a scheduler with two
worker processes on loopback, one of them killed mid-run) and Ray (a local instance, and a
head that RAY_ADDRESS names). Each run leaves the datapool a threads run leaves."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coresift.datapool import Datapool
from coresift.summary import RunSummary
from coresift.testing import servers
from coresift.testing.media import real_clip, write_images
from tests.helpers import curate_once

pytestmark = pytest.mark.slow

# Enough shards that every worker of a pair gets some, whichever starts first.
_SHARD_SIZE = 4
_RUN = {"n_samples": 8, "shard_size": _SHARD_SIZE}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 photos and a real clip: 13 shards."""
    folder = tmp_path_factory.mktemp("runners") / "media"
    write_images(folder, 0, 48)
    (folder / "bikes.mp4").write_bytes(real_clip("bikes.mp4"))
    return folder


def _state(pool: Path) -> dict[str, Any]:
    """What a run leaves in the datapool, embeddings apart (compared within a tolerance)."""
    datapool = Datapool(str(pool))
    samples = datapool.samples().sort_by("sample_id")
    tags = datapool.tags().sort_by("rank")
    return {
        "objects": sorted((u, s.version, s.status) for u, s in datapool.objects().items()),
        "samples": samples.drop_columns(["embedding"]).to_pylist(),
        "embeddings": np.stack(samples.column("embedding").to_numpy(zero_copy_only=False)),
        "picks": tags["sample_id"].to_pylist(),
    }


def _assert_same(pool: Path, reference: dict[str, Any]) -> None:
    state = _state(pool)
    embeddings = state.pop("embeddings")
    expected = dict(reference)
    np.testing.assert_allclose(embeddings, expected.pop("embeddings"), atol=1e-4)
    assert state == expected


def _run_on(runner: str, source: Path, pool: Path, tag: str = "t") -> RunSummary:
    return curate_once(str(source), str(pool), runner=runner, tag=tag, **_RUN)


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Any:
    pool = tmp_path_factory.mktemp("threads") / "pool"
    summary = _run_on("threads", source, pool)
    assert summary.workers == 1
    return _state(pool)


@pytest.mark.parametrize("runner", ["processes", "dask", "ray"])
def test_a_local_pool_of_two_workers_leaves_the_threads_datapool(
    runner: str, source: Path, reference: dict[str, Any], workdir: Path
) -> None:
    summary = _run_on(runner, source, workdir / "pool")
    assert (summary.workers, summary.samples_selected) == (2, 8)
    _assert_same(workdir / "pool", reference)
    again = _run_on(runner, source, workdir / "pool", tag="again")
    assert (again.objects_skipped, again.workers, again.committed) == (49, 0, False)


def test_a_running_dask_scheduler_with_two_workers(
    source: Path, reference: dict[str, Any], workdir: Path
) -> None:
    with servers.dask_cluster(workdir) as cluster:
        summary = _run_on(f"dask://{cluster.address}", source, workdir / "pool")
    assert summary.workers == 2
    _assert_same(workdir / "pool", reference)


def test_a_ray_head_named_by_ray_address(
    source: Path, reference: dict[str, Any], workdir: Path
) -> None:
    with servers.ray_head(workdir):
        summary = _run_on("ray", source, workdir / "pool")
    assert summary.workers == 2
    _assert_same(workdir / "pool", reference)


def _shards_done(pool: Path) -> int:
    return sum(1 for _ in (pool / "_work").rglob("*-samples*"))


def test_a_dask_worker_killed_mid_run_loses_nothing(
    source: Path, reference: dict[str, Any], workdir: Path
) -> None:
    """SIGKILL one of two workers once the first shard is written: the scheduler moves its
    shards to the other, and the run commits what an undisturbed run commits."""
    pool = workdir / "pool"
    with servers.dask_cluster(workdir) as cluster:
        result: dict[str, RunSummary | BaseException] = {}

        def run() -> None:
            try:
                result["summary"] = _run_on(f"dask://{cluster.address}", source, pool)
            except BaseException as error:
                result["summary"] = error

        thread = threading.Thread(target=run)
        thread.start()
        victim = cluster.workers[0]
        servers.wait_until(
            lambda: _shards_done(pool) >= 1 or "summary" in result,
            "the first shard",
            timeout=300,
            interval=0.02,
        )
        assert "summary" not in result, "the run ended before a worker could be killed"
        os.kill(victim.pid, signal.SIGKILL)
        thread.join(timeout=600)
        assert victim.wait(timeout=10) == -signal.SIGKILL
    summary = result["summary"]
    assert isinstance(summary, RunSummary), summary
    assert summary.samples_selected == 8
    _assert_same(pool, reference)
