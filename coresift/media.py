"""Media kinds: the one table that says which objects are images, which are videos, and which
are neither. The kind is decided once, at listing, and travels with the object's identity.

An extension decides; an object without a known extension is judged by its content type
(`image/*`, `video/*`), which object stores keep per object. Everything else is unsupported:
listed, counted and recorded, never read.
"""

from __future__ import annotations

import os
from typing import Literal

MediaKind = Literal["image", "video", "unsupported"]

# Extension -> the Pillow format names its content may have; another format is recorded as a
# format mismatch (a PNG named .jpg usually means a broken export).
IMAGE_FORMATS: dict[str, frozenset[str]] = {
    ".jpg": frozenset({"JPEG", "MPO"}),
    ".jpeg": frozenset({"JPEG", "MPO"}),
    ".png": frozenset({"PNG"}),
    ".bmp": frozenset({"BMP", "DIB"}),
    ".gif": frozenset({"GIF"}),
    ".tif": frozenset({"TIFF"}),
    ".tiff": frozenset({"TIFF"}),
    ".webp": frozenset({"WEBP"}),
    ".ppm": frozenset({"PPM"}),
    ".pgm": frozenset({"PPM"}),
}

# Containers that the FFmpeg inside PyAV opens; the codec inside is whatever FFmpeg decodes.
# An audio-only file (an .ogg of music) is recorded with reason no_video_stream.
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".mpg",
        ".mpeg",
        ".ogv",
        ".ogg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".3gp",
        ".3g2",
        ".wmv",
        ".asf",
        ".vob",
        ".mxf",
        ".y4m",
    }
)


def extension_of(name: str) -> str:
    """The lower-case extension of an object name or URL, with its dot ('' when none)."""
    return os.path.splitext(name.split("?", 1)[0].split("#", 1)[0])[1].lower()


def kind_of(name: str, content_type: str | None = None) -> MediaKind:
    """The media kind of an object, from its extension, else from its content type."""
    extension = extension_of(name)
    if extension in IMAGE_FORMATS:
        return "image"
    if extension in VIDEO_EXTENSIONS:
        return "video"
    content_type = (content_type or "").lower()
    if content_type.startswith("image/"):
        return "image"
    if content_type.startswith("video/"):
        return "video"
    return "unsupported"


def allowed_image_formats(name: str) -> frozenset[str] | None:
    """The Pillow formats an image with this name may have; None when the name does not say."""
    return IMAGE_FORMATS.get(extension_of(name))
