"""The datapool as users and tasks see it: the queries on its tables, and its tables, lock and
work area wired to one URL (a run commits with `commit.commit_run(datapool.tables, ...)`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from coresift import schema
from coresift.datapool.commit import datapool_version, new_run_id
from coresift.datapool.delta import DeltaTables
from coresift.datapool.lock import DatapoolLock
from coresift.datapool.maintain import RETAIN_HOURS, Upkeep, upkeep
from coresift.datapool.work import WorkArea
from coresift.errors import DatapoolError
from coresift.storage import delta_storage_options, is_local, open_url

STATES = pa.schema([(name, pa.string()) for name in ("uri", "version", "status", "run_id")])


@dataclass(frozen=True)
class ObjectState:
    """The committed state of one object: its version, status and the run that wrote it."""

    version: str
    status: str
    run_id: str


class Datapool:
    """What every run processed and selected, at a URL (a local folder by default)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None):
        self.fs, self.root = fs, root = open_url(url, options)
        self.url = root if is_local(url) else url.rstrip("/")
        self.tables = DeltaTables(self.url, delta_storage_options(url, options))
        self.work = WorkArea(fs, root)
        self._lock = DatapoolLock(fs, root, self.url)

    def lock(self, run_id: str, wait_s: float = 0.0) -> AbstractContextManager[None]:
        """Hold the datapool's lock while a run writes (see `DatapoolLock.hold`)."""
        return self._lock.hold(run_id, wait_s)

    def is_locked_by_other(self) -> str | None:
        """The busy message if a live run holds the datapool, else None."""
        return self._lock.busy_message()

    def wait_until_unlocked(self, wait_s: float) -> None:
        """Wait at most wait_s for a live run to release the datapool (DatapoolBusyError)."""
        self._lock.wait_until_free(wait_s)

    def maintain(self, retain_hours: int = RETAIN_HOURS, wait_s: float = 0.0) -> list[Upkeep]:
        """Compact, checkpoint and vacuum the tables under the lock (see `maintain`)."""
        with self.lock(f"maintenance-{new_run_id()}", wait_s):
            return upkeep(self.tables, retain_hours)

    def version(self) -> int:
        """-1 for an empty datapool, +1 per committed run (see `commit.datapool_version`)."""
        return datapool_version(self.tables)

    def runs(self) -> pa.Table:
        runs = self.tables.read("runs")
        return runs if runs is not None else schema.RUNS.empty_table()

    def run_summary(self, run_id: str) -> dict[str, Any] | None:
        """The stored summary of a committed run, or None if the run has not committed."""
        if not self.tables.has_run("runs", run_id):
            return None
        runs = self.tables.read("runs", ["run_id", "summary_json"], pc.field("run_id") == run_id)
        assert runs is not None and len(runs), "a recorded transaction implies its runs row"
        summary: dict[str, Any] = json.loads(runs.column("summary_json")[0].as_py())
        return summary

    def committed(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        """Rows of a table whose run committed, ordered by commit sequence."""
        table = self.tables.read(name, columns)
        if table is None:
            return None
        runs = self.runs().select(["run_id", "sequence"])
        return table.join(runs, "run_id", join_type="inner").sort_by("sequence")

    def object_states(self) -> pa.Table:
        """The latest committed state of every object ever recorded, gone ones included
        (schema STATES, one row per uri); found by Arrow, so millions of objects stay columns."""
        table = self.committed("objects", STATES.names)
        if table is None:
            return STATES.empty_table()
        order = pa.array(np.arange(len(table)))  # committed() orders rows by commit sequence
        latest = table.append_column("order", order).group_by("uri").aggregate([("order", "max")])
        return table.take(latest.column("order_max").sort()).select(STATES.names)

    def objects(self) -> dict[str, ObjectState]:
        """`object_states()` by uri, one Python object each: for a datapool of a few objects."""
        states = self.object_states()
        return {uri: ObjectState(*state) for uri, *state in _rows(states, *STATES.names)}

    def samples(
        self,
        columns: list[str] | None = None,
        sample_ids: set[str] | None = None,
        states: pa.Table | None = None,
    ) -> pa.Table:
        """Samples of the current version of every object that is not gone.

        Args:
            columns: the columns to read (all by default).
            sample_ids: read only these samples (filtered inside the scan).
            states: `object_states()`, where the caller has read it already.
        """
        current = _current(self.object_states() if states is None else states)
        names = columns or schema.SAMPLES.names
        where = (
            None
            if sample_ids is None
            else pc.field("sample_id").isin(pa.array(sorted(sample_ids), pa.string()))
        )
        table = self.tables.read("samples", sorted({*names, "uri", "run_id", "sample_id"}), where)
        if table is None or len(current) == 0:
            return schema.SAMPLES.empty_table().select(names)
        kept = table.filter(pc.is_in(_object_runs(table), value_set=current))
        return kept.sort_by("sample_id").select(names)

    def compact_embeddings(self, sample_ids: pa.Array) -> NDArray[np.float16]:
        """The float16 embeddings of current samples, row i for sample_ids[i] (zeros for a
        sample without one), filled batch by batch: the most held is that matrix and one
        batch, never all the float32 embeddings (5 GB for a million samples)."""
        current = _current(self.object_states())
        matrix = np.zeros((len(sample_ids), 0), np.float16)
        columns = ["sample_id", "uri", "run_id", "embedding"]
        where = pc.field("sample_id").isin(sample_ids)
        for batch in self.tables.batches("samples", columns, where):
            batch = batch.filter(
                pc.and_(
                    pc.is_in(_object_runs(batch), value_set=current), batch["embedding"].is_valid()
                )
            )
            if len(batch) == 0:
                continue
            values = np.asarray(pc.list_flatten(batch["embedding"])).reshape(len(batch), -1)
            if matrix.shape[1] == 0:
                matrix = np.zeros((len(sample_ids), values.shape[1]), np.float16)
            matrix[pc.index_in(batch["sample_id"], value_set=sample_ids).to_numpy()] = values
        return matrix

    def tags(self) -> pa.Table:
        """Committed tag rows: tag, run_id, sample_id, rank, distance."""
        table = self.committed("tags")
        if table is None:
            return schema.with_run_id(schema.TAGS.empty_table(), "")
        return table.select([*schema.TAGS.names, "run_id"])

    def filtered(self) -> pa.Table:
        """Committed rows of samples that were not candidates, with reasons (schema.FILTERED)."""
        table = self.committed("filtered")
        if table is None:
            return schema.with_run_id(schema.FILTERED.empty_table(), "")
        return table.select([*schema.FILTERED.names, "run_id"])

    def thumbnails(self, sample_ids: set[str]) -> dict[str, bytes]:
        """The thumbnails of some samples (filtered inside the scan); absent ones are left out."""
        where = pc.field("sample_id").isin(pa.array(sorted(sample_ids), pa.string()))
        table = self.tables.read("thumbnails", ["sample_id", "thumbnail", "run_id"], where)
        if table is None or not sample_ids:
            return {}
        return dict(
            zip(table["sample_id"].to_pylist(), table["thumbnail"].to_pylist(), strict=True)
        )

    def picked_samples(
        self, columns: Sequence[str] = schema.PICKS.names, leave_out: Sequence[str] = ()
    ) -> pa.Table:
        """The samples that committed tags picked, one row each, whose objects are current
        and not in leave_out, with compact embeddings (schema.PICKS) and other columns.

        The rows come from the `picks` table, which runs fill as they pick, so the samples
        table is read only for picks it lacks (tags that `coresift tag create` made, and
        datapools older than it) and for columns beyond schema.PICKS, without embeddings.
        """
        wanted = self.selected_sample_ids()
        states = self.object_states()
        picks = self.committed("picks", [*schema.PICKS.names, "run_id"])
        stored = schema.PICKS.empty_table() if picks is None else picks
        found = schema.unpack_compact(stored.select(schema.PICKS.names))
        missing = wanted - set(found.column("sample_id").to_pylist())
        if missing:
            older = self.samples(schema.PICKS.names, sample_ids=missing, states=states)
            found = pa.concat_tables([found, schema.compact(older)])
        # The first row of each wanted pick whose object is current and not left out, found
        # on the narrow columns (Arrow joins cannot carry list columns) and taken by row.
        current = states.filter(
            (pc.field("status") != "gone") & ~pc.field("uri").isin(pa.array(leave_out, pa.string()))
        ).select(["uri", "version"])
        candidates = found.select(["sample_id", "uri", "version"]).append_column(
            "row", pa.array(np.arange(len(found)))
        )
        candidates = candidates.filter(
            pc.field("sample_id").isin(pa.array(sorted(wanted), pa.string()))
        )
        first = (
            candidates.join(current, ["uri", "version"], join_type="inner")
            .group_by("sample_id")
            .aggregate([("row", "min")])
        )
        picked = found.take(first.column("row_min").sort()).sort_by("sample_id")
        extra = [c for c in columns if c not in schema.PICKS.names]
        if extra:  # by row lookup: Arrow joins cannot carry list columns
            keep = set(picked.column("sample_id").to_pylist())
            more = self.samples(["sample_id", *extra], sample_ids=keep, states=states)
            row_of = {sid: row for row, sid in enumerate(more.column("sample_id").to_pylist())}
            ids = picked.column("sample_id").to_pylist()
            rows = pa.array([row_of.get(s) for s in ids], pa.int64())
            for name in extra:
                picked = picked.append_column(more.schema.field(name), more.column(name).take(rows))
        return picked.select(list(columns))

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
            for t, r, n in _rows(grouped, "tag", "run_id", "sample_id_count")
        ]

    def tag_samples(self, tag: str) -> pa.Table:
        """The samples a tag picked, in pick order, with rank, distance and metadata."""
        tags = self.tags().filter(pc.field("tag") == tag).sort_by("rank")
        if len(tags) == 0:
            raise DatapoolError(f"tag {tag!r} does not exist in datapool {self.url}")
        columns = [n for n in schema.SAMPLES.names if n != "embedding"]
        samples = self.tables.read("samples", columns)
        assert samples is not None, "a committed tag implies a samples table"
        picked = tags.column("sample_id")
        samples = samples.filter(pc.is_in(samples.column("sample_id"), value_set=picked))
        # A sample id names one object version; process_all can record it more than once.
        row_of = {sid: i for i, sid in enumerate(samples.column("sample_id").to_pylist())}
        ordered = samples.take([row_of[sid] for sid in picked.to_pylist()])
        return ordered.append_column("rank", tags.column("rank")).append_column(
            "distance", tags.column("distance")
        )


def _current(states: pa.Table) -> pa.Array:
    """The object-and-run keys (`_object_runs`) of the objects that are not gone."""
    return _object_runs(states.filter(pc.field("status") != "gone")).combine_chunks()


def _object_runs(table: pa.Table | pa.RecordBatch) -> pa.ChunkedArray | pa.Array:
    """Each row's object and the run that recorded it, as one key."""
    return pc.binary_join_element_wise(table.column("uri"), table.column("run_id"), "\n")


def _rows(table: pa.Table, *columns: str) -> Iterator[tuple[Any, ...]]:
    """The values of some columns, row by row."""
    return zip(*(table.column(c).to_pylist() for c in columns), strict=True)
