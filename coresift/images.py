"""Decoding image bytes: the corruptness check, and a working picture only as big as needed.

A full decode is the only reliable test that an image is whole (a truncated JPEG still has a
valid header), so every byte is decoded once, here. But nothing downstream needs the full
resolution: the model takes 224 px, thumbnails 128 px and the metrics a fixed 256 px. So
JPEGs decode with DCT scaling (the decoder still reads the whole entropy-coded stream, and a
cut file still fails as truncated) to the smallest scale whose longer side is at least
WORKING_SIZE; other formats decode fully and are reduced by an integer factor (a box filter,
cheap). EXIF orientation is applied to the working picture, never to the full one.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from coresift.errors import (
    DecodeError,
    DecompressionBombError,
    EmptyFileError,
    FormatMismatchError,
    MediaError,
    NotAnImageError,
    TooManyPixelsError,
    TruncatedError,
)
from coresift.media import allowed_image_formats, extension_of

# The working picture's longer side is at least this (or the original's, when smaller).
WORKING_SIZE = 256
_ORIENTATION = 0x0112
# EXIF orientation -> the transposition that shows the picture upright (as ImageOps does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Decoded:
    """A wholly decoded image: its upright working picture (RGB or L), and the upright size
    and band count of the original."""

    picture: Image.Image
    width: int
    height: int
    channels: int


def decode_image(data: bytes, name: str, max_pixels: int) -> Decoded:
    """Decode every byte of an image into an upright working picture.

    Args:
        data: the object's bytes.
        name: the object's name; its extension must match the content's format.
        max_pixels: larger images are refused before their pixels are decoded.

    Raises:
        MediaError: a subclass per cause (empty, not an image, truncated, ...), whose code
            and message are recorded.
    """
    if not data:
        raise EmptyFileError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            _check_format(image.format, name)
            width, height = image.size
            if width * height > max_pixels:
                raise TooManyPixelsError(
                    f"image of {width}x{height} exceeds max_image_pixels={max_pixels}"
                )
            channels = len(image.getbands())
            orientation = image.getexif().get(_ORIENTATION, 1)
            if image.format in ("JPEG", "MPO"):
                scale = WORKING_SIZE / max(width, height)
                image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            image.load()
            picture = _working(image)
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise NotAnImageError("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DecompressionBombError(f"decompression bomb: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        failure = TruncatedError if "truncated" in str(error) else DecodeError
        raise failure(f"decode failed: {error}") from None
    if orientation in _UPRIGHT:
        picture = picture.transpose(_UPRIGHT[orientation])
        if orientation >= 5:  # a quarter turn: the upright size is the other way round
            width, height = height, width
    return Decoded(picture, width, height, channels)


def _working(image: Image.Image) -> Image.Image:
    """The decoded picture in RGB or L, reduced by the largest integer factor that keeps its
    longer side at least WORKING_SIZE."""
    if image.mode not in ("RGB", "L", "RGBA", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    factor = max(1, max(image.size) // WORKING_SIZE)
    if factor > 1:
        image = image.reduce(factor)
    if image.mode not in ("RGB", "L"):
        image = image.convert("L" if image.mode == "LA" else "RGB")
    return image


def _check_format(image_format: str | None, name: str) -> None:
    expected = allowed_image_formats(name)
    if expected is not None and image_format not in expected:
        raise FormatMismatchError(
            f"content is {image_format} but the extension is {extension_of(name)}"
        )
