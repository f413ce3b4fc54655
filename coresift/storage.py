"""Filesystems for URLs: one place that turns a URL and storage options into fsspec objects.

Credentials come from the environment (the clouds' standard variables, read by each fsspec
backend itself), from storage options, or from a Prefect block resolved by the tasks layer.
They are never formatted into messages: errors name the URL only.
"""

from __future__ import annotations

import os
import re
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from coresift.errors import SourceError

_SECRET_KEY = re.compile(r"secret|password|token|key|credential|sas|signature", re.IGNORECASE)


def redact(options: dict[str, Any]) -> dict[str, Any]:
    """Storage options safe to show: values of secret-looking keys replaced by '***'."""
    return {k: "***" if _SECRET_KEY.search(k) else v for k, v in options.items()}


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


def full_url(fs: AbstractFileSystem, path: str) -> str:
    """A path as a URL that `open_url` accepts again (plain absolute path when local)."""
    return path if _is_local_fs(fs) else str(fs.unstrip_protocol(path))


def _is_local_fs(fs: AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols
