"""The one place the numeric backend is imported: Keras 3 on TensorFlow, JAX or PyTorch.

The network and the stylizer are written in backend-neutral Keras (`keras.ops`); what differs
between backends lives here, behind a few functions: which backend runs (`select_backend`, from
`--backend` or `KERAS_BACKEND`; TensorFlow by default), how a function is compiled for repeated
calls (`compile_function`), whether a GPU is there, and what to tell the author (`describe`).

TensorFlow's C++ runtime prints to file descriptor 2 before its logging is configured (CUDA
probing on machines without a GPU, absl warnings). Authors should see one line per image, not
that: stderr is captured during the import and only lines that are not known noise are replayed.
After the import, TensorFlow's Python logger and absl are set to errors only (`quiet_python_loggers`).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from importlib import metadata

import numpy as np

from blogroto.errors import BlogrotoError

BACKENDS = ("tensorflow", "jax", "torch")
# `auto` (the default): the first installed of these, fastest first on a 2-core CPU
# (benchmarks/results/backends.md: TensorFlow applies ~4x faster than PyTorch and 5-9x than JAX).
AUTO_ORDER = ("tensorflow", "torch", "jax")
_DISTRIBUTIONS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}

_NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub|cuda_platform|cuInit|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|TF-TRT Warning|oneDNN custom operations are on|"
    r"This TensorFlow binary is optimized to use available CPU instructions|rebuild TensorFlow with|"
    r"All log messages before|cuda_dnn|cuda_fft|cuda_blas|tensorflow/core/util/port.cc"
)
_keras = None
_tf = None


def backend_name() -> str:
    """The backend blogroto runs on: `KERAS_BACKEND` (set by `--backend`); unset or `auto`, the
    first installed of AUTO_ORDER."""
    if _keras is not None:
        return _keras.backend.backend()
    name = os.environ.get("KERAS_BACKEND") or "auto"
    return auto_backend() if name == "auto" else name


def auto_backend() -> str:
    return next((b for b in AUTO_ORDER if installed(b)), AUTO_ORDER[0])


def select_backend(name: str) -> None:
    """Run on backend `name` (`blogroto --backend`). Must come before the first network is loaded:
    Keras binds its backend once per process. `auto`: see `backend_name`."""
    name = _usable(auto_backend() if name == "auto" else name, "--backend")
    if _keras is not None and backend_name() != name:
        raise BlogrotoError(f"Keras already runs on {backend_name()} in this process; start a new one for {name}")
    os.environ["KERAS_BACKEND"] = name


def _usable(name: str, asked_by: str) -> str:
    if name not in BACKENDS:
        raise BlogrotoError(f"{asked_by}: unknown backend {name!r}; known: auto, {', '.join(BACKENDS)}")
    if not installed(name):
        raise BlogrotoError(f"{asked_by}: backend {name} is not installed: pip install 'blogroto[{name}]'")
    return name


def installed(name: str) -> bool:
    try:
        metadata.version(_DISTRIBUTIONS[name])
    except metadata.PackageNotFoundError:
        return False
    return True


def import_keras():
    """Keras on the selected backend, imported on first use with the backend's start-up noise hidden."""
    global _keras, _tf
    if _keras is not None:
        return _keras
    name = _usable(backend_name(), "KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_stderr():
        import keras

        if name == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # CUDA probing prints here, once
            _tf = tf
    if _tf is not None:
        quiet_python_loggers(_tf)
    _keras = keras
    return keras


def import_tensorflow():
    """(tensorflow, keras), for what needs TensorFlow itself whatever the backend: reading
    fast-style-transfer's TF1 checkpoints (`blogroto import`). TensorFlow is always installed."""
    global _tf
    keras = import_keras()
    if _tf is None:
        with _quiet_stderr():
            import tensorflow as tf
        quiet_python_loggers(tf)
        _tf = tf
    return _tf, keras


def set_random_seed(seed: int) -> None:
    """keras.utils.set_random_seed, quietly: it also seeds TensorFlow whenever TensorFlow is
    installed, importing it (with its start-up noise) even on another backend."""
    keras = import_keras()
    with _quiet_stderr():
        keras.utils.set_random_seed(seed)


def tensorflow_if_backend():
    """The tensorflow module when it is the backend (for its one-trace-per-stage `tf.function`
    signatures), else None."""
    import_keras()
    return _tf if backend_name() == "tensorflow" else None


class _quiet_stderr:
    """Capture file descriptor 2 and replay only lines that are not known start-up noise."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.capture = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self.capture.fileno(), 2)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.capture.seek(0)
        for line in self.capture.read().decode("utf-8", "replace").splitlines():
            if line.strip() and not _NOISE.search(line):
                print(line, file=sys.stderr)
        self.capture.close()
        return False


def quiet_python_loggers(tf) -> None:
    """No TensorFlow log line reaches the author: TF's Python logger (e.g. the multi-line
    "triggered tf.function retracing" warning, which `blogroto catalog` set off once per filter
    although each network is traced once by design) and absl's are set to errors only."""
    import logging

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        return
    absl_logging.set_verbosity(absl_logging.ERROR)
    absl_logging.set_stderrthreshold("error")


@functools.cache
def gpu_names() -> tuple[str, ...]:
    """The GPUs the backend computes on (empty on a CPU-only machine)."""
    name = backend_name()
    import_keras()
    if name == "tensorflow":
        return tuple(d.name for d in _tf.config.list_physical_devices("GPU"))
    if name == "jax":
        import jax

        return tuple(str(d.device_kind) for d in jax.devices() if d.platform == "gpu")
    import torch

    return tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def describe() -> str:
    """One line for `--version` and `blogroto filters`: backend, its version, and the device."""
    label = backend_label()
    gpus = gpu_names()
    device = f"GPU ({', '.join(gpus)})" if gpus else "CPU"
    return f"{label} on {device}"


def backend_label() -> str:
    """The backend and its version, e.g. "torch 2.13.0+cpu" (a filter's training record keeps it)."""
    name = _usable(backend_name(), "KERAS_BACKEND")  # from package metadata: nothing imported
    return f"{name} {metadata.version(_DISTRIBUTIONS[name])}"


def enable_determinism() -> None:
    """Same photo, filter and options -> identical bytes on the same machine."""
    name = backend_name()
    import_keras()
    if name == "tensorflow":
        _tf.config.experimental.enable_op_determinism()
    elif name == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
    # JAX (XLA) is deterministic on CPU; on GPUs XLA_FLAGS=--xla_gpu_deterministic_ops=true


def to_numpy(value):
    """A backend tensor as a numpy array, without a copy where the tensor lives in host memory
    (keras.ops.convert_to_numpy copies, and numpy 2 warns about the tensors' `__array__`)."""
    name = backend_name()
    if name == "torch":
        return value.detach().cpu().numpy()
    if name == "jax":
        return np.asarray(value)
    return value.numpy()


def compile_function(fn, tf_signature=None):
    """`fn` (written in keras.ops) compiled for repeated inference calls on the backend:
    a `tf.function` traced once for `tf_signature` (e.g. any tile size), `jax.jit` (traced once
    per input shape), or PyTorch eager without autograd (torch.compile needs a C++ toolchain and
    minutes to warm up)."""
    name = backend_name()
    import_keras()
    if name == "tensorflow":
        return _tf.function(fn, input_signature=tf_signature, autograph=False)
    if name == "jax":
        import jax

        return jax.jit(fn)
    import torch

    def no_grad(*args):
        with torch.no_grad():
            return fn(*args)

    return no_grad


class FusedNorm:
    """TensorFlow's fused batch-norm kernel as instance normalisation of one image (batch 1, where
    batch and instance statistics are the same): one pass over the tensor where keras.ops take
    about eight (cast, square, two means, multiply, add, cast back); the whole network without it:
    "norm-onepass" in benchmarks/results/apply.md. Inference only: its gradient does not flow into
    statistics it is given. `fused_norm()` returns None on other backends."""

    def __init__(self, tf):
        self.tf = tf
        self.empty = tf.constant([], tf.float32)

    def _op(self, x, gamma, beta, mean, variance, epsilon, training):
        return self.tf.raw_ops.FusedBatchNormV3(x=x, scale=gamma, offset=beta, mean=mean, variance=variance,
                                                epsilon=epsilon, exponential_avg_factor=1.0, data_format="NHWC",
                                                is_training=training)

    def normalise(self, x, gamma, beta, epsilon):
        """(gamma * (x - mean) / sqrt(var + epsilon) + beta, mean, var) with x's own statistics (C,)."""
        y, mean, var, *_ = self._op(x, gamma, beta, self.empty, self.empty, epsilon, True)
        return y, mean, self._population(x, var)

    def moments(self, x):
        """x's per-channel mean and population variance, float32 (C,)."""
        tf = self.tf
        channels = tf.shape(x)[-1:]
        _, mean, var, *_ = self._op(x, tf.ones(channels), tf.zeros(channels), self.empty, self.empty, 1e-3, True)
        return mean, self._population(x, var)

    def apply(self, x, gamma, beta, mean, variance, epsilon):
        """gamma * (x - mean) / sqrt(variance + epsilon) + beta for given (C,) statistics."""
        return self._op(x, gamma, beta, mean, variance, epsilon, False)[0]

    def _population(self, x, var):
        # the kernel's batch variance is Bessel-corrected (n / (n - 1)); instance norm divides by n
        tf = self.tf
        n = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
        return var * tf.maximum(n - 1.0, 0.0) / n


def fused_norm() -> FusedNorm | None:
    if backend_name() != "tensorflow":
        return None
    return FusedNorm(import_tensorflow()[0])
