"""The datapool: atomic runs, invisible leftovers of a crash, and one writer at a time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from coresift import schema
from coresift.datapool import LOCK_NAME, Datapool, commit_run, gone_rows
from coresift.datapool.pool import STATES
from coresift.errors import DatapoolBusyError
from coresift.listing import Listing, ObjectFilter, ObjectRef, SourceScope, table_of
from coresift.plan import plan_run, shards
from coresift.testing.servers import wait_until


def _ref(uri: str, version: str, size: int) -> ObjectRef:
    return ObjectRef(uri=uri, version=version, size=size, kind="image")


def _samples(*uris: str) -> pa.Table:
    rows = [
        {"sample_id": f"id-{u}", "uri": u, "version": "v1", "model": "m", "embedding": [1.0, 0.0]}
        for u in uris
    ]
    return pa.Table.from_pylist(rows, schema=schema.SAMPLES)


def _objects(refs: list[ObjectRef], gone: tuple[str, ...] = ()) -> pa.Table:
    rows = [
        {"uri": r.uri, "version": r.version, "size": r.size, "status": "ok", "media": "image"}
        for r in refs
    ]
    return pa.concat_tables(
        [pa.Table.from_pylist(rows, schema=schema.OBJECTS), gone_rows(list(gone))]
    )


def _tags(run_id: str, sample_ids: list[str]) -> pa.Table:
    rows = [
        {"tag": f"t-{run_id}", "sample_id": s, "rank": i, "distance": 1.0}
        for i, s in enumerate(sample_ids)
    ]
    return pa.Table.from_pylist(rows, schema=schema.TAGS)


def _run_row(run_id: str) -> dict[str, str]:
    return {"tag": f"t-{run_id}", "started_at": "", "summary_json": "{}"}


def _commit(pool: Datapool, run_id: str, refs: list[ObjectRef], gone: tuple[str, ...] = ()) -> int:
    samples = _samples(*(r.uri for r in refs))
    with pool.lock(run_id):
        return commit_run(
            pool.tables,
            run_id=run_id,
            expected_version=pool.version(),
            rows={
                "samples": samples,
                "objects": _objects(refs, gone),
                "tags": _tags(run_id, samples.column("sample_id").to_pylist()[:1]),
            },
            run_row=_run_row(run_id),
        )


def test_the_plan_splits_a_listing_by_arrow_joins_in_listing_order() -> None:
    kinds = {"e": "image", "a": "image", "d": "video", "c": "image", "u": "unsupported"}
    kinds |= {"v": "unsupported"}
    versions = {"a": "2", "v": "2"}
    listed = [
        ObjectRef(uri=f"s/{n}", version=versions.get(n, "1"), size=i, kind=kind)
        for i, (n, kind) in enumerate(kinds.items())
    ]
    known = pa.Table.from_pylist(
        [
            {"uri": uri, "version": "1", "status": status, "run_id": "r"}
            for uri, status in [
                ("s/a", "ok"),  # listed at a new version: changed
                ("s/d", "ok"),  # as listed: skipped
                ("s/c", "gone"),  # listed again: new
                ("s/u", "unsupported"),  # as listed: counted, not recorded again
                ("s/v", "unsupported"),  # a new version: recorded again
                ("s/g", "ok"),  # not listed: gone
                ("other/x", "ok"),  # another source's: never gone here
            ]
        ],
        schema=STATES,
    )
    plan = plan_run(Listing(table_of(listed), SourceScope("s")), known, 3, "e")

    def uris(table: pa.Table) -> list[str]:
        return [str(uri) for uri in table.column("uri").to_pylist()]

    assert (uris(plan.new), uris(plan.changed), uris(plan.unsupported_new)) == (
        ["s/e", "s/c"],
        ["s/a"],
        ["s/v"],
    )
    assert (plan.skipped, plan.unsupported, plan.gone, plan.bytes_new) == (1, 2, ["s/g"], 4)
    assert [[r.uri for r in group] for group in shards(plan.to_process, 2)] == [
        ["s/e", "s/c"],
        ["s/a"],
    ]
    again = plan_run(Listing(table_of(listed), SourceScope("s")), known, 3, "e", process_all=True)
    assert (uris(again.changed), again.skipped) == (["s/a", "s/d"], 0)


@pytest.mark.parametrize(
    ("total", "size", "workers", "sizes"),
    [
        (100, 64, 1, [64, 36]),  # one worker: groups of the shard size, as before
        (960, 64, 2, [60] * 16),  # 15 groups of 64 would leave the last one to one worker
        (129, 64, 2, [32, 32, 32, 33]),
        (49, 4, 2, [3, 4] * 7),  # 12 of 4 and 1 of 1 would leave that one alone
        (3, 64, 4, [1, 1, 1]),
    ],
)
def test_shards_come_in_even_rounds_of_one_per_worker(
    total: int, size: int, workers: int, sizes: list[int]
) -> None:
    listed = table_of(_ref(f"s/{i:04d}", "1", 1) for i in range(total))
    groups = shards(listed, size, workers)
    assert [len(group) for group in groups] == sizes
    assert [r.uri for group in groups for r in group] == listed.column("uri").to_pylist()


def test_commits_are_versions_and_the_plan_follows_them(workdir: Path) -> None:
    pool = Datapool(str(workdir / "pool"))
    assert pool.version() == -1
    a, b = _ref("a", "1", 3), _ref("b", "1", 4)
    assert _commit(pool, "r1", [a, b]) == 0
    assert {u: s.status for u, s in pool.objects().items()} == {"a": "ok", "b": "ok"}
    listing = Listing(table_of([_ref("src/a", "2", 5), _ref("src/c", "1", 1)]), SourceScope("src"))
    _commit(pool, "r2", [_ref("src/a", "1", 3), _ref("src/b", "1", 4), _ref("src/d.txt", "1", 1)])
    plan = plan_run(listing, pool.object_states(), pool.version(), "epoch")
    uris = [plan.new.column("uri").to_pylist(), plan.changed.column("uri").to_pylist()]
    assert (*uris, plan.gone) == (
        ["src/c"],
        ["src/a"],
        ["src/b", "src/d.txt"],
    ), "objects of another source (a, b) are never gone"
    narrowed = Listing(
        listing.objects, SourceScope("src", ObjectFilter(include=("*.jpg", "a", "c")))
    )
    assert plan_run(narrowed, pool.object_states(), pool.version(), "epoch").gone == [], (
        "objects a narrower filter leaves out are not gone either"
    )
    assert _commit(pool, "r3", [], gone=("b",)) == 2
    assert pool.objects()["b"].status == "gone"
    assert pool.samples(["uri"]).column("uri").to_pylist() == ["a", "src/a", "src/b", "src/d.txt"]
    assert [t["tag"] for t in pool.tag_summary()] == ["t-r1", "t-r2"]


def test_rows_of_a_run_that_never_committed_are_invisible(workdir: Path) -> None:
    pool = Datapool(str(workdir / "pool"))
    _commit(pool, "r1", [_ref("a", "1", 3)])
    # A crash after the samples and objects appends but before the runs row:
    pool.tables.append("samples", schema.with_run_id(_samples("z"), "crashed"), "crashed")
    pool.tables.append(
        "objects", schema.with_run_id(_objects([_ref("z", "1", 1)]), "crashed"), "crashed"
    )
    assert set(pool.objects()) == {"a"}
    assert pool.samples(["uri"]).column("uri").to_pylist() == ["a"]
    assert pool.version() == 0
    assert len(pool.samples(sample_ids=set())) == 0, "no earlier picks, a samples table"


def test_a_retried_commit_writes_each_row_once(workdir: Path) -> None:
    pool = Datapool(str(workdir / "pool"))
    ref = _ref("a", "1", 3)
    # A first attempt died after its samples append:
    pool.tables.append("samples", schema.with_run_id(_samples("a"), "r1"), "r1")
    assert _commit(pool, "r1", [ref]) == 0
    assert _commit(pool, "r1", [ref]) == 0  # a retry after the runs row landed changes nothing
    assert len(pool.samples(["uri"])) == 1
    assert len(pool.runs()) == 1


def test_a_datapool_from_before_a_column_was_added_still_works(workdir: Path) -> None:
    pool = Datapool(str(workdir / "pool"))
    _commit(pool, "r1", [_ref("a", "1", 3)])
    old_tags = pool.tags().drop_columns(["clip"])  # as an earlier coresift wrote them
    shutil.rmtree(workdir / "pool" / "tags")
    from deltalake import write_deltalake

    write_deltalake(str(workdir / "pool" / "tags"), old_tags)
    assert pool.tags().column("clip").null_count == 1
    assert [t["tag"] for t in pool.tag_summary()] == ["t-r1"]
    _commit(pool, "r2", [_ref("b", "1", 3)])  # merges the new column in
    assert pool.tags().column("clip").to_pylist() == [None, None]


def test_a_second_writer_fails_clearly(workdir: Path) -> None:
    pool = Datapool(str(workdir / "pool"))
    with (
        pool.lock("first"),
        pytest.raises(DatapoolBusyError, match="locked by run first"),
        pool.lock("second"),
    ):
        pass
    with pool.lock("third"):  # released after the first
        assert pool.is_locked_by_other() is not None


def test_a_commit_after_someone_elses_fails_and_writes_nothing(workdir: Path) -> None:
    pool = Datapool(str(workdir / "pool"))
    ref = _ref("a", "1", 3)
    _commit(pool, "r1", [ref])
    with pool.lock("late"), pytest.raises(DatapoolBusyError, match="changed while this run"):
        commit_run(
            pool.tables,
            run_id="late",
            expected_version=-1,
            rows={"samples": _samples("a"), "objects": _objects([ref]), "tags": _tags("late", [])},
            run_row=_run_row("late"),
        )
    assert pool.version() == 0


def test_a_lock_left_by_a_dead_process_is_broken(workdir: Path) -> None:
    pool = Datapool(str(workdir / "pool"))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    (workdir / "pool").mkdir()
    import socket

    (workdir / "pool" / LOCK_NAME).write_text(
        json.dumps({"run_id": "old", "host": socket.gethostname(), "pid": int(dead.stdout)})
    )
    assert pool.is_locked_by_other() is None
    with pool.lock("new"):
        pass


def test_a_lock_whose_heartbeat_went_quiet_is_broken_and_a_beating_one_is_waited_for(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coresift.datapool import lock as lock_module

    pool = Datapool(str(workdir / "pool"))
    (workdir / "pool").mkdir()
    path = workdir / "pool" / LOCK_NAME
    elsewhere = {"run_id": "elsewhere", "host": "another-machine", "pid": 1}
    quiet = time.time() - lock_module.STALE_AFTER_S - 1
    path.write_text(json.dumps({**elsewhere, "heartbeat": quiet}))
    assert pool.is_locked_by_other() is None, "its machine died: the lock is broken"
    path.write_text(json.dumps({**elsewhere, "heartbeat": time.time()}))
    with (
        pytest.raises(DatapoolBusyError, match=r"locked by run elsewhere .*\(waited 0 s\)"),
        pool.lock("mine", wait_s=0),
    ):
        pass
    assert json.loads(path.read_text())["run_id"] == "elsewhere"

    path.unlink()
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.01)
    with pool.lock("mine"):
        first = json.loads(path.read_text())["heartbeat"]
        wait_until(lambda: json.loads(path.read_text())["heartbeat"] > first, "a heartbeat")
    assert not path.exists()


def test_datapool_on_s3(s3_bucket: str) -> None:
    pool = Datapool(f"s3://{s3_bucket}/pool")
    _commit(pool, "r1", [_ref("a", "1", 3)])
    with pool.lock("first"), pytest.raises(DatapoolBusyError), pool.lock("second"):
        pass
    assert Datapool(f"s3://{s3_bucket}/pool").objects()["a"].version == "1"
