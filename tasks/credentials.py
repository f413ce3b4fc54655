"""Storage options of a location, including secrets kept in a Prefect Secret block."""

from __future__ import annotations

from typing import Any, cast

from coresift.config import Location
from coresift.errors import ConfigError


def storage_options(location: Location) -> dict[str, Any]:
    """The location's storage options, overlaid with the JSON value of its block."""
    options = dict(location.storage_options)
    if location.block:
        from prefect.blocks.system import Secret

        try:
            block = cast(Secret[Any], Secret.load(location.block))
            value = block.get()
        except ValueError:
            raise ConfigError(f"block: no Secret block named {location.block!r}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"block: Secret {location.block!r} must hold a JSON object")
        options.update(value)
    return options
