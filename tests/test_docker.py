"""The Docker image as the job image of a Prefect Docker work pool and as the CLI's: no Docker
engine runs on these machines, so each test reads ENTRYPOINT, CMD, COPY and WORKDIR from the
Dockerfile and runs the command line a container would run, with this checkout standing in
for the image's files."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from coresift.datapool import Datapool
from coresift.testing.servers import BIN, ROOT
from flows.cli import parser
from tests.helpers import run

pytestmark = pytest.mark.slow


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (instruction, argument) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(maxsplit=1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1]) for pair in pairs]


def _image_argv(args: list[str]) -> list[str]:
    """What a container of the image runs for `docker run IMAGE args...` (or for a worker's
    command): ENTRYPOINT, then args or else CMD, with the image's files mapped to this
    checkout."""
    instructions = _instructions()
    entrypoint = json.loads(next(a for i, a in instructions if i == "ENTRYPOINT"))
    command = json.loads(next(a for i, a in instructions if i == "CMD"))
    copied = {}
    for instruction, argument in instructions:
        if instruction == "COPY":
            *sources, target = argument.split()
            copied.update({Path(target).name: ROOT / source for source in sources})
    program = copied.get(entrypoint[0])
    assert program is not None, f"{entrypoint[0]} is not copied into the image's PATH"
    return [str(program), *entrypoint[1:], *(args or command)]


def _container(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run what the container would run, with the image's ENV, in its WORKDIR (this checkout
    stands in for it; paths under it keep the test session's values)."""
    instructions = _instructions()
    workdir = next(a for i, a in instructions if i == "WORKDIR")
    image_env = dict(
        pair.split("=", 1) for i, a in instructions if i == "ENV" for pair in shlex.split(a)
    )
    assert image_env["CORESIFT_PROJECT_DIR"] == workdir  # where the deployments' code is
    environment = {
        **os.environ,
        **{k: v for k, v in image_env.items() if not v.startswith(workdir)},
        "CORESIFT_PROJECT_DIR": str(ROOT),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # the image's Python is on PATH
        **(env or {}),
    }
    return subprocess.run(
        _image_argv(args), capture_output=True, text=True, cwd=ROOT, env=environment, timeout=600
    )


def test_the_entrypoint_passes_coresift_commands_to_coresift() -> None:
    script = (ROOT / "infra" / "entrypoint.sh").read_text()
    listed = re.search(r'"" \| -\* \| ([a-z| ]+)\) exec coresift', script)
    assert listed is not None
    subcommands = next(action.choices for action in parser()._actions if action.dest == "command")
    assert {name.strip() for name in listed.group(1).split("|")} == set(subcommands or {})


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "usage: coresift"),  # CMD ["--help"]
        (["run", "--help"], "usage: coresift run"),
        (["bridge", "--help"], "usage: coresift bridge"),
        (["prefect", "version"], "Version:"),
        (["python", "-c", "print('any program')"], "any program"),
    ],
)
def test_the_image_runs_the_cli_and_any_other_program(args: list[str], expected: str) -> None:
    result = _container(args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout


def test_a_docker_work_pool_runs_the_flow_in_the_image(prefect_server: str, workdir: Path) -> None:
    """A deployment on a Docker work pool: the Docker worker's own job configuration gives
    the command and environment of the container, which then runs the flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect_docker.worker import DockerWorkerJobConfiguration

    from coresift.testing.media import write_images
    from flows.curate import curate

    pool_name = f"coresift-docker-{os.getpid()}"
    run("prefect", "work-pool", "create", pool_name, "--type", "docker")
    write_images(workdir / "images", 0, 6)
    config = {
        "source": {"url": str(workdir / "images")},
        "datapool": {"url": str(workdir / "pool")},
        "selection": {"n_samples": 3},
        "tag": "docker",
    }
    curate.deploy(
        name="docker",
        work_pool_name=pool_name,
        image="coresift:test",
        build=False,
        push=False,
        parameters={"config": config},
        print_next_steps=False,
    )
    flow_run: FlowRun = run_deployment("curate/docker", timeout=0, as_subflow=False)  # type: ignore[assignment]
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(pool_name)
        deployment = client.read_deployment_by_name("curate/docker")
        flow = client.read_flow(deployment.flow_id)
    job: Any = asyncio.run(
        DockerWorkerJobConfiguration.from_template_and_values(
            pool.base_job_template, deployment.job_variables or {}
        )
    )
    job.prepare_for_flow_run(flow_run, deployment, flow, pool)
    assert job.image == "coresift:test"

    result = _container(shlex.split(job.command), env=job.env)

    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state is not None and state.is_completed()
    assert [t["tag"] for t in Datapool(str(workdir / "pool")).tag_summary()] == ["docker"]
