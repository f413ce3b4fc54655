"""Real test images: crops, resizes and damaged copies of the photos bundled with the deps."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from coresift.samples import sample_photos

_PHOTOS = [np.asarray(Image.fromarray(p).convert("RGB")) for _, p in sample_photos()]


def photo(index: int) -> Image.Image:
    """One of the bundled photos, as RGB."""
    return Image.fromarray(_PHOTOS[index % len(_PHOTOS)])


def photo_count() -> int:
    return len(_PHOTOS)


def distinct_image(index: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A distinct picture per index: a seeded crop of a bundled photo, resized."""
    rng = np.random.default_rng(index)
    source = _PHOTOS[index % len(_PHOTOS)]
    height, width = source.shape[:2]
    crop_h = int(rng.integers(height // 3, height // 2 + 1))
    crop_w = int(rng.integers(width // 3, width // 2 + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    crop = Image.fromarray(source[top : top + crop_h, left : left + crop_w])
    return crop.resize(size, Image.Resampling.BILINEAR)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_images(folder: Path, start: int, count: int, prefix: str = "img") -> int:
    """Write count distinct JPEGs named prefix-NNNN.jpg; return their total size in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for index in range(start, start + count):
        data = jpeg_bytes(distinct_image(index))
        (folder / f"{prefix}-{index:04d}.jpg").write_bytes(data)
        total += len(data)
    return total


def corrupt_files() -> dict[str, bytes]:
    """One damaged file of each kind the issue names, keyed by file name."""
    whole = jpeg_bytes(distinct_image(999, (320, 240)))
    return {
        "truncated.jpg": whole[: len(whole) // 2],
        "empty.jpg": b"",
        "not-an-image.png": b"this is plain text, not a picture\n" * 20,
        "png-named-jpg.jpg": png_bytes(distinct_image(998)),
    }
