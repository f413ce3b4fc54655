"""The user's own metadata and predictions: one file per run, values per object or frame.

A CSV, Parquet or JSON Lines file with a `path` column (relative to the source, or a full
URL) and an optional `frame_index` column for video frames; every other column becomes
`custom.<column>` for the selection strategies and is stored with the samples (as a JSON
object per sample in the `custom` column). A row without a frame index applies to every
frame of its video. The file is read once per run and checked before any work: a strategy
on a missing column, or a value of the wrong type, fails the run naming the column and row.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from coresift.config import Strategy
from coresift.errors import ConfigError
from coresift.media import extension_of
from coresift.storage import full_url, open_url

Kind = Literal["number", "category"]
KEY_COLUMNS = ("path", "frame_index")


@dataclass(frozen=True)
class CustomMetadata:
    """Validated values, keyed by (object URL, frame index or None), and each column's kind."""

    kinds: dict[str, Kind]
    rows: dict[tuple[str, int | None], dict[str, Any]]

    def values_of(self, uri: str, frame_index: int | None) -> dict[str, Any] | None:
        """The values of one sample: its object's row, overridden by its frame's row."""
        whole = self.rows.get((uri, None))
        frame = None if frame_index is None else self.rows.get((uri, frame_index))
        if whole is None or frame is None:
            return frame or whole
        return {**whole, **frame}

    def as_json(self, uris: Sequence[str], frames: Sequence[int | None]) -> pa.Array:
        """Each sample's values as a JSON object (null where the file has none)."""
        encoded = []
        for uri, frame in zip(uris, frames, strict=True):
            values = self.values_of(uri, frame)
            encoded.append(None if values is None else json.dumps(values, sort_keys=True))
        return pa.array(encoded, pa.string())

    def unmatched(self, listed: pa.ChunkedArray) -> list[str]:
        """Paths of the file that match no listed object (listed: their uris)."""
        paths = pa.array(sorted({uri for uri, _ in self.rows}), pa.string())
        unmatched = paths.filter(pc.invert(pc.is_in(paths, value_set=listed.combine_chunks())))
        return [str(uri) for uri in unmatched.to_pylist()]

    def to_table(self) -> pa.Table:
        """The values as a table (for the run's work area): uri, frame_index, values_json."""
        keys = list(self.rows)
        return pa.table(
            {
                "uri": [uri for uri, _ in keys],
                "frame_index": pa.array([frame for _, frame in keys], pa.int64()),
                "values_json": [json.dumps(self.rows[key], sort_keys=True) for key in keys],
                "kinds_json": [json.dumps(self.kinds)] * len(keys),
            }
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> CustomMetadata:
        kinds = json.loads(table.column("kinds_json")[0].as_py()) if len(table) else {}
        rows = {
            (uri, frame): json.loads(values)
            for uri, frame, values in zip(
                table.column("uri").to_pylist(),
                table.column("frame_index").to_pylist(),
                table.column("values_json").to_pylist(),
                strict=True,
            )
        }
        return cls(kinds, rows)


def read_custom_metadata(
    url: str, options: dict[str, Any], source_url: str, source_options: dict[str, Any]
) -> CustomMetadata:
    """Read and validate a custom metadata file; paths are resolved against the source.

    Raises:
        ConfigError: the file is missing, unreadable, has no `path` column, or holds a
            value that is not of its column's type (named with its row).
    """
    fs, path = open_url(url, options)
    try:
        data = fs.cat_file(path)
    except OSError as error:
        raise ConfigError(f"custom_metadata: cannot read {url}: {error}") from None
    table = _parse(bytes(data), extension_of(url), url)
    if "path" not in table.column_names:
        columns = ", ".join(table.column_names)
        raise ConfigError(f"custom_metadata: {url} has no 'path' column (columns: {columns})")
    source_fs, source_root = open_url(source_url, source_options)
    scheme = source_url.split("://", 1)[0] if "://" in source_url else None
    prefix = full_url(source_fs, source_root.rstrip("/"), scheme)
    kinds = {
        name: _kind_of(table.schema.field(name).type)
        for name in table.column_names
        if name not in KEY_COLUMNS
    }
    frames = _frame_indices(table, url)
    rows: dict[tuple[str, int | None], dict[str, Any]] = {}
    for number, (relative, frame, values) in enumerate(
        zip(table.column("path").to_pylist(), frames, _value_rows(table, kinds), strict=True),
        start=1,
    ):
        if not relative:
            raise ConfigError(f"custom_metadata: row {number} has an empty path")
        uri = relative if "://" in relative else f"{prefix}/{str(relative).lstrip('/')}"
        rows[(uri, frame)] = values
    return CustomMetadata(kinds, rows)


def _parse(data: bytes, extension: str, url: str) -> pa.Table:
    try:
        if extension == ".parquet":
            return pq.read_table(io.BytesIO(data))
        if extension in (".jsonl", ".ndjson", ".json"):
            return pa_json.read_json(io.BytesIO(data))
        if extension in (".csv", ".tsv"):
            delimiter = "\t" if extension == ".tsv" else ","
            return pa_csv.read_csv(
                io.BytesIO(data),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter),
                convert_options=pa_csv.ConvertOptions(strings_can_be_null=True),  # "" = missing
            )
    except (pa.ArrowInvalid, OSError) as error:
        raise ConfigError(f"custom_metadata: {url} is malformed: {error}") from None
    raise ConfigError(f"custom_metadata: {url} must be .csv, .tsv, .parquet or .jsonl (JSON Lines)")


def _kind_of(kind: pa.DataType) -> Kind:
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    return "number" if numeric else "category"


def _frame_indices(table: pa.Table, url: str) -> list[int | None]:
    if "frame_index" not in table.column_names:
        return [None] * len(table)
    frames: list[int | None] = []
    for number, value in enumerate(table.column("frame_index").to_pylist(), start=1):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            frames.append(None)
        elif isinstance(value, int | float) and float(value).is_integer() and value >= 0:
            frames.append(int(value))
        else:
            raise ConfigError(
                f"custom_metadata: column 'frame_index' row {number}: {value!r} is not a "
                "frame number"
            )
    return frames


def _value_rows(table: pa.Table, kinds: dict[str, Kind]) -> list[dict[str, Any]]:
    columns = {name: table.column(name).to_pylist() for name in kinds}
    return [
        {name: _plain(columns[name][row]) for name in kinds if columns[name][row] is not None}
        for row in range(len(table))
    ]


def _plain(value: Any) -> Any:
    """A JSON-friendly value: numbers and strings as they are, anything else as text."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def check_strategies(custom: CustomMetadata | None, strategies: Sequence[Strategy]) -> None:
    """Fail before any work when a strategy's custom input cannot be served by the file.

    Raises:
        ConfigError: no file, a missing column, balance on a numeric column, or a value that
            is not a number where a strategy needs one (naming its row).
    """
    for index, strategy in enumerate(strategies):
        if not strategy.input.startswith("custom."):
            continue
        where = f"selection.strategies.{index}"
        column = strategy.input.removeprefix("custom.")
        if custom is None:
            raise ConfigError(f"{where}: {strategy.input} needs custom_metadata (a file)")
        if column not in custom.kinds:
            known = ", ".join(sorted(custom.kinds)) or "none"
            raise ConfigError(
                f"{where}: unknown input {strategy.input}: the custom metadata file's columns "
                f"are {known}"
            )
        kind = custom.kinds[column]
        if strategy.type == "balance" and kind == "number":
            raise ConfigError(f"{where}: balance needs a categorical input; {column} is numeric")
        needs_number = strategy.type == "weights" or (
            strategy.type == "threshold" and strategy.operation not in ("==", "!=")
        )
        if needs_number and kind != "number":
            _make_numeric(custom, column, where)
        if strategy.type == "threshold" and kind == "number" and isinstance(strategy.value, str):
            raise ConfigError(
                f"{where}: threshold value {strategy.value!r} is text, but {column} is numeric"
            )


def _make_numeric(custom: CustomMetadata, column: str, where: str) -> None:
    """Turn a column of numbers written as text into numbers, or name the first bad row."""
    for number, values in enumerate(custom.rows.values(), start=1):
        if column not in values:
            continue
        try:
            values[column] = float(values[column])
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: custom_metadata column '{column}' row {number}: "
                f"{values[column]!r} is not a number"
            ) from None
    custom.kinds[column] = "number"


def column_of(samples: pa.Table, name: str) -> list[Any]:
    """The values of custom.<name> for each sample, from its stored JSON (None if absent)."""
    if "custom" not in samples.column_names:
        return [None] * len(samples)
    values = []
    for encoded in samples.column("custom").to_pylist():
        values.append(None if encoded is None else json.loads(encoded).get(name))
    return values


def attach(samples: pa.Table, custom: CustomMetadata | None) -> pa.Table:
    """The samples with their `custom` column filled from the file (kept where it has none)."""
    if custom is None or not len(samples):
        return samples
    fresh = custom.as_json(
        samples.column("uri").to_pylist(), samples.column("frame_index").to_pylist()
    )
    if "custom" in samples.column_names:
        fresh = pc.coalesce(fresh, samples.column("custom"))
        samples = samples.drop_columns(["custom"])
    return samples.append_column("custom", fresh)
