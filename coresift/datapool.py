"""The datapool: what every run processed and selected, as Delta Lake tables.

Tables `objects`, `samples`, `tags` and `runs` live under one URL. Delta commits are atomic per
table, not across tables, so `runs` is the commit log: a row of any other table counts only
once its run_id is in `runs`, and the runs row is written last. A run that dies before that
write leaves rows nobody reads, so the datapool is exactly as it was. Writers take a lock file
and check that nobody committed since they planned, so a concurrent run fails clearly instead
of interleaving.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from coresift import schema
from coresift.errors import DatapoolBusyError, DatapoolError
from coresift.storage import is_local, open_url

LOCK_NAME = "_coresift.lock"
_SCHEMAS = {
    "objects": schema.OBJECTS,
    "samples": schema.SAMPLES,
    "tags": schema.TAGS,
    "runs": schema.RUNS,
}
TABLES = ("objects", "samples", "tags", "runs")


@dataclass(frozen=True)
class ObjectState:
    """The committed state of one object: its version, status and the run that wrote it."""

    version: str
    status: str
    run_id: str


def delta_storage_options(url: str, options: dict[str, Any] | None = None) -> dict[str, str]:
    """Delta Lake (object_store) options for a URL, derived from the same credentials that
    fsspec uses, so that users configure each store once.

    delta-rs reads the standard AWS and Azure account variables itself; what it lacks is the
    S3 endpoint's plain-HTTP permission and conditional-put mode (safe commits), and Azure
    connection strings, which are taken apart here.
    """
    options = options or {}
    if url.startswith(("s3://", "s3a://")):
        return _s3_delta_options(options)
    if url.startswith(("az://", "abfs://", "abfss://")):
        return _azure_delta_options(options)
    return {str(k): str(v) for k, v in options.items()}


def _s3_delta_options(options: dict[str, Any]) -> dict[str, str]:
    endpoint = str(
        options.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or ""
    )
    result = {"AWS_CONDITIONAL_PUT": "etag"}
    if endpoint:
        result["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            result["AWS_ALLOW_HTTP"] = "true"
    for ours, theirs in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY")):
        if ours in options:
            result[theirs] = str(options[ours])
    return result


def _azure_delta_options(options: dict[str, Any]) -> dict[str, str]:
    connection = options.get("connection_string") or os.environ.get(
        "AZURE_STORAGE_CONNECTION_STRING"
    )
    parts = dict(item.split("=", 1) for item in str(connection or "").split(";") if "=" in item)
    result: dict[str, str] = {}
    name = options.get("account_name") or parts.get("AccountName")
    key = options.get("account_key") or parts.get("AccountKey")
    sas = options.get("sas_token") or parts.get("SharedAccessSignature")
    if name:
        result["azure_storage_account_name"] = str(name)
    if key:
        result["azure_storage_account_key"] = str(key)
    if sas:
        result["azure_storage_sas_token"] = str(sas).lstrip("?")
    endpoint = str(parts.get("BlobEndpoint") or "").rstrip("/")
    if endpoint:  # a sovereign cloud, or Azurite (whose endpoint includes the account)
        result["azure_storage_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            result["azure_allow_http"] = "true"
    return result


class Datapool:
    """Reads and commits the datapool tables at a URL (local folder by default)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None):
        self.fs, self.root = open_url(url, options)
        self.url = self.root if is_local(url) else url.rstrip("/")
        self._delta_options = delta_storage_options(url, options)

    def _table_uri(self, name: str) -> str:
        return f"{self.url}/{name}"

    def _read(
        self, name: str, columns: list[str] | None = None, where: pc.Expression | None = None
    ) -> pa.Table | None:
        """A table's committed and uncommitted rows (callers filter by run), or None if absent.

        Columns that an older coresift did not write come back as nulls, so datapools
        outlive schema additions.
        """
        try:
            table = DeltaTable(self._table_uri(name), storage_options=self._delta_options)
        except TableNotFoundError:
            return None
        except OSError as error:
            raise DatapoolError(
                f"cannot read datapool table {self._table_uri(name)}: {error}"
            ) from None
        present = {field.name for field in table.schema().fields}
        names = _SCHEMAS[name].names
        wanted = columns or (names if "run_id" in names else [*names, "run_id"])
        rows = table.to_pyarrow_dataset().to_table(
            columns=[c for c in wanted if c in present], filter=where
        )
        for column in wanted:
            if column not in present:
                kind = _SCHEMAS[name].field(column).type
                rows = rows.append_column(pa.field(column, kind), pa.nulls(len(rows), kind))
        return rows.select(wanted)

    def version(self) -> int:
        """Version of the runs table: -1 for an empty datapool, +1 per committed run."""
        try:
            return int(
                DeltaTable(self._table_uri("runs"), storage_options=self._delta_options).version()
            )
        except TableNotFoundError:
            return -1

    def runs(self) -> pa.Table:
        runs = self._read("runs")
        return runs if runs is not None else schema.RUNS.empty_table()

    def _committed(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        """Rows of a table whose run committed, ordered by commit sequence."""
        table = self._read(name, columns)
        if table is None:
            return None
        runs = self.runs().select(["run_id", "sequence"])
        return table.join(runs, "run_id", join_type="inner").sort_by("sequence")

    def objects(self) -> dict[str, ObjectState]:
        """The latest committed state of every object ever recorded (gone ones included)."""
        table = self._committed("objects", ["uri", "version", "status", "run_id"])
        if table is None:
            return {}
        states: dict[str, ObjectState] = {}
        for uri, version, status, run_id in zip(
            *(table.column(c).to_pylist() for c in ("uri", "version", "status", "run_id")),
            strict=True,
        ):
            states[uri] = ObjectState(version, status, run_id)  # later commits overwrite
        return states

    def samples(
        self, columns: list[str] | None = None, sample_ids: set[str] | None = None
    ) -> pa.Table:
        """Samples of the current version of every object that is not gone.

        Args:
            columns: the columns to read (all by default).
            sample_ids: read only these samples (filtered inside the scan).
        """
        current = [f"{uri}\n{s.run_id}" for uri, s in self.objects().items() if s.status != "gone"]
        names = columns or schema.SAMPLES.names
        where = None if sample_ids is None else pc.field("sample_id").isin(sorted(sample_ids))
        table = self._read("samples", sorted({*names, "uri", "run_id", "sample_id"}), where)
        if table is None or not current:
            return schema.SAMPLES.empty_table().select(names)
        row_keys = pc.binary_join_element_wise(table.column("uri"), table.column("run_id"), "\n")
        kept = table.filter(pc.is_in(row_keys, value_set=pa.array(current, pa.string())))
        return kept.sort_by("sample_id").select(names)

    def tags(self) -> pa.Table:
        """Committed tag rows: tag, run_id, sample_id, rank, distance."""
        table = self._committed("tags")
        if table is None:
            return schema.with_run_id(schema.TAGS.empty_table(), "")
        return table.select([*schema.TAGS.names, "run_id"])

    def selected_sample_ids(self) -> set[str]:
        """Every sample id that any committed tag picked."""
        return set(self.tags().column("sample_id").to_pylist())

    def tag_summary(self) -> list[dict[str, Any]]:
        """One entry per tag: name, run id, number of samples."""
        tags = self.tags()
        if len(tags) == 0:
            return []
        grouped = tags.group_by(["tag", "run_id"]).aggregate([("sample_id", "count")])
        return [
            {"tag": t, "run_id": r, "samples": int(n)}
            for t, r, n in zip(
                *(grouped.column(c).to_pylist() for c in ("tag", "run_id", "sample_id_count")),
                strict=True,
            )
        ]

    def tag_samples(self, tag: str) -> pa.Table:
        """The samples a tag picked, in pick order, with rank, distance and metadata."""
        tags = self.tags().filter(pc.field("tag") == tag).sort_by("rank")
        if len(tags) == 0:
            raise DatapoolError(f"tag {tag!r} does not exist in datapool {self.url}")
        columns = [n for n in schema.SAMPLES.names if n != "embedding"]
        samples = self._read("samples", columns)
        assert samples is not None, "a committed tag implies a samples table"
        picked = tags.column("sample_id")
        samples = samples.filter(pc.is_in(samples.column("sample_id"), value_set=picked))
        # A sample id names one object version; process_all can record it more than once.
        row_of = {sid: i for i, sid in enumerate(samples.column("sample_id").to_pylist())}
        ordered = samples.take([row_of[sid] for sid in picked.to_pylist()])
        return ordered.append_column("rank", tags.column("rank")).append_column(
            "distance", tags.column("distance")
        )

    def write_work(self, name: str, table: pa.Table) -> None:
        """Write a Parquet artifact into the datapool's scratch area `_work/` (not a table)."""
        path = f"{self.root}/_work/{name}.parquet"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "wb") as handle:
            pq.write_table(table, handle)

    def work_epoch(self) -> str:
        """A random id of the work area, made anew whenever `_work/` is deleted.

        It is part of every shard's cache key, so deleting `_work/` retires cached shards
        whose artifacts went with it.
        """
        path = f"{self.root}/_work/EPOCH"
        try:
            return str(self.fs.cat_file(path).decode())
        except FileNotFoundError:
            epoch = secrets.token_hex(8)
            self.fs.makedirs(f"{self.root}/_work", exist_ok=True)
            self.fs.pipe_file(path, epoch.encode())
            return epoch

    def read_work(self, name: str) -> pa.Table:
        path = f"{self.root}/_work/{name}.parquet"
        try:
            with self.fs.open(path, "rb") as handle:
                return pq.read_table(handle)
        except FileNotFoundError:
            raise DatapoolError(
                f"processing artifact {path} is missing: delete the whole {self.root}/_work "
                "folder (it retires cached shards with it) and run again"
            ) from None

    def remove_work(self, names: list[str]) -> None:
        for name in names:
            path = f"{self.root}/_work/{name}.parquet"
            if self.fs.exists(path):
                self.fs.rm_file(path)

    def is_locked_by_other(self) -> str | None:
        """The busy message if a live run holds the lock, else None (a cheap pre-flight check)."""
        path = f"{self.root}/{LOCK_NAME}"
        if not self.fs.exists(path):
            return None
        self._break_if_stale(path)
        return self._busy_message(path) if self.fs.exists(path) else None

    @contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        """Hold the datapool's lock file; a live holder elsewhere makes this fail clearly."""
        path = f"{self.root}/{LOCK_NAME}"
        holder = {
            "run_id": run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.time(),
        }
        self.fs.makedirs(self.root, exist_ok=True)
        if not self._create_exclusive(path, json.dumps(holder).encode()):
            self._break_if_stale(path)
            if not self._create_exclusive(path, json.dumps(holder).encode()):
                raise DatapoolBusyError(self._busy_message(path))
        try:
            yield
        finally:
            self.fs.rm_file(path)

    def _create_exclusive(self, path: str, data: bytes) -> bool:
        try:
            if is_local(self.url):
                with open(path, "xb") as handle:
                    handle.write(data)
            else:
                self.fs.pipe_file(path, data, mode="create")  # S3: If-None-Match: *
        except FileExistsError:
            return False
        except OSError:
            # Some servers answer 412 Precondition Failed, which s3fs reports as a plain OSError.
            if self.fs.exists(path):
                return False
            raise
        return True

    def _break_if_stale(self, path: str) -> None:
        """Remove a lock left by a dead process on this host (a crash during commit)."""
        try:
            holder = json.loads(self.fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            return
        if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", 0))):
            self.fs.rm_file(path)

    def _busy_message(self, path: str) -> str:
        try:
            holder = json.loads(self.fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            holder = {}
        return (
            f"datapool {self.url} is locked by run {holder.get('run_id', '?')} "
            f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}); one run at a time "
            f"per datapool. If no run is active, delete {path}."
        )

    def commit(
        self,
        *,
        run_id: str,
        expected_version: int,
        objects: pa.Table,
        samples: pa.Table,
        tags: pa.Table,
        run_row: dict[str, Any],
    ) -> int:
        """Append one run's rows, runs row last, and return the new datapool version.

        Call it while holding `lock(run_id)`. Safe to retry: an attempt that failed halfway
        left rows that nobody reads, and they are removed before writing again; an attempt
        that wrote its runs row is complete and is not repeated.

        Raises:
            DatapoolBusyError: another run committed since this one planned.
        """
        if run_id in self.runs().column("run_id").to_pylist():
            return self.version()
        current = self.version()
        if current != expected_version:
            raise DatapoolBusyError(
                f"datapool {self.url} changed while this run was processing (version "
                f"{expected_version} -> {current}): another run committed. Nothing was "
                "written; run again to process what is still new."
            )
        for name, table in (("samples", samples), ("objects", objects), ("tags", tags)):
            self._drop_uncommitted(name, run_id)
            if len(table):
                self._append(name, schema.with_run_id(table, run_id))
        run = {**run_row, "run_id": run_id, "sequence": len(self.runs())}
        self._append("runs", pa.Table.from_pylist([run], schema=schema.RUNS))
        return self.version()

    def _drop_uncommitted(self, name: str, run_id: str) -> None:
        """Delete rows an earlier, failed attempt of this (uncommitted) run appended."""
        table = self._read(name, ["run_id"])
        if table is not None and run_id in set(table.column("run_id").to_pylist()):
            DeltaTable(self._table_uri(name), storage_options=self._delta_options).delete(
                f"run_id = '{run_id}'"
            )

    def _append(self, name: str, table: pa.Table) -> None:
        write_deltalake(
            self._table_uri(name),
            table,
            mode="append",
            schema_mode="merge",  # columns added by newer versions join the table's schema
            storage_options=self._delta_options,
        )


def gone_rows(uris: list[str]) -> pa.Table:
    """Objects-table rows for objects that are no longer listed."""
    rows = [{"uri": uri, "version": "", "size": 0, "status": "gone"} for uri in uris]
    return pa.Table.from_pylist(rows, schema=schema.OBJECTS)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
