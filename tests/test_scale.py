"""Datapools at scale: commits that stream, reruns that read no embeddings, housekeeping that
is safe beside a run, and listings split across prefixes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from coresift import schema
from coresift.config import build_config
from coresift.datapool import Datapool, commit_run
from coresift.datapool.maintain import upkeep
from coresift.selection import embedding_matrix
from coresift.summary import RunSummary
from coresift.testing.faults import fault_proxy
from coresift.testing.media import write_images
from tests.helpers import config_values, curate_once
from tests.helpers import run as run_command

_WRITER_BUFFER = 128 << 20  # bytes: what the Delta writer may hold before it writes


def _shard(index: int, rows: int, dimensions: int = 1280) -> pa.Table:
    """A processed shard's samples: distinct ids and random embeddings."""
    rng = np.random.default_rng(index)
    vectors = rng.standard_normal((rows, dimensions), dtype=np.float32)
    return pa.Table.from_pydict(
        {
            "sample_id": [f"s{index:03d}-{row:04d}" for row in range(rows)],
            "uri": [f"/src/{index:03d}-{row:04d}.jpg" for row in range(rows)],
            "model": ["m"] * rows,
            "embedding": pa.array(list(vectors), pa.list_(pa.float32())),
        }
    ).cast(schema.SAMPLES.empty_table().select(["sample_id", "uri", "model", "embedding"]).schema)


def test_compact_embeddings_lie_in_one_buffer_that_selection_views() -> None:
    """Shards become one table whose float16 embeddings selection uses without a copy;
    a row without an embedding is null there and zeros in the matrix; the picks table's
    packed bytes give the same vectors back."""
    parts = [_shard(0, 5, 8), _shard(1, 3, 8)]
    broken = parts[1].column("embedding").to_pylist()
    broken[1] = None
    parts[1] = parts[1].set_column(3, "embedding", pa.array(broken, pa.list_(pa.float32())))
    table = schema.compact_tables(iter(parts), 8)
    assert table.column("embedding").null_count == 1
    matrix = embedding_matrix(table)
    assert matrix.dtype == np.float16 and not matrix.flags.owndata, "a view, not a copy"
    expected = np.concatenate([embedding_matrix(p) for p in parts])
    assert np.array_equal(matrix, expected.astype(np.float16))
    assert not matrix[6].any()
    unpacked = schema.unpack_compact(schema.pack_compact(table))
    assert unpacked.column("embedding").to_pylist() == table.column("embedding").to_pylist()
    with pytest.raises(ValueError, match="8 rows, not 9"):
        schema.compact_tables(iter(parts), 9)


@pytest.mark.slow
def test_a_commit_streams_its_shards_one_at_a_time(workdir: Path) -> None:
    """The commit streams shard by shard: the Arrow memory in use as each shard is handed
    over stays below the Delta writer's buffer (it encodes about 100 MB of rows at a time),
    however many shards the run has."""
    pool = Datapool(str(workdir / "pool"))
    shards, rows = 300, 200
    names = [f"shards/s{index}-samples" for index in range(shards)]
    for index, name in enumerate(names):
        pool.work.write(name, _shard(index, rows))
    one_shard = _shard(0, rows).nbytes
    baseline = pa.total_allocated_bytes()
    held: list[int] = []

    def parts() -> Iterator[pa.Table]:
        for part in pool.work.tables(names):
            held.append(pa.total_allocated_bytes() - baseline)
            yield part

    with pool.lock("r1"):
        commit_run(
            pool.tables,
            run_id="r1",
            expected_version=pool.version(),
            rows={"samples": parts},
            run_row={"tag": "t", "started_at": "", "summary_json": "{}"},
        )
    assert len(held) == shards
    print(
        f"\nArrow memory held: at most {max(held) / 1e6:.1f} MB of {shards * one_shard / 1e6:.1f}"
    )
    assert max(held) < _WRITER_BUFFER < shards * one_shard / 2
    committed = pool.tables.read("samples", ["sample_id", "embedding"])
    assert committed is not None
    expected = pa.concat_tables([_shard(i, rows) for i in range(shards)])
    assert committed.num_rows == shards * rows
    assert (
        committed.sort_by("sample_id")
        .column("embedding")
        .combine_chunks()
        .equals(expected.column("embedding").combine_chunks())
    )


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_an_unchanged_rerun_reads_no_embedding_bytes(
    s3_server: str, s3_bucket: str, workdir: Path
) -> None:
    """Every GET from the datapool's store is metered by a proxy: an unchanged rerun reads
    nothing from the tables that hold embeddings (samples, picks), while a run with new
    objects finds the earlier picks in the picks table."""
    from flows.curate import curate

    source = workdir / "photos"
    write_images(source, 0, 12)
    with fault_proxy(s3_server, rate=0.0) as (proxy, meter):

        def run(n_samples: int) -> RunSummary:
            values = config_values(str(source), f"s3://{s3_bucket}/pool", n_samples=n_samples)
            values["datapool"]["storage_options"] = {"endpoint_url": proxy}
            return curate(build_config(values))

        assert run(4).samples_selected == 4

        def read(table: str) -> int:
            prefix = f"/{s3_bucket}/pool/{table}/"
            return sum(
                size
                for path, size in meter.bytes_read.items()
                if path.startswith(prefix) and "/_delta_log/" not in path
            )

        meter.bytes_read.clear()
        unchanged = run(4)
        assert not unchanged.committed
        assert read("samples") == read("picks") == 0
        assert meter.bytes_read, "the proxy metered the rerun's reads"

        write_images(source, 12, 4)
        meter.bytes_read.clear()
        more = run(2)
        assert (more.objects_new, more.samples_preselected, more.samples_selected) == (4, 4, 2)
        assert read("picks") > 0
    picks = Datapool(f"s3://{s3_bucket}/pool", {"endpoint_url": s3_server}).picked_samples()
    assert picks.num_rows == 6
    assert picks.schema.field("embedding").type == schema.COMPACT_EMBEDDING


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_maintenance_beside_a_waiting_run_is_safe(workdir: Path) -> None:
    """Maintenance holds the lock while a run waits for it, compacts every table and
    deletes the files it replaced; the run then commits on top, and nothing is lost."""
    source, pool = workdir / "photos", str(workdir / "pool")
    write_images(source, 0, 8)
    curate_once(str(source), pool, n_samples=3)
    write_images(source, 8, 4)
    curate_once(str(source), pool, n_samples=2)
    write_images(source, 12, 4)
    datapool = Datapool(pool)
    waiting = threading.Event()
    handler = _Announcement("Waiting up to", waiting)
    logging.getLogger("coresift.datapool.lock").addHandler(handler)
    results: list[RunSummary | Exception] = []

    def third_run() -> None:
        from flows.curate import curate

        values = config_values(str(source), pool, n_samples=2)
        values["datapool"]["lock_wait_s"] = 120
        try:
            results.append(curate(build_config(values)))
        except Exception as error:
            results.append(error)
            waiting.set()

    try:
        with datapool.lock("maintenance-test"):
            run = threading.Thread(target=third_run)
            run.start()
            assert waiting.wait(120) and not results, f"the run waits for the lock: {results}"
            done = {u.table: u for u in upkeep(datapool.tables, retain_hours=0)}
        run.join(300)
    finally:
        logging.getLogger("coresift.datapool.lock").removeHandler(handler)
    assert done["samples"].files_before == 2 and done["samples"].files_after == 1
    assert done["samples"].files_deleted == 2
    [third] = results
    assert isinstance(third, RunSummary)
    assert (third.objects_new, third.samples_preselected, third.samples_selected) == (4, 5, 2)
    assert datapool.version() == 2
    assert datapool.samples(["sample_id"]).num_rows == 16
    picks = datapool.tags().column("sample_id").to_pylist()
    assert len(picks) == len(set(picks)) == 7
    assert datapool.picked_samples().num_rows == 7
    printed = run_command("coresift", "maintain", "--datapool", pool).stdout
    assert "samples: 2 -> 1 files" in printed


class _Announcement(logging.Handler):
    """Sets an event when a log message contains some text."""

    def __init__(self, text: str, event: threading.Event):
        super().__init__()
        self.text, self.event = text, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()
