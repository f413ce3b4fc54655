"""The datapool's Delta Lake tables: reading them whatever coresift version wrote them, and
appending to them at most once per run.

Each append carries a Delta app transaction named after its run (`CommitProperties(
app_transactions=...)`), so a retried commit asks the table whether its run's rows are in
already instead of deleting leftovers by hand.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

from coresift import schema
from coresift.errors import DatapoolError
from coresift.storage import retried

SCHEMAS = {
    "objects": schema.OBJECTS,
    "samples": schema.SAMPLES,
    "tags": schema.TAGS,
    "filtered": schema.FILTERED,
    "picks": schema.PICKS,
    "thumbnails": schema.THUMBNAILS,
    "runs": schema.RUNS,
}


# A new table writes a checkpoint every 10 commits, so that opening it replays at most 10 log
# entries after one checkpoint file (Delta's default is 100). `maintain` checkpoints the rest.
_NEW_TABLE = {"delta.checkpointInterval": "10"}

# Row groups of at most this many rows (6 MB of samples), so that a reader decodes that much
# at a time however large a file grows (delta-rs would put a whole file in one group).
WRITER = WriterProperties(max_row_group_size=1024)
_BATCH_ROWS = 1024  # rows of a batch that `batches` yields: a row group

Rows: TypeAlias = pa.Table | Callable[[], Iterable[pa.Table]]
"""One table's rows of a run: a table, or a function that yields them in parts, so that an
append streams them (a retried append calls it again) and never holds them all at once."""


def run_transaction(run_id: str) -> str:
    """The Delta app id under which a run's appends are recorded in every table."""
    return f"coresift-run-{run_id}"


class DeltaTables:
    """The named tables under one URL, with the storage options delta-rs needs."""

    def __init__(self, url: str, storage_options: dict[str, str]):
        self.url = url
        self._options = storage_options

    def uri(self, name: str) -> str:
        return f"{self.url}/{name}"

    def open(self, name: str) -> DeltaTable | None:
        """The table, or None while no run has written it."""
        try:
            return retried(
                lambda: DeltaTable(self.uri(name), storage_options=self._options),
                f"opening {self.uri(name)}",
                (OSError,),
            )
        except TableNotFoundError:
            return None
        except OSError as error:
            raise DatapoolError(f"cannot read datapool table {self.uri(name)}: {error}") from None

    def version(self, name: str) -> int:
        """The table's Delta version, -1 while it does not exist."""
        table = self.open(name)
        return -1 if table is None else int(table.version())

    def read(
        self, name: str, columns: list[str] | None = None, where: pc.Expression | None = None
    ) -> pa.Table | None:
        """A table's rows, committed runs' or not (callers filter by run), or None if absent.

        Columns that an older coresift did not write come back as nulls, so datapools
        outlive schema additions.
        """
        table = self.open(name)
        if table is None:
            return None
        present = {field.name for field in table.schema().fields}
        names = SCHEMAS[name].names
        wanted = columns or (names if "run_id" in names else [*names, "run_id"])
        rows = retried(
            lambda: table.to_pyarrow_dataset().to_table(
                columns=[c for c in wanted if c in present], filter=where
            ),
            f"reading {self.uri(name)}",
            (OSError,),
        )
        for column in wanted:
            if column not in present:
                kind = SCHEMAS[name].field(column).type
                rows = rows.append_column(pa.field(column, kind), pa.nulls(len(rows), kind))
        return rows.select(wanted)

    def batches(
        self, name: str, columns: list[str], where: pc.Expression | None = None
    ) -> Iterator[pa.RecordBatch]:
        """A table's rows batch by batch, a few at a time in memory, for readers of columns
        that would not fit at once (every column named must exist in the table)."""
        table = self.open(name)
        if table is not None:
            scan = table.to_pyarrow_dataset().to_batches(
                columns=columns,
                filter=where,
                batch_size=_BATCH_ROWS,
                batch_readahead=1,
                fragment_readahead=1,
                use_threads=False,  # each thread would keep its own heap of freed batches
            )
            yield from scan

    def has_run(self, name: str, run_id: str) -> bool:
        """Whether the run's append to this table is in (recorded by its app transaction)."""
        table = self.open(name)
        return table is not None and table.transaction_version(run_transaction(run_id)) is not None

    def append(self, name: str, rows: Rows, run_id: str) -> None:
        """Append a run's rows to a table, with their run_id, once: a repeated call for the same run
        does nothing, so a failed attempt is simply made again. No rows, no append."""
        retried(
            lambda: self._append_once(name, rows, run_id),
            f"appending to {self.uri(name)}",
            (OSError,),
        )

    def _append_once(self, name: str, rows: Rows, run_id: str) -> None:
        if self.has_run(name, run_id):
            return
        parts = iter([rows] if isinstance(rows, pa.Table) else rows())
        first = next((part for part in parts if len(part)), None)
        if first is None:
            return
        first = _with_run_id(first, run_id)
        rest = (_with_run_id(part, run_id).cast(first.schema) for part in parts)
        batches = itertools.chain.from_iterable(
            t.to_batches() for t in itertools.chain([first], rest)
        )
        write_deltalake(
            self.uri(name),
            pa.RecordBatchReader.from_batches(first.schema, batches),
            mode="append",
            configuration=_NEW_TABLE,
            schema_mode="merge",  # columns added by newer versions join the table's schema
            writer_properties=WRITER,
            storage_options=self._options,
            commit_properties=CommitProperties(
                app_transactions=[Transaction(app_id=run_transaction(run_id), version=0)]
            ),
        )


def _with_run_id(rows: pa.Table, run_id: str) -> pa.Table:
    return rows if "run_id" in rows.column_names else schema.with_run_id(rows, run_id)
