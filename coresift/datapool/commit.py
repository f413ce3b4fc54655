"""The commit protocol: how one run's rows become visible all at once, or not at all.

Delta commits are atomic per table, not across tables, so `runs` is the commit log: a row of
any other table counts only once its run_id is in `runs`, and the runs row is written last.
A run that dies before that write leaves rows nobody reads, so the datapool is exactly as it
was. Every append is recorded under the run's app transaction, so a retried commit skips what
an earlier attempt wrote and never duplicates a row.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from coresift import schema
from coresift.datapool.delta import DeltaTables, Rows
from coresift.errors import UNSUPPORTED, DatapoolBusyError


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus random hex."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def commit_run(
    tables: DeltaTables,
    *,
    run_id: str,
    expected_version: int,
    rows: Mapping[str, Rows],
    run_row: dict[str, Any],
) -> int:
    """Append one run's rows to each table, runs row last; return the new datapool version.

    Args:
        rows: the run's rows by table name (objects, samples, tags, filtered, picks,
            thumbnails), without run_id, which is added here; parts are streamed.
        run_row: the runs table's row (tag, started_at, summary_json).

    Call it while holding the datapool's lock. Safe to retry: appends an earlier attempt
    made are skipped, and a run whose runs row is in is complete and changes nothing.

    Raises:
        DatapoolBusyError: another run committed since this one planned.
    """
    if tables.has_run("runs", run_id):
        return datapool_version(tables)
    current = datapool_version(tables)
    if current != expected_version:
        raise DatapoolBusyError(
            f"datapool {tables.url} changed while this run was processing (version "
            f"{expected_version} -> {current}): another run committed. Nothing was "
            "written; run again to process what is still new."
        )
    for name, table_rows in rows.items():
        tables.append(name, table_rows, run_id)
    run = {**run_row, "run_id": run_id, "sequence": current + 1}
    tables.append("runs", pa.Table.from_pylist([run], schema=schema.RUNS), run_id)
    return current + 1


def datapool_version(tables: DeltaTables) -> int:
    """-1 for an empty datapool, +1 per committed run: the runs table's rows, which
    maintenance (compacting that table into fewer files) leaves as they are."""
    runs = tables.read("runs", ["run_id"])
    return -1 if runs is None else len(runs) - 1


def gone_rows(uris: list[str]) -> pa.Table:
    """Objects-table rows for objects that are no longer listed."""
    rows = [{"uri": uri, "version": "", "size": 0, "status": "gone"} for uri in uris]
    return pa.Table.from_pylist(rows, schema=schema.OBJECTS)


def unsupported_rows(objects: pa.Table) -> pa.Table:
    """Objects-table rows for listed objects (schema listing.LISTED) that are neither images
    nor videos (never read)."""
    rows = len(objects)
    constants = {
        "status": "unsupported",
        "reason": UNSUPPORTED.message,
        "reason_code": UNSUPPORTED.code,
    }
    columns = {name: objects.column(name) for name in ("uri", "version", "size")}
    columns |= {name: pa.repeat(value, rows) for name, value in constants.items()}
    return schema.conform(pa.table(columns), schema.OBJECTS)
