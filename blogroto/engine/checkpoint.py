"""A training run's resumable state as one plain `.npz`: the network's weights, the optimizer's
slots (Adam's moments, its step count, a float16 loss scale) and the step reached.

The same file on every backend (numpy, no pickles), written atomically: a run killed while
writing keeps its previous checkpoint, and a run begun on TensorFlow can resume on PyTorch or JAX.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from blogroto.engine.runtime import to_numpy
from blogroto.errors import BlogrotoError
from blogroto.fsutil import atomic_write_bytes

FILE = "checkpoint.npz"


def save(path: Path, net, optimizer, step: int) -> None:
    arrays = {f"net/{key}": value for key, value in net.weight_dict().items()}
    for i, variable in enumerate(optimizer.variables):
        arrays[f"optimizer/{i:04d}"] = np.asarray(to_numpy(variable.value))
    arrays["step"] = np.asarray(step, np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def restore(path: Path, net, optimizer) -> int:
    """Load the state saved by `save` into `net` and `optimizer` (both built); returns the step."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:  # truncated, not a zip, pickled objects
        raise BlogrotoError(f"training checkpoint is unreadable ({exc}); delete the folder to start over", path) from exc
    net.set_weight_dict({k[4:]: v for k, v in arrays.items() if k.startswith("net/")}, source=path)
    slots = [arrays.get(f"optimizer/{i:04d}") for i in range(len(optimizer.variables))]
    if any(s is None for s in slots) or any(k.startswith("optimizer/") and int(k[10:]) >= len(slots) for k in arrays):
        raise BlogrotoError("training checkpoint does not match this run's optimizer; delete the folder to start over", path)
    for variable, value in zip(optimizer.variables, slots):
        if tuple(value.shape) != tuple(variable.shape):
            raise BlogrotoError(f"training checkpoint: optimizer slot {variable.path} has shape {value.shape}, "
                                f"expected {tuple(variable.shape)}", path)
        variable.assign(value.astype(variable.dtype))
    return int(arrays["step"])
