"""Videos through the whole flow: single pass, spread over scenes, reruns, damage, clips, dump."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from numpy.typing import NDArray
from PIL import Image

from coresift.config import FrameSampling, VideoLimits
from coresift.datapool import Datapool
from coresift.dump import dump_tag
from coresift.export import export
from coresift.selection import embedding_matrix
from coresift.testing.media import REAL_CLIPS, encode_video, jpeg_bytes, photo, real_clip
from coresift.video import VideoOutcome, decode_frames
from tests.helpers import curate_once, object_rows

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def _write_real_clips(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for name in REAL_CLIPS:
        (folder / name).write_bytes(real_clip(name))
    return sum(len(real_clip(n)) for n in REAL_CLIPS)


def test_three_real_videos_are_read_once_and_picks_span_them_all(
    local_or_s3: tuple[str, Path, Callable[[], None]], workdir: Path
) -> None:
    source, folder, sync = local_or_s3
    total = _write_real_clips(folder)
    sync()
    pool = str(workdir / "pool")
    run = curate_once(source, pool, n_samples=12, tag="t")
    assert (run.objects_new, run.samples_corrupt, run.samples_selected) == (3, 0, 12)
    assert run.bytes_new == total
    assert run.bytes_new <= run.bytes_read <= 1.02 * run.bytes_new
    samples = Datapool(pool).samples(["uri", "frame_index"])
    assert {u.rsplit("/", 1)[1] for u in samples.column("uri").to_pylist()} == set(REAL_CLIPS)
    assert run.samples_processed == len(samples) > 12
    picked = Datapool(pool).tag_samples("t").column("uri").to_pylist()
    assert {u.rsplit("/", 1)[1] for u in picked} == set(REAL_CLIPS)
    again = curate_once(source, pool, n_samples=12, tag="again")
    assert (again.objects_new, again.bytes_read, again.samples_selected) == (0, 0, 0)


def _min_pairwise(vectors: NDArray[Any]) -> float:
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    return float(distances[np.triu_indices(len(vectors), 1)].min())


def test_picks_on_a_clip_with_scene_cuts_are_farther_apart_than_random_frames(
    workdir: Path,
) -> None:
    (workdir / "v").mkdir()
    (workdir / "v" / "bikes.mp4").write_bytes(real_clip("bikes.mp4"))
    pool, k = str(workdir / "pool"), 8
    curate_once(str(workdir / "v"), pool, n_samples=k, tag="t", frames={"mode": "fps", "fps": 5})
    datapool = Datapool(pool)
    samples = datapool.samples(["sample_id", "embedding"])
    picked = set(datapool.tag_samples("t").column("sample_id").to_pylist())
    vectors = embedding_matrix(samples)
    is_pick = np.array([s in picked for s in samples.column("sample_id").to_pylist()])
    picks_min = _min_pairwise(vectors[is_pick])
    rng = np.random.default_rng(0)
    random_mins = [
        _min_pairwise(vectors[rng.choice(len(vectors), k, replace=False)]) for _ in range(20)
    ]
    print(
        f"\nbikes.mp4, {len(vectors)} frames, k={k}: min pairwise distance of picks "
        f"{picks_min:.3f}; of random frames: median {np.median(random_mins):.3f}, "
        f"max {max(random_mins):.3f}"
    )
    assert picks_min > max(random_mins)


def test_a_changed_video_is_reprocessed_and_its_stale_frames_leave_the_candidates(
    workdir: Path,
) -> None:
    folder, pool = workdir / "v", str(workdir / "pool")
    folder.mkdir()
    encode_video(folder / "cam.mp4", frames=30, fps=10)
    encode_video(folder / "other.mkv", frames=20, fps=10, size=(128, 96))
    curate_once(str(folder), pool, n_samples=2, tag="one")
    old_version = Datapool(pool).objects()[str(folder / "cam.mp4")].version
    encode_video(folder / "cam.mp4", frames=50, fps=10, size=(96, 96))
    run = curate_once(str(folder), pool, n_samples=100, tag="two")
    assert (run.objects_changed, run.objects_skipped) == (1, 1)
    current = Datapool(pool).samples(["uri", "version", "width"])
    cam = current.filter(pc.field("uri") == str(folder / "cam.mp4"))
    assert old_version not in cam.column("version").to_pylist()
    assert set(cam.column("width").to_pylist()) == {96}
    picks = Datapool(pool).tag_samples("two")
    assert old_version not in picks.column("version").to_pylist()
    assert set(picks.column("uri").to_pylist()) == {
        str(folder / "cam.mp4")
    }  # only the new frames were candidates


def test_damaged_videos_are_reported_and_the_run_succeeds(workdir: Path) -> None:
    folder, pool = workdir / "v", str(workdir / "pool")
    folder.mkdir()
    encode_video(workdir / "whole.mkv", frames=60)
    whole = (workdir / "whole.mkv").read_bytes()
    (folder / "truncated.mkv").write_bytes(whole[: len(whole) // 2])
    broken = bytearray(whole)
    broken[len(broken) // 2 : len(broken) // 2 + 3000] = bytes(3000)
    (folder / "overwritten.mkv").write_bytes(bytes(broken))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "cut-index.mp4").write_bytes(real_clip("bikes.mp4")[:200_000])
    (folder / "fine.mkv").write_bytes(whole)
    run = curate_once(str(folder), pool, n_samples=5, frames={"mode": "all"})
    objects = {u.rsplit("/", 1)[1]: s for u, s in Datapool(pool).objects().items()}
    rows = object_rows(pool)
    assert objects["empty.mp4"].status == "corrupt" and "empty" in rows["empty.mp4"]["reason"]
    assert (
        objects["cut-index.mp4"].status == "corrupt"
        and "not a readable video" in rows["cut-index.mp4"]["reason"]
    )
    assert (
        objects["truncated.mkv"].status == "ok"
        and "stream ended" in rows["truncated.mkv"]["reason"]
    )
    assert objects["fine.mkv"].status == "ok" and rows["fine.mkv"]["reason"] is None
    assert rows["fine.mkv"]["duration_s"] == pytest.approx(6.0, abs=0.2)
    assert run.samples_corrupt == 2 and run.samples_selected == 5


def test_limits_are_recorded_not_fatal(workdir: Path) -> None:
    folder, pool = workdir / "v", str(workdir / "pool")
    folder.mkdir()
    encode_video(folder / "long.mp4", frames=40)
    run = curate_once(
        str(folder), pool, n_samples=3, frames={"mode": "all"}, video_limits={"max_frames": 12}
    )
    assert run.samples_processed == 12
    (row,) = object_rows(pool).values()
    assert row["reason"] == "stopped at max_frames=12"


def test_sequence_selection_returns_clips_of_consecutive_frames(workdir: Path) -> None:
    folder, pool = workdir / "v", str(workdir / "pool")
    folder.mkdir()
    encode_video(folder / "a.mp4", frames=30)
    encode_video(folder / "b.mkv", frames=25, size=(128, 96))
    (folder / "still.jpg").write_bytes(jpeg_bytes(photo(3)))
    run = curate_once(
        str(folder),
        pool,
        n_samples=4,
        sequence_length=5,
        frames={"mode": "every_n", "every_n": 2},
        tag="clips",
    )
    picks = Datapool(pool).tag_samples("clips")
    tags = Datapool(pool).tags()
    clip_of = dict(
        zip(tags.column("sample_id").to_pylist(), tags.column("clip").to_pylist(), strict=True)
    )
    clips: dict[int, list[tuple[str, int]]] = {}
    for sample, uri, frame in zip(
        picks.column("sample_id").to_pylist(),
        picks.column("uri").to_pylist(),
        picks.column("frame_index").to_pylist(),
        strict=True,
    ):
        clips.setdefault(clip_of[sample], []).append((uri, frame))
    assert run.samples_selected == 20 and len(clips) == 4
    for members in clips.values():
        assert len(members) == 5 and len({uri for uri, _ in members}) == 1
        frames = [frame for _, frame in members]
        assert frames == list(range(frames[0], frames[0] + 10, 2))


def test_dump_writes_frames_whose_pixels_match_the_decoded_frames(workdir: Path) -> None:
    folder, pool = workdir / "v", str(workdir / "pool")
    folder.mkdir()
    (folder / "bikes.mp4").write_bytes(real_clip("bikes.mp4"))
    (folder / "still.jpg").write_bytes(jpeg_bytes(photo(5)))
    curate_once(str(folder), pool, n_samples=5, tag="t", frames={"mode": "fps", "fps": 2})
    datapool = Datapool(pool)
    lines = export(datapool, "t", "txt").text
    assert lines is not None
    frame_lines = [line for line in lines.splitlines() if "#frame=" in line]
    assert frame_lines and all(
        line.startswith(str(folder / "bikes.mp4") + "#frame=") for line in frame_lines
    )

    sidecar = dump_tag(datapool, "t", str(workdir / "out"))
    assert pq.read_table(workdir / "out" / "frames.parquet").equals(sidecar)
    outcome = VideoOutcome()
    decoded = {
        f.index: np.asarray(f.image)
        for f in decode_frames(
            io.BytesIO(real_clip("bikes.mp4")), FrameSampling(mode="all"), VideoLimits(), outcome
        )
    }
    for row in sidecar.to_pylist():
        written = workdir / "out" / row["file"]
        if row["frame_index"] is None:
            assert written.read_bytes() == (folder / "still.jpg").read_bytes()
            continue
        assert row["file"] == f"bikes.mp4/frame_{row['frame_index']:06d}.png"
        assert np.array_equal(np.asarray(Image.open(written)), decoded[row["frame_index"]])
        assert row["timestamp_s"] == pytest.approx(row["frame_index"] / 25)


def test_dumping_one_frame_reads_only_the_ranges_it_needs(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 32 KiB blocks, fetching one mid-clip frame of bikes.mp4 (500 KB) skips most blocks."""
    import fsspec

    from coresift import storage
    from coresift.video import read_frames

    monkeypatch.setattr(storage, "STREAM_BLOCK_SIZE", 32 * 1024)
    path = workdir / "bikes.mp4"
    path.write_bytes(real_clip("bikes.mp4"))
    everything = {
        f.index: f
        for f in decode_frames(
            io.BytesIO(path.read_bytes()), FrameSampling(mode="all"), VideoLimits(), VideoOutcome()
        )
    }
    target = everything[40]
    frames, fetched = read_frames(fsspec.filesystem("file"), str(path), [(40, target.pts)])
    assert np.array_equal(np.asarray(frames[40]), np.asarray(target.image))
    print(f"\nbikes.mp4: {fetched} of {path.stat().st_size} bytes fetched to dump frame 40")
    assert fetched < 0.5 * path.stat().st_size
