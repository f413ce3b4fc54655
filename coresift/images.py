"""Decoding image bytes, which is also the corruptness check.

A full decode is the only reliable test that an image is whole (a truncated JPEG still has a
valid header), so the bytes read once per run are decoded once, here, and the decoded picture
feeds both the metadata and the embedding.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

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


def decode_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Fully decode image bytes into an RGB or L picture with EXIF orientation applied.

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
            if image.width * image.height > max_pixels:
                raise TooManyPixelsError(
                    f"image of {image.width}x{image.height} exceeds max_image_pixels={max_pixels}"
                )
            image.load()
            image = ImageOps.exif_transpose(image)
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise NotAnImageError("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DecompressionBombError(f"decompression bomb: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        failure = TruncatedError if "truncated" in str(error) else DecodeError
        raise failure(f"decode failed: {error}") from None
    return image


def _check_format(image_format: str | None, name: str) -> None:
    expected = allowed_image_formats(name)
    if expected is not None and image_format not in expected:
        raise FormatMismatchError(
            f"content is {image_format} but the extension is {extension_of(name)}"
        )


def channels_of(image: Image.Image) -> int:
    """The number of bands the picture was stored with (1 grey, 3 RGB, 4 RGBA, ...)."""
    return len(image.getbands())
