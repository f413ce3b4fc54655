"""The curate flow end to end, on a local folder and on a real S3 server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
from numpy.typing import NDArray
from PIL import Image

from coresift.datapool import Datapool
from coresift.testing.media import corrupt_files, jpeg_bytes, photo, photo_count, write_images
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
    assert (run2.committed, run2.datapool_version) == (False, 0), "nothing changed: no commit"
    assert Datapool(pool).version() == 0

    added_bytes = write_images(folder, 120, 15, prefix="new")
    sync()
    run3 = curate_once(source, pool, n_samples=10, tag="third")
    assert (run3.objects_new, run3.objects_skipped, run3.samples_preselected) == (15, 120, 10)
    assert abs(run3.bytes_read - added_bytes) <= 0.02 * added_bytes
    picks = _picked_uris(pool, "third")
    assert 0 < len(picks) <= 10
    assert all(uri.rsplit("/", 1)[1].startswith("new-") for uri in picks)
    assert set(picks).isdisjoint(_picked_uris(pool, "first"))
    assert run3.datapool_version == 1
    if not source.startswith("s3://"):
        work = Path(pool) / "_work"
        assert [p.name for p in work.iterdir()] == ["EPOCH"], "no empty work folders are left"


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
    assert datapool.run_summary(run.run_id) == run.model_dump() | {"report": None}  # after it
    assert not list((workdir / "pool" / "_work").rglob("*.parquet"))  # cleanup finished


def _junk() -> dict[str, NDArray[Any]]:
    rng = np.random.default_rng(7)
    return {
        "blank-white.png": np.full((480, 640, 3), 255, np.uint8),
        "black.png": np.zeros((480, 640, 3), np.uint8),
        "red.png": np.tile(np.array([200, 30, 30], np.uint8), (480, 640, 1)),
        "grey.png": np.full((300, 400, 3), 128, np.uint8),
        "lens-cap.png": rng.normal(12, 8, (480, 640, 3)).clip(0, 255).astype(np.uint8),
        "strip.png": np.full((1, 161, 3), 255, np.uint8),
        "banner.jpg": np.asarray(photo(4).resize((1600, 100))),
    }


def test_junk_is_never_picked_and_says_why_while_fog_and_snow_stay(workdir: Path) -> None:
    folder, pool = workdir / "images", str(workdir / "pool")
    folder.mkdir()
    for index in range(photo_count()):
        (folder / f"photo-{index:02d}.jpg").write_bytes(jpeg_bytes(photo(index)))
    rng = np.random.default_rng(3)
    for index in (0, 6, 10):  # fog: a quarter of the scene under white; snow: flakes on a pale one
        pixels = np.asarray(photo(index), np.float32)
        fog = pixels * 0.25 + 0.75 * 225
        snow = pixels * 0.2 + 0.8 * 240 + rng.normal(0, 6, pixels.shape)
        for name, picture in (("fog", fog), ("snow", snow)):
            image = Image.fromarray(picture.clip(0, 255).astype(np.uint8))
            (folder / f"{name}-{index:02d}.jpg").write_bytes(jpeg_bytes(image))
    for name, pixels in _junk().items():
        Image.fromarray(pixels).save(folder / name)

    run = curate_once(str(folder), pool, n_samples=40, tag="t")
    picked = {uri.rsplit("/", 1)[1] for uri in _picked_uris(pool, "t")}
    assert picked.isdisjoint(_junk())
    assert {f"{kind}-{i:02d}.jpg" for kind in ("fog", "snow") for i in (0, 6, 10)} <= picked
    filtered = Datapool(pool).filtered()
    names = {
        sid: uri.rsplit("/", 1)[1]
        for sid, uri in zip(
            Datapool(pool).samples(["sample_id", "uri"])["sample_id"].to_pylist(),
            Datapool(pool).samples(["sample_id", "uri"])["uri"].to_pylist(),
            strict=True,
        )
    }
    junk = {
        names[sid]: detail
        for sid, reason, detail in zip(
            filtered["sample_id"].to_pylist(),
            filtered["reason"].to_pylist(),
            filtered["detail"].to_pylist(),
            strict=True,
        )
        if reason == "low_information"
    }
    assert set(junk) == set(_junk())
    assert "degenerate shape 161x1" in junk["strip.png"]
    assert "degenerate shape 1600x100" in junk["banner.jpg"]
    assert run.samples_filtered["low_information"] == len(_junk())
    assert run.selection_notes and "low_information" in run.selection_notes[0]

    unguarded = curate_once(
        str(folder), str(workdir / "unguarded"), n_samples=5, tag="u", exclude_low_information=False
    )
    assert unguarded.samples_filtered.get("low_information", 0) == 0
    early = {uri.rsplit("/", 1)[1] for uri in _picked_uris(str(workdir / "unguarded"), "u")}
    assert early & set(_junk())  # without the guard, farthest-first takes junk early


def test_two_sources_share_a_datapool_without_marking_each_other_gone(workdir: Path) -> None:
    first, second, pool = workdir / "first", workdir / "second", str(workdir / "pool")
    first.mkdir()
    second.mkdir()
    write_images(first, 0, 12, prefix="a")
    write_images(second, 12, 12, prefix="b")

    curate_once(str(first), pool, n_samples=4, tag="a1")
    b1 = curate_once(str(second), pool, n_samples=4, tag="b1")
    assert (b1.objects_new, b1.objects_gone, b1.samples_preselected) == (12, 0, 4)
    assert (b1.source, b1.datapool) == (str(second), pool)
    a2 = curate_once(str(first), pool, n_samples=4, tag="a2")
    assert (a2.objects_new, a2.objects_skipped, a2.objects_gone, a2.bytes_read) == (0, 12, 0, 0)
    assert a2.samples_preselected == 0, "nothing new to pick from: earlier picks are not read"

    picked_a1 = _picked_uris(pool, "a1")
    Path(picked_a1[0]).unlink()  # a picked photo is deleted from the first source
    write_images(first, 40, 6, prefix="new")
    a3 = curate_once(str(first), pool, n_samples=4, tag="a3")
    assert (a3.objects_new, a3.objects_gone) == (6, 1)
    assert a3.samples_preselected == 7, "the picks of both sources, less the deleted one"
    b2 = curate_once(str(second), pool, n_samples=4, tag="b2")
    assert (b2.objects_new, b2.objects_gone, b2.bytes_read) == (0, 0, 0)

    objects = Datapool(pool).objects()
    assert [uri for uri, state in objects.items() if state.status == "gone"] == [picked_a1[0]]
    tags = Datapool(pool).tags().column("sample_id").to_pylist()
    assert len(tags) == len(set(tags)) == 12, "no picture picked twice"


def test_the_readmes_query_recipe_reads_the_current_state(workdir: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    recipe = readme.split("To query the datapool yourself", 1)[1]
    code = recipe.split("```python\n", 1)[1].split("```", 1)[0]
    folder = workdir / "images"
    write_images(folder, 0, 8)
    pool = workdir / "datapool"
    curate_once(str(folder), str(pool), n_samples=3, tag="first")
    next(iter(sorted(folder.iterdir()))).unlink()
    write_images(folder, 8, 2, prefix="new")
    curate_once(str(folder), str(pool), n_samples=2, tag="second")
    namespace: dict[str, Any] = {}
    exec(code.replace('pool = "datapool"', f"pool = {str(pool)!r}"), namespace)
    expected = Datapool(str(pool)).samples(["sample_id"]).column("sample_id").to_pylist()
    assert sorted(namespace["samples"].column("sample_id").to_pylist()) == expected
    assert len(expected) == 9
    tagged = Datapool(str(pool)).tags().column("sample_id").to_pylist()
    picks = namespace["picks"].column("sample_id").to_pylist()
    assert sorted(picks) == sorted(s for s in tagged if s in expected)
