"""The `coresift` command as users run it, in a subprocess against the test Prefect server."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from coresift.datapool import Datapool
from coresift.testing.media import write_images
from coresift.testing.servers import BIN, wait_until
from tests.helpers import last_json, run

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

SUMMARY_KEYS = {
    "run_id",
    "tag",
    "objects_listed",
    "objects_new",
    "objects_changed",
    "objects_skipped",
    "objects_gone",
    "objects_unsupported",
    "samples_processed",
    "samples_corrupt",
    "samples_filtered",
    "samples_selected",
    "samples_preselected",
    "selection_notes",
    "custom_paths_unmatched",
    "bytes_read",
    "bytes_new",
    "datapool_version",
    "report",
    "duration_s",
    "stage_seconds",
}


def test_default_run_on_the_bundled_photos_then_tags_and_export(workdir: Path) -> None:
    summary = last_json(run("coresift", "run", "--n-samples", "5", "--json", cwd=workdir))
    assert set(summary) == SUMMARY_KEYS
    assert summary["samples_selected"] == 5
    assert Path(str(summary["report"])).is_file()  # the run's report, in the datapool
    assert summary["objects_new"] == len(list((workdir / "coresift-samples").glob("*.jpg")))
    tag = str(summary["tag"])
    assert run("coresift", "tags", cwd=workdir).stdout.split("\t")[:2] == [tag, "5"]
    exported = run("coresift", "export", "--tag", tag, cwd=workdir).stdout.splitlines()
    assert len(exported) == 5 and all(Path(line).is_file() for line in exported)
    run(
        "coresift",
        "export",
        "--tag",
        tag,
        "--format",
        "parquet",
        "--output",
        "picks.parquet",
        cwd=workdir,
    )
    import pyarrow.parquet as pq

    table = pq.read_table(workdir / "picks.parquet")
    assert table.column("uri").to_pylist() == exported
    assert {"width", "sharpness", "rank", "distance"} <= set(table.column_names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-samples", "-1"], "selection.n_samples: Input should be greater than or equal to 0"),
        (
            ["--n-samples", "3", "--min-distance", "3"],
            "selection.min_distance: Input should be less than or equal to 2",
        ),
        (["--tag", "x"], "selection: set n_samples, min_distance, or both"),
        (
            ["--n-samples", "3", "--tag", "no spaces"],
            "tag: may contain only letters, digits, '.', '_' and '-', got 'no spaces'",
        ),
        (
            ["--n-samples", "3", "--source", "/no/such/folder"],
            "source /no/such/folder does not exist",
        ),
    ],
)
def test_user_errors_name_the_problem_without_a_traceback(
    workdir: Path, args: list[str], message: str
) -> None:
    result = run("coresift", "run", "--source", str(workdir), *args, check=False, cwd=workdir)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_fields_are_validated_by_name(workdir: Path) -> None:
    (workdir / "run.yaml").write_text(
        f"source: {{url: {workdir}}}\nselection: {{n_samples: 2}}\nprocessing: {{shard_sise: 3}}\n"
    )
    result = run("coresift", "run", "--config", str(workdir / "run.yaml"), check=False)
    assert result.returncode == 2
    assert "processing.shard_sise: Extra inputs are not permitted" in result.stderr


def test_s3_run_is_configured_by_aws_variables_and_never_prints_them(
    s3_bucket: str, workdir: Path
) -> None:
    import s3fs

    write_images(workdir / "images", 0, 12)
    s3fs.S3FileSystem().put(f"{workdir / 'images'}/", f"{s3_bucket}/in/", recursive=True)
    result = run(
        "coresift",
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
        f"source: {{url: {folder}}}\nselection: {{n_samples: 8}}\ntag: t\n"
        "processing: {shard_size: 10, runtime: torch, threads: 1}\n"
    )
    # Prefect's persisted results, named by our cache key: a shard counts as finished once here.
    results = Path(os.environ["PREFECT_HOME"]) / "storage"
    before = set(results.glob("coresift-shards-*"))

    def finished() -> int:
        return len(set(results.glob("coresift-shards-*")) - before)

    process = subprocess.Popen(
        [
            str(BIN / "coresift"),
            "run",
            "--config",
            str(config),
            "--datapool",
            str(workdir / "pool"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def three_finished() -> bool:
        assert process.poll() is None, "the run ended before it could be killed"
        return finished() >= 3

    wait_until(three_finished, "three finished shards", timeout=300, interval=0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    cached = finished()
    assert 3 <= cached < 16
    assert Datapool(str(workdir / "pool")).version() == -1  # nothing committed

    resumed = run(
        "coresift", "run", "--config", str(config), "--datapool", str(workdir / "pool"), "--json"
    )
    summary = last_json(resumed)
    assert resumed.stderr.count("Finished in state Cached(type=COMPLETED)") == cached
    assert summary["objects_new"] == 160
    assert summary["bytes_read"] < summary["bytes_new"]  # finished shards were not read again

    run(
        "coresift",
        "run",
        "--config",
        str(config),
        "--datapool",
        str(workdir / "straight"),
        "--json",
    )
    assert _datapool_contents(workdir / "pool") == _datapool_contents(workdir / "straight")


STRATEGY_ERRORS = [
    (
        "strategies: [{input: metadata.colourfulness, type: weights}]",
        None,
        "selection.strategies.0: unknown input 'metadata.colourfulness'",
    ),
    (
        "strategies: [{input: custom.score, type: balance, target: uniform}]",
        "path,score\nimg-0000.jpg,1\n",
        "selection.strategies.0: balance needs a categorical input; score is numeric",
    ),
    (
        "strategies: [{input: metadata.width, type: threshold, operation: '>'}]",
        None,
        "selection.strategies.0: threshold needs both an operation and a value",
    ),
    (
        "strategies: [{input: embedding, type: similarity, query: no-such-tag}]",
        None,
        "selection.strategies.0.query: similarity query 'no-such-tag' is not a tag of datapool",
    ),
    (
        "strategies: [{input: custom.score, type: weights}]",
        "path,score\nimg-0000.jpg,1\nimg-0001.jpg,2.5\nimg-0002.jpg,lots\n",
        "custom_metadata column 'score' row 3: 'lots' is not a number",
    ),
    (
        "strategies: [{input: custom.score, type: weights}]",
        "file,score\nimg-0000.jpg,1\n",
        "has no 'path' column (columns: file, score)",
    ),
    ("strategies: [{input: custom.score, type: weights}]", "", "custom_metadata: cannot read"),
    (
        "strategies: [{input: custom.kind, type: weights}]",
        "path,score\nimg-0000.jpg,1\n",
        "unknown input custom.kind: the custom metadata file's columns are score",
    ),
]


@pytest.mark.parametrize(("selection", "custom", "message"), STRATEGY_ERRORS)
def test_bad_strategies_fail_before_any_work_naming_the_field(
    workdir: Path, selection: str, custom: str | None, message: str
) -> None:
    write_images(workdir / "images", 0, 3)
    config = workdir / "run.yaml"
    text = f"source: {{url: {workdir / 'images'}}}\nselection: {{n_samples: 2, {selection}}}\n"
    if custom is not None:
        if custom:
            (workdir / "meta.csv").write_text(custom)
        text += f"custom_metadata: {{url: {workdir / 'meta.csv'}}}\n"
    config.write_text(text)
    result = run(
        "coresift", "run", "--config", str(config), "--datapool", str(workdir / "pool"), check=False
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (workdir / "pool").exists()  # nothing was written
