"""Planning a run: which listed objects are new, changed, unchanged or gone.

An anti-join of the listing with the datapool's committed objects; nothing reads object bodies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from coresift.datapool import ObjectState
from coresift.listing import Listing, ObjectRef


class Plan(BaseModel):
    """The objects to process in a run, and what the rest of the listing is.

    Images and videos are new, changed or skipped (unchanged); objects of neither kind are
    counted as unsupported, and recorded (never read) when the datapool does not know them
    at their current version.
    """

    model_config = ConfigDict(frozen=True)

    datapool_version: int
    work_epoch: str
    new: list[ObjectRef]
    changed: list[ObjectRef]
    skipped: int
    gone: list[str]
    unsupported: int
    unsupported_new: list[ObjectRef]

    @property
    def work_key(self) -> str:
        """Names this plan's processing artifacts: same datapool state, same work area."""
        return f"v{self.datapool_version}-{self.work_epoch}"

    @property
    def to_process(self) -> list[ObjectRef]:
        return [*self.new, *self.changed]

    @property
    def changes_nothing(self) -> bool:
        """Nothing to process, nothing gone, nothing to record: the run commits nothing."""
        return not (self.to_process or self.gone or self.unsupported_new)

    @property
    def bytes_new(self) -> int:
        return sum(ref.size for ref in self.to_process)


def plan_run(
    listing: Listing,
    known: Mapping[str, ObjectState],
    datapool_version: int,
    work_epoch: str,
    process_all: bool = False,
) -> Plan:
    """Split a listing against the datapool's known objects.

    With process_all every listed object is planned again: never-seen ones as new, the others
    as changed (their samples are recomputed and replace the old ones). Only objects in the
    listing's scope can be gone: the datapool may hold other sources, or other filters' objects.
    """
    new: list[ObjectRef] = []
    changed: list[ObjectRef] = []
    unsupported_new: list[ObjectRef] = []
    skipped = unsupported = 0
    for ref in listing.refs:
        state = known.get(ref.uri)
        if ref.kind == "unsupported":
            unsupported += 1
            if state is None or (state.status, state.version) != ("unsupported", ref.version):
                unsupported_new.append(ref)
        elif state is None or state.status in ("gone", "unsupported"):
            new.append(ref)
        elif process_all or state.version != ref.version:
            changed.append(ref)
        else:
            skipped += 1
    listed = {ref.uri for ref in listing.refs}
    gone = sorted(
        uri
        for uri, state in known.items()
        if state.status != "gone" and uri not in listed and listing.scope.covers(uri)
    )
    return Plan(
        datapool_version=datapool_version,
        work_epoch=work_epoch,
        new=new,
        changed=changed,
        skipped=skipped,
        gone=gone,
        unsupported=unsupported,
        unsupported_new=unsupported_new,
    )


def shards(refs: Sequence[ObjectRef], size: int) -> list[list[ObjectRef]]:
    """Consecutive groups of at most size objects (a stable listing gives stable shards)."""
    return [list(refs[i : i + size]) for i in range(0, len(refs), size)]
