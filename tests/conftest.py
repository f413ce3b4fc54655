"""Fixtures: an isolated Prefect home and server, real S3, GCS and Azure servers, real images.

The environment is set before Prefect is imported anywhere, so that no result, cache or
database of an earlier session leaks into this one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="coresift-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["LIGHTLY_STUDIO_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("CORESIFT_CACHE", str(_SESSION_DIR / "cache"))

from coresift.testing import servers  # noqa: E402  (after the environment above)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server; in-process flows and subprocesses both use it."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with servers.prefect_server(_SESSION_DIR) as url, temporary_settings({PREFECT_API_URL: url}):
        # as for a user who set PREFECT_API_URL before starting: threads without a Prefect
        # context (a process pool's log forwarding) find the server too
        refresh_global_settings_context()
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


@pytest.fixture(scope="session")
def mongodb() -> Iterator[str]:
    """A MongoDB for FiftyOne (set before fiftyone is first imported)."""
    with servers.mongod(_SESSION_DIR) as uri:
        yield uri


def _bucket_name(request: pytest.FixtureRequest) -> str:
    name = request.node.name.lower()
    for char in "_[]":
        name = name.replace(char, "-")
    return f"t-{name[:40].strip('-')}-{os.getpid()}"


def _fresh_bucket(filesystem: Any, name: str) -> str:
    filesystem.clear_instance_cache()  # clients are cached per arguments, not per environment
    filesystem().mkdir(name)
    return name


@pytest.fixture
def s3_bucket(s3_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket per test (likewise gcs_bucket and azure_container)."""
    import s3fs

    return _fresh_bucket(s3fs.S3FileSystem, _bucket_name(request))


@pytest.fixture
def gcs_bucket(gcs_server: str, request: pytest.FixtureRequest) -> str:
    import gcsfs

    return _fresh_bucket(gcsfs.GCSFileSystem, _bucket_name(request))


@pytest.fixture
def azure_container(azurite_server: str, request: pytest.FixtureRequest) -> str:
    import adlfs

    return _fresh_bucket(adlfs.AzureBlobFileSystem, _bucket_name(request)[:63].rstrip("-"))


@pytest.fixture(params=["local", "s3"])
def local_or_s3(
    request: pytest.FixtureRequest, workdir: Path
) -> tuple[str, Path, Callable[[], None]]:
    """(source URL, folder, sync): write files into folder, then sync() makes the source hold
    them; locally the folder is the source, on S3 sync uploads it to a fresh bucket."""
    folder = workdir / "source"
    folder.mkdir()
    if request.param == "local":
        return str(folder), folder, lambda: None
    import s3fs

    bucket = request.getfixturevalue("s3_bucket")
    return (
        f"s3://{bucket}/source",
        folder,
        lambda: s3fs.S3FileSystem().put(f"{folder}/", f"{bucket}/source/", recursive=True),
    )


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="work-", dir=_SESSION_DIR))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
