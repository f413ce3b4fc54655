"""The junk guard: pictures with (almost) nothing in them are never picked.

Farthest-first selection loves outliers, and a blank frame is far from every real photo. A
picture is low-information when its shape is degenerate (a side under MIN_SIDE pixels, or
one side more than MAX_ASPECT times the other: the 161x1 and 1600x100 strips found among real
photos) or when its `detail` (see `coresift.metadata`) is under MIN_DETAIL. On the bundled
real photos darkened to night (x0.12), fogged (x0.25 over white) or snowed, detail stays at
1.37 or more; blank, single-colour, black and white pictures have 0, and dark sensor noise
(sigma 3 to 20, 160x120 to 4000x3000 pixels) at most 0.5.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

MIN_SIDE = 16
MAX_ASPECT = 10.0
MIN_DETAIL = 1.0


def low_information(width: int | None, height: int | None, detail: float | None) -> str | None:
    """Why a picture is low-information, or None when it is not (or was not measured)."""
    if width and height:
        if min(width, height) < MIN_SIDE:
            return f"degenerate shape {width}x{height} (a side under {MIN_SIDE} px)"
        if max(width, height) > MAX_ASPECT * min(width, height):
            return f"degenerate shape {width}x{height} (aspect over {MAX_ASPECT:g}:1)"
    if detail is not None and detail < MIN_DETAIL:
        return f"near-uniform picture (detail {detail:.2f} < {MIN_DETAIL:g})"
    return None


def junk_mask(
    width: NDArray[np.float64], height: NDArray[np.float64], detail: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Which rows `low_information` would reject (NaN: not measured), for many at once."""
    with np.errstate(invalid="ignore"):
        short = np.fmin(width, height)
        degenerate = (short < MIN_SIDE) | (np.fmax(width, height) > MAX_ASPECT * short)
        return (degenerate & (short > 0)) | (detail < MIN_DETAIL)
