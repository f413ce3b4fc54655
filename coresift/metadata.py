"""Per-image metrics that users filter and sort on, computed from the decoded pixels."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

# ITU-R BT.601 luma weights, the usual definition of luminance for 8-bit RGB.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def image_metrics(image: Image.Image) -> dict[str, Any]:
    """Width, height, per-channel mean/std, luminance, contrast, sharpness, snr, uniform rows.

    sharpness is the variance of the 4-neighbour Laplacian of the luminance; snr is mean over
    std of the luminance (None for a perfectly flat picture); uniform_row_ratio is the share
    of rows whose pixels are all equal, typical of truncated uploads padded with grey.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    luma: NDArray[np.float32] = rgb @ _LUMA
    # Channel-first and contiguous: reducing along a strided axis is about 20x slower.
    channels = np.ascontiguousarray(rgb.transpose(2, 0, 1)).reshape(3, -1)
    mean = channels.mean(axis=1, dtype=np.float64)
    std = channels.std(axis=1, dtype=np.float64)
    luminance = float(luma.mean())
    contrast = float(luma.std())
    return {
        "width": image.width,
        "height": image.height,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "luminance": luminance,
        "contrast": contrast,
        "sharpness": _laplacian_variance(luma),
        "snr": luminance / contrast if contrast > 0 else None,
        "uniform_row_ratio": float(np.mean(np.ptp(luma, axis=1) == 0)),
    }


def _laplacian_variance(luma: NDArray[np.float32]) -> float:
    if luma.shape[0] < 3 or luma.shape[1] < 3:
        return 0.0
    laplacian = (
        luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1]
    )
    return float(laplacian.var())
