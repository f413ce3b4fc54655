"""The one typed configuration of a curation run, grouped into sections that read as a form.

The flow `curate` takes it as its parameter (the Prefect UI renders it as a form, one section
per group) and the CLI builds the same model, so both validate identically and fail before any
work. This module is a leaf: it imports no media, Arrow or orchestration library, so a form,
a CLI or a scheduler can validate a config cheaply.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from coresift.errors import ConfigError

DEFAULT_DATAPOOL = "./datapool"
DEFAULT_MODEL = "efficientnet-lite0"
# Measured on the bundled photos (letterboxed Lite0 embeddings): half-size copies lie 0.095
# (median) to 0.239 (max) from the original, JPEG q75 recompressions 0.076 (median), while the
# nearest two different photos lie 1.01 apart and consecutive 1 fps frames of the real clips
# 0.24 to 1.0. Closer than this counts as a copy.
DUPLICATE_DISTANCE = 0.25
TAG_CHARACTERS = "letters, digits, '.', '_' and '-'"


# threads | processes | dask | ray, or a running cluster's address
RUNNER_PATTERN = r"^(threads|processes|dask|ray|(dask|ray)://[A-Za-z0-9.\-\[\]:]+:\d+)$"
CPU_BATCH = 16
GPU_BATCH = 64
# objects per shard: a worker process of a pool pays Prefect's per-task cost (its run
# context rebuilt, a new API client: about 0.3 s), so local pools take bigger shards (a
# remote cluster's parallelism is not known, so it keeps small ones)
THREADS_SHARD = 64
POOL_SHARD = 256


def is_remote(runner: str) -> bool:
    """Whether a runner is a cluster that runs elsewhere: its workers are not this machine's
    to count or check."""
    return "://" in runner or (runner == "ray" and bool(os.environ.get("RAY_ADDRESS")))


def split_cores(cores: int) -> tuple[int, int]:
    """The default (inference threads, decode workers) for a machine with `cores` cores: as
    many of each as cores. Inference threads sleep rather than spin while they wait, so the
    operating system gives whichever side is the bottleneck the other's idle time. On 2 cores
    this beat one of each by 45% on 640x480 JPEGs and 75% on 4000x3000 ones (bench/)."""
    return max(1, cores), max(1, cores)


def _form_friendly(schema: dict[str, Any]) -> None:
    """Show optional fields as their type, not as 'X or null': the Prefect UI renders the null
    branch of `anyOf` as a confusing 'Property is type None'. Leaving a field empty in the
    form still means None, since the field is not required."""
    for field in schema.get("properties", {}).values():
        branches = field.get("anyOf")
        if not branches:
            continue
        kept = [branch for branch in branches if branch.get("type") != "null"]
        if len(kept) < len(branches):
            del field["anyOf"]
            if len(kept) == 1:
                field.update(kept[0])
            else:
                field["anyOf"] = kept
            if field.get("default", 0) is None:
                del field["default"]


class Section(BaseModel):
    """A group of settings: unknown fields are errors, values never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_form_friendly)


class Location(Section):
    """A URL and how to reach it: the one model for the source, the datapool and every output."""

    url: str = Field(
        description="A local folder or path, s3://bucket/prefix, gs://bucket/prefix, or "
        "az://container/prefix."
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options (endpoint_url, region, ...). Keep secrets in environment "
        "variables or a Prefect block, not here.",
    )
    block: str | None = Field(
        default=None,
        description="A Prefect block holding credentials, merged over storage_options when "
        "the run starts: NAME of a Secret block whose JSON value holds storage options, or "
        "TYPE/NAME of a typed block: aws-credentials/NAME (prefect-aws), gcp-credentials/NAME "
        "(prefect-gcp) or azure-blob-storage-credentials/NAME (prefect-azure).",
    )


class SourceConfig(Location):
    """Where the images and videos are, and which of them count."""

    include: list[str] = Field(
        default_factory=list,
        description="Glob patterns on paths relative to the source; when given, only matches.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns on paths relative to the source to skip."
    )
    relevant_filenames: str | None = Field(
        default=None,
        description="URL of a text file: one relative path per line, 'prefix*' includes a "
        "prefix, a line starting with '!' excludes.",
    )


class DatapoolConfig(Location):
    """Where the datapool lives: what every run processed and selected."""

    url: str = Field(
        default=DEFAULT_DATAPOOL,
        description="A local folder, s3://bucket/prefix or az://container/prefix.",
    )
    lock_wait_s: float = Field(
        default=300,
        ge=0,
        description="How long a run waits for another run on this datapool to finish before "
        "it fails naming that run (a run that died is ignored after 60 s).",
    )
    maintain_every: int = Field(
        default=50,
        ge=0,
        description="Compact, checkpoint and vacuum the datapool's tables after every this "
        "many committed runs (0: never; `coresift maintain` does it on demand).",
    )


class FrameSampling(Section):
    """Which frames of a video become samples."""

    mode: Literal["all", "every_n", "fps", "keyframes"] = Field(
        default="fps",
        description="'all' frames, 'every_n'-th frame, a target 'fps', or 'keyframes' only "
        "(fastest: the decoder skips every other frame).",
    )
    every_n: int = Field(default=10, ge=1, description="Keep every n-th frame (mode every_n).")
    fps: float = Field(default=1.0, gt=0, le=1000, description="Frames per second (mode fps).")


class VideoLimits(Section):
    """Bounds that keep a huge or hostile video from hanging a run or exhausting memory."""

    max_frames: int = Field(default=10_000, ge=1, description="Sampled frames per video at most.")
    max_decoded_frames: int = Field(
        default=1_000_000, ge=1, description="Frames decoded per video at most (sampled or not)."
    )
    max_seconds: float = Field(default=3600.0, gt=0, description="Decoding time per video at most.")
    max_frame_pixels: int = Field(
        default=50_000_000, ge=1, description="Videos with larger frames are refused."
    )


class ProcessingConfig(Section):
    """How objects are read, decoded, measured and embedded."""

    model: str = Field(
        default=DEFAULT_MODEL,
        description="Embedding model: 'efficientnet-lite0', 'torchvision:NAME', or the URL of a "
        "TorchScript (.pt) or ONNX (.onnx) file.",
    )
    runtime: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="Inference engine for built-in models: onnxruntime (about 4x faster on CPU) "
        "or torch.",
    )
    runner: str = Field(
        default="threads",
        pattern=RUNNER_PATTERN,
        description="Where shards run: 'threads' (in the flow's process, one shard at a time), "
        "'processes' (a local process pool), 'dask' (a local Dask cluster), "
        "'dask://HOST:PORT' (a running Dask scheduler), 'ray' (a local Ray, or the one "
        "RAY_ADDRESS names) or 'ray://HOST:PORT'.",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Worker processes of a local pool or cluster (default: one per core, or "
        "one per GPU).",
    )
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="Inference device: 'auto' (a CUDA GPU where one is usable, else the CPU), "
        "'cpu', 'cuda' or 'cuda:N'.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Inference threads per worker (default: as many as the worker's cores; "
        "one on a GPU).",
    )
    decode_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Threads per worker that read and decode objects ahead of inference "
        "(default: as many as the worker's cores; they share the cores with inference, see "
        "bench/).",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description=f"Images per inference batch (default: {CPU_BATCH} on a CPU, "
        f"{GPU_BATCH} on a GPU).",
    )
    shard_size: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Objects per processing task, the unit of caching (default: "
        f"{THREADS_SHARD} on threads and remote clusters, {POOL_SHARD} on local pools and "
        "clusters, which split it evenly among their workers).",
    )
    max_image_pixels: int = Field(
        default=178_956_970,
        ge=1,
        description="Larger images are recorded as corrupt instead of decoded (memory guard).",
    )
    frames: FrameSampling = Field(
        default_factory=FrameSampling, description="Which video frames become samples."
    )
    video_limits: VideoLimits = Field(
        default_factory=VideoLimits, description="Bounds on what one video may cost."
    )
    thumbnails: bool = Field(
        default=True,
        description="Keep a small thumbnail of every image and sampled frame in the datapool "
        "(for reports; about 2 ms and a few KB each).",
    )

    def threads_for(self, cores: int, gpu: bool) -> tuple[int, int]:
        """(inference threads, decode workers) of a worker with `cores` cores: the fields
        where set, else its share of the cores (a GPU needs one thread to feed it)."""
        inference, decode = split_cores(cores)
        return self.threads or (1 if gpu else inference), self.decode_workers or decode

    @property
    def local_pool(self) -> bool:
        """Whether shards run in parallel on a pool or cluster this run starts (and so knows
        the size of): not on threads, not on a running cluster."""
        return self.runner != "threads" and not is_remote(self.runner)

    def objects_per_shard(self) -> int:
        """Objects per processing task: the field where set, else the runner's default."""
        return self.shard_size or (POOL_SHARD if self.local_pool else THREADS_SHARD)

    def batch_for(self, gpu: bool) -> int:
        """Images per inference batch: the field where set, else the device's default."""
        return self.batch_size or (GPU_BATCH if gpu else CPU_BATCH)

    def output_settings(self) -> dict[str, Any]:
        """The settings that change what processing produces (part of shard cache keys);
        runners, devices, threads and batch sizes change only how fast (though a runner's
        shard size and workers decide which objects share a shard)."""
        return self.model_dump(include={"max_image_pixels", "frames", "video_limits", "thumbnails"})


def _needs_a_stop_in_the_form(schema: dict[str, Any]) -> None:
    """The form rejects a selection without a stop, before a run is created: without
    min_distance, n_samples is required (which is also what the form's error says)."""
    _form_friendly(schema)
    schema["if"] = {"not": {"required": ["min_distance"]}}
    schema["then"] = {"required": ["n_samples"]}


# The stored metrics that strategies may use as `metadata.<field>` (all numeric; tests check
# them against coresift.schema.SAMPLES, which this leaf module must not import).
METADATA_FIELDS = (
    "width",
    "height",
    "channels",
    "size_bytes",
    "luminance",
    "contrast",
    "sharpness",
    "snr",
    "uniform_row_ratio",
    "detail",
    "frame_index",
    "timestamp_s",
)
EMBEDDING_TYPES = ("diversity", "similarity", "typicality")
Operation = Literal["<", "<=", ">", ">=", "==", "!="]


class Strategy(Section):
    """One objective of the selection, on one input, with a strength."""

    input: str = Field(
        description="'embedding', 'metadata.<field>' (a stored metric: luminance, contrast, "
        "sharpness, snr, width, ...), or 'custom.<column>' (a column of custom_metadata)."
    )
    type: Literal["diversity", "weights", "threshold", "balance", "similarity", "typicality"] = (
        Field(
            description="diversity: farthest-first on the embedding; weights: prefer larger "
            "values; threshold: keep only samples that pass; balance: approach a distribution "
            "of a categorical input; similarity: prefer samples near a query; typicality: "
            "prefer dense regions, outliers last."
        )
    )
    strength: float = Field(
        default=1.0,
        ge=-100,
        le=100,
        description="Exponent of this objective in the product of all objectives; negative "
        "inverts weights, similarity and typicality (smaller, farther, outliers first).",
    )
    operation: Operation | None = Field(
        default=None, description="threshold: how a sample's value compares to `value`."
    )
    value: float | bool | str | None = Field(
        default=None, description="threshold: the value to compare with."
    )
    target: dict[str, float] | Literal["uniform"] | None = Field(
        default=None,
        description="balance: 'uniform', or a mapping from value to fraction of the picks.",
    )
    query: str | None = Field(
        default=None,
        description="similarity: the name of a tag of this datapool, or the URL of a text file "
        "listing example objects (paths relative to the source, or full URLs).",
    )
    neighbors: int = Field(
        default=10,
        ge=2,
        le=1000,
        description="typicality: how many nearest neighbours measure a sample's density.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Strategy:
        kind, source = self.type, self.input
        if source != "embedding" and not source.startswith(("metadata.", "custom.")):
            raise ValueError(
                f"unknown input {source!r}: use 'embedding', 'metadata.<field>' or "
                "'custom.<column>'"
            )
        field = source.removeprefix("metadata.")
        if source.startswith("metadata.") and field not in METADATA_FIELDS:
            raise ValueError(
                f"unknown input {source!r}: metadata fields are {', '.join(METADATA_FIELDS)}"
            )
        if source.startswith("custom.") and not source.removeprefix("custom."):
            raise ValueError("custom input needs a column name: 'custom.<column>'")
        if kind in EMBEDDING_TYPES and source != "embedding":
            raise ValueError(f"{kind} works on input 'embedding', not {source!r}")
        if kind not in EMBEDDING_TYPES and source == "embedding":
            raise ValueError(f"{kind} needs metadata.<field> or custom.<column>, not 'embedding'")
        if kind == "balance" and source.startswith("metadata."):
            raise ValueError(f"balance needs a categorical input; {source} is numeric")
        if kind == "threshold":
            if self.operation is None or self.value is None:
                raise ValueError("threshold needs both an operation and a value")
            if self.operation not in ("==", "!=") and not _is_number(self.value):
                raise ValueError(f"threshold {self.operation} needs a numeric value")
            if self.strength != 1.0:
                raise ValueError("threshold is a filter: strength has no meaning for it")
        if kind == "balance" and self.target is None:
            raise ValueError("balance needs a target: 'uniform' or {value: fraction, ...}")
        if isinstance(self.target, dict) and (not self.target or min(self.target.values()) <= 0):
            raise ValueError("balance target fractions must be positive")
        if kind == "similarity" and not self.query:
            raise ValueError("similarity needs a query: a tag name or the URL of a list of objects")
        if self.strength < 0 and kind in ("diversity", "balance"):
            raise ValueError(f"{kind} cannot be inverted: use a positive strength")
        return self


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class SelectionConfig(Section):
    """How many samples to pick, and how."""

    model_config = ConfigDict(json_schema_extra=_needs_a_stop_in_the_form)

    n_samples: int | None = Field(
        default=None, ge=0, description="How many new samples to select (earlier picks excluded)."
    )
    min_distance: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="Stop selecting once the farthest candidate is closer than this to a pick "
        "(embeddings are L2-normalised, so distances lie in [0, 2]).",
    )
    seed: int = Field(default=0, description="Seed of the first pick when no earlier picks exist.")
    sequence_length: int | None = Field(
        default=None,
        ge=2,
        le=10_000,
        description="Select clips of this many consecutive sampled frames instead of single "
        "frames (n_samples then counts clips; images are not candidates).",
    )
    strategies: list[Strategy] = Field(
        default_factory=list,
        description="What makes a sample worth picking, combined one pick at a time (default: "
        "diversity on the embedding). See the README's Selection section.",
    )
    exclude_low_information: bool = Field(
        default=True,
        description="Never pick near-uniform pictures (blank, one colour, black, white, "
        "lens-cap noise) or degenerate shapes (thin strips, tiny images).",
    )
    duplicate_distance: float = Field(
        default=DUPLICATE_DISTANCE,
        ge=0.0,
        le=2.0,
        description="Samples closer than this to a pick or an earlier pick are near duplicates "
        "(resized or recompressed copies) and never picked.",
    )

    @model_validator(mode="after")
    def _needs_a_stop(self) -> SelectionConfig:
        if self.n_samples is None and self.min_distance is None:
            raise ValueError("set n_samples, min_distance, or both")
        if sum(s.type == "balance" for s in self.strategies) > 1:
            raise ValueError("strategies: at most one balance strategy")
        if self.sequence_length and any(s.input != "embedding" for s in self.strategies):
            # clips have no metadata of their own
            raise ValueError("strategies: with sequence_length only embedding strategies apply")
        return self

    def effective_strategies(self) -> list[Strategy]:
        """The strategies in force: the configured ones, or diversity alone by default."""
        return self.strategies or [Strategy(input="embedding", type="diversity")]


class CurateConfig(Section):
    """What to curate, where to record it, and how to process and select."""

    source: SourceConfig = Field(description="The images and videos to curate.")
    datapool: DatapoolConfig = Field(
        default_factory=DatapoolConfig,
        description="The datapool that remembers processed objects and earlier picks.",
    )
    processing: ProcessingConfig = Field(
        default_factory=ProcessingConfig, description="Decoding, limits and the embedding model."
    )
    selection: SelectionConfig = Field(description="How many samples to pick, and how.")
    custom_metadata: Location | None = Field(
        default=None,
        description="A CSV, Parquet or JSON Lines file of your own values per object: a 'path' "
        "column (relative to the source), an optional 'frame_index', and any other columns, "
        "which strategies use as custom.<column>.",
    )
    process_all: bool = Field(
        default=False,
        description="Reprocess every listed object and select afresh, ignoring earlier picks.",
    )
    tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        json_schema_extra={"pattern": r"^[A-Za-z0-9._-]+$"},
        description=f"Name of the tag that records this run's picks ({TAG_CHARACTERS}; "
        "default: the run id).",
    )

    @field_validator("tag")
    @classmethod
    def _tag_characters(cls, tag: str | None) -> str | None:
        return None if tag is None else check_tag_name(tag)


def check_tag_name(tag: str) -> str:
    """The tag name, if it uses only the allowed characters (else ValueError)."""
    if not all(c.isascii() and (c.isalnum() or c in "._-") for c in tag):
        raise ValueError(f"may contain only {TAG_CHARACTERS}, got {tag!r}")
    return tag


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming its field, for the user's eyes."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "config"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{field}: {message}")
    return "invalid config: " + "; ".join(lines)


def build_config(values: dict[str, Any]) -> CurateConfig:
    """Validate values into a config, raising ConfigError that names each bad field."""
    try:
        return CurateConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into plain values (validated later, with CLI overrides)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror}") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of field names to values")
    return values
