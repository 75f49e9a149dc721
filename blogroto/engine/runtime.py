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
DEFAULT_BACKEND = "tensorflow"
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
    """The backend blogroto runs on: `KERAS_BACKEND` (set by `--backend`), else TensorFlow."""
    if _keras is not None:
        return _keras.backend.backend()
    return os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND


def select_backend(name: str) -> None:
    """Run on backend `name` (`blogroto --backend`). Must come before the first network is loaded:
    Keras binds its backend once per process."""
    if name not in BACKENDS:
        raise BlogrotoError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    if not installed(name):
        raise BlogrotoError(f"backend {name} is not installed: pip install 'blogroto[{name}]'")
    if _keras is not None and backend_name() != name:
        raise BlogrotoError(f"Keras already runs on {backend_name()} in this process; start a new one for {name}")
    os.environ["KERAS_BACKEND"] = name


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
    name = backend_name()
    if name not in BACKENDS:
        raise BlogrotoError(f"KERAS_BACKEND={name} is not a backend blogroto runs on ({', '.join(BACKENDS)})")
    if not installed(name):
        raise BlogrotoError(f"backend {name} (KERAS_BACKEND) is not installed: pip install 'blogroto[{name}]'")
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
    """(tensorflow, keras), for the parts that still need TensorFlow itself (training, the
    TensorFlow-only fast paths). Refuses on another backend instead of mixing two in one process."""
    keras = import_keras()
    if _tf is None:
        raise BlogrotoError(f"this needs the TensorFlow backend; blogroto runs on {backend_name()} "
                            f"(--backend tensorflow or KERAS_BACKEND=tensorflow)")
    return _tf, keras


def tensorflow_if_backend():
    """The tensorflow module when it is the backend (for its one-trace-per-stage `tf.function`
    signatures), else None."""
    import_keras()
    return _tf


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
    name = backend_name()
    if not installed(name):
        return f"{name} (not installed)"
    version = metadata.version(_DISTRIBUTIONS[name])
    gpus = gpu_names()
    device = f"GPU ({', '.join(gpus)})" if gpus else "CPU"
    return f"{name} {version} on {device}"


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
