"""Per-image metrics that users filter and sort on, computed from the decoded pixels.

Every metric but width and height is measured on the picture reduced (area-averaged) to
METRICS_SIZE px on its longer side, or as it is when smaller, so a photo and its rescaled
copies get the same values, and a 12 MP photo costs what a 0.07 MP one does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

# ITU-R BT.601 luma weights, the usual definition of luminance for 8-bit RGB.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_LEVELS = np.arange(256, dtype=np.float64)


METRICS_SIZE = 256
# detail is measured on a DETAIL_GRID x DETAIL_GRID grid of block means: coarse enough that
# pixel noise averages away, fine enough to keep the layout of any real scene.
DETAIL_GRID = 32


def image_metrics(
    image: Image.Image, width: int | None = None, height: int | None = None
) -> dict[str, Any]:
    """Width, height, per-channel mean/std, luminance, contrast, sharpness, snr, uniform rows,
    detail.

    Args:
        image: the picture (any size: it is reduced to METRICS_SIZE first).
        width, height: the original's size, when `image` is a reduced version of it.

    sharpness is the variance of the 4-neighbour Laplacian of the luminance at METRICS_SIZE;
    snr is mean over std of the luminance (None for a perfectly flat picture);
    uniform_row_ratio is the share of rows whose pixels are all equal, typical of truncated
    uploads padded with grey; detail is the std of the luminance averaged over a 32 x 32 grid
    of blocks (large-scale structure: 0 for a blank picture, near 0 for sensor noise on a lens
    cap, tens for any real scene).
    """
    rgb = np.asarray(_reduced(image).convert("RGB"))
    mean, std = zip(*(_histogram_moments(rgb[..., c]) for c in range(3)), strict=True)
    luma: NDArray[np.float32] = rgb.astype(np.float32) @ _LUMA
    luminance = float(luma.mean(dtype=np.float64))
    contrast = float(luma.std(dtype=np.float64))
    return {
        "width": image.width if width is None else width,
        "height": image.height if height is None else height,
        "mean": list(mean),
        "std": list(std),
        "luminance": luminance,
        "contrast": contrast,
        "sharpness": _laplacian_variance(luma),
        "snr": luminance / contrast if contrast > 0 else None,
        "uniform_row_ratio": float(np.mean(luma.max(axis=1) == luma.min(axis=1))),
        "detail": _detail(luma),
    }


def _reduced(image: Image.Image) -> Image.Image:
    """The picture area-averaged to METRICS_SIZE px on its longer side (never enlarged)."""
    scale = METRICS_SIZE / max(image.width, image.height)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _histogram_moments(channel: NDArray[np.uint8]) -> tuple[float, float]:
    """Exact mean and std of 8-bit values from their histogram (far cheaper than float math)."""
    counts = np.bincount(channel.ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    mean = float(counts @ _LEVELS / total)
    variance = float(counts @ (_LEVELS - mean) ** 2 / total)
    return mean, variance**0.5


def _laplacian_variance(luma: NDArray[np.float32]) -> float:
    if luma.shape[0] < 3 or luma.shape[1] < 3:
        return 0.0
    laplacian = luma[:-2, 1:-1] + luma[2:, 1:-1]
    laplacian += luma[1:-1, :-2]
    laplacian += luma[1:-1, 2:]
    laplacian -= 4 * luma[1:-1, 1:-1]
    return float(laplacian.var(dtype=np.float64))


def _detail(luma: NDArray[np.float32]) -> float:
    """Std of block means over a grid of at most DETAIL_GRID x DETAIL_GRID blocks, less what
    pixel noise alone would give (the within-block variance over the block's pixel count)."""
    height, width = luma.shape
    rows, columns = max(1, height // DETAIL_GRID), max(1, width // DETAIL_GRID)
    grid_h, grid_w = height // rows, width // columns
    cropped = luma[: grid_h * rows, : grid_w * columns].astype(np.float64)
    pixels = rows * columns

    def block_means(values: NDArray[np.float64]) -> NDArray[np.float64]:
        sums = (
            values.reshape(grid_h * rows, grid_w, columns)
            .sum(axis=2)
            .reshape(grid_h, rows, grid_w)
            .sum(axis=1)
        )
        result: NDArray[np.float64] = sums / pixels
        return result

    means = block_means(cropped)
    within = block_means(cropped * cropped) - means * means  # each block's pixel variance
    noise = within.mean() / pixels
    return float(max(means.var() - noise, 0.0) ** 0.5)
