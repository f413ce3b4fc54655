"""What several test modules do the same way: run the flow in-process, run a command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from coresift.config import ProcessingConfig, SelectionConfig, build_config
from coresift.datapool import Datapool
from coresift.summary import RunSummary
from coresift.testing.servers import BIN


def config_values(source: str, datapool: str, **fields: Any) -> dict[str, Any]:
    """Config values in their sections; fields of `selection` and `processing` come flat."""
    values: dict[str, Any] = {
        "source": {"url": source},
        "datapool": {"url": datapool},
        "selection": {},
        "processing": {},
    }
    for name, value in fields.items():
        if name in SelectionConfig.model_fields:
            values["selection"][name] = value
        elif name in ProcessingConfig.model_fields:
            values["processing"][name] = value
        else:
            values[name] = value
    return values


def curate_once(source: str, datapool: str, **fields: Any) -> RunSummary:
    """One run of the curate flow, in this process."""
    from flows.curate import curate

    return curate(build_config(config_values(source, datapool, **fields)))


def run(
    program: str,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    unset: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run one of the venv's commands (coresift, prefect) as a user would, output captured.

    Args:
        env: variables set on top of this process's environment.
        unset: variables of this process's environment left out.
        check: raise with the command's stderr when it fails (pass False to inspect a
            failure).
    """
    result = subprocess.run(
        [str(BIN / program), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**{k: v for k, v in os.environ.items() if k not in unset}, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{program} {args} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object on the last line of stdout (`coresift run --json`)."""
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def object_rows(datapool: str) -> dict[str, dict[str, Any]]:
    """The committed objects-table rows of a datapool, by file name (latest row per name)."""
    table = Datapool(datapool).committed("objects")
    assert table is not None, f"nothing committed in {datapool}"
    return {row["uri"].rsplit("/", 1)[1]: row for row in table.to_pylist()}
