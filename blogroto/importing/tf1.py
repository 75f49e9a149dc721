"""lengstrom/fast-style-transfer (TensorFlow 1) checkpoints, read with `tf.train.load_checkpoint`
(no graph, no code): arch `johnson-tf1`."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import numpy as np

from blogroto.errors import FilterError
from blogroto.importing.model import (
    MAX_BYTES,
    Imported,
    blocks_in_words,
    check_finite,
    check_size,
)

_TF_LAYER_NAMES = {"c1": "conv1", "d1": "conv2", "d2": "conv3", "u1": "conv_t1", "u2": "conv_t2", "out": "conv_t3"}
_TF_VARIABLE = re.compile(r"^(?P<scope>(?:.+/)?)Variable(?:_(?P<n>[0-9]+))?$")


def checkpoint_prefix(path: Path) -> Path:
    """The checkpoint prefix for a folder, a prefix, or any one of a checkpoint's files."""
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            text = state.read_text(encoding="utf-8", errors="replace")
            m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
            if m:
                # only the name: the state file records the path on the training machine
                return path / re.split(r"[/\\]", m.group(1))[-1]
        prefixes = sorted({p.with_suffix("") for p in path.glob("*.index")} | {p for p in path.glob("*.ckpt") if p.is_file()})
        if len(prefixes) != 1:
            raise FilterError(f"{len(prefixes) or 'no'} checkpoints in this folder; give one of them", path)
        return prefixes[0]
    name = path.name
    for pattern in (r"\.index$", r"\.meta$", r"\.data-\d{5}-of-\d{5}$"):
        if re.search(pattern, name):
            return path.with_name(re.sub(pattern, "", name))
    return path


def _checkpoint_files(prefix: Path) -> list[Path]:
    index = prefix.with_name(prefix.name + ".index")
    if index.is_file():
        data = sorted(prefix.parent.glob(f"{glob.escape(prefix.name)}.data-*-of-*"))
        return [index, *data]
    if prefix.is_file():
        return [prefix]
    raise FilterError("checkpoint not found (no .index file, nor a single-file checkpoint)", prefix)


def read_fast_style_transfer(path: Path) -> Imported:
    from blogroto.engine.runtime import import_tensorflow

    tf, _ = import_tensorflow()
    prefix = checkpoint_prefix(path)
    files = _checkpoint_files(prefix)
    if sum(f.stat().st_size for f in files) > MAX_BYTES:
        raise FilterError("refused: this checkpoint is far larger than a style network", prefix)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as exc:  # tf.errors.*: not a checkpoint, truncated, wrong version
        raise FilterError(f"not a readable TensorFlow checkpoint: {str(exc).splitlines()[0]}", prefix) from exc
    where = files[0]
    found = _numbered_variables(shapes, where)
    width, blocks = _network_size(shapes, found, where)
    layers, norm_names = _expected_layers(width, blocks)
    prefix_name = "johnson-tf1/"
    wanted: list[tuple[str, str]] = []
    for j, (layer, kernel_shape) in enumerate(layers):
        cout = kernel_shape[2] if layer in ("u1", "u2") else kernel_shape[3]
        for slot, (key, shape) in enumerate([(f"{layer}/kernel", kernel_shape), (f"{norm_names[layer]}/beta", (cout,)),
                                             (f"{norm_names[layer]}/gamma", (cout,))]):
            var = found[3 * j + slot]
            got = tuple(int(d) for d in shapes[var])
            if got != shape:
                what = ("kernel", "instance-norm shift", "instance-norm scale")[slot]
                raise FilterError(f"{var} is {list(got)}, expected {list(shape)} (the {what} of layer "
                                  f"{_TF_LAYER_NAMES.get(layer, layer)}, width {width}, {blocks_in_words(blocks)})",
                                  where)
            if dtypes.get(var) != tf.float32:
                name = getattr(dtypes.get(var), "name", None) or "unknown"
                raise FilterError(f"{var} is {name}, not float32 (fast-style-transfer's variables are float32)", where)
            wanted.append((prefix_name + key, var))
    # every declared shape and type checked before anything is read
    weights: dict[str, np.ndarray] = {}
    for key, var in wanted:
        try:
            value = reader.get_tensor(var)
        except (tf.errors.OpError, LookupError, ValueError, TypeError, RuntimeError, OSError, MemoryError,
                SystemError) as exc:  # the reader turns DataLoss, OutOfRange, ... into these
            text = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise FilterError(f"cannot read {var} from the checkpoint (corrupt or truncated data file: {text})",
                              where) from exc
        value = np.asarray(value)
        if value.dtype != np.float32 or value.shape != tuple(int(d) for d in shapes[var]):
            raise FilterError(f"{var} holds {value.dtype} {list(value.shape)}, not what the index declares", where)
        weights[key] = value
    check_finite(weights, where)
    container = "TensorFlow checkpoint (index + data)" if files[0].name.endswith(".index") else "TensorFlow checkpoint (single file)"
    return Imported("johnson-tf1", width, blocks, weights, "fast-style-transfer", container, files)


def _numbered_variables(shapes: dict, where: Path) -> dict[int, str]:
    """fast-style-transfer's variables by number: Variable, Variable_1, ... under one scope, none missing."""
    found: dict[int, str] = {}
    scopes = set()
    for name in shapes:
        m = _TF_VARIABLE.match(name)
        if m:
            found[int(m.group("n") or 0)] = name
            scopes.add(m.group("scope"))
    if not found:
        sample = ", ".join(sorted(shapes)[:5]) or "none"
        raise FilterError("no fast-style-transfer variables (Variable, Variable_1, ...) in this checkpoint; "
                          f"variables found: {sample}", where)
    if len(scopes) > 1:
        raise FilterError(f"variables named Variable_N under several scopes ({', '.join(sorted(scopes))}): "
                          "not one fast-style-transfer network", where)
    order = sorted(found)
    if order != list(range(len(order))):
        missing = sorted(set(range(order[-1] + 1)) - set(order))[:5]
        raise FilterError(f"variables Variable_N are not numbered 0..{order[-1]} (missing {missing})", where)
    return found


def _network_size(shapes: dict, found: dict[int, str], where: Path) -> tuple[int, int]:
    """(width, residual blocks) from the variable count and the first kernel, checked before anything is read."""
    n = len(found)
    if n % 3 or n < 3 * 7 or (n // 3 - 6) % 2:
        raise FilterError(f"{n} network variables; fast-style-transfer's has 3 per conv layer (kernel, shift, "
                          "scale) for 6 + 2 x blocks layers (48 for its 5 blocks)", where)
    blocks = (n // 3 - 6) // 2
    first = tuple(int(d) for d in shapes[found[0]])
    if len(first) != 4 or first[:3] != (9, 9, 3):
        raise FilterError(f"{found[0]} is {list(first)}; fast-style-transfer's first kernel is [9, 9, 3, width]", where)
    width = int(first[3])
    check_size(width, blocks, where)  # an index may declare any width
    return width, blocks


def _expected_layers(w: int, blocks: int) -> tuple[list[tuple[str, tuple]], dict[str, str]]:
    """The network's layers in checkpoint order with their kernel shapes, and each layer's norm scope."""
    layers = [("c1", (9, 9, 3, w)), ("d1", (3, 3, w, 2 * w)), ("d2", (3, 3, 2 * w, 4 * w))]
    for i in range(blocks):
        layers += [(f"r{i}a", (3, 3, 4 * w, 4 * w)), (f"r{i}b", (3, 3, 4 * w, 4 * w))]
    # conv2d_transpose kernels are [k, k, out, in]
    layers += [("u1", (3, 3, 2 * w, 4 * w)), ("u2", (3, 3, w, 2 * w)), ("out", (9, 9, w, 3))]
    norm_names = {"c1": "n1", "d1": "nd1", "d2": "nd2", "u1": "nu1", "u2": "nu2", "out": "nout"}
    norm_names.update({f"r{i}{x}": f"r{i}{x}n" for i in range(blocks) for x in "ab"})
    return layers, norm_names
