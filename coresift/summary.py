"""The run summary: printed by `coresift run --json`, stored in the datapool's runs table."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RunSummary(BaseModel):
    """What one run listed, read, processed, selected and committed."""

    run_id: str
    tag: str
    objects_listed: int = Field(
        description="Objects the source listed after include/exclude filters, any kind."
    )
    objects_new: int
    objects_changed: int
    objects_skipped: int = Field(description="Images and videos unchanged since an earlier run.")
    objects_gone: int
    objects_unsupported: int = Field(
        default=0, description="Listed objects that are neither images nor videos (never read)."
    )
    samples_processed: int
    samples_corrupt: int
    samples_filtered: dict[str, int] = Field(
        default_factory=dict,
        description="Samples that were not candidates, by reason: corrupt, duplicate, "
        "low_information, threshold, near_duplicate.",
    )
    samples_selected: int
    samples_preselected: int = Field(description="Earlier picks that acted as fixed centers.")
    selection_notes: list[str] = Field(
        default_factory=list,
        description="Why fewer samples were picked than asked, and balance shortfalls.",
    )
    custom_paths_unmatched: int = Field(
        default=0, description="Paths of the custom metadata file that match no listed object."
    )
    bytes_read: int = Field(description="Object bytes fetched from the source in this run.")
    bytes_new: int = Field(description="Listed size of the new and changed objects.")
    datapool_version: int
    report: str | None = Field(
        default=None, description="Where this run's report is (None: the run changed nothing)."
    )
    duration_s: float
    stage_seconds: dict[str, float]
