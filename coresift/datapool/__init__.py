"""The datapool: what every run processed and selected, as Delta Lake tables under one URL.

Tables `objects`, `samples`, `tags` and `runs` (schemas in `coresift.schema`), readable by
DuckDB, Polars, pandas or Spark. Modules: `pool` (the queries users and tasks call), `delta`
(table access), `commit` (how a run becomes visible atomically), `lock` (one writer at a
time) and `work` (artifacts of the run in progress).
"""

from coresift.datapool.commit import commit_run, gone_rows, new_run_id, unsupported_rows
from coresift.datapool.lock import LOCK_NAME
from coresift.datapool.pool import Datapool, ObjectState

__all__ = [
    "LOCK_NAME",
    "Datapool",
    "ObjectState",
    "commit_run",
    "gone_rows",
    "new_run_id",
    "unsupported_rows",
]
