"""Embedding models: the built-in one offline on both runtimes, user files by URL."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from PIL import Image

from coresift.embedding import load_embedder, model_identity
from coresift.errors import ModelError
from coresift.testing.media import distinct_image, jpeg_bytes, photo, photo_count


def _batch(embedder_preprocess: object, count: int = 3) -> NDArray[Any]:
    return np.stack([embedder_preprocess(distinct_image(i)) for i in range(count)])  # type: ignore[operator]


def test_lite0_onnx_and_torch_agree_and_are_normalised() -> None:
    onnx = load_embedder("efficientnet-lite0", "onnx", 1)
    eager = load_embedder("efficientnet-lite0", "torch", 1)
    assert onnx.identity == eager.identity == model_identity("efficientnet-lite0")
    assert onnx.identity.startswith("efficientnet-lite0@")
    batch = _batch(onnx.preprocess)
    a, b = onnx.embed(batch), eager.embed(batch)
    assert a.shape == (3, 1280)
    assert np.linalg.norm(a, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert np.abs(a - b).max() < 1e-4


def test_lite0_sees_a_resized_copy_as_closer_than_another_photo() -> None:
    embedder = load_embedder("efficientnet-lite0", "onnx", 1)
    original, small, other = photo(0), photo(0).resize((128, 128)), photo(6)
    vectors = embedder.embed(np.stack([embedder.preprocess(i) for i in (original, small, other)]))
    assert np.linalg.norm(vectors[0] - vectors[1]) < 0.5 * np.linalg.norm(vectors[0] - vectors[2])


class _TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


# TorchScript and the TorchScript-based ONNX exporter are deprecated by PyTorch, but users
# still bring .pt files of that kind, and this test makes such files.
@pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")
@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
@pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning")
def test_user_torchscript_and_onnx_files_by_url(workdir: Path) -> None:
    net = _TinyNet().eval()
    scripted = workdir / "tiny.pt"
    torch.jit.script(net).save(str(scripted))  # type: ignore[no-untyped-call]
    exported = workdir / "tiny.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 64, 64),),
        str(exported),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
    )
    ts = load_embedder(str(scripted))
    ox = load_embedder(str(exported))
    assert ox.preprocess.size == 64
    batch = np.stack([ox.preprocess(distinct_image(i)) for i in range(2)])
    assert ts.embed(batch).shape == ox.embed(batch).shape == (2, 8)
    assert np.abs(ts.embed(batch) - ox.embed(batch)).max() < 1e-4
    assert ts.identity.startswith(str(scripted) + "@")
    before = model_identity(str(scripted))
    torch.jit.script(_TinyNet()).save(str(scripted))  # type: ignore[no-untyped-call]
    model_identity.cache_clear()
    assert model_identity(str(scripted)) != before  # new weights, new identity


_WITHOUT_TORCH = """
import sys
class NotInstalled:  # as if PyTorch had been left out of the install
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NotInstalled())
import numpy as np
from coresift.embedding import load_embedder
from coresift.errors import ModelError
from coresift.testing.media import photo
try:
    embedder = load_embedder("efficientnet-lite0", "onnx", 1)
except ModelError as error:
    print("ModelError:", error)
else:
    print(embedder.embed(np.stack([embedder.preprocess(photo(0))])).shape)
"""


def test_the_onnx_path_needs_no_torch_once_the_model_is_exported(workdir: Path) -> None:
    """The lighter install of the README: PyTorch is needed once, to export the model."""
    load_embedder("efficientnet-lite0", "onnx", 1)  # exported into this session's cache
    exported = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH], capture_output=True, text=True, check=True
    )
    assert exported.stdout.strip() == "(1, 1280)"
    empty_cache = {**os.environ, "CORESIFT_CACHE": str(workdir / "empty-cache")}
    fresh = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH],
        capture_output=True,
        text=True,
        check=True,
        env=empty_cache,
    )
    assert "is not exported to ONNX yet" in fresh.stdout
    assert "exporting it once needs PyTorch: pip install torch torchvision" in fresh.stdout


def test_unknown_models_are_clear_errors(workdir: Path) -> None:
    with pytest.raises(ModelError, match="unknown model"):
        load_embedder("resnet-9000")
    with pytest.raises(ModelError, match="unknown torchvision model"):
        load_embedder("torchvision:not_a_model")
    with pytest.raises(ModelError, match="cannot read model file"):
        load_embedder(str(workdir / "missing.onnx"))


def _variants(picture: Image.Image) -> list[Image.Image]:
    """Copies of one picture a dataset often holds: rescaled, recompressed, and cropped to a
    tall, a wide and an off-centre frame."""
    width, height = picture.size
    tall_w, wide_h = min(width, height * 9 // 16), min(height, width * 9 // 16)
    recompressed = Image.open(io.BytesIO(jpeg_bytes(picture, quality=30)))
    return [
        picture,
        picture.resize((width // 2, height // 2)),
        recompressed,
        picture.crop(((width - tall_w) // 2, 0, (width + tall_w) // 2, height)),
        picture.crop((0, (height - wide_h) // 2, width, (height + wide_h) // 2)),
        picture.crop((0, 0, width * 4 // 5, height * 4 // 5)),
    ]


def test_each_pictures_variants_lie_nearer_each_other_than_any_two_pictures() -> None:
    """Letterboxing keeps one picture in one place of embedding space, whatever its shape."""
    embedder = load_embedder("efficientnet-lite0", "onnx", 1)
    pictures = [photo(i) for i in range(photo_count())]
    labels = np.repeat(np.arange(len(pictures)), 6)
    inputs = [embedder.preprocess(v) for p in pictures for v in _variants(p)]
    vectors = np.concatenate(
        [embedder.embed(np.stack(inputs[i : i + 16])) for i in range(0, len(inputs), 16)]
    )
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    same = labels[:, None] == labels[None]
    within = max(distances[np.ix_(labels == p, labels == p)].max() for p in range(len(pictures)))
    between = distances[~same].min()
    print(f"\nfarthest variants of one picture {within:.3f}; nearest two pictures {between:.3f}")
    assert within < between
