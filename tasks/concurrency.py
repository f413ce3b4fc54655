"""One curate run at a time per datapool, across every deployment, schedule and trigger."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL


def datapool_limit_name(datapool_url: str) -> str:
    """The global concurrency limit of a datapool (a hash: URLs make poor limit names)."""
    return "coresift-datapool-" + hashlib.sha256(datapool_url.encode()).hexdigest()[:16]


@contextmanager
def datapool_slot(datapool_url: str) -> Iterator[None]:
    """Hold the datapool's single slot; later runs wait in line instead of failing.

    The limit (1 slot) is created on first use, on a Prefect server the user runs. A run
    without one (a temporary server per run) skips the slot: the slot's lease would die with
    that server, and its occupancy, kept in the Prefect home, would block every later run
    after a kill. The datapool's lock file keeps a second writer out either way.
    """
    if not PREFECT_API_URL.value():
        yield
        return
    name = datapool_limit_name(datapool_url)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
    # Prefect renews the lease while the run lives; a short one frees the slot soon after a
    # run is killed outright (its lock file is broken the same way, see Datapool.lock).
    with concurrency(name, occupy=1, strict=True, lease_duration=60):
        yield
