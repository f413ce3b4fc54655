"""The report: a static HTML page of a datapool's runs, picks and the samples around them.

`write_report` gathers the facts (`facts`), computes the map and coverage (`analysis`) and
renders one self-contained page (`render`, `assets/`). It reads the datapool only, never the
source, and writes the page anywhere fsspec can.
"""

from __future__ import annotations

from typing import Any

from coresift.datapool import Datapool
from coresift.report.facts import gather
from coresift.report.render import render
from coresift.storage import open_url


def report_url(datapool: Datapool, run_id: str) -> str:
    """Where a run's own report lives: reports/<run_id>.html in the datapool."""
    return f"{datapool.url}/reports/{run_id}.html"


def write_report(
    datapool: Datapool,
    output: str,
    *,
    tags: list[str] | None = None,
    run_id: str | None = None,
    options: dict[str, Any] | None = None,
) -> int:
    """Write the report of some tags (default: the run's, else the latest run's) to output.

    Returns the size of the page in bytes.
    """
    page = render(gather(datapool, tags, run_id), datapool.thumbnails).encode()
    fs, path = open_url(output, options)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, page)
    return len(page)
