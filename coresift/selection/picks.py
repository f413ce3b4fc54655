"""Choosing a run's picks: which samples are candidates, why the others are not, and the
greedy search over the user's strategies with the earlier picks as fixed centers.

A sample is filtered, with a reason code stored per run, when it is `corrupt`, a `duplicate`
(same content hash as an earlier pick or candidate), `low_information` (see `junk`), fails a
`threshold`, or is a `near_duplicate` (closer than duplicate_distance to a pick or an earlier
pick). Earlier picks count as fixed centers only when they were embedded by the same model,
since embeddings of different models are not comparable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from coresift import schema
from coresift.config import SelectionConfig, Strategy
from coresift.custom import column_of
from coresift.selection.greedy import (
    Balance,
    Selection,
    Vectors,
    greedy_select,
    nearest_centers,
)
from coresift.selection.junk import junk_mask, low_information
from coresift.selection.scores import (
    balance_of,
    describe_threshold,
    passes,
    static_log_score,
)


@dataclass(frozen=True)
class Picks:
    """The new picks as tag rows (schema.TAGS), the filtered samples with their reasons
    (schema.FILTERED), how many earlier picks were fixed centers, and notes for the user."""

    tags: pa.Table
    filtered: pa.Table
    preselected: int
    notes: list[str] = field(default_factory=list)


def embedding_matrix(table: pa.Table) -> Vectors:
    """The embedding column as an (n, d) array, without a Python loop (rows without an
    embedding are zeros): float16 where the column is compact (`schema.compact`), else
    float32. A column that lies in one buffer (`schema.compact_tables`) is viewed, not
    copied; others are copied once, chunk by chunk."""
    column = table.column("embedding")
    kind: type[np.floating[Any]] = (
        np.float16 if column.type.value_type == pa.float16() else np.float32
    )
    if column.num_chunks == 1 and (view := _one_buffer(column.chunk(0), kind)) is not None:
        return view
    pieces = []
    for chunk in column.chunks:
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        pieces.append((valid, np.asarray(pc.list_flatten(chunk), dtype=kind)))
    width = next((len(v) // int(m.sum()) for m, v in pieces if m.any()), 0)
    matrix: Vectors = np.zeros((len(table), width), kind)
    at = 0
    for valid, values in pieces:
        if len(values):
            matrix[at : at + len(valid)][valid] = values.reshape(-1, width)
        at += len(valid)
    return matrix


def _one_buffer(lists: pa.Array, kind: type[np.floating[Any]]) -> Vectors | None:
    """The lists as an (n, d) view of their values when every row spans d of them in
    order and rows without an embedding span zeros; else None."""
    offsets = np.asarray(lists.offsets)
    width = int(offsets[1] - offsets[0]) if len(lists) else 0
    if width == 0 or not np.array_equal(np.diff(offsets), np.full(len(lists), width)):
        return None
    values = lists.values.slice(int(offsets[0]), len(lists) * width)
    if values.null_count:
        return None
    view: Vectors = np.asarray(values, dtype=kind).reshape(len(lists), width)
    missing = ~lists.is_valid().to_numpy(zero_copy_only=False)
    return view if not view[missing].any() else None


def values_of(table: pa.Table, source: str) -> list[Any]:
    """The values of a strategy input (metadata.<field> or custom.<column>) per row."""
    if source.startswith("custom."):
        return column_of(table, source.removeprefix("custom."))
    name = source.removeprefix("metadata.")
    if name not in table.column_names:
        return [None] * len(table)
    return list(table.column(name).to_pylist())


class _Filter:
    """Collects why samples are not candidates, first reason wins."""

    def __init__(self, table: pa.Table):
        self.ids: list[str] = table.column("sample_id").to_pylist()
        self.reason: list[str | None] = [None] * len(table)
        self.rows: list[dict[str, Any]] = []

    def exclude(self, row: int, reason: str, detail: str, related: str | None = None) -> None:
        if self.reason[row] is None:
            self.reason[row] = reason
            self.rows.append(
                {
                    "sample_id": self.ids[row],
                    "reason": reason,
                    "detail": detail,
                    "related_sample_id": related,
                }
            )

    def kept(self) -> list[int]:
        return [row for row, reason in enumerate(self.reason) if reason is None]

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=schema.FILTERED)

    def counts(self) -> dict[str, int]:
        return dict(Counter(row["reason"] for row in self.rows))


def clips_of(samples: pa.Table, rows: list[int], length: int) -> list[list[int]]:
    """Clips among the given rows: runs of `length` consecutive sampled frames of one video.

    Windows do not overlap; a video's last frames that do not fill a window are left out,
    and a window is broken where a frame is not among the rows.
    """
    uris = samples.column("uri").to_pylist()
    frames = samples.column("frame_index").to_pylist()
    allowed = set(rows)
    order = sorted(
        (uris[row], frames[row], row) for row in range(len(samples)) if frames[row] is not None
    )
    clips: list[list[int]] = []
    current: list[int] = []
    current_uri = None
    for uri, _, row in order:
        if uri != current_uri or row not in allowed:
            current, current_uri = [], uri
            if row not in allowed:
                continue
        current.append(row)
        if len(current) == length:
            clips.append(current)
            current = []
    return clips


def choose(
    new_samples: pa.Table,
    earlier_picks: pa.Table,
    *,
    model: str,
    selection: SelectionConfig,
    tag: str,
    queries: Mapping[int, Vectors] | None = None,
) -> Picks:
    """Pick among new_samples by the selection's strategies around the earlier picks.

    Args:
        new_samples: this run's processed samples (schema.SAMPLES, custom values attached).
        earlier_picks: samples picked by earlier runs that are still current.
        model: identity of the model that embedded new_samples.
        selection: n_samples, min_distance, strategies, guards.
        queries: embeddings of each similarity strategy's query, by strategy index.
    """
    # Rows in (URI, frame) order, without embeddings: gathering list columns is slow.
    order = np.asarray(
        pc.sort_indices(new_samples, sort_keys=[("uri", "ascending"), ("frame_index", "ascending")])
    )
    ordered = bool(np.all(order[1:] > order[:-1]))  # shards come in order: no copies then
    samples = new_samples.drop_columns(["embedding"])
    samples = samples if ordered else samples.take(order)
    embeddings = embedding_matrix(new_samples)
    embeddings = embeddings if ordered else embeddings[order]
    strategies = selection.effective_strategies()
    filters = _Filter(samples)
    embedded = new_samples.column("embedding").is_valid().to_numpy(zero_copy_only=False)[order]
    _filter_unusable(samples, embedded, earlier_picks, selection, filters)
    for strategy in strategies:
        if strategy.type == "threshold":
            ok = passes(strategy, values_of(samples, strategy.input))
            for row in np.flatnonzero(~ok):
                filters.exclude(int(row), "threshold", describe_threshold(strategy))
    groups, points = _candidates(samples, embeddings, filters.kept(), selection.sequence_length)
    centers = earlier_picks.filter(pc.field("model") == model)
    fixed = embedding_matrix(centers) if len(centers) else None
    first_rows = samples.take(pa.array([g[0] for g in groups], pa.int64()))
    log_prior, exponent, balance, names = _objectives(
        strategies, first_rows, points, earlier_picks, selection, queries or {}
    )
    selected = Selection([], [])
    if groups:
        selected = greedy_select(
            points,
            fixed,
            n_samples=selection.n_samples,
            min_distance=selection.min_distance,
            seed=selection.seed,
            log_prior=log_prior,
            exponent=exponent,
            exclusion=selection.duplicate_distance,
            balance=balance,
        )
    sample_ids = samples.column("sample_id").to_pylist()
    if groups and selection.duplicate_distance > 0:
        center_ids = centers.column("sample_id").to_pylist()
        center_ids += [sample_ids[groups[i][0]] for i in selected.indices]
        centers_all = np.concatenate(
            [p for p in (fixed, points[selected.indices]) if p is not None]
        )
        _record_near_duplicates(
            selected, selection.duplicate_distance, groups, points, centers_all, center_ids, filters
        )
    tag_rows = [
        {
            "tag": tag,
            "sample_id": sample_ids[member],
            "rank": 0,
            "distance": distance,
            "clip": None if selection.sequence_length is None else clip,
        }
        for clip, (index, distance) in enumerate(
            zip(selected.indices, selected.distances, strict=True)
        )
        for member in groups[index]
    ]
    for rank, tag_row in enumerate(tag_rows):
        tag_row["rank"] = rank
    counts = filters.counts()
    return Picks(
        pa.Table.from_pylist(tag_rows, schema=schema.TAGS),
        filters.table(),
        preselected=len(centers),
        notes=_notes(selection, len(selected.indices), len(groups), counts, balance, names),
    )


def _candidates(
    samples: pa.Table, embeddings: Vectors, kept: list[int], length: int | None
) -> tuple[list[list[int]], Vectors]:
    """The candidates as groups of rows (one row, or a clip's frames) and their points."""
    if length is None:  # every row kept: the embeddings as they are, not a copy
        return [[row] for row in kept], embeddings if len(kept) == len(embeddings) else (
            embeddings[kept]
        )
    groups = clips_of(samples, kept, length)
    means = [embeddings[group].mean(axis=0, dtype=np.float32) for group in groups]
    points = np.stack(means).astype(embeddings.dtype) if means else embeddings[:0]
    return groups, points


def _filter_unusable(
    samples: pa.Table,
    embedded: NDArray[np.bool_],
    earlier_picks: pa.Table,
    selection: SelectionConfig,
    filters: _Filter,
) -> None:
    """Corrupt samples, exact duplicates and (with the guard on) low-information pictures.

    Clips (sequence_length) keep repeated frames: a still scene is still a clip.
    """
    broken = samples.column("corrupt_reason").is_valid().to_numpy(zero_copy_only=False) | ~embedded
    codes = samples.column("corrupt_code")
    for broken_row in np.flatnonzero(broken):
        at = int(broken_row)
        filters.exclude(at, "corrupt", codes[at].as_py() or "no embedding")
    seen = dict(
        zip(
            earlier_picks.column("content_hash").to_pylist(),
            earlier_picks.column("sample_id").to_pylist(),
            strict=True,
        )
    )
    for row, content_hash in enumerate(samples.column("content_hash").to_pylist()):
        if selection.sequence_length or filters.reason[row] is not None or not content_hash:
            continue
        if content_hash in seen:
            filters.exclude(row, "duplicate", "same content", seen[content_hash])
        else:
            seen[content_hash] = filters.ids[row]
    if not selection.exclude_low_information:
        return
    width, height, detail = (
        samples.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        for name in ("width", "height", "detail")
    )
    for junk_row in np.flatnonzero(junk_mask(width, height, detail)):
        at = int(junk_row)
        why = low_information(_whole(width[at]), _whole(height[at]), float(detail[at]))
        assert why is not None
        filters.exclude(at, "low_information", why)


def _whole(value: float) -> int | None:
    return None if np.isnan(value) else int(value)


def _objectives(
    strategies: list[Strategy],
    candidates: pa.Table,
    points: Vectors,
    earlier: pa.Table,
    selection: SelectionConfig,
    queries: Mapping[int, Vectors],
) -> tuple[NDArray[np.float64] | None, float, Balance | None, list[str]]:
    """The greedy search's inputs: log prior, diversity exponent, balance, class names."""
    log_prior: NDArray[np.float64] | None = None
    exponent = 0.0
    balance: Balance | None = None
    names: list[str] = []
    for index, strategy in enumerate(strategies):
        if strategy.type == "diversity":
            exponent += strategy.strength
        elif strategy.type == "balance":
            balance, names = balance_of(
                strategy,
                values_of(candidates, strategy.input),
                values_of(earlier, strategy.input),
                selection.n_samples,
            )
        elif strategy.type in ("weights", "similarity", "typicality"):
            values = (
                None if strategy.input == "embedding" else values_of(candidates, strategy.input)
            )
            score = static_log_score(strategy, values, points, queries.get(index), selection.seed)
            log_prior = score if log_prior is None else log_prior + score
    if log_prior is None and balance is None and exponent == 0:
        exponent = 1.0  # thresholds alone choose nothing: diversity among what passes
    return log_prior, exponent, balance, names


def _record_near_duplicates(
    selected: Selection,
    distance: float,
    groups: list[list[int]],
    points: Vectors,
    centers: Vectors,
    center_ids: list[str],
    filters: _Filter,
) -> None:
    """Candidates left closer than `distance` to a center, recorded with the center's id."""
    final = selected.final_sq
    near = np.flatnonzero((final >= 0) & (final < distance**2))
    if len(near) == 0:
        return
    owners = nearest_centers(points[near], centers)
    for candidate, owner in zip(near, owners, strict=True):
        for row in groups[candidate]:
            filters.exclude(
                row,
                "near_duplicate",
                f"closer than duplicate_distance={distance:g}",
                center_ids[owner],
            )


def _notes(
    selection: SelectionConfig,
    picked: int,
    candidates: int,
    filtered: dict[str, int],
    balance: Balance | None,
    names: list[str],
) -> list[str]:
    """Plain words for what the numbers alone do not say."""
    notes = []
    wanted = selection.n_samples
    if wanted is not None and picked < wanted and candidates == 0 and not filtered:
        notes.append(f"asked for {wanted}, picked {picked}: nothing new to pick from")
    elif wanted is not None and picked < wanted:
        why = ", ".join(f"{count} {reason}" for reason, count in sorted(filtered.items()))
        reason = (
            "min_distance stopped the selection"
            if selection.min_distance is not None and picked < candidates
            else "no eligible candidate was left"
        )
        notes.append(
            f"asked for {wanted}, picked {picked}: {reason}"
            + (f" (not candidates: {why})" if why else "")
        )
    if balance is not None:
        for index, count, quota in balance.shortfalls():
            notes.append(
                f"balance: class {names[index]!r} ran out of candidates ({count} of {quota} picks)"
            )
    return notes
