"""The one place TensorFlow is imported: lazily, once, and without start-up noise.

TensorFlow's C++ runtime prints to file descriptor 2 before its logging is configured (CUDA
probing on machines without a GPU, absl warnings). Authors should see one line per image, not
that: stderr is captured during the import and only lines that are not known noise are replayed.
After the import, TensorFlow's Python logger and absl are set to errors only (`quiet_python_loggers`).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

_NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub|cuda_platform|cuInit|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|TF-TRT Warning|oneDNN custom operations are on|"
    r"This TensorFlow binary is optimized to use available CPU instructions|rebuild TensorFlow with|"
    r"All log messages before|cuda_dnn|cuda_fft|cuda_blas|tensorflow/core/util/port.cc"
)
_loaded = None


def import_tensorflow():
    """Return (tensorflow, keras), importing them on first use."""
    global _loaded
    if _loaded is not None:
        return _loaded
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import keras
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # CUDA probing prints here, once
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _NOISE.search(line):
                    print(line, file=sys.stderr)
    quiet_python_loggers(tf)
    _loaded = (tf, keras)
    return _loaded


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
