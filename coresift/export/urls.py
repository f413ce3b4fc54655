"""URLs that the tools on the other side of an export can open.

Label Studio reads `s3://` and `gs://` through its cloud storages, Azure as `azure-blob://`,
and local files through its local-files route (with its document root at `/`). Any of them
can instead be a presigned HTTPS URL, valid for a number of seconds, which every tool opens.
"""

from __future__ import annotations

from urllib.parse import quote

from coresift.errors import ConfigError
from coresift.storage import describe_error, is_local, open_url, protocol_of

_AZURE = ("az", "abfs", "abfss")


def label_studio_url(uri: str) -> str:
    """The URL under which Label Studio's storages and local-files route find an object."""
    if is_local(uri):
        return "/data/local-files/?d=" + quote(uri.removeprefix("file://").lstrip("/"))
    protocol = protocol_of(uri)
    if protocol in _AZURE:
        return "azure-blob://" + uri.split("://", 1)[1]
    return uri.replace("s3a://", "s3://", 1) if protocol == "s3" else uri


def presigned_url(uri: str, seconds: int) -> str:
    """An HTTPS URL for a cloud object that works without credentials for `seconds`.

    Raises:
        ConfigError: naming --presign, for local files or a store that cannot sign (an
            Azure account without a key, Google credentials that are not a service account).
    """
    if is_local(uri):
        raise ConfigError(f"--presign: {uri} is a local file; only cloud objects can be signed")
    fs, path = open_url(uri)
    try:
        return str(fs.sign(path, expiration=seconds))
    except Exception as error:  # each backend fails in its own way
        raise ConfigError(f"--presign: cannot sign {uri}: {describe_error(error)}") from None
