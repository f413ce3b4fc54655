"""Which device runs inference: `processing.device` checked against what this machine has.

A GPU is usable when the machine has one and the runtime can reach it: onnxruntime needs its
CUDA provider (the `gpu` extra installs onnxruntime-gpu), torch a CUDA build. Asking for one
that is not there is a config error, raised before any work. Nothing here imports torch
unless the model runs on torch anyway.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from coresift.errors import ConfigError

CPU = "cpu"
_NVIDIA_DEVICE = re.compile(r"nvidia\d+")


def gpu_index(device: str) -> int:
    """The GPU number of a resolved device ('cuda:N')."""
    return int(device.partition(":")[2] or 0)


def cuda_devices() -> int:
    """How many CUDA GPUs this process may use: the driver's device files, narrowed by
    CUDA_VISIBLE_DEVICES where a scheduler (Ray, a job system) sets it. Cheap: no torch."""
    present = sum(1 for path in Path("/dev").glob("nvidia*") if _NVIDIA_DEVICE.fullmatch(path.name))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return present
    return min(present, len([d for d in visible.split(",") if d.strip() not in ("", "-1")]))


def _onnx_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _unusable(runtime: str) -> str | None:
    """Why this machine cannot run `runtime` on a GPU, or None where it can."""
    if runtime == "onnx" and "CUDAExecutionProvider" not in _onnx_providers():
        return (
            "onnxruntime has no CUDA provider here (install the gpu extra: "
            "pip install 'coresift[gpu]')"
        )
    if runtime == "torch":
        import torch

        if torch.version.cuda is None:
            return "this torch is a CPU build"
    return None


def resolve_device(asked: str, runtime: str, slot: int = 0) -> str:
    """The device a worker uses on this machine: 'cpu' or 'cuda:N' (see choose_device).

    Raises:
        ConfigError: a GPU was asked for that this machine or runtime cannot use.
    """
    if asked == CPU:
        return CPU
    count = cuda_devices()
    return choose_device(asked, count, _unusable(runtime) if count else None, slot)


def choose_device(asked: str, gpus: int, unusable: str | None, slot: int = 0) -> str:
    """The device for `processing.device` on a machine with `gpus` GPUs.

    Args:
        asked: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        unusable: why the runtime cannot reach the GPUs (None: it can).
        slot: the worker's index in its pool; with several GPUs, 'auto' and 'cuda' give
            worker i the GPU i modulo their count.

    Raises:
        ConfigError: a GPU was asked for that this machine or runtime cannot use.
    """
    why = "this machine has no CUDA GPU" if gpus == 0 else unusable
    if asked == CPU or (asked == "auto" and why):
        return CPU
    index = int(asked.partition(":")[2] or slot % max(gpus, 1))
    if why is None and index >= gpus:
        why = f"this machine has {gpus} CUDA GPU{'s' if gpus > 1 else ''} (cuda:0..{gpus - 1})"
    if why:
        raise ConfigError(f"processing.device: {asked!r} cannot be used: {why}")
    return f"cuda:{index}"
