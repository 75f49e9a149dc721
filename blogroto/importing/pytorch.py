"""pytorch/examples fast_neural_style state dicts (`.pth`, `.model`), read by blogroto.torchfile
without torch and without running the pickle: arch `pytorch-examples`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from blogroto.errors import FilterError
from blogroto.importing.model import Imported, blocks_in_words, check_finite, check_size
from blogroto.torchfile import (
    _clean as _name,  # a name from the file, fit for an error message
)

_RUNNING = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


def pytorch_layout(width: int, blocks: int) -> dict[str, tuple[int, ...]]:
    """The state dict keys and shapes of pytorch/examples' TransformerNet (width w, `blocks`
    residual blocks; the original is 32 and 5)."""
    w = width
    convs = [("conv1", 3, w, 9), ("conv2", w, 2 * w, 3), ("conv3", 2 * w, 4 * w, 3)]
    for i in range(1, blocks + 1):
        convs += [(f"res{i}.conv1", 4 * w, 4 * w, 3), (f"res{i}.conv2", 4 * w, 4 * w, 3)]
    convs += [("deconv1", 4 * w, 2 * w, 3), ("deconv2", 2 * w, w, 3), ("deconv3", w, 3, 9)]
    norms = [("in1", w), ("in2", 2 * w), ("in3", 4 * w)]
    for i in range(1, blocks + 1):
        norms += [(f"res{i}.in1", 4 * w), (f"res{i}.in2", 4 * w)]
    norms += [("in4", 2 * w), ("in5", w)]
    out: dict[str, tuple[int, ...]] = {}
    for name, cin, cout, k in convs:
        out[f"{name}.conv2d.weight"], out[f"{name}.conv2d.bias"] = (cout, cin, k, k), (cout,)
    for name, c in norms:
        out[f"{name}.weight"] = out[f"{name}.bias"] = (c,)
    return out


def _pytorch_to_blogroto(name: str) -> str:
    """pytorch/examples layer name -> TransformNet layer name."""
    fixed = {"conv1": "c1", "in1": "n1", "conv2": "d1", "in2": "nd1", "conv3": "d2", "in3": "nd2",
             "deconv1": "u1", "in4": "nu1", "deconv2": "u2", "in5": "nu2", "deconv3": "out"}
    if name in fixed:
        return fixed[name]
    m = re.fullmatch(r"res(\d+)\.(conv|in)([12])", name)
    block, kind, which = int(m.group(1)) - 1, m.group(2), "a" if m.group(3) == "1" else "b"
    return f"r{block}{which}" + ("n" if kind == "in" else "")


def from_pytorch_state(state: dict, where: Path, fmt: str, container: str, files: list[Path]) -> Imported:
    """A pytorch/examples TransformerNet state dict (numpy arrays) as blogroto weights."""
    if not isinstance(state, dict):
        raise FilterError(f"holds a {type(state).__name__}, not a state dict (torch.save(model.state_dict(), ...))", where)
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(state.get(wrapper), dict) and not any(isinstance(v, np.ndarray) for v in state.values()):
            state = state[wrapper]
            break
    keys = [k for k in state if isinstance(k, str)]
    if len(keys) != len(state):
        raise FilterError("a state dict whose keys are not all names", where)
    if keys and all(k.startswith("module.") for k in keys):  # saved from a DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not _RUNNING.search(k)}
    weight = state.get("conv1.conv2d.weight")
    if not isinstance(weight, np.ndarray) or weight.ndim != 4 or weight.shape[1:] != (3, 9, 9):
        shape = tuple(weight.shape) if isinstance(weight, np.ndarray) else None
        raise FilterError("not a pytorch/examples fast_neural_style network: conv1.conv2d.weight is "
                          f"{shape if shape else 'missing'}, expected (width, 3, 9, 9); keys found: "
                          f"{', '.join(_name(k) for k in sorted(state)[:6])}{'…' if len(state) > 6 else ''}", where)
    width = int(weight.shape[0])
    numbers = [int(m.group(1)) for k in state for m in [re.match(r"res(\d+)\.", k)] if m]
    blocks = max(numbers, default=0)
    check_size(width, blocks, where)
    want = pytorch_layout(width, blocks)
    unknown = sorted(set(state) - set(want))
    missing = sorted(set(want) - set(state))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown layers {', '.join(_name(k) for k in unknown[:4])}{'…' if len(unknown) > 4 else ''}")
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{'…' if len(missing) > 4 else ''}")
        raise FilterError(f"not pytorch/examples' TransformerNet (width {width}, {blocks_in_words(blocks)}): "
                          + "; ".join(parts), where)
    weights: dict[str, np.ndarray] = {}
    for key, shape in want.items():
        value = state[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise FilterError(f"{key} is not a floating-point tensor", where)
        if tuple(value.shape) != shape:
            raise FilterError(f"{key} has shape {tuple(value.shape)}, expected {shape} "
                              f"(width {width}, {blocks_in_words(blocks)})", where)
        layer, _, rest = key.rpartition(".conv2d.") if ".conv2d." in key else key.rpartition(".")
        target = "pytorch-examples/" + _pytorch_to_blogroto(layer)
        if ".conv2d." in key:
            # torch (out, in, kh, kw) -> Keras (kh, kw, in, out); both cross-correlate, no flip
            arr = value.transpose(2, 3, 1, 0) if rest == "weight" else value
            weights[f"{target}/{'kernel' if rest == 'weight' else 'bias'}"] = np.ascontiguousarray(arr, np.float32)
        else:
            weights[f"{target}/{'gamma' if rest == 'weight' else 'beta'}"] = np.asarray(value, np.float32)
    check_finite(weights, where)
    return Imported("pytorch-examples", width, blocks, weights, fmt, container, files)


def read_pytorch(path: Path) -> Imported:
    from blogroto import torchfile

    state = torchfile.load(path)
    with open(path, "rb") as handle:
        container = "torch.save state dict (zip archive)" if handle.read(4) == b"PK\x03\x04" else \
            "torch.save state dict (legacy pickle)"
    return from_pytorch_state(state, path, "pytorch", container, [path])
