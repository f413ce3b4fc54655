"""Video decoding, all of it: sampled frames in one pass for processing, chosen frames by
seeking for dumps, container facts, and damage notes.

PyAV reads a file object directly (no local copy, no extraction step), so one pass over the
stream yields every sampled frame. Limits bound what a hostile file can cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, cast

import av
from fsspec import AbstractFileSystem
from PIL import Image

from coresift.config import FrameSampling, VideoLimits
from coresift.errors import (
    NoFramesError,
    NoVideoStreamError,
    Reason,
    TooManyPixelsError,
    VideoError,
)
from coresift.storage import BlockReader


@dataclass(frozen=True)
class VideoInfo:
    """What the container says, without decoding: frame count and duration when it has them."""

    width: int
    height: int
    codec: str
    frame_count: int | None
    duration_s: float | None


@dataclass(frozen=True)
class VideoFrame:
    index: int
    pts: int | None
    timestamp_s: float
    image: Image.Image


@dataclass
class VideoOutcome:
    """Filled in while frames are yielded: why decoding stopped early, if it did."""

    info: VideoInfo | None = None
    stopped: Reason | None = None
    sampled: int = 0


def _info(container: av.container.InputContainer) -> VideoInfo:
    stream = container.streams.video[0]
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    return VideoInfo(
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        codec=stream.codec_context.name,
        frame_count=stream.frames or None,
        duration_s=duration,
    )


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def decode_frames(
    file: IO[bytes],
    sampling: FrameSampling,
    limits: VideoLimits,
    outcome: VideoOutcome,
    size: int | None = None,
) -> Iterator[VideoFrame]:
    """Yield the sampled frames of a video in presentation order.

    Args:
        size: scale each sampled frame in the decoder's own scaler (swscale) so its longer
            side is at most this; None keeps the full size.

    Frames that are not kept cost as little as the codec allows: with `keyframes` only
    keyframes are decoded, and with `fps` the decoder skips frames that no other frame
    refers to (B-frames, usually). Decoding errors after the first frame end the stream:
    the frames so far are kept and `outcome.stopped` says where and why. A file with no
    decodable frame raises VideoError.

    Raises:
        VideoError: not a video, no video stream, or no decodable frame.
        TooManyPixelsError: frames larger than the limit.
    """
    try:
        container = av.open(file, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as error:
        raise VideoError(f"not a readable video: {error}") from None
    with container:
        if not container.streams.video:
            raise NoVideoStreamError("the file has no video stream")
        info = _info(container)
        outcome.info = info
        if info.width * info.height > limits.max_frame_pixels:
            raise TooManyPixelsError(
                f"frames of {info.width}x{info.height} exceed max_frame_pixels="
                f"{limits.max_frame_pixels}"
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads, where the codec has them
        if sampling.mode == "keyframes":
            stream.codec_context.skip_frame = "NONKEY"
        elif sampling.mode == "fps":
            stream.codec_context.skip_frame = "NONREF"
        by_time = sampling.mode in ("keyframes", "fps")  # frames are skipped: count by time
        rate = _frame_rate(stream)
        time_base = stream.time_base or Fraction(1, 1)
        started = time.monotonic()
        decoded = 0
        next_time = timestamp = 0.0
        try:
            for frame in container.decode(stream):
                timestamp = float(
                    frame.pts * time_base if frame.pts is not None else decoded / rate
                )
                index = round(timestamp * rate) if by_time else decoded
                decoded += 1
                if _sampled(sampling, index, timestamp, next_time):
                    next_time = timestamp + 1.0 / sampling.fps
                    outcome.sampled += 1
                    yield VideoFrame(index, frame.pts, timestamp, _picture(frame, size))
                    if outcome.sampled >= limits.max_frames:
                        outcome.stopped = _limit("max_frames", limits.max_frames)
                        return
                if decoded >= limits.max_decoded_frames:
                    outcome.stopped = _limit("max_decoded_frames", limits.max_decoded_frames)
                    return
                if time.monotonic() - started > limits.max_seconds:
                    outcome.stopped = _limit("max_seconds", limits.max_seconds)
                    return
        except (av.FFmpegError, ValueError, OSError) as error:
            if decoded == 0:
                raise NoFramesError(f"no decodable frame: {error}") from None
            outcome.stopped = Reason(
                "stream_broken",
                f"stream broke after frame {decoded - 1} (t={timestamp:.2f}s): {error}",
            )
            return
        if decoded == 0:
            raise NoFramesError("no decodable frame")
        outcome.stopped = _ended_early(info, sampling, timestamp, rate)


def _limit(name: str, value: float) -> Reason:
    return Reason(name, f"stopped at {name}={value:g}")


def _picture(frame: av.VideoFrame, size: int | None) -> Image.Image:
    """A frame as a picture, scaled in swscale when it is larger than `size`."""
    if size is not None and max(frame.width, frame.height) > size:
        scale = size / max(frame.width, frame.height)
        frame = frame.reformat(
            width=max(2, round(frame.width * scale)),
            height=max(2, round(frame.height * scale)),
            format="rgb24",
            interpolation="AREA",
        )
    picture: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    return picture


def _ended_early(
    info: VideoInfo, sampling: FrameSampling, last: float, rate: Fraction
) -> Reason | None:
    """Where a stream that ended without an error fell short of its container's duration.

    Frame counts in headers are often wrong (a healthy file said 243 frames and had 242), so
    only the time reached counts.
    """
    if sampling.mode == "keyframes":
        return None  # only keyframes were decoded: the last one can be far from the end
    if info.duration_s and last + 2 / rate < info.duration_s:
        return Reason(
            "stream_ended_early", f"stream ended at t={last:.2f}s of {info.duration_s:.2f}s"
        )
    return None


def _sampled(sampling: FrameSampling, index: int, timestamp: float, next_time: float) -> bool:
    if sampling.mode == "every_n":
        return index % sampling.every_n == 0
    if sampling.mode == "fps":
        return timestamp + 1e-9 >= next_time
    return True


def read_frames(
    fs: AbstractFileSystem, path: str, targets: list[tuple[int, int | None]]
) -> tuple[dict[int, Image.Image], int]:
    """Decode the frames with the given (frame_index, pts), seeking to each one.

    Frames without pts are found by counting from the start of the stream.

    Returns:
        The frames by index, and how many bytes were fetched from the store.
    """
    found: dict[int, Image.Image] = {}
    size = int(fs.size(path))
    with (
        BlockReader(fs, path, size) as reader,
        av.open(cast(IO[bytes], reader), mode="r") as container,
    ):
        stream = container.streams.video[0]
        by_pts = sorted((pts, index) for index, pts in targets if pts is not None)
        for pts, index in by_pts:
            container.seek(pts, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is not None and frame.pts >= pts:
                    found[index] = frame.to_image()  # type: ignore[no-untyped-call]
                    break
        without_pts = {index for index, pts in targets if pts is None}
        if without_pts:
            container.seek(0)
            for position, frame in enumerate(container.decode(stream)):
                if position in without_pts:
                    found[position] = frame.to_image()  # type: ignore[no-untyped-call]
                if len(found) == len(targets):
                    break
    return found, reader.fetched
