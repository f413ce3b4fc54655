"""Where a run's shards run: Prefect's own task runners on threads, processes, Dask or Ray.

`processing.runner` picks the engine. Local pools and clusters get one worker per core (one
per GPU where inference runs on GPUs), and each worker splits its share of the cores between
decoding and inference. Workers load the model once (`load_embedder` is cached per process)
and write their artifacts to the datapool's store, so remote workers need no shared disk.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from coresift.config import ProcessingConfig, is_remote
from coresift.device import CPU, cuda_devices, resolve_device
from coresift.embedding import model_runtime

_SLOT = "CORESIFT_WORKER_SLOT"


def pool_size(processing: ProcessingConfig) -> int:
    """Workers of a local pool: the field, else one per GPU in use, else one per core."""
    if processing.workers:
        return processing.workers
    runtime = model_runtime(processing.model, processing.runtime)
    gpus = 0 if resolve_device(processing.device, runtime) == CPU else cuda_devices()
    return gpus or os.cpu_count() or 1


def parallel_shards(processing: ProcessingConfig) -> int:
    """How many shards run at once: a local pool's workers (a remote cluster's are not
    known here, and threads run one shard at a time)."""
    return pool_size(processing) if processing.local_pool else 1


def worker_cores(processing: ProcessingConfig) -> int:
    """The cores each worker may use: the machine's for threads (one shard at a time), an
    even share in a local pool, one per task slot on a remote cluster."""
    if is_remote(processing.runner):
        return 1
    return max(1, (os.cpu_count() or 1) // parallel_shards(processing))


@contextmanager
def shard_runner(processing: ProcessingConfig) -> Iterator[TaskRunner[Any]]:
    """The started task runner for a run's shards, stopped (its pool or local cluster shut
    down) on leaving."""
    with _api_for_workers(processing.runner), _task_runner(processing) as runner:
        yield runner


@contextmanager
def _api_for_workers(runner: str) -> Iterator[None]:
    """Worker processes report to the run's own Prefect server. Without PREFECT_API_URL a
    run talks to a temporary server it started; naming it keeps each worker from starting
    another one (about 10 s each, and task runs the flow's server never sees)."""
    if runner == "threads" or PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the one this process's client started, if any
    server.start()
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield


def _task_runner(processing: ProcessingConfig) -> TaskRunner[Any]:
    """A fresh (not yet started) task runner for the shards."""
    runner = processing.runner
    if runner == "threads":
        # one shard at a time: a shard keeps every core busy (decode threads + inference)
        return ThreadPoolTaskRunner(max_workers=1)
    size = pool_size(processing)
    if runner == "processes":
        counter = multiprocessing.get_context("spawn").Value("i", 0)
        return ProcessPoolTaskRunner(
            max_workers=size, initializer=_start_worker, initargs=(counter, _own_result_storage())
        )
    if runner.startswith("dask"):
        from prefect_dask.task_runners import DaskTaskRunner

        if runner.startswith("dask://"):
            return DaskTaskRunner(address="tcp://" + runner.removeprefix("dask://"))
        logging.getLogger("distributed").setLevel(logging.WARNING)  # a local cluster's chatter
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": size,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": ":0",
            }
        )
    from prefect_ray.task_runners import RayTaskRunner

    ray: TaskRunner[Any]
    if runner.startswith("ray://"):
        ray = RayTaskRunner(address=runner)
    elif is_remote(runner):  # RAY_ADDRESS names the cluster; ray.init finds it there
        ray = RayTaskRunner()
    else:
        ray = RayTaskRunner(init_kwargs={"num_cpus": size, "include_dashboard": False})
    return ray


def _start_worker(counter: Any, skip_integrations: bool) -> None:
    """A process pool's initializer: number the workers 0, 1, ... in start order, and spare
    each worker Prefect's scan of installed integrations where it finds nothing it needs."""
    with counter.get_lock():
        os.environ[_SLOT] = str(counter.value)
        counter.value += 1
    if skip_integrations:
        _skip_integration_scan()


def _own_result_storage() -> bool:
    """Whether the running flow keeps task results in a storage block of Prefect's own."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    storage = context.result_store.result_storage if context else None
    return storage is not None and type(storage).__module__.startswith("prefect.")


def _skip_integration_scan() -> None:
    """The first time a worker rebuilds the flow's result storage block from its type slug,
    Prefect imports every installed integration (prefect-aws, -gcp, -azure, -dask, -ray,
    -docker) to find the type: about 2.5 s of a 2-core machine per worker and run. With a
    storage type of Prefect's own there is nothing to find; marking the scan as done skips
    it. (Prefect has no setting for this; if its internals move, the scan simply runs.)"""
    try:
        from prefect._internal.plugins import collections
    except ImportError:
        return
    if getattr(collections, "_collections", ()) is None:
        collections._collections = {}


def worker_slot() -> int:
    """This worker's index in its local pool (with several GPUs, worker i takes GPU i)."""
    if _SLOT in os.environ:
        return int(os.environ[_SLOT])
    if "distributed" not in sys.modules:  # not a Dask worker (and no import to find out)
        return 0
    from distributed import get_worker

    try:
        name = get_worker().name
    except ValueError:  # Dask is loaded, but this is not one of its workers
        return 0
    return name if isinstance(name, int) else 0


def worker_name() -> str:
    """The worker process that runs this code, as host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"
