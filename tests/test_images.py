"""Decoding is the corruptness check: each kind of damage gets its own recorded reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from coresift.errors import MediaError, TooManyPixelsError
from coresift.images import WORKING_SIZE, decode_image
from coresift.metadata import image_metrics
from coresift.testing.media import corrupt_files, distinct_image, jpeg_bytes, photo, png_bytes

LIMIT = 100_000_000
# Metrics of the bundled astronaut photo (512 x 512, measured at 256 x 256).
GOLDEN = {"luminance": 115.852, "contrast": 74.5424, "sharpness": 1661.40, "detail": 67.0850}


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
    assert (image.width, image.height, image.channels) == (160, 120, 3)
    assert image.picture.size == (160, 120)  # smaller than the working size: as it is


@pytest.mark.parametrize("size", [(4000, 3000), (1000, 6000)])
def test_big_jpegs_decode_to_a_small_working_picture(size: tuple[int, int]) -> None:
    """DCT scaling: the smallest scale whose longer side is still at least WORKING_SIZE."""
    image = decode_image(jpeg_bytes(distinct_image(1, size)), "big.jpg", LIMIT)
    assert (image.width, image.height) == size
    assert WORKING_SIZE <= max(image.picture.size) < 2 * WORKING_SIZE
    assert image.picture.size[0] * size[1] == pytest.approx(
        image.picture.size[1] * size[0], rel=0.02
    )


def _damaged(kind: str, size: tuple[int, int], how: str) -> bytes:
    picture = distinct_image(7, size)
    whole = jpeg_bytes(picture) if kind == "jpeg" else png_bytes(picture)
    if how.startswith("cut"):
        return whole[: int(len(whole) * float(how[3:]))]
    middle = bytearray(whole)
    half = len(middle) // 2
    middle[half : half + 500] = bytes((i * 37) % 256 for i in range(500))
    return bytes(middle)


@pytest.mark.parametrize(
    ("kind", "size", "how", "code"),
    [
        *(
            ("jpeg", size, f"cut{c}", "truncated")
            for size in [(640, 480), (4000, 3000)]
            for c in (0.5, 0.9, 0.99)
        ),
        *(("png", (1000, 750), f"cut{c}", "truncated") for c in (0.5, 0.9, 0.99)),
        ("jpeg", (640, 480), "garbage", "decode_failed"),
        ("jpeg", (4000, 3000), "garbage", "decode_failed"),
        ("png", (1000, 750), "garbage", "decode_failed"),
    ],
)
def test_reduced_decoding_still_checks_every_byte(
    kind: str, size: tuple[int, int], how: str, code: str
) -> None:
    with pytest.raises(MediaError) as raised:
        decode_image(_damaged(kind, size, how), f"x.{'jpg' if kind == 'jpeg' else 'png'}", LIMIT)
    assert raised.value.reason.code == code


def test_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(TooManyPixelsError, match="exceeds max_image_pixels"):
        decode_image(jpeg_bytes(distinct_image(1)), "a.jpg", 100 * 100)


def test_an_image_without_an_extension_is_judged_by_its_content() -> None:
    decoded = decode_image(jpeg_bytes(distinct_image(1)), "s3://b/camera/0001", LIMIT)
    assert (decoded.width, decoded.height) == (160, 120)


def test_exif_orientation_is_applied() -> None:
    image = distinct_image(2, (200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    decoded = decode_image(buffer.getvalue(), "rotated.jpg", LIMIT)
    assert (decoded.width, decoded.height) == (100, 200)
    assert decoded.picture.size == (100, 200)
    upright = np.asarray(decoded.picture, np.float32)
    assert np.abs(upright - np.asarray(image.rotate(-90, expand=True), np.float32)).mean() < 4


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


def test_metrics_do_not_depend_on_the_resolution() -> None:
    """Metrics are measured at METRICS_SIZE: a photo and its rescaled copies agree."""
    original = photo(0).resize((2048, 2048))
    big, small = image_metrics(original), image_metrics(original.resize((512, 512)))
    assert (big["width"], small["width"]) == (2048, 512)
    for name in ("luminance", "contrast", "detail", "snr"):
        assert small[name] == pytest.approx(big[name], rel=0.03), name
    # An 8x box average smooths a little more than a 2x one (at full size they differed 10x).
    assert small["sharpness"] == pytest.approx(big["sharpness"], rel=0.06)


def test_golden_metrics_of_a_real_photo() -> None:
    """The definitions pinned: astronaut, 512 x 512, measured at 256 x 256."""
    metrics = image_metrics(photo(0))
    assert (metrics["width"], metrics["height"]) == (512, 512)
    assert metrics["luminance"] == pytest.approx(GOLDEN["luminance"], rel=1e-3)
    assert metrics["contrast"] == pytest.approx(GOLDEN["contrast"], rel=1e-3)
    assert metrics["sharpness"] == pytest.approx(GOLDEN["sharpness"], rel=1e-3)
    assert metrics["detail"] == pytest.approx(GOLDEN["detail"], rel=1e-3)
