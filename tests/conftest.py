"""Fixtures: an isolated Prefect home and server, real S3, GCS and Azure servers, real images.

The environment is set before Prefect is imported anywhere, so that no result, cache or
database of an earlier session leaks into this one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="coresift-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("CORESIFT_CACHE", str(_SESSION_DIR / "cache"))

from tests import servers  # noqa: E402  (after the environment above)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server; in-process flows and subprocesses both use it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with servers.prefect_server(_SESSION_DIR) as url, temporary_settings({PREFECT_API_URL: url}):
        yield url
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)  # send the last logs while the server still listens


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    with servers.seaweedfs(_SESSION_DIR) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    with servers.fake_gcs(_SESSION_DIR) as url:
        yield url


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[str]:
    with servers.azurite(_SESSION_DIR) as connection:
        yield connection


def _bucket_name(request: pytest.FixtureRequest) -> str:
    name = request.node.name.lower()
    for char in "_[]":
        name = name.replace(char, "-")
    return f"t-{name[:40].strip('-')}-{os.getpid()}"


@pytest.fixture
def s3_bucket(s3_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket per test."""
    import s3fs

    name = _bucket_name(request)
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(name)
    return name


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
