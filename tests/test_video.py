"""Video decoding from file objects: codecs, containers, sampling, damage and limits."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from coresift.config import FrameSampling, VideoLimits
from coresift.errors import Reason, TooManyPixelsError, VideoError
from coresift.testing.media import encode_video, real_clip
from coresift.video import VideoFrame, VideoOutcome, decode_frames


def frames_of(
    data: bytes, sampling: FrameSampling | None = None, limits: VideoLimits | None = None
) -> tuple[list[VideoFrame], VideoOutcome]:
    outcome = VideoOutcome()
    frames = list(
        decode_frames(
            io.BytesIO(data),
            sampling or FrameSampling(mode="all"),
            limits or VideoLimits(),
            outcome,
        )
    )
    return frames, outcome


@pytest.mark.parametrize(
    ("name", "codec", "decoder"),
    [
        ("h264.mp4", "libx264", "h264"),
        ("hevc.mkv", "libx265", "hevc"),
        ("vp9.webm", "libvpx-vp9", "vp9"),
        ("av1.mp4", "libsvtav1", "av1"),
        ("mpeg4.avi", "mpeg4", "mpeg4"),
        ("mpeg2.mpg", "mpeg2video", "mpeg2video"),
        ("h264.mov", "libx264", "h264"),
        ("vp8.ogg", "libvpx", "vp8"),
        ("h264.ts", "libx264", "h264"),
        ("h264.m2ts", "libx264", "h264"),
        ("flv1.flv", "flv", "flv"),
        ("h263.3gp", "h263", "h263"),
    ],
)
def test_every_codec_and_container_decodes_every_frame(
    workdir: Path, name: str, codec: str, decoder: str
) -> None:
    path = workdir / name
    encode_video(path, codec=codec, frames=24, size=(128, 96))
    frames, outcome = frames_of(path.read_bytes())
    assert [f.index for f in frames] == list(range(24))
    assert frames[0].image.size == (128, 96)
    assert outcome.stopped is None
    assert outcome.info is not None and decoder in outcome.info.codec


def test_sampling_modes(workdir: Path) -> None:
    path = workdir / "clip.mp4"
    encode_video(path, frames=30, fps=10, gop=10)
    data = path.read_bytes()
    every = frames_of(data, FrameSampling(mode="every_n", every_n=4))[0]
    assert [f.index for f in every] == [0, 4, 8, 12, 16, 20, 24, 28]
    per_second = frames_of(data, FrameSampling(mode="fps", fps=2))[0]
    assert [f.index for f in per_second] == [0, 5, 10, 15, 20, 25]
    assert [f.timestamp_s for f in per_second] == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5])
    keys = frames_of(data, FrameSampling(mode="keyframes"))[0]
    assert [f.index for f in keys] == [0, 10, 20]


def test_variable_frame_rate_timestamps_come_from_pts(workdir: Path) -> None:
    path = workdir / "vfr.mkv"
    pts = [0, 1, 2, 5, 6, 12, 13, 14, 30, 31]  # in tenths of a second: gaps of 0.3 s to 1.6 s
    encode_video(path, frames=10, fps=10, pts=pts)
    frames = frames_of(path.read_bytes())[0]
    assert [round(f.timestamp_s, 3) for f in frames] == [p / 10 for p in pts]
    per_second = frames_of(path.read_bytes(), FrameSampling(mode="fps", fps=1))[0]
    assert [round(f.timestamp_s, 3) for f in per_second] == [0.0, 1.2, 3.0]


def test_real_clip_container_facts() -> None:
    frames, outcome = frames_of(real_clip("bikes.mp4"), FrameSampling(mode="keyframes"))
    assert outcome.info is not None
    assert (outcome.info.width, outcome.info.height, outcome.info.frame_count) == (640, 272, 250)
    assert outcome.info.duration_s == pytest.approx(10.0)
    assert 1 < len(frames) < 20


def test_truncated_streamable_video_keeps_its_frames_and_says_where_it_stopped(
    workdir: Path,
) -> None:
    path = workdir / "clip.mkv"
    encode_video(path, frames=60, size=(160, 120))
    data = path.read_bytes()
    frames, outcome = frames_of(data[: len(data) // 2])
    assert 5 < len(frames) < 60
    assert outcome.stopped is not None and outcome.stopped.code == "stream_ended_early"


def test_bytes_overwritten_in_the_middle_do_not_lose_the_rest(workdir: Path) -> None:
    path = workdir / "clip.mpg"
    encode_video(path, codec="mpeg2video", frames=60)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    frames, _ = frames_of(bytes(data))
    assert len(frames) >= 30  # frames before and after the damage decode


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "not_a_video"),
        (b"\x00\x00\x00\x18ftypisom" + bytes(500), "not_a_video"),  # a header, no boxes after
        (real_clip("bikes.mp4")[:100_000], "not_a_video"),  # index at the end: cut off
    ],
)
def test_unreadable_videos_raise_their_reason(data: bytes, code: str) -> None:
    with pytest.raises(VideoError) as raised:
        frames_of(data)
    assert raised.value.reason.code == code


def test_limits_bound_huge_and_endless_videos(workdir: Path) -> None:
    path = workdir / "clip.mp4"
    encode_video(path, frames=40)
    frames, outcome = frames_of(path.read_bytes(), limits=VideoLimits(max_frames=7))
    assert len(frames) == 7 and outcome.stopped == Reason("max_frames", "stopped at max_frames=7")
    sparse, outcome = frames_of(
        path.read_bytes(),
        FrameSampling(mode="every_n", every_n=100),
        VideoLimits(max_decoded_frames=12),
    )
    assert len(sparse) == 1
    assert outcome.stopped == Reason("max_decoded_frames", "stopped at max_decoded_frames=12")
    with pytest.raises(TooManyPixelsError, match="exceed max_frame_pixels"):
        frames_of(path.read_bytes(), limits=VideoLimits(max_frame_pixels=100 * 100))
