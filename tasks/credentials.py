"""Storage options of a location, including credentials kept in Prefect blocks.

`block: NAME` names a generic Secret block whose value is a JSON object of fsspec options;
`block: TYPE/NAME` names a typed block of Prefect's cloud integrations (prefect-aws
`aws-credentials`, prefect-gcp `gcp-credentials`, prefect-azure
`azure-blob-storage-credentials`), whose masked fields become the same fsspec options.
`coresift.storage.delta_storage_options` derives the Delta Lake options from those, so each
block is read in one place for both.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlparse

from coresift.config import Location
from coresift.errors import ConfigError

# The typed blocks understood here, and the extra that installs each.
TYPED_BLOCKS = {
    "aws-credentials": "aws",
    "gcp-credentials": "gcp",
    "azure-blob-storage-credentials": "azure",
}


def storage_options(location: Location) -> dict[str, Any]:
    """The location's storage options, overlaid with the options its block holds."""
    options = dict(location.storage_options)
    if location.block:
        options.update(block_options(location.block))
    return options


def block_options(name: str) -> dict[str, Any]:
    """The fsspec options a Secret block (NAME) or a typed credentials block (TYPE/NAME) holds.

    Raises:
        ConfigError: naming the `block` field, when the block is missing, of another type,
            or needs an extra that is not installed. Secret values never enter the message.
    """
    kind, _, block_name = name.rpartition("/")
    if kind in ("", "secret"):
        return _secret_options(block_name)
    if kind not in TYPED_BLOCKS:
        raise ConfigError(
            f"block: {name!r} is not a Secret or one of the types {', '.join(TYPED_BLOCKS)}"
        )
    _import_collection(kind)
    from prefect.blocks.core import Block

    try:
        block = Block.load(name)
    except ValueError:
        raise ConfigError(f"block: no {kind} block named {block_name!r}") from None
    return typed_block_options(block)


def typed_block_options(block: Any) -> dict[str, Any]:
    """fsspec options (s3fs, gcsfs or adlfs) from a prefect-aws, prefect-gcp or prefect-azure
    credentials block; fields left empty leave the backend's own defaults in place."""
    kind = block.get_block_type_slug()
    fields: dict[str, Any] = {}
    if kind == "aws-credentials":
        parameters = block.aws_client_parameters
        fields = {
            "key": block.aws_access_key_id,
            "secret": _reveal(block.aws_secret_access_key),
            "token": block.aws_session_token,
            "profile": block.profile_name,
            "endpoint_url": parameters.endpoint_url,
        }
        if block.region_name:
            fields["client_kwargs"] = {"region_name": block.region_name}
    elif kind == "gcp-credentials":
        info = block.service_account_info
        fields = {
            "token": info.get_secret_value() if info else _path(block.service_account_file),
            "project": block.project,
        }
    elif kind == "azure-blob-storage-credentials":
        fields = {
            "connection_string": _reveal(block.connection_string),
            "account_name": _account_name(block.account_url),
            "client_id": block.client_id,
            "tenant_id": block.tenant_id,
            "client_secret": _reveal(block.client_secret),
        }
        if fields["account_name"] and not (fields["connection_string"] or block.client_secret):
            fields["anon"] = False  # adlfs then signs in with DefaultAzureCredential
    return {key: value for key, value in fields.items() if value is not None}


def _secret_options(name: str) -> dict[str, Any]:
    from prefect.blocks.system import Secret

    try:
        value = cast(Secret[Any], Secret.load(name)).get()
    except ValueError:
        raise ConfigError(f"block: no Secret block named {name!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"block: Secret {name!r} must hold a JSON object")
    return value


def _import_collection(kind: str) -> None:
    """Import the integration that defines a block type, so that Prefect can load it."""
    extra = TYPED_BLOCKS[kind]
    try:
        __import__(f"prefect_{extra}")
    except ImportError:
        raise ConfigError(
            f"block: {kind} blocks need the {extra} extra: pip install 'coresift[{extra}]'"
        ) from None


def _reveal(secret: Any) -> str | None:
    return None if secret is None else str(secret.get_secret_value()) or None


def _path(path: Any) -> str | None:
    return None if path is None else str(path)


def _account_name(account_url: str | None) -> str | None:
    """'myaccount' from https://myaccount.blob.core.windows.net."""
    host = urlparse(account_url).hostname if account_url else None
    return host.split(".")[0] if host else None
