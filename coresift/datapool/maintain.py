"""Housekeeping of the datapool's tables, so that a datapool after thousands of runs reads as
fast as after ten.

Every run appends one small file to each table, and every append adds a log entry. Left
alone, a plan then opens thousands of files and replays thousands of log entries. Upkeep
compacts each table's small files into few (`optimize.compact`), writes a checkpoint (so the
log is read from there), deletes data files that no version of the last `retain_hours` needs
(`vacuum`) and log entries older than the table's log retention. Rows, run ids and the
transactions that make commits retryable are kept: compaction rewrites files, not rows.

It holds the datapool's lock: a run waits for it, and it waits for a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from coresift.datapool.delta import SCHEMAS, WRITER, DeltaTables

RETAIN_HOURS = 168  # Delta's default: a week of versions stays readable (time travel)


@dataclass(frozen=True)
class Upkeep:
    """What upkeep did to one table."""

    table: str
    files_before: int
    files_after: int
    files_deleted: int  # data files vacuumed: replaced more than retain_hours ago


def upkeep(tables: DeltaTables, retain_hours: int = RETAIN_HOURS) -> list[Upkeep]:
    """Compact, checkpoint and vacuum every table; call it while holding the lock."""
    done = []
    for name in SCHEMAS:
        table = tables.open(name)
        if table is None:
            continue
        before = len(table.file_uris())
        table.optimize.compact(writer_properties=WRITER)
        table.create_checkpoint()
        deleted = table.vacuum(retain_hours, dry_run=False, enforce_retention_duration=False)
        table.cleanup_metadata()
        done.append(Upkeep(name, before, len(table.file_uris()), len(deleted)))
    return done


def describe_upkeep(done: Upkeep) -> str:
    return (
        f"{done.table}: {done.files_before} -> {done.files_after} files, "
        f"{done.files_deleted} old files deleted"
    )
