"""GCS and Azure Blob as sources, S3 and Azure as datapool homes, and the errors users hit."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest

from coresift.datapool import Datapool
from coresift.embedding import load_embedder
from coresift.errors import VANISHED
from coresift.listing import list_source
from coresift.process import process_objects
from coresift.testing.media import encode_video, jpeg_bytes, photo, real_clip, write_images
from tests.helpers import curate_once, object_rows, run

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


@pytest.fixture(params=["gcs", "azure"])
def cloud_prefix(request: pytest.FixtureRequest) -> str:
    """An empty prefix on a local GCS or Azure server, configured by environment only."""
    if request.param == "gcs":
        return f"gs://{request.getfixturevalue('gcs_bucket')}/data"
    return f"az://{request.getfixturevalue('azure_container')}/data"


def _upload(folder: Path, prefix: str) -> None:
    fs, root = fsspec.core.url_to_fs(prefix)
    for path in sorted(folder.iterdir()):
        fs.pipe_file(f"{root}/{path.name}", path.read_bytes())


def test_images_and_a_video_on_gcs_and_azure(cloud_prefix: str, workdir: Path) -> None:
    folder, pool = workdir / "in", str(workdir / "pool")
    write_images(folder, 0, 60)
    (folder / "bikes.mp4").write_bytes(real_clip("bikes.mp4"))
    _upload(folder, cloud_prefix)

    first = curate_once(cloud_prefix, pool, n_samples=10, tag="one")
    assert (first.objects_new, first.samples_selected, first.samples_corrupt) == (61, 10, 0)
    assert 0.98 * first.bytes_new <= first.bytes_read <= 1.02 * first.bytes_new
    assert first.samples_processed == 60 + 10  # one frame per second of the 10 s clip

    again = curate_once(cloud_prefix, pool, n_samples=10, tag="two")
    assert (again.objects_new, again.objects_skipped, again.bytes_read) == (0, 61, 0)

    fs, root = fsspec.core.url_to_fs(cloud_prefix)
    replacement = jpeg_bytes(photo(4))
    fs.pipe_file(f"{root}/img-0007.jpg", replacement)
    third = curate_once(cloud_prefix, pool, n_samples=10, tag="three")
    assert (third.objects_changed, third.objects_skipped) == (1, 60)
    assert third.bytes_read == len(replacement)


def _contents(pool: str) -> tuple[Any, ...]:
    datapool = Datapool(pool)
    objects = sorted((u, s.status) for u, s in datapool.objects().items())
    samples = sorted(datapool.samples(["sample_id", "width", "sharpness"]).to_pylist(), key=str)
    tags = [(t["tag"], t["samples"]) for t in datapool.tag_summary()]
    picks = [datapool.tag_samples(t).column("sample_id").to_pylist() for t, _ in tags]
    return objects, samples, tags, picks


@pytest.fixture(params=["s3", "azure"])
def remote_pool(request: pytest.FixtureRequest) -> str:
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}/pool"
    return f"az://{request.getfixturevalue('azure_container')}/pool"


def test_a_datapool_on_s3_or_azure_behaves_like_a_local_one(
    remote_pool: str, workdir: Path
) -> None:
    folder = workdir / "in"
    write_images(folder, 0, 20)
    for pool in (remote_pool, str(workdir / "local-pool")):
        curate_once(str(folder), pool, n_samples=4, tag="a")
    write_images(folder, 20, 6, prefix="more")
    (folder / "img-0003.jpg").unlink()
    runs = [
        curate_once(str(folder), pool, n_samples=3, tag="b")
        for pool in (remote_pool, str(workdir / "local-pool"))
    ]
    differ = {"run_id", "duration_s", "stage_seconds", "report", "datapool"}
    assert runs[0].model_dump(exclude=differ) == runs[1].model_dump(exclude=differ)
    assert _contents(remote_pool) == _contents(str(workdir / "local-pool"))
    assert Datapool(remote_pool).version() == 1


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run("coresift", "run", *args, env=env, check=False)


@pytest.mark.parametrize(
    ("fixture", "url"),
    [
        ("s3_server", "s3://no-such-bucket-here/x"),
        ("gcs_server", "gs://no-such-bucket-here/x"),
        ("azurite_server", "az://no-such-container/x"),
    ],
)
def test_a_missing_bucket_is_named(
    request: pytest.FixtureRequest, fixture: str, url: str, workdir: Path
) -> None:
    request.getfixturevalue(fixture)
    result = _run_cli("--source", url, "--datapool", str(workdir / "pool"), "--n-samples", "3")
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        f"source {url}: bucket or container" in result.stderr and "does not exist" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert Datapool(str(workdir / "pool")).version() == -1


def test_wrong_s3_credentials_are_access_denied(s3_bucket: str, workdir: Path) -> None:
    import s3fs

    s3fs.S3FileSystem().pipe(f"{s3_bucket}/in/a.jpg", jpeg_bytes(photo(1)))
    wrong = {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = _run_cli(
        "--source",
        f"s3://{s3_bucket}/in",
        "--datapool",
        str(workdir / "pool"),
        "--n-samples",
        "1",
        env=wrong,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"access denied to source s3://{s3_bucket}/in" in result.stderr
    assert "not-the-secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def _sas_connection(azurite: str, container: str, expiry: datetime) -> tuple[str, str]:
    """A connection string holding a container SAS token, and the token."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from coresift.testing.servers import AZURITE_ACCOUNT, AZURITE_KEY

    token = generate_container_sas(
        AZURITE_ACCOUNT,
        container,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=expiry,
    )
    endpoint = azurite.split("BlobEndpoint=")[1].rstrip(";")
    return f"BlobEndpoint={endpoint};SharedAccessSignature={token}", token


@pytest.mark.parametrize("expired", [False, True])
def test_azure_sas_tokens_work_and_expired_ones_are_access_denied(
    azurite_server: str, azure_container: str, workdir: Path, expired: bool
) -> None:
    fs, _ = fsspec.core.url_to_fs(f"az://{azure_container}")
    for i in range(3):
        fs.pipe_file(f"{azure_container}/in/{i}.jpg", jpeg_bytes(photo(i)))
    expiry = datetime.now(UTC) + (timedelta(hours=-1) if expired else timedelta(hours=1))
    connection, token = _sas_connection(azurite_server, azure_container, expiry)
    result = _run_cli(
        "--source",
        f"az://{azure_container}/in",
        "--datapool",
        str(workdir / "pool"),
        "--n-samples",
        "2",
        "--json",
        env={"AZURE_STORAGE_CONNECTION_STRING": connection},
    )
    signature = token.split("sig=")[1].split("&")[0]
    assert signature not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if expired:
        assert result.returncode == 2
        assert f"access denied to source az://{azure_container}/in" in result.stderr
        assert Datapool(str(workdir / "pool")).version() == -1
    else:
        assert result.returncode == 0, result.stderr[-2000:]
        assert '"samples_selected":2' in result.stdout.splitlines()[-1]


def test_the_azure_account_key_never_reaches_logs_or_the_datapool(
    azure_container: str, workdir: Path
) -> None:
    from coresift.testing.servers import AZURITE_KEY

    fs, _ = fsspec.core.url_to_fs(f"az://{azure_container}")
    fs.pipe_file(f"{azure_container}/in/a.jpg", jpeg_bytes(photo(2)))
    pool = f"az://{azure_container}/pool"
    result = _run_cli(
        "--source", f"az://{azure_container}/in", "--datapool", pool, "--n-samples", "1"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert AZURITE_KEY not in result.stdout + result.stderr
    for path in fs.find(f"{azure_container}/pool"):
        assert AZURITE_KEY.encode() not in fs.cat_file(path), path


def test_an_object_deleted_between_listing_and_reading_is_recorded_as_gone(gcs_bucket: str) -> None:
    fs, _ = fsspec.core.url_to_fs(f"gs://{gcs_bucket}")
    for i in range(3):
        fs.pipe_file(f"{gcs_bucket}/in/{i}.jpg", jpeg_bytes(photo(i)))
    listing = list_source(f"gs://{gcs_bucket}/in").refs()
    fs.rm_file(f"{gcs_bucket}/in/1.jpg")  # a real deletion on the server, after the listing
    result = process_objects(listing, load_embedder("efficientnet-lite0"))
    statuses = {
        r["uri"].rsplit("/", 1)[1]: (r["status"], r["reason"]) for r in result.objects.to_pylist()
    }
    assert statuses == {
        "0.jpg": ("ok", None),
        "1.jpg": ("gone", VANISHED.message),
        "2.jpg": ("ok", None),
    }
    assert len(result.samples) == 2


def test_throttling_is_retried_with_backoff(
    gcs_bucket: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fake-gcs-server never throttles, so the fault is injected into gcsfs's real read path."""
    import gcsfs

    fs, _ = fsspec.core.url_to_fs(f"gs://{gcs_bucket}")
    for i in range(4):
        fs.pipe_file(f"{gcs_bucket}/in/{i}.jpg", jpeg_bytes(photo(i)))
    real_cat = gcsfs.GCSFileSystem._cat_file
    faults = {"left": 2}

    async def throttled(self: Any, path: str, *args: Any, **kwargs: Any) -> bytes:
        if faults["left"] > 0:
            faults["left"] -= 1
            raise OSError("429 Too Many Requests: rate limit exceeded (injected)")
        return bytes(await real_cat(self, path, *args, **kwargs))

    monkeypatch.setattr(gcsfs.GCSFileSystem, "_cat_file", throttled)
    gcsfs.GCSFileSystem.clear_instance_cache()  # sync wrappers are bound when an instance is made
    run = curate_once(f"gs://{gcs_bucket}/in", str(workdir / "pool"), n_samples=2)
    assert faults["left"] == 0
    assert (run.objects_new, run.samples_corrupt, run.samples_selected) == (4, 0, 2)


def test_every_kind_is_decided_once_and_counted(gcs_bucket: str, workdir: Path) -> None:
    """An extensionless object typed video/* is a video, an .ogg video is a video, and a text
    file is counted and recorded as unsupported, never read."""
    import gcsfs

    fs = gcsfs.GCSFileSystem()
    encode_video(workdir / "clip.ogg", codec="libvpx", frames=30, fps=10)
    fs.pipe_file(f"{gcs_bucket}/in/camera-7", real_clip("bikes.mp4"), content_type="video/mp4")
    fs.pipe_file(f"{gcs_bucket}/in/clip.ogg", (workdir / "clip.ogg").read_bytes())
    fs.pipe_file(f"{gcs_bucket}/in/notes.txt", b"shot list\n", content_type="text/plain")
    fs.pipe_file(f"{gcs_bucket}/in/still.jpg", jpeg_bytes(photo(2)))
    pool = str(workdir / "pool")

    run = curate_once(f"gs://{gcs_bucket}/in", pool, n_samples=4)
    assert (run.objects_listed, run.objects_new, run.objects_unsupported) == (4, 3, 1)
    assert (run.samples_processed, run.samples_corrupt) == (10 + 3 + 1, 0)  # 1 frame/s
    assert run.bytes_read == run.bytes_new  # the text file is not read
    rows = object_rows(pool)
    assert (rows["camera-7"]["status"], rows["camera-7"]["media"]) == ("ok", "video")
    assert rows["camera-7"]["frame_count"] == 250
    assert (rows["clip.ogg"]["status"], rows["clip.ogg"]["media"]) == ("ok", "video")
    assert (rows["notes.txt"]["status"], rows["notes.txt"]["reason_code"]) == (
        "unsupported",
        "unsupported",
    )

    again = curate_once(f"gs://{gcs_bucket}/in", pool, n_samples=4)
    assert (again.objects_skipped, again.objects_unsupported, again.bytes_read) == (3, 1, 0)
    table = Datapool(pool).committed("objects")
    assert table is not None and len(table) == 4  # nothing recorded twice
