"""The curate flow end to end, on a local folder and on a real S3 server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from coresift.datapool import Datapool
from coresift.testing.media import corrupt_files, jpeg_bytes, photo, write_images
from tests.helpers import curate_once

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def _picked_uris(datapool: str, tag: str) -> list[str]:
    return [str(uri) for uri in Datapool(datapool).tag_samples(tag).column("uri").to_pylist()]


def test_three_runs_read_each_new_byte_once_and_select_around_earlier_picks(
    local_or_s3: tuple[str, Path, Callable[[], None]], workdir: Path
) -> None:
    source, folder, sync = local_or_s3
    pool = str(workdir / "pool")
    first_bytes = write_images(folder, 0, 120)
    sync()

    run1 = curate_once(source, pool, n_samples=10, tag="first")
    assert (run1.objects_listed, run1.objects_new, run1.samples_selected) == (120, 120, 10)
    assert run1.bytes_new == first_bytes
    assert run1.bytes_new <= run1.bytes_read <= 1.02 * run1.bytes_new

    run2 = curate_once(source, pool, n_samples=10, tag="second")
    assert (run2.objects_new, run2.objects_skipped, run2.bytes_read, run2.samples_selected) == (
        0,
        120,
        0,
        0,
    )

    added_bytes = write_images(folder, 120, 15, prefix="new")
    sync()
    run3 = curate_once(source, pool, n_samples=10, tag="third")
    assert (run3.objects_new, run3.objects_skipped, run3.samples_preselected) == (15, 120, 10)
    assert abs(run3.bytes_read - added_bytes) <= 0.02 * added_bytes
    picks = _picked_uris(pool, "third")
    assert 0 < len(picks) <= 10
    assert all(uri.rsplit("/", 1)[1].startswith("new-") for uri in picks)
    assert set(picks).isdisjoint(_picked_uris(pool, "first"))
    assert run3.datapool_version == 2


def test_each_distinct_picture_is_picked_once_whatever_its_copies(workdir: Path) -> None:
    folder, distinct = workdir / "images", [0, 2, 4, 6, 7, 10]
    folder.mkdir()
    for index in distinct:
        for width in (480, 240, 120):
            image = photo(index)
            resized = image.resize((width, max(1, width * image.height // image.width)))
            (folder / f"p{index:02d}-w{width}.jpg").write_bytes(jpeg_bytes(resized))
    run = curate_once(str(folder), str(workdir / "pool"), n_samples=len(distinct), tag="t")
    pictures = [
        uri.rsplit("/", 1)[1].split("-")[0] for uri in _picked_uris(str(workdir / "pool"), "t")
    ]
    assert run.samples_selected == len(distinct)
    assert sorted(pictures) == sorted(f"p{i:02d}" for i in distinct)


def test_corrupt_files_are_recorded_with_reasons_and_never_picked(workdir: Path) -> None:
    folder, pool = workdir / "images", str(workdir / "pool")
    write_images(folder, 0, 8)
    for name, data in corrupt_files().items():
        (folder / name).write_bytes(data)
    (folder / "copy-of-img-0000.jpg").write_bytes((folder / "img-0000.jpg").read_bytes())
    run = curate_once(str(folder), pool, n_samples=20, tag="all")
    assert (run.objects_new, run.samples_corrupt, run.samples_selected) == (13, 4, 8)
    samples = Datapool(pool).samples(["uri", "corrupt_reason"])
    reasons = {
        uri.rsplit("/", 1)[1]: reason
        for uri, reason in zip(
            samples.column("uri").to_pylist(),
            samples.column("corrupt_reason").to_pylist(),
            strict=True,
        )
        if reason
    }
    assert set(reasons) == set(corrupt_files())
    assert "truncated" in reasons["truncated.jpg"]
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["not-an-image.png"]
    assert "content is PNG" in reasons["png-named-jpg.jpg"]
    picked = {u.rsplit("/", 1)[1] for u in _picked_uris(pool, "all")}
    assert picked.isdisjoint(reasons)
    assert not {"img-0000.jpg", "copy-of-img-0000.jpg"} <= picked  # exact duplicates: one at most
    statuses = {u.rsplit("/", 1)[1]: s.status for u, s in Datapool(pool).objects().items()}
    assert statuses["empty.jpg"] == "corrupt" and statuses["img-0001.jpg"] == "ok"


def test_changed_objects_are_reprocessed_and_vanished_ones_marked_gone(workdir: Path) -> None:
    folder, pool = workdir / "images", str(workdir / "pool")
    write_images(folder, 0, 12)
    curate_once(str(folder), pool, n_samples=3)
    changed = jpeg_bytes(photo(3))
    (folder / "img-0001.jpg").write_bytes(changed)
    (folder / "img-0002.jpg").unlink()
    run = curate_once(str(folder), pool, n_samples=3)
    assert (run.objects_new, run.objects_changed, run.objects_gone, run.objects_skipped) == (
        0,
        1,
        1,
        10,
    )
    assert run.bytes_read == run.bytes_new == len(changed)
    datapool = Datapool(pool)
    current = datapool.samples(["uri", "size_bytes"])
    sizes = dict(
        zip(
            current.column("uri").to_pylist(), current.column("size_bytes").to_pylist(), strict=True
        )
    )
    assert sizes[str(folder / "img-0001.jpg")] == len(changed)  # only the new version is current
    assert str(folder / "img-0002.jpg") not in sizes
    assert datapool.objects()[str(folder / "img-0002.jpg")].status == "gone"


def test_process_all_reprocesses_and_reselects_from_everything(workdir: Path) -> None:
    folder, pool = workdir / "images", str(workdir / "pool")
    write_images(folder, 0, 20)
    first = curate_once(str(folder), pool, n_samples=4, tag="a")
    again = curate_once(str(folder), pool, n_samples=4, tag="b", process_all=True)
    assert (again.objects_changed, again.samples_preselected, again.samples_selected) == (20, 0, 4)
    assert again.bytes_read == first.bytes_read
    assert _picked_uris(pool, "a") == _picked_uris(pool, "b")  # same inputs and seed
    assert len(Datapool(pool).samples(["sample_id"])) == 20


def test_min_distance_alone_stops_the_selection(workdir: Path) -> None:
    folder, pool = workdir / "images", str(workdir / "pool")
    write_images(folder, 0, 30)
    run = curate_once(str(folder), pool, min_distance=0.9, tag="far")
    distances = Datapool(pool).tag_samples("far").column("distance")
    assert 1 <= run.samples_selected < 30
    assert pc.min(distances).as_py() >= 0.9


def test_a_commit_retried_after_it_landed_finishes_without_writing_again(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No server fails on cue after a commit, so the fault is injected into the real step
    that follows it (publishing the artifact); the task's own retry must then finish."""
    from prefect.artifacts import create_table_artifact as publish

    failures: list[str] = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append("artifact")
            raise ConnectionError("artifact API unreachable (injected after the commit)")
        return publish(*args, **kwargs)

    monkeypatch.setattr("tasks.curate.create_table_artifact", fails_once)
    folder, pool = workdir / "images", str(workdir / "pool")
    write_images(folder, 0, 10)
    run = curate_once(str(folder), pool, n_samples=3, tag="t")

    assert failures == ["artifact"]
    datapool = Datapool(pool)
    assert datapool.version() == 0
    assert [datapool.tables.version(t) for t in ("objects", "samples", "tags")] == [0, 0, 0]
    assert len(datapool.samples(["sample_id"])) == 10
    assert datapool.tag_summary()[0]["samples"] == 3
    assert datapool.run_summary(run.run_id) == run.model_dump()
    assert not list((workdir / "pool" / "_work").rglob("*.parquet"))  # cleanup finished
