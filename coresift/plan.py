"""Planning a run: which listed objects are new, changed, unchanged or gone.

An anti-join of the listing with the datapool's committed objects, in Arrow: a listing of
millions of objects is never a Python loop. Nothing reads object bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from coresift.listing import LISTED, Listing, ObjectRef, refs_of


@dataclass(frozen=True)
class Plan:
    """The objects to process in a run (tables of schema LISTED), and what the rest of the
    listing is.

    Images and videos are new, changed or skipped (unchanged); objects of neither kind are
    counted as unsupported, and recorded (never read) when the datapool does not know them
    at their current version.
    """

    datapool_version: int
    work_epoch: str
    new: pa.Table
    changed: pa.Table
    skipped: int
    gone: list[str]
    unsupported: int
    unsupported_new: pa.Table

    @property
    def work_key(self) -> str:
        """Names this plan's processing artifacts: same datapool state, same work area."""
        return f"v{self.datapool_version}-{self.work_epoch}"

    @property
    def to_process(self) -> pa.Table:
        return pa.concat_tables([self.new, self.changed])

    @property
    def changes_nothing(self) -> bool:
        """Nothing to process, nothing gone, nothing to record: the run commits nothing."""
        return not (len(self.new) or len(self.changed) or self.gone or len(self.unsupported_new))

    @property
    def bytes_new(self) -> int:
        return sum(pc.sum(t.column("size")).as_py() or 0 for t in (self.new, self.changed))


def plan_run(
    listing: Listing,
    known: pa.Table,
    datapool_version: int,
    work_epoch: str,
    process_all: bool = False,
) -> Plan:
    """Split a listing against the datapool's known objects (`Datapool.object_states()`).

    With process_all every listed object is planned again: never-seen ones as new, the others
    as changed (their samples are recomputed and replace the old ones). Only objects in the
    listing's scope can be gone: the datapool may hold other sources, or other filters' objects.
    """
    listed = listing.objects.append_column("order", pa.array(np.arange(len(listing))))
    states = known.select(["uri", "version", "status"]).rename_columns(
        ["uri", "known_version", "known_status"]
    )
    # A join loses the listing's order, which shards depend on; "order" restores it.
    joined = listed.join(states, "uri", join_type="left outer").sort_by("order")
    status = pc.field("known_status")
    moved = pc.field("known_version") != pc.field("version")
    media = pc.field("kind") != "unsupported"
    fresh = status.is_null() | status.isin(["gone", "unsupported"])  # never null
    new = joined.filter(media & fresh).select(LISTED.names)
    changed = joined.filter(media & ~fresh & (moved | pc.scalar(process_all)))
    unsupported = joined.filter(~media)
    unrecorded = status.is_null() | (status != "unsupported") | moved
    return Plan(
        datapool_version=datapool_version,
        work_epoch=work_epoch,
        new=new,
        changed=changed.select(LISTED.names),
        skipped=len(joined) - len(new) - len(changed) - len(unsupported),
        gone=_gone(listing, known),
        unsupported=len(unsupported),
        unsupported_new=unsupported.filter(unrecorded).select(LISTED.names),
    )


def _gone(listing: Listing, known: pa.Table) -> list[str]:
    """Known objects, not gone already, that the listing's scope covers but did not list."""
    unlisted = known.filter(
        (pc.field("status") != "gone")
        & ~pc.field("uri").isin(listing.objects.column("uri").combine_chunks())
    )
    return sorted(uri for uri in unlisted.column("uri").to_pylist() if listing.scope.covers(uri))


def shards(objects: pa.Table, size: int, workers: int = 1) -> list[list[ObjectRef]]:
    """Consecutive groups of at most size objects; the same listing, size and workers give
    the same shards (and so a resumed run the same cache keys).

    With several workers the groups are as even as can be and come in whole rounds of one
    per worker, so that no worker runs the last group alone while the others wait.
    """
    total = len(objects)
    if workers == 1:
        return [refs_of(objects.slice(i, size)) for i in range(0, total, size)]
    count = min(total, -(-total // (size * workers)) * workers)
    starts = [i * total // count for i in range(count + 1)] if count else []
    return [refs_of(objects.slice(a, b - a)) for a, b in pairwise(starts)]
