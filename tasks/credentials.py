"""Storage options for a run's source, including secrets kept in a Prefect Secret block."""

from __future__ import annotations

from typing import Any, cast

from coresift.config import CurateConfig
from coresift.errors import ConfigError


def source_options(config: CurateConfig) -> dict[str, Any]:
    """The config's storage options, overlaid with the JSON value of its storage block."""
    options = dict(config.storage_options)
    if config.storage_block:
        from prefect.blocks.system import Secret

        try:
            block = cast(Secret[Any], Secret.load(config.storage_block))
            value = block.get()
        except ValueError:
            raise ConfigError(
                f"storage_block: no Secret block named {config.storage_block!r}"
            ) from None
        if not isinstance(value, dict):
            raise ConfigError(
                f"storage_block: Secret {config.storage_block!r} must hold a JSON object"
            )
        options.update(value)
    return options
