"""Decoding is the corruptness check: each kind of damage gets its own recorded reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from coresift.errors import MediaError, TooManyPixelsError
from coresift.images import decode_image
from coresift.metadata import image_metrics
from coresift.testing.media import corrupt_files, distinct_image, jpeg_bytes

LIMIT = 100_000_000


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("truncated.jpg", "truncated", "truncated"),
        ("empty.jpg", "empty", "empty file"),
        ("not-an-image.png", "not_an_image", "not an image"),
        ("png-named-jpg.jpg", "format_mismatch", "content is PNG but the extension is .jpg"),
    ],
)
def test_damaged_files_raise_their_reason(name: str, code: str, message: str) -> None:
    with pytest.raises(MediaError, match=message) as raised:
        decode_image(corrupt_files()[name], name, LIMIT)
    assert raised.value.reason.code == code


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "TIFF", "GIF"])
def test_truncated_files_of_other_formats_are_truncated_or_undecodable(image_format: str) -> None:
    buffer = io.BytesIO()
    distinct_image(5, (64, 48)).save(buffer, format=image_format)
    whole = buffer.getvalue()
    with pytest.raises(MediaError) as raised:
        decode_image(whole[: len(whole) // 2], f"cut.{image_format.lower()}", LIMIT)
    assert raised.value.reason.code in ("truncated", "decode_failed")


def test_whole_jpeg_decodes() -> None:
    image = decode_image(jpeg_bytes(distinct_image(1)), "a.jpg", LIMIT)
    assert image.size == (160, 120)


def test_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(TooManyPixelsError, match="exceeds max_image_pixels"):
        decode_image(jpeg_bytes(distinct_image(1)), "a.jpg", 100 * 100)


def test_an_image_without_an_extension_is_judged_by_its_content() -> None:
    assert decode_image(jpeg_bytes(distinct_image(1)), "s3://b/camera/0001", LIMIT).size == (
        160,
        120,
    )


def test_exif_orientation_is_applied() -> None:
    image = distinct_image(2, (200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    decoded = decode_image(buffer.getvalue(), "rotated.jpg", LIMIT)
    assert decoded.size == (100, 200)
    assert image_metrics(decoded)["width"] == 100


def test_metrics_of_a_flat_grey_picture() -> None:
    flat = Image.fromarray(np.full((20, 30, 3), 100, np.uint8))
    metrics = image_metrics(flat)
    assert (metrics["width"], metrics["height"]) == (30, 20)
    assert metrics["mean"] == pytest.approx([100, 100, 100])
    assert metrics["std"] == pytest.approx([0, 0, 0])
    assert metrics["luminance"] == pytest.approx(100, abs=1e-3)
    assert metrics["contrast"] == 0
    assert metrics["sharpness"] == 0
    assert metrics["snr"] is None
    assert metrics["uniform_row_ratio"] == 1.0


def test_metrics_of_a_checkerboard() -> None:
    board = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    metrics = image_metrics(Image.fromarray(board))
    assert metrics["contrast"] == pytest.approx(127.5, rel=1e-4)
    assert metrics["snr"] == pytest.approx(1.0, rel=1e-4)
    assert metrics["uniform_row_ratio"] == 0.0
    # Each interior Laplacian is +-4*255 with alternating sign: variance (4*255)^2.
    assert metrics["sharpness"] == pytest.approx((4 * 255) ** 2, rel=1e-3)


def test_top_rows_filled_with_grey_are_counted() -> None:
    pixels = np.asarray(distinct_image(3, (40, 40))).copy()
    pixels[30:] = 128
    assert image_metrics(Image.fromarray(pixels))["uniform_row_ratio"] == pytest.approx(0.25)
