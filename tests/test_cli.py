"""The `coresift` command as users run it, in a subprocess against the test Prefect server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coresift.datapool import Datapool
from tests.media import write_images

pytestmark = pytest.mark.usefixtures("prefect_server")

SUMMARY_KEYS = {
    "run_id",
    "tag",
    "objects_listed",
    "objects_new",
    "objects_changed",
    "objects_skipped",
    "objects_gone",
    "samples_processed",
    "samples_corrupt",
    "samples_selected",
    "samples_preselected",
    "bytes_read",
    "bytes_new",
    "datapool_version",
    "duration_s",
    "stage_seconds",
}
COMMAND = [str(Path(sys.executable).parent / "coresift")]


def coresift(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*COMMAND, *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"coresift {args} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def test_default_run_on_the_bundled_photos_then_tags_and_export(workdir: Path) -> None:
    summary = last_json(coresift("run", "--n-samples", "5", "--json", cwd=workdir))
    assert set(summary) == SUMMARY_KEYS
    assert summary["samples_selected"] == 5
    assert summary["objects_new"] == len(list((workdir / "coresift-samples").glob("*.jpg")))
    tag = str(summary["tag"])
    assert coresift("tags", cwd=workdir).stdout.split("\t")[:2] == [tag, "5"]
    exported = coresift("export", "--tag", tag, cwd=workdir).stdout.splitlines()
    assert len(exported) == 5 and all(Path(line).is_file() for line in exported)
    coresift(
        "export", "--tag", tag, "--format", "parquet", "--output", "picks.parquet", cwd=workdir
    )
    import pyarrow.parquet as pq

    table = pq.read_table(workdir / "picks.parquet")
    assert table.column("uri").to_pylist() == exported
    assert {"width", "sharpness", "rank", "distance"} <= set(table.column_names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-samples", "-1"], "n_samples: Input should be greater than or equal to 0"),
        (
            ["--n-samples", "3", "--min-distance", "3"],
            "min_distance: Input should be less than or equal to 2",
        ),
        (["--tag", "x"], "set n_samples, min_distance, or both"),
        (["--n-samples", "3", "--tag", "no spaces"], "tag: String should match pattern"),
        (
            ["--n-samples", "3", "--source", "/no/such/folder"],
            "source /no/such/folder does not exist",
        ),
    ],
)
def test_user_errors_name_the_problem_without_a_traceback(
    workdir: Path, args: list[str], message: str
) -> None:
    result = coresift("run", "--source", str(workdir), *args, check=False, cwd=workdir)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_fields_are_validated_by_name(workdir: Path) -> None:
    (workdir / "run.yaml").write_text(f"source: {workdir}\nn_samples: 2\nshard_sise: 3\n")
    result = coresift("run", "--config", str(workdir / "run.yaml"), check=False)
    assert result.returncode == 2
    assert "shard_sise: Extra inputs are not permitted" in result.stderr


def test_s3_run_is_configured_by_aws_variables_and_never_prints_them(
    s3_bucket: str, workdir: Path
) -> None:
    import s3fs

    write_images(workdir / "images", 0, 12)
    s3fs.S3FileSystem().put(f"{workdir / 'images'}/", f"{s3_bucket}/in/", recursive=True)
    result = coresift(
        "run",
        "--source",
        f"s3://{s3_bucket}/in",
        "--datapool",
        str(workdir / "pool"),
        "--n-samples",
        "4",
        "--json",
    )
    assert last_json(result)["samples_selected"] == 4
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret not in result.stdout + result.stderr
    for path in (workdir / "pool").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def _datapool_contents(pool: Path) -> tuple[object, ...]:
    datapool = Datapool(str(pool))
    objects = sorted((u, s.version, s.status) for u, s in datapool.objects().items())
    samples = datapool.samples().drop_columns(
        ["run_id"] if "run_id" in datapool.samples().column_names else []
    )
    tag = datapool.tag_summary()[0]["tag"]
    return objects, samples.to_pylist(), datapool.tag_samples(tag).column("sample_id").to_pylist()


def test_a_killed_run_resumes_from_its_finished_shards(workdir: Path) -> None:
    folder = workdir / "images"
    write_images(folder, 0, 160)
    config = workdir / "slow.yaml"  # small shards on the slower engine, so a kill lands mid-run
    config.write_text(
        f"source: {folder}\nn_samples: 8\nshard_size: 10\nruntime: torch\nthreads: 1\ntag: t\n"
    )
    # Prefect's persisted results, named by our cache key: a shard counts as finished once here.
    results = Path(os.environ["PREFECT_HOME"]) / "storage"
    before = set(results.glob("coresift-shards-*"))

    def finished() -> int:
        return len(set(results.glob("coresift-shards-*")) - before)

    process = subprocess.Popen(
        [*COMMAND, "run", "--config", str(config), "--datapool", str(workdir / "pool")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and finished() < 3:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    cached = finished()
    assert 3 <= cached < 16
    assert Datapool(str(workdir / "pool")).version() == -1  # nothing committed

    resumed = coresift(
        "run", "--config", str(config), "--datapool", str(workdir / "pool"), "--json"
    )
    summary = last_json(resumed)
    assert resumed.stderr.count("Finished in state Cached(type=COMPLETED)") == cached
    assert summary["objects_new"] == 160
    assert summary["bytes_read"] < summary["bytes_new"]  # finished shards were not read again

    coresift("run", "--config", str(config), "--datapool", str(workdir / "straight"), "--json")
    assert _datapool_contents(workdir / "pool") == _datapool_contents(workdir / "straight")
