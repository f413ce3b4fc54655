"""Real sample photos that ship inside the dependencies, for the default run and for tests.

scikit-image bundles a set of photographs and scikit-learn two more; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

# Bundled in the scikit-image wheel. 'cat' is left out: it is the same photo as 'chelsea'.
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


def sample_photos() -> Iterator[tuple[str, NDArray[np.uint8]]]:
    """(name, pixels) of every bundled photo, RGB or grey, as 8-bit arrays."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    for name in SKIMAGE_PHOTOS:
        pixels = np.asarray(getattr(skimage.data, name)())
        if pixels.dtype == bool:
            pixels = pixels.astype(np.uint8) * 255
        yield name, pixels.astype(np.uint8)
    bunch = load_sample_images()
    for filename, pixels in zip(bunch.filenames, bunch.images, strict=True):
        yield Path(filename).stem, np.asarray(pixels, dtype=np.uint8)


def write_sample_folder(folder: str | Path) -> Path:
    """Write the bundled photos as JPEG files into folder (once) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, pixels in sample_photos():
        target = folder / f"{name}.jpg"
        if not target.exists():
            image = Image.fromarray(pixels)
            image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(
                target, quality=92
            )
    return folder
