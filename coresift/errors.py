"""Domain errors: one tree, one class per cause; each is a message for the user, never a traceback.

Media errors also carry a short, stable `code` that is stored next to the human message, so
reports and filters can group samples and objects by cause. Codes are part of the datapool's
contract: add new ones, never rename them.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple


class Reason(NamedTuple):
    """Why an object or sample is not what it should be: a stable code and a human message."""

    code: str
    message: str


class CoresiftError(Exception):
    """Base class of every coresift error."""


class ConfigError(CoresiftError):
    """The configuration is invalid; the message names the field."""


class SourceError(CoresiftError):
    """The source cannot be listed or read (missing, unreachable, access denied)."""


class SourceNotFoundError(SourceError):
    """The source, or its bucket, does not exist: retrying cannot help."""


class ModelError(CoresiftError):
    """The embedding model cannot be loaded (unknown name, missing weights, bad file)."""


class DatapoolError(CoresiftError):
    """The datapool cannot be read or written."""


class DatapoolBusyError(DatapoolError):
    """Another run holds the datapool, or committed to it while this run was processing."""


class NotificationError(CoresiftError):
    """A queue message that is not a readable bucket notification; the message says why."""


class MediaError(CoresiftError):
    """An object's bytes are not usable media; recorded with its reason, never fatal to a run."""

    code: ClassVar[str] = "unreadable"

    @property
    def reason(self) -> Reason:
        return Reason(self.code, str(self))


class EmptyFileError(MediaError):
    code = "empty"


class NotAnImageError(MediaError):
    code = "not_an_image"


class FormatMismatchError(MediaError):
    """The content's format is not the one its extension names (a PNG called .jpg)."""

    code = "format_mismatch"


class TooManyPixelsError(MediaError):
    """Larger than the configured pixel limit; refused before its pixels are decoded."""

    code = "too_many_pixels"


class DecompressionBombError(MediaError):
    code = "decompression_bomb"


class TruncatedError(MediaError):
    """The file ends before its image data does (an interrupted upload)."""

    code = "truncated"


class DecodeError(MediaError):
    """The decoder rejected the data for another reason (damaged entropy data, bad header)."""

    code = "decode_failed"


class VideoError(MediaError):
    """The video cannot be opened or yields no frame."""

    code = "not_a_video"


class NoVideoStreamError(VideoError):
    code = "no_video_stream"


class NoFramesError(VideoError):
    code = "no_frames"


# Reasons that are not exceptions: what happened to an object that was read, or not read.
VANISHED = Reason("vanished", "deleted between listing and reading")
ACCESS_DENIED = Reason("access_denied", "access denied reading the object")
UNSUPPORTED = Reason("unsupported", "neither an image nor a video (by extension and content type)")
