"""A dead run never blocks the next: `coresift run` killed with its whole process group (the
run and its temporary Prefect server, as an out-of-memory kill or a reboot does) at several
moments; the rerun, with the same Prefect home, starts at once and leaves the datapool an
uninterrupted run leaves."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coresift.datapool import LOCK_NAME, Datapool
from coresift.testing.media import write_images
from coresift.testing.servers import BIN, wait_until

pytestmark = pytest.mark.slow


def _command(source: Path, pool: Path, config: Path) -> list[str]:
    return [
        str(BIN / "coresift"),
        *("run", "--source", str(source), "--datapool", str(pool), "--config", str(config)),
        *("--n-samples", "6", "--tag", "t"),
    ]


def _environment(home: Path) -> dict[str, str]:
    """A Prefect home of the test's own, and no server: each run starts a temporary one."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    # a fresh home's database takes longer than the default 20 s on a busy 2-core machine
    return {
        **env,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }


def _state(pool: Path) -> dict[str, Any]:
    datapool = Datapool(str(pool))
    samples = datapool.samples(["sample_id", "uri", "content_hash", "embedding"])
    tags = datapool.tags().sort_by("rank")
    return {
        "objects": sorted((u, s.version, s.status) for u, s in datapool.objects().items()),
        "samples": samples.to_pylist(),
        "picks": list(zip(tags["tag"].to_pylist(), tags["sample_id"].to_pylist(), strict=True)),
        "runs": len(datapool.runs()),
    }


def _kill_when(command: list[str], env: dict[str, str], ready: Callable[[list[str]], bool]) -> str:
    """Start the command in its own process group; SIGKILL the group once ready(lines) holds."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    incoming: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None

    def read() -> None:
        for line in process.stdout or []:
            incoming.put(line)

    reader = threading.Thread(target=read)
    reader.start()

    def now_ready() -> bool:
        while not incoming.empty():
            lines.append(incoming.get())
        assert process.poll() is None, "the run ended before the moment came:\n" + "".join(lines)
        return ready(lines)

    wait_until(now_ready, "the moment to kill", timeout=300, interval=0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    reader.join()
    return "".join(lines)


def _logged(text: str) -> Callable[[list[str]], bool]:
    return lambda lines: any(text in line for line in lines)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """The source, the config, and the datapool state after one uninterrupted run."""
    work = tmp_path_factory.mktemp("kill")
    source, config, pool = work / "photos", work / "config.yaml", work / "reference"
    write_images(source, 0, 40)
    config.write_text("processing:\n  shard_size: 8\n")
    subprocess.run(
        _command(source, pool, config), env=_environment(work / "home"), check=True, timeout=600
    )
    return source, config, _state(pool)


@pytest.mark.parametrize(
    "moment", ["at the start", "after two shards", "during select", "at the commit", "mid-commit"]
)
def test_a_run_killed_with_its_process_group_never_blocks_the_next(
    moment: str, photos: tuple[Path, Path, dict[str, Any]], workdir: Path
) -> None:
    source, config, reference = photos
    pool = workdir / "pool"
    env = _environment(workdir / "prefect-home")
    ready = {
        "at the start": _logged("Beginning flow run"),
        "after two shards": _logged("processing: 16/40"),
        "during select": _logged("processing: 40/40"),
        "at the commit": _logged("committing run"),
        "mid-commit": lambda _: (pool / "samples" / "_delta_log").exists(),
    }[moment]
    _kill_when(_command(source, pool, config), env, ready)
    assert not (pool / "runs").exists(), "killed before the run's commit was complete"

    rerun = subprocess.run(
        _command(source, pool, config), capture_output=True, text=True, env=env, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Waiting up to" not in rerun.stdout + rerun.stderr, "the dead run's lock was waited on"
    assert _state(pool) == reference


def test_two_runs_at_once_with_their_own_servers_wait_or_name_the_holder(
    photos: tuple[Path, Path, dict[str, Any]], workdir: Path
) -> None:
    """Two people, two laptops, one datapool: each run has its own temporary Prefect server."""
    _, config, _ = photos
    source, pool = workdir / "many", workdir / "pool"
    write_images(source, 0, 600)  # enough work that the first run outlasts the others' start
    log = (workdir / "first.log").open("w")
    first = subprocess.Popen(
        _command(source, pool, config),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_environment(workdir / "home-1"),
    )
    lock = pool / LOCK_NAME
    wait_until(lock.exists, "the first run's lock", timeout=300, interval=0.05)
    holder = json.loads(lock.read_text())["run_id"]
    impatient = workdir / "impatient.yaml"
    impatient.write_text(config.read_text() + "datapool:\n  lock_wait_s: 0.5\n")
    second = subprocess.run(
        [*_command(source, pool, impatient)[:-2], "--tag", "second"],
        capture_output=True,
        text=True,
        env=_environment(workdir / "home-2"),
        timeout=600,
    )
    assert second.returncode == 2, (workdir / "first.log").read_text()[-3000:]
    assert (
        second.stderr.strip()
        .splitlines()[-1]
        .startswith(f"coresift: error: datapool {pool} is locked by run {holder} ")
    )
    patient = subprocess.run(
        [*_command(source, pool, config)[:-2], "--tag", "third", "--json"],
        capture_output=True,
        text=True,
        env=_environment(workdir / "home-3"),
        timeout=600,
    )
    assert first.wait(timeout=600) == 0
    assert patient.returncode == 0, patient.stderr[-3000:]
    assert "Waiting up to 300 s" in patient.stderr
    summary = json.loads(patient.stdout.strip().splitlines()[-1])
    assert (summary["objects_skipped"], summary["committed"]) == (600, False), "it ran after"
    assert [t["tag"] for t in Datapool(str(pool)).tag_summary()] == ["t"]
