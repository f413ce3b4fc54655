"""The one typed configuration of a curation run.

The flow `curate` takes it as its parameter (the Prefect UI renders it as a form) and the CLI
builds the same model, so both validate identically and fail before any work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coresift.errors import ConfigError
from coresift.process import ProcessingSettings
from coresift.video import FrameSampling, VideoLimits

DEFAULT_DATAPOOL = "./datapool"


def _cores() -> int:
    return os.cpu_count() or 2


DEFAULT_MODEL = "efficientnet-lite0"


class CurateConfig(BaseModel):
    """What to curate, where to record it, and how to process and select."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(
        description="URL of the images, listed recursively: a local folder, s3://bucket/prefix."
    )
    datapool: str = Field(
        default=DEFAULT_DATAPOOL,
        description="URL of the datapool folder that remembers processed objects and selections.",
    )
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
    process_all: bool = Field(
        default=False,
        description="Reprocess every listed object and select afresh, ignoring earlier picks.",
    )
    tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Name of the tag that records this run's picks (default: the run id).",
    )
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
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for the source (endpoint_url, region, ...). Keep secrets in "
        "environment variables or a Prefect Secret block, not here.",
    )
    storage_block: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block whose JSON value holds the source's storage "
        "options (credentials included).",
    )
    datapool_storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for the datapool URL (non-secret, like storage_options).",
    )
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
    threads: int = Field(
        default_factory=lambda: max(1, _cores() // 2),
        ge=1,
        le=256,
        description="Inference threads (default: half the cores).",
    )
    decode_workers: int = Field(
        default_factory=lambda: max(1, _cores() - _cores() // 2),
        ge=1,
        le=64,
        description="Threads that read and decode objects ahead of inference (default: the "
        "other half of the cores; on 2 cores one of each is fastest, see bench/).",
    )
    batch_size: int = Field(default=16, ge=1, le=1024, description="Images per inference batch.")
    shard_size: int = Field(
        default=64, ge=1, le=100_000, description="Objects per processing task (unit of caching)."
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
    sequence_length: int | None = Field(
        default=None,
        ge=2,
        le=10_000,
        description="Select clips of this many consecutive sampled frames instead of single "
        "frames (n_samples then counts clips; images are not candidates).",
    )
    seed: int = Field(default=0, description="Seed of the first pick when no earlier picks exist.")

    @model_validator(mode="after")
    def _needs_a_stop(self) -> CurateConfig:
        if self.n_samples is None and self.min_distance is None:
            raise ValueError("set n_samples, min_distance, or both")
        return self

    def processing_settings(self) -> ProcessingSettings:
        """The settings that change what processing produces (part of shard cache keys)."""
        return ProcessingSettings(
            max_image_pixels=self.max_image_pixels,
            frames=self.frames,
            video_limits=self.video_limits,
        )


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming its field, for the user's eyes."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "config"
        lines.append(f"{field}: {item['msg']}")
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
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"config file {path} is not valid YAML/JSON: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of field names to values")
    return values
