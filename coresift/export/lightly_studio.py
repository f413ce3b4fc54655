"""A datapool in LightlyStudio, with our embeddings, metadata and tags.

LightlyStudio takes precomputed vectors through an embedder that looks them up instead of
computing them (its `ImagePathEmbedder` interface, registered as the default before the
images are added). Its images are added from the datapool's source folder or bucket prefix;
then every sample gets our metadata and custom values, and a tag for each coresift tag that
picked it; an image coresift found corrupt gets its `corrupt_reason` and no vector. Images
only: LightlyStudio's video datasets are not filled from here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coresift.datapool import Datapool
from coresift.errors import ConfigError
from coresift.export.records import ExportRecord, export_records
from coresift.media import IMAGE_FORMATS, kind_of
from coresift.storage import is_local


def load_into_lightly_studio(datapool: Datapool, name: str = "coresift") -> Any:
    """Create (or add to) the LightlyStudio image dataset `name` from every image sample of
    the datapool, and return it. Connect LightlyStudio to its database first."""
    try:
        import lightly_studio as ls
    except ImportError:
        raise ConfigError("LightlyStudio is not installed: pip install lightly-studio") from None
    records = [
        r
        for r in export_records(datapool, None, embeddings=True)
        if r.frame_index is None and kind_of(r.uri) != "video"
    ]
    by_path = {r.uri: r for r in records}
    vectors = {path: r.embedding for path, r in by_path.items() if r.embedding is not None}
    if not vectors:
        raise ConfigError(f"datapool {datapool.url} holds no embedded image to load")
    model = next(str(r.metadata["model"]) for r in records if r.embedding is not None)
    ls.register_default_embedder(embedder=_precomputed_embedder(ls, vectors, model))
    dataset = ls.ImageDataset.load_or_create(name)
    dataset.add_images_from_path(
        path=common_root([r.uri for r in records]), allowed_extensions=set(IMAGE_FORMATS)
    )
    samples = [s for s in dataset if s.file_path_abs in by_path]
    dataset.update_metadata([(s.sample_id, _metadata(by_path[s.file_path_abs])) for s in samples])
    for sample in samples:
        for tag in by_path[sample.file_path_abs].tags:
            sample.add_tag(tag)
    return dataset


def common_root(uris: Sequence[str]) -> str:
    """The deepest folder (or bucket prefix) that holds every URI."""
    if all(is_local(uri) for uri in uris):
        return posixpath.commonpath([posixpath.dirname(uri) for uri in uris])
    scheme = uris[0].split("://", 1)[0]
    keys = [uri.split("://", 1)[1] for uri in uris]
    return f"{scheme}://{posixpath.commonpath([posixpath.dirname(k) for k in keys])}"


def _precomputed_embedder(ls: Any, vectors: dict[str, NDArray[np.float32]], model: str) -> Any:
    from lightly_studio_serve.embedder import ImagePathEmbedder

    dimension = len(next(iter(vectors.values())))

    class CoresiftEmbeddings(ImagePathEmbedder):
        """Our stored vectors, by path; an image coresift did not embed gets none."""

        def embedding_space_spec(self) -> Any:
            return ls.EmbeddingSpaceSpec(space_key=f"coresift/{model}", dimension=dimension)

        def embed_images(self, paths: list[str]) -> Any:
            kept = [i for i, path in enumerate(paths) if path in vectors]
            rows = [vectors[paths[i]] for i in kept]
            stacked = np.stack(rows) if rows else np.empty((0, dimension), np.float32)
            return ls.EmbeddingResult(embeddings=stacked, kept_indices=kept)

    return CoresiftEmbeddings()


def _metadata(record: ExportRecord) -> dict[str, Any]:
    values = {k: v for k, v in record.metadata.items() if v is not None}
    if record.corrupt_reason:  # LightlyStudio may still show what coresift could not decode
        values["corrupt_reason"] = record.corrupt_reason
    return {**values, **{f"custom_{k}": v for k, v in record.custom.items()}}
