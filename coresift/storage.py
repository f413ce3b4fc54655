"""Filesystems for URLs: one place that turns a URL and storage options into fsspec objects.

Credentials come from the environment (the clouds' standard variables, read by each fsspec
backend itself), from storage options, or from a Prefect block resolved by the tasks layer.
They are never formatted into messages: errors name the URL only.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import fsspec
from fsspec import AbstractFileSystem
from fsspec.caching import BlockCache

from coresift.errors import SourceError

# gcsfs's experimental bucket-type probing stalls about 60 s per call against emulators and
# buys nothing here; it is read when gcsfs is first imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

logger = logging.getLogger(__name__)
T = TypeVar("T")
_QUERY = re.compile(r"\?[^\s'\"]*")


def describe_error(error: BaseException) -> str:
    """A one-line reason from a storage error, with URL query strings (SAS tokens) removed."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return _QUERY.sub("?...", text)[:300]


def is_access_denied(error: BaseException) -> bool:
    """Whether a storage error means wrong, missing or expired credentials (401/403).

    fsspec backends raise PermissionError for most of these, but the Azure and Google SDKs
    also surface their own HTTP errors, which carry the status code.
    """
    if isinstance(error, PermissionError):
        return True
    status = getattr(error, "status_code", None) or getattr(error, "code", None)
    return status in (401, 403)


def protocol_of(url: str) -> str:
    """The URL's protocol ('file' for plain paths)."""
    protocol = fsspec.utils.get_protocol(url)
    return "file" if protocol in ("file", "local") else protocol


def is_local(url: str) -> bool:
    return protocol_of(url) == "file"


def open_url(url: str, options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """The filesystem and backend path of a URL (local paths are made absolute)."""
    if is_local(url):
        url = os.path.abspath(os.path.expanduser(url.removeprefix("file://")))
    try:
        fs, path = fsspec.core.url_to_fs(url, **(options or {}))
    except (ImportError, ValueError, TypeError) as error:
        raise SourceError(f"cannot open {url}: {error}") from None
    return fs, path


def full_url(fs: AbstractFileSystem, path: str, scheme: str | None = None) -> str:
    """A path as a URL that `open_url` accepts again: a plain absolute path when local, else
    with the scheme the user wrote (az:// stays az://, though adlfs's own name is abfs)."""
    if is_local_fs(fs):
        return path
    return f"{scheme}://{path}" if scheme else str(fs.unstrip_protocol(path))


def is_local_fs(fs: AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def delta_storage_options(url: str, options: dict[str, Any] | None = None) -> dict[str, str]:
    """Delta Lake (object_store) options for a URL, derived from the same credentials that
    fsspec uses, so that users configure each store once.

    delta-rs reads the standard AWS and Azure account variables itself; what it lacks is the
    S3 endpoint's plain-HTTP permission and conditional-put mode (safe commits), and Azure
    connection strings, which are taken apart here.
    """
    options = options or {}
    if url.startswith(("s3://", "s3a://")):
        return _s3_delta_options(options)
    if url.startswith(("az://", "abfs://", "abfss://")):
        return _azure_delta_options(options)
    return {str(k): str(v) for k, v in options.items()}


def _s3_delta_options(options: dict[str, Any]) -> dict[str, str]:
    endpoint = str(
        options.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or ""
    )
    result = {"AWS_CONDITIONAL_PUT": "etag"}
    if endpoint:
        result["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            result["AWS_ALLOW_HTTP"] = "true"
    named = (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY"))
    for ours, theirs in (*named, ("token", "AWS_SESSION_TOKEN"), ("profile", "AWS_PROFILE")):
        if ours in options:
            result[theirs] = str(options[ours])
    region = (options.get("client_kwargs") or {}).get("region_name")
    if region:
        result["AWS_REGION"] = str(region)
    return result


def _azure_delta_options(options: dict[str, Any]) -> dict[str, str]:
    connection = options.get("connection_string") or os.environ.get(
        "AZURE_STORAGE_CONNECTION_STRING"
    )
    parts = dict(item.split("=", 1) for item in str(connection or "").split(";") if "=" in item)
    result: dict[str, str] = {}
    name = options.get("account_name") or parts.get("AccountName")
    key = options.get("account_key") or parts.get("AccountKey")
    sas = options.get("sas_token") or parts.get("SharedAccessSignature")
    if name:
        result["azure_storage_account_name"] = str(name)
    if key:
        result["azure_storage_account_key"] = str(key)
    if sas:
        result["azure_storage_sas_token"] = str(sas).lstrip("?")
    for field in ("client_id", "client_secret", "tenant_id"):  # a service principal
        if options.get(field):
            result[f"azure_{field}"] = str(options[field])
    endpoint = str(parts.get("BlobEndpoint") or "").rstrip("/")
    if endpoint:  # a sovereign cloud, or Azurite (whose endpoint includes the account)
        result["azure_storage_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            result["azure_allow_http"] = "true"
    return result


# A call that fails for a reason another attempt may not have (5xx, 429, a reset, a stall, a
# short body) is tried again after these pauses: the unit retried is one object, one block or
# one table operation, never a shard or a whole commit.
RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 8.0)
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def retried(
    call: Callable[[], T], what: str, transient: tuple[type[Exception], ...] = (Exception,)
) -> T:
    """Run one storage call until it succeeds or its retries run out.

    Raises:
        The last attempt's error; at once, an error that no retry can fix (missing,
        forbidden) or one that is not among the transient kinds.
    """
    for pause in RETRY_PAUSES_S:
        try:
            return call()
        except _PERMANENT:
            raise
        except transient as error:
            logger.warning("retrying %s in %g s: %s", what, pause, describe_error(error))
            time.sleep(pause)
    return call()


# Videos are read in blocks of this size through an LRU of STREAM_BLOCKS blocks: a container
# that seeks (an MP4 index at the end) does not fetch the same bytes twice.
STREAM_BLOCK_SIZE = 4 * 1024 * 1024
STREAM_BLOCKS = 16


class BlockReader(io.RawIOBase):
    """A seekable, read-only file over any store that fetches each block at most once.

    `fetched` counts the bytes actually received from the store, which is what a run's
    bytes_read reports. Each block is retried on its own (`retried`). The first
    block is fetched on opening, so a missing object fails here.
    """

    def __init__(self, fs: AbstractFileSystem, path: str, size: int):
        super().__init__()
        self._size = size
        self._position = 0
        self._path = path
        self._fetch_range = functools.partial(fs.cat_file, path)
        self.fetched = 0
        self._cache = BlockCache(STREAM_BLOCK_SIZE, self._fetch, size, maxblocks=STREAM_BLOCKS)
        if size:
            self._cache._fetch(0, min(size, STREAM_BLOCK_SIZE))

    def _fetch(self, start: int, end: int) -> bytes:
        data = retried(
            lambda: bytes(self._fetch_range(start=start, end=end)),
            f"reading bytes {start}-{end} of {self._path}",
        )
        self.fetched += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        end = min(self._size, self._position + len(buffer))
        if end <= self._position:
            return 0
        data = self._cache._fetch(self._position, end)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position
