"""The inference device and a worker's share of the cores, checked on this (CPU) machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from coresift.config import ProcessingConfig, build_config
from coresift.device import CPU, choose_device, cuda_devices, resolve_device
from coresift.embedding import load_embedder
from coresift.errors import ConfigError
from coresift.testing.media import write_images
from tests.helpers import config_values, run


@pytest.mark.parametrize(
    ("asked", "gpus", "unusable", "slot", "device"),
    [
        ("cpu", 2, None, 0, "cpu"),
        ("auto", 0, None, 0, "cpu"),
        ("auto", 2, "no CUDA provider", 1, "cpu"),
        ("auto", 1, None, 0, "cuda:0"),
        ("auto", 2, None, 3, "cuda:1"),  # one worker per GPU: worker i takes GPU i mod 2
        ("cuda", 4, None, 2, "cuda:2"),
        ("cuda:1", 2, None, 0, "cuda:1"),
    ],
)
def test_the_device_follows_the_machine_and_the_workers_slot(
    asked: str, gpus: int, unusable: str | None, slot: int, device: str
) -> None:
    assert choose_device(asked, gpus, unusable, slot) == device


@pytest.mark.parametrize(
    ("asked", "gpus", "unusable", "message"),
    [
        ("cuda", 0, None, "'cuda' cannot be used: this machine has no CUDA GPU"),
        ("cuda:2", 2, None, "'cuda:2' cannot be used: this machine has 2 CUDA GPUs (cuda:0..1)"),
        ("cuda", 1, "this torch is a CPU build", "'cuda' cannot be used: this torch is a CPU"),
    ],
)
def test_a_gpu_that_cannot_be_used_is_a_config_error_naming_the_field(
    asked: str, gpus: int, unusable: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        choose_device(asked, gpus, unusable)
    assert str(raised.value).startswith(f"processing.device: {message}")


def test_this_machine_runs_on_what_it_has() -> None:
    gpus = cuda_devices()
    assert resolve_device("cpu", "onnx") == CPU
    assert load_embedder("efficientnet-lite0").device == CPU
    if gpus == 0:  # CI's machines: the CPU, and a clear error for a GPU
        assert resolve_device("auto", "onnx") == CPU
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda", "torch")
    else:
        assert resolve_device("auto", "torch").startswith("cuda:")


def test_a_worker_splits_its_cores_and_a_gpu_needs_one_feeding_thread() -> None:
    default = ProcessingConfig()
    assert default.threads_for(2, gpu=False) == (2, 2)
    assert default.threads_for(1, gpu=False) == (1, 1)
    assert default.threads_for(8, gpu=True) == (1, 8)
    assert (default.batch_for(gpu=False), default.batch_for(gpu=True)) == (16, 64)
    fixed = ProcessingConfig(threads=3, decode_workers=5, batch_size=7)
    assert (fixed.threads_for(8, gpu=True), fixed.batch_for(gpu=True)) == ((3, 5), 7)


def test_local_pools_take_bigger_shards_unless_the_field_says() -> None:
    assert ProcessingConfig().objects_per_shard() == 64
    assert ProcessingConfig(runner="processes").objects_per_shard() == 256
    assert ProcessingConfig(runner="dask://h:8786").objects_per_shard() == 64
    assert ProcessingConfig(runner="dask", shard_size=10).objects_per_shard() == 10


@pytest.mark.parametrize(
    ("field", "value"),
    [("runner", "dask://no-port"), ("runner", "spark"), ("device", "gpu"), ("device", "cuda:x")],
)
def test_a_bad_runner_or_device_is_named(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"processing.{field}: String should match pattern"):
        build_config(config_values("/tmp", "/tmp/pool", n_samples=1, **{field: value}))


@pytest.mark.skipif(cuda_devices() > 0, reason="this machine has a GPU to run on")
def test_asking_for_a_gpu_where_there_is_none_fails_before_any_work(workdir: Path) -> None:
    write_images(workdir / "images", 0, 2)
    result = run(
        "coresift",
        *("run", "--source", str(workdir / "images"), "--datapool", str(workdir / "pool")),
        *("--n-samples", "1", "--device", "cuda"),
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        "coresift: error: processing.device: 'cuda' cannot be used: this machine has no CUDA GPU"
    ]
    assert not (workdir / "pool").exists()
