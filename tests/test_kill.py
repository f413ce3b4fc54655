"""A dead run never blocks the next: `coresift run` killed with its whole process group (the
run and its temporary Prefect server, as an out-of-memory kill or a reboot does) at several
moments; the rerun, with the same Prefect home, starts at once and leaves the datapool an
uninterrupted run leaves."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coresift.datapool import Datapool
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
