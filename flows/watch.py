"""Flow `watch`: for stores without notifications, poll cheaply and start curate when needed."""

from __future__ import annotations

from prefect import flow

from coresift.config import CurateConfig
from tasks.curate import list_objects, plan_objects, start_curate


@flow(name="watch")
def watch(config: CurateConfig, deployment: str = "curate/curate-manual") -> str | None:
    """List the source (no bodies read) and start `deployment` if anything is new or changed.

    Returns the started run's id, or None when the datapool is up to date.
    """
    plan = plan_objects(config, list_objects(config))
    if not plan.to_process:
        return None
    return start_curate(deployment, config)
