"""The run summary: printed by `coresift run --json`, stored in the datapool's runs table."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RunSummary(BaseModel):
    """What one run listed, read, processed, selected and committed."""

    run_id: str
    tag: str
    source: str = Field(default="", description="The source's URL.")
    datapool: str = Field(default="", description="The datapool's URL (a local one absolute).")
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
    samples_corrupt_by_code: dict[str, int] = Field(
        default_factory=dict, description="Corrupt samples by reason code (truncated, ...)."
    )
    samples_filtered: dict[str, int] = Field(
        default_factory=dict,
        description="Samples that were not candidates, by reason: corrupt, duplicate, "
        "low_information, threshold, near_duplicate.",
    )
    samples_selected: int
    samples_asked: int | None = Field(
        default=None, description="selection.n_samples (None: min_distance alone stops)."
    )
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
    workers: int = Field(
        default=0, description="Distinct worker processes that processed this run's shards."
    )
    datapool_version: int
    committed: bool = Field(
        default=True,
        description="False when the run found nothing to change and committed nothing.",
    )
    report: str | None = Field(
        default=None, description="Where this run's report is (None: the run changed nothing)."
    )
    duration_s: float
    stage_seconds: dict[str, float]


def describe(summary: RunSummary) -> list[str]:
    """The summary in words, as a user reads it on the terminal or the run's Prefect page."""
    s = summary
    corrupt = _by_reason(s.samples_corrupt_by_code)
    not_candidates = _by_reason(s.samples_filtered)
    asked = "" if s.samples_asked is None else f" of {s.samples_asked} asked"
    around = f", around {s.samples_preselected} earlier picks" if s.samples_preselected else ""
    version = (
        f"now at version {s.datapool_version}"
        if s.committed
        else f"unchanged at version {s.datapool_version}: nothing to commit"
    )
    lines = [
        f"run {s.run_id} (tag {s.tag})",
        f"  source:   {s.source}",
        f"  datapool: {s.datapool}, {version}",
        f"  objects:  {s.objects_listed} listed: {s.objects_new} new, {s.objects_changed} "
        f"changed, {s.objects_skipped} unchanged, {s.objects_gone} gone"
        + (f", {s.objects_unsupported} neither image nor video" if s.objects_unsupported else ""),
        f"  read:     {human_bytes(s.bytes_read)} for {human_bytes(s.bytes_new)} of new and "
        "changed objects",
        f"  samples:  {s.samples_processed} processed, {s.samples_corrupt} corrupt"
        + (f" ({corrupt})" if corrupt else ""),
        f"  picked:   {s.samples_selected}{asked}{around}"
        + (f"; not candidates: {not_candidates}" if not_candidates else ""),
        *(f"  note:     {note}" for note in s.selection_notes),
        f"  took:     {s.duration_s:.1f} s"
        + (f" on {s.workers} worker{'s' if s.workers > 1 else ''}" if s.workers else "")
        + " ("
        + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in s.stage_seconds.items())
        + ")",
    ]
    if s.custom_paths_unmatched:
        lines.append(f"  custom metadata: {s.custom_paths_unmatched} paths match no object")
    return lines


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KB' (powers of 1000, as storage consoles show them)."""
    if count < 1000:
        return f"{count} bytes"
    value = count / 1000
    for unit in ("KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _by_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items()))
