"""Each export format loaded by the tool it is for (pycocotools, the Label Studio SDK,
FiftyOne on a real mongod, csv and Parquet readers): every pick once, pointing at its object."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from coresift.datapool import Datapool
from coresift.errors import ConfigError
from coresift.export import export
from coresift.export.records import sample_locator
from coresift.testing.media import corrupt_files, real_clip, write_images
from tests.helpers import curate_once, run

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="keep" toName="image"><Choice value="yes"/><Choice value="no"/></Choices>
</View>"""


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """14 photos and a clip (frames at 1 fps), a broken photo and a broken video; 8 picks in
    tag 't', then 3 more in 'u'; custom metadata 'camera' on every photo."""
    workdir = tmp_path_factory.mktemp("export")
    folder, pool = workdir / "in", str(workdir / "pool")
    write_images(folder, 0, 14)
    (folder / "bikes.mp4").write_bytes(real_clip("bikes.mp4"))
    (folder / "broken.jpg").write_bytes(corrupt_files()["truncated.jpg"])
    (folder / "broken.mp4").write_bytes(real_clip("bikes.mp4")[:2000])
    rows = [{"path": f"img-{i:04d}.jpg", "camera": f"cam{i % 3}"} for i in range(14)]
    (workdir / "meta.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    custom = {"url": str(workdir / "meta.jsonl")}
    curate_once(str(folder), pool, n_samples=8, tag="t", custom_metadata=custom)
    curate_once(str(folder), pool, n_samples=3, tag="u", process_all=True, custom_metadata=custom)
    yield pool


def _picks(pool: str, tag: str = "t") -> list[str]:
    table = Datapool(pool).tag_samples(tag)
    return [
        sample_locator(uri, frame)
        for uri, frame in zip(
            table["uri"].to_pylist(), table["frame_index"].to_pylist(), strict=True
        )
    ]


def _object_of(locator: str) -> Path:
    return Path(locator.split("#frame=")[0])


def test_txt_csv_and_parquet_list_every_pick_once_in_pick_order(pool: str, workdir: Path) -> None:
    picks = _picks(pool)
    assert len(picks) == 8 and any("#frame=" in p for p in picks)
    assert all(_object_of(p).is_file() for p in picks)

    text = export(Datapool(pool), "t", "txt").text
    assert text is not None and text.splitlines() == picks

    csv_text = export(Datapool(pool), "t", "csv").text
    assert csv_text is not None
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["locator"] for r in rows] == picks
    assert [int(r["rank"]) for r in rows] == list(range(8))
    photos = [r for r in rows if not r["frame_index"]]
    assert photos and all(r["custom.camera"].startswith("cam") for r in photos)

    export(Datapool(pool), "t", "parquet", str(workdir / "p.parquet"))
    table = pq.read_table(workdir / "p.parquet")
    assert table["locator"].to_pylist() == picks
    assert {"width", "sharpness", "distance", "tags", "custom.camera"} <= set(table.column_names)


def test_coco_loads_in_pycocotools_with_frames_as_video_frames(pool: str, workdir: Path) -> None:
    from pycocotools.coco import COCO

    path = workdir / "picks.json"
    export(Datapool(pool), "t", "coco", str(path))
    coco = COCO(str(path))
    images = coco.loadImgs(sorted(coco.getImgIds()))
    assert [i["file_name"] for i in images] == _picks(pool)
    assert all(i["width"] > 0 and i["height"] > 0 for i in images)
    frames = [i for i in images if "frame_id" in i]
    assert frames and {i["video_id"] for i in frames} == {1}
    assert coco.dataset["videos"] == [{"id": 1, "name": str(_object_of(frames[0]["file_name"]))}]
    photos = [i for i in images if "frame_id" not in i]
    assert all(i["attributes"]["camera"].startswith("cam") for i in photos)
    assert all("t" in i["attributes"]["tags"] for i in images)


def test_label_studio_tasks_validate_against_a_labelling_config(pool: str) -> None:
    from label_studio_sdk.label_interface.interface import LabelInterface

    text = export(Datapool(pool), "t", "labelstudio").text
    assert text is not None
    tasks = json.loads(text)
    interface = LabelInterface(LABEL_CONFIG)
    assert all(interface.validate_task(task) for task in tasks)
    assert [t["data"]["source"] for t in tasks] == _picks(pool)
    for task in tasks:  # local files go through Label Studio's local-files route
        locator = task["data"]["source"]
        assert task["data"]["image"] == "/data/local-files/?d=" + locator.lstrip("/")


@pytest.mark.usefixtures("s3_server")
def test_label_studio_tasks_on_s3_with_presigned_urls_fetch_the_objects(
    s3_bucket: str, workdir: Path
) -> None:
    import fsspec

    fs, _ = fsspec.core.url_to_fs(f"s3://{s3_bucket}")
    write_images(workdir / "in", 0, 5)
    fs.put(f"{workdir / 'in'}/", f"{s3_bucket}/in/", recursive=True)
    pool = str(workdir / "pool")
    curate_once(f"s3://{s3_bucket}/in", pool, n_samples=3, tag="t")

    plain = json.loads(export(Datapool(pool), "t", "labelstudio").text or "")
    assert [t["data"]["image"] for t in plain] == _picks(pool)  # s3://bucket/key as it is

    signed = json.loads(export(Datapool(pool), "t", "labelstudio", presign_s=600).text or "")
    for task in signed:
        url, uri = task["data"]["image"], task["data"]["source"]
        assert url.startswith("http") and "Signature" in url
        with urllib.request.urlopen(url, timeout=10) as response:  # no credentials needed
            assert response.read() == fs.cat_file(uri)


def test_presigning_a_local_file_names_the_option(pool: str) -> None:
    with pytest.raises(ConfigError, match=r"--presign: .* is a local file"):
        export(Datapool(pool), "t", "labelstudio", presign_s=60)


def _load_fiftyone(name: str) -> Any:
    import fiftyone as fo

    return fo.load_dataset(name)


@pytest.mark.usefixtures("mongodb")
def test_fiftyone_datasets_carry_embeddings_metadata_and_tags(pool: str) -> None:
    import fiftyone.brain as fob

    result = run("coresift", "export", "--datapool", pool, "--tag", "t", "--format", "fiftyone")
    assert "wrote 8 samples to coresift-t, coresift-t-videos" in result.stdout
    picks = _picks(pool)
    images, videos = _load_fiftyone("coresift-t"), _load_fiftyone("coresift-t-videos")
    assert sorted(images.values("source")) == sorted(p for p in picks if "#frame=" not in p)
    assert all(Path(path).is_file() for path in images.values("filepath"))
    frame_sources = [s for sources in videos.values("frames.source") for s in sources]
    assert sorted(frame_sources) == sorted(p for p in picks if "#frame=" in p)
    assert all("t" in tags for tags in images.values("tags"))

    stored = Datapool(pool).samples(["sample_id", "embedding"])
    vectors = dict(
        zip(stored["sample_id"].to_pylist(), stored["embedding"].to_pylist(), strict=True)
    )
    for sample in images:
        assert np.allclose(sample["embedding"], vectors[sample["coresift_id"]])
        assert sample.metadata.width == sample["width"] > 0
        assert sample["camera"].startswith("cam")
    # FiftyOne Brain on our vectors: nothing is embedded again
    visualization = fob.compute_visualization(images, embeddings="embedding", method="pca")
    assert len(visualization.current_points) == len(images)

    count = len(images)
    run("coresift", "export", "--datapool", pool, "--tag", "t", "--format", "fiftyone")
    assert len(_load_fiftyone("coresift-t")) == count  # our own export is replaced


@pytest.mark.usefixtures("mongodb")
def test_export_all_puts_every_sample_in_fiftyone_with_its_tags(pool: str) -> None:
    import fiftyone as fo

    result = run("coresift", "export", "--datapool", pool, "--all", "--format", "fiftyone")
    assert "to coresift-all, coresift-all-videos" in result.stdout
    datapool = Datapool(pool)
    samples = datapool.samples(["uri", "frame_index"])
    everything = {
        sample_locator(u, f)
        for u, f in zip(samples["uri"].to_pylist(), samples["frame_index"].to_pylist(), strict=True)
    }
    images, videos = _load_fiftyone("coresift-all"), _load_fiftyone("coresift-all-videos")
    whole_videos = [s for s in videos.values("source") if s]  # videos that did not decode
    assert [Path(s).name for s in whole_videos] == ["broken.mp4"]
    frames = [s for f in videos.values("frames.source") for s in f]
    exported = images.values("source") + whole_videos + frames
    assert sorted(exported) == sorted(everything)
    for tag in ("t", "u"):
        tagged = images.match_tags(tag).values("source")
        assert set(tagged) == {p for p in _picks(pool, tag) if "#frame=" not in p}
    assert fo.load_dataset("coresift-all").info["coresift"].startswith("every sample")
    broken = images.match({"corrupt_reason": {"$ne": None}}).values("source")
    assert [Path(p).name for p in broken] == ["broken.jpg"]
    csv_text = export(datapool, None, "csv").text or ""
    assert "broken.jpg" in csv_text  # scripts see every sample, broken ones with a reason


@pytest.mark.usefixtures("mongodb")
def test_a_fiftyone_dataset_that_is_not_ours_is_never_replaced(pool: str) -> None:
    import fiftyone as fo

    fo.Dataset("mine", persistent=True)
    with pytest.raises(ConfigError, match="--output: FiftyOne dataset 'mine' exists"):
        export(Datapool(pool), "t", "fiftyone", "mine")
    assert fo.dataset_exists("mine")


def test_lightly_studio_gets_our_embeddings_metadata_and_tags(pool: str, workdir: Path) -> None:
    """The README's recipe, on LightlyStudio's own DuckDB database."""
    from lightly_studio.database import db_manager
    from lightly_studio.resolvers import (
        collection_embedding_model_resolver,
        sample_embedding_resolver,
    )

    from coresift.export.lightly_studio import load_into_lightly_studio

    db_manager.connect(db_file=str(workdir / "lightly_studio.db"), cleanup_existing=True)
    dataset = load_into_lightly_studio(Datapool(pool), "my-pool")

    columns = ["uri", "frame_index", "sharpness", "corrupt_reason", "embedding"]
    records = {
        r["uri"]: r
        for r in Datapool(pool).samples(columns).to_pylist()
        if r["frame_index"] is None and not r["uri"].endswith(".mp4")
    }
    everything = list(dataset)
    assert sorted(s.file_path_abs for s in everything) == sorted(records)  # each image once
    broken = [s for s in everything if s.metadata["corrupt_reason"] is not None]
    assert [Path(s.file_path_abs).name for s in broken] == ["broken.jpg"]
    picked = {p for p in _picks(pool, "t") if "#frame=" not in p}
    assert {s.file_path_abs for s in everything if "t" in s.tags} == picked
    samples = [s for s in everything if s not in broken]
    for sample in samples:
        sharpness = records[sample.file_path_abs]["sharpness"]
        assert sample.metadata["sharpness"] == pytest.approx(sharpness)
        assert str(sample.metadata["custom_camera"]).startswith("cam")
    model_id = collection_embedding_model_resolver.get_model_id_by_name(
        session=dataset.session, collection_id=dataset.collection_id, embedding_model_name=None
    )
    stored = sample_embedding_resolver.get_by_sample_ids(
        session=dataset.session,
        sample_ids=[s.sample_id for s in samples],
        embedding_model_id=model_id,
    )
    assert len(stored) == len(samples)
    for sample, row in zip(samples, stored, strict=True):
        assert np.allclose(row.embedding, records[sample.file_path_abs]["embedding"], atol=1e-6)
