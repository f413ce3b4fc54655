"""The `coresift` command as users run it, in a subprocess against the test Prefect server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from coresift.datapool import LOCK_NAME, Datapool
from coresift.testing.media import write_images
from coresift.testing.servers import BIN, free_port, wait_until
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
    "workers",
    "datapool_version",
    "committed",
    "source",
    "datapool",
    "samples_corrupt_by_code",
    "samples_asked",
    "report",
    "duration_s",
    "stage_seconds",
}


def test_default_run_on_the_bundled_photos_then_tags_and_export(workdir: Path) -> None:
    summary = last_json(run("coresift", "run", "--n-samples", "5", "--json", cwd=workdir))
    assert set(summary) == SUMMARY_KEYS
    assert (summary["samples_selected"], summary["workers"]) == (5, 1)
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


def _one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [f"coresift: error: {message}"], result.stderr


def test_bad_input_is_one_line_and_exit_2(workdir: Path) -> None:
    write_images(workdir / "images", 0, 2)
    images = str(workdir / "images")
    (workdir / "broken.yaml").write_text("source:\n  url: [unclosed\n")
    _one_line_error(
        run("coresift", "run", "--config", str(workdir / "broken.yaml"), check=False),
        f"config file {workdir / 'broken.yaml'} is not valid YAML at line 3, column 1: "
        "expected ',' or ']', but got '<stream end>'",
    )
    (workdir / "a-file").write_text("not a folder")
    _one_line_error(
        run(
            "coresift",
            "run",
            "--source",
            images,
            "--datapool",
            str(workdir / "a-file"),
            "--n-samples",
            "1",
            check=False,
        ),
        f"datapool.url: {workdir / 'a-file'} is a file; a datapool is a folder or a prefix",
    )
    fresh = workdir / "fresh-pool"
    for name, section, message in (
        (
            "relevant.yaml",
            f"source: {{url: {images}, relevant_filenames: {workdir / 'none.txt'}}}",
            f"source.relevant_filenames: cannot read {workdir / 'none.txt'}: [Errno 2] No such "
            f"file or directory: '{workdir / 'none.txt'}'",
        ),
        (
            "block.yaml",
            f"source: {{url: {images}, block: no-such-block}}",
            "block: no Secret block named 'no-such-block'",
        ),
    ):
        (workdir / name).write_text(f"{section}\nselection: {{n_samples: 1}}\n")
        result = run(
            "coresift",
            "run",
            "--config",
            str(workdir / name),
            "--datapool",
            str(fresh),
            check=False,
        )
        _one_line_error(result, message)
        assert not fresh.exists(), "the datapool was not touched"
    down = f"http://127.0.0.1:{free_port()}/api"
    _one_line_error(
        run(
            "coresift",
            "run",
            "--source",
            images,
            "--n-samples",
            "1",
            check=False,
            cwd=workdir,
            env={"PREFECT_API_URL": down},
        ),
        f"PREFECT_API_URL: the Prefect server at {down} does not answer ([Errno 111] "
        "Connection refused); start it, or unset PREFECT_API_URL to run with a temporary server",
    )


def test_a_busy_datapool_is_waited_for_then_named_in_one_line(workdir: Path) -> None:
    write_images(workdir / "images", 0, 2)
    pool = workdir / "pool"
    pool.mkdir()
    holder = {"run_id": "theirs", "host": socket.gethostname(), "pid": os.getpid()}
    (pool / LOCK_NAME).write_text(json.dumps({**holder, "heartbeat": time.time()}))
    (workdir / "run.yaml").write_text(f"datapool: {{url: {pool}, lock_wait_s: 1}}\n")
    result = run(
        "coresift",
        "run",
        "--config",
        str(workdir / "run.yaml"),
        "--source",
        str(workdir / "images"),
        "--n-samples",
        "1",
        check=False,
    )
    assert result.returncode == 2
    *waiting, error = result.stderr.strip().splitlines()
    assert error == (
        f"coresift: error: datapool {pool} is locked by run theirs (host {holder['host']}, "
        f"pid {os.getpid()}); one run at a time per datapool. A holder that died is ignored "
        "after 60 s. (waited 1 s)"
    )
    assert len(waiting) <= 1 and "Waiting up to 1 s" in "".join(waiting)


def test_a_closed_pipe_ends_the_listing_quietly(workdir: Path) -> None:
    write_images(workdir / "images", 0, 3)
    for tag in ("a", "b"):
        run(
            "coresift",
            "run",
            "--source",
            str(workdir / "images"),
            "--n-samples",
            "1",
            "--tag",
            tag,
            "--process-all",
            cwd=workdir,
        )
    piped = subprocess.run(
        f"{BIN / 'coresift'} tags | head -c 0; echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        cwd=workdir,
        check=True,
    )
    assert (piped.stdout, piped.stderr) == ("0\n", "")


def test_the_summary_speaks_the_users_language(workdir: Path) -> None:
    write_images(workdir / "images", 0, 6)
    (workdir / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    shown = run(
        "coresift",
        "run",
        "--source",
        str(workdir / "images"),
        "--n-samples",
        "10",
        "--tag",
        "t",
        cwd=workdir,
    ).stdout
    pool = (workdir / "datapool").resolve()
    assert f"  source:   {workdir / 'images'}\n" in shown
    assert f"  datapool: {pool}, now at version 0\n" in shown
    assert "  objects:  7 listed: 7 new, 0 changed, 0 unchanged, 0 gone\n" in shown
    assert "  samples:  7 processed, 1 corrupt (1 decode_failed)\n" in shown
    assert "  picked:   6 of 10 asked; not candidates: 1 corrupt\n" in shown
    assert "  note:     asked for 10, picked 6: " in shown
    assert " KB for " in shown
    assert shown.endswith(f"report: {pool}/reports/{shown.split()[1]}.html\n")
    again = run(
        "coresift", "run", "--source", str(workdir / "images"), "--n-samples", "10", cwd=workdir
    ).stdout
    assert f"  datapool: {pool}, unchanged at version 0: nothing to commit\n" in again
    assert "picks:" not in again and again.endswith("report: none (the run changed nothing)\n")


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
