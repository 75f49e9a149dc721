"""`blogroto import`: turn a network trained with another tool into a blogroto filter folder.

Three sources of Johnson-style networks are read, each into its own network layout
(blogroto.engine.network.ARCH_SPECS), so the filter computes what the original computes:

  fast-style-transfer (lengstrom/fast-style-transfer, TensorFlow 1): a checkpoint (`.ckpt`
      index + data files, the older single-file format, or a folder with a `checkpoint` file),
      read with `tf.train.load_checkpoint` (no graph, no code). Its `src/transform.py` creates
      unnamed `tf.Variable`s, so the network's weights are `Variable`, `Variable_1`, ... in
      creation order: per conv layer the kernel, then the instance norm's shift and scale, for
      conv1 (9x9, 3->32), conv2, conv3 (3x3 stride 2), 2 per residual block (3x3, 128), two
      conv2d_transpose layers ([3, 3, out, in]) and the last 9x9 conv. Adam's slots and other
      variables in the checkpoint are left out. Arch `johnson-tf1`.
  pytorch/examples fast_neural_style: a `torch.save` state dict (`.pth`, `.model`; zip or legacy
      layout) read by blogroto.torchfile without torch and without running the pickle. Keys as
      in neural_style/transformer_net.py (conv1.conv2d.weight, in1.weight, res1.conv1.conv2d.weight,
      deconv1.conv2d.weight, ...); the InstanceNorm running_mean/running_var of old `.model`
      files are ignored, as the project's own eval does. Arch `pytorch-examples`.
  ONNX (the ONNX model zoo's fast-neural-style models, or `neural_style.py eval --export_onnx`):
      the graph is followed from its input (reflection Pad, Conv, InstanceNormalization, Relu,
      residual Add, nearest Upsample/Resize) and its initializers mapped onto the pytorch/examples
      layout, whose network it is. Needs the optional `onnx` package. Arch `pytorch-examples`.

Width and the number of residual blocks are read from the shapes (the originals hard-code 32 and
5; modified copies are accepted when the layout is the same).
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import re
import shutil
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blogroto import __version__
from blogroto.errors import BlogrotoError, FilterError
from blogroto.torchfile import (
    _clean as _name,  # a name from the file, fit for an error message
)

FORMATS = ("fast-style-transfer", "pytorch", "onnx")
MAX_BYTES = 1 << 30
EVALUATE_LIMIT = 16  # elements of any tensor the constant evaluator computes (upsampling scales, shapes)
# what the original network is, in words (filter.yaml's training.original, the catalog)
ORIGINALS = {
    "fast-style-transfer": "lengstrom/fast-style-transfer (TensorFlow 1, src/transform.py)",
    "pytorch": "pytorch/examples fast_neural_style (neural_style/transformer_net.py)",
    "onnx": "pytorch/examples fast_neural_style exported to ONNX",
}


@dataclass
class Imported:
    """A network read from another tool, as blogroto weights (names of TransformNet, the arch's
    prefix included)."""

    arch: str
    width: int
    blocks: int
    weights: dict[str, np.ndarray]
    format: str  # FORMATS
    container: str  # the file format in words, e.g. "torch.save state dict (zip archive)"
    files: list[Path] = field(default_factory=list)  # the files read, for the sha256

    @property
    def parameters(self) -> int:
        return int(sum(v.size for v in self.weights.values()))


# ----------------------------------------------------------------------------- detection


def detect_format(path: Path) -> str:
    """Which tool a file or folder comes from, by its name and first bytes."""
    if path.is_dir():
        if (path / "checkpoint").is_file() or any(path.glob("*.index")) or any(path.glob("*.ckpt")):
            return "fast-style-transfer"
        raise FilterError("no checkpoint in this folder (a fast-style-transfer folder holds a `checkpoint` file "
                          "or *.ckpt files); give the .pth, .onnx or .ckpt file itself", path)
    name = path.name.lower()
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith((".index", ".meta")) or re.search(r"\.data-\d{5}-of-\d{5}$", name):
        return "fast-style-transfer"
    if path.with_name(path.name + ".index").is_file():
        return "fast-style-transfer"
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        raise FilterError("no such file", path) from None
    except OSError as exc:
        raise FilterError(f"cannot read: {exc.strerror or exc}", path) from exc
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # a zip archive or a pickle: torch.save
        return "pytorch"
    if name.endswith((".pth", ".pt", ".model", ".tar")):
        return "pytorch"
    if name.endswith(".ckpt"):
        return "fast-style-transfer"  # the single-file (V1) TensorFlow checkpoint format
    raise FilterError("cannot tell which tool this file comes from; name it .pth/.model (pytorch/examples), "
                      ".onnx, or .ckpt (fast-style-transfer), or give --format", path)


def read_network(path: str | Path, fmt: str = "auto") -> Imported:
    path = Path(path)
    if not path.exists() and not path.with_name(path.name + ".index").is_file():  # a checkpoint prefix names no file
        raise FilterError("no such file or folder", path)
    fmt = detect_format(path) if fmt in (None, "auto") else fmt
    if fmt == "fast-style-transfer":
        return read_fast_style_transfer(path)
    if fmt == "pytorch":
        return read_pytorch(path)
    if fmt == "onnx":
        return read_onnx(path)
    raise BlogrotoError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- fast-style-transfer

_TF_VARIABLE = re.compile(r"^(?P<scope>(?:.+/)?)Variable(?:_(?P<n>[0-9]+))?$")


def _checkpoint_prefix(path: Path) -> Path:
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
    prefix = _checkpoint_prefix(path)
    files = _checkpoint_files(prefix)
    if sum(f.stat().st_size for f in files) > MAX_BYTES:
        raise FilterError("refused: this checkpoint is far larger than a style network", prefix)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as exc:  # tf.errors.*: not a checkpoint, truncated, wrong version
        raise FilterError(f"not a readable TensorFlow checkpoint: {str(exc).splitlines()[0]}", prefix) from exc
    found: dict[int, str] = {}
    scopes = set()
    for name in shapes:
        m = _TF_VARIABLE.match(name)
        if m:
            found[int(m.group("n") or 0)] = name
            scopes.add(m.group("scope"))
    where = files[0]
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
    n = len(order)
    if n % 3 or n < 3 * 7 or (n // 3 - 6) % 2:
        raise FilterError(f"{n} network variables; fast-style-transfer's has 3 per conv layer (kernel, shift, "
                          "scale) for 6 + 2 x blocks layers (48 for its 5 blocks)", where)
    blocks = (n // 3 - 6) // 2
    first = tuple(int(d) for d in shapes[found[0]])
    if len(first) != 4 or first[:3] != (9, 9, 3):
        raise FilterError(f"{found[0]} is {list(first)}; fast-style-transfer's first kernel is [9, 9, 3, width]", where)
    width = int(first[3])
    _check_size(width, blocks, where)  # before anything is read: an index may declare any width
    w = width
    layers = [("c1", (9, 9, 3, w)), ("d1", (3, 3, w, 2 * w)), ("d2", (3, 3, 2 * w, 4 * w))]
    for i in range(blocks):
        layers += [(f"r{i}a", (3, 3, 4 * w, 4 * w)), (f"r{i}b", (3, 3, 4 * w, 4 * w))]
    # conv2d_transpose kernels are [k, k, out, in]
    layers += [("u1", (3, 3, 2 * w, 4 * w)), ("u2", (3, 3, w, 2 * w)), ("out", (9, 9, w, 3))]
    norm_names = {"c1": "n1", "d1": "nd1", "d2": "nd2", "u1": "nu1", "u2": "nu2", "out": "nout"}
    norm_names.update({f"r{i}{x}": f"r{i}{x}n" for i in range(blocks) for x in "ab"})
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
                                  f"{_TF_LAYER_NAMES.get(layer, layer)}, width {w}, {_blocks(blocks)})", where)
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
    _check_finite(weights, where)
    container = "TensorFlow checkpoint (index + data)" if files[0].name.endswith(".index") else "TensorFlow checkpoint (single file)"
    return Imported("johnson-tf1", width, blocks, weights, "fast-style-transfer", container, files)


_TF_LAYER_NAMES = {"c1": "conv1", "d1": "conv2", "d2": "conv3", "u1": "conv_t1", "u2": "conv_t2", "out": "conv_t3"}


def _blocks(n: int) -> str:
    return f"{n} residual block{'' if n == 1 else 's'}"


def _check_size(width: int, blocks: int, where: Path) -> None:
    """What a filter.yaml may record (blogroto.filters)."""
    if not (1 <= width <= 256 and 1 <= blocks <= 256):
        raise FilterError(f"a network of width {width} with {blocks} residual blocks; blogroto reads widths and "
                          "block counts from 1 to 256", where)


def _check_finite(weights: dict[str, np.ndarray], where: Path) -> None:
    for key, value in weights.items():
        if not np.all(np.isfinite(value)):
            raise FilterError(f"weight {key} contains NaN or infinite values", where)


# ----------------------------------------------------------------------------- pytorch/examples

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
    _check_size(width, blocks, where)
    want = pytorch_layout(width, blocks)
    unknown = sorted(set(state) - set(want))
    missing = sorted(set(want) - set(state))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown layers {', '.join(_name(k) for k in unknown[:4])}{'…' if len(unknown) > 4 else ''}")
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{'…' if len(missing) > 4 else ''}")
        raise FilterError(f"not pytorch/examples' TransformerNet (width {width}, {_blocks(blocks)}): "
                          + "; ".join(parts), where)
    weights: dict[str, np.ndarray] = {}
    for key, shape in want.items():
        value = state[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise FilterError(f"{key} is not a floating-point tensor", where)
        if tuple(value.shape) != shape:
            raise FilterError(f"{key} has shape {tuple(value.shape)}, expected {shape} "
                              f"(width {width}, {_blocks(blocks)})", where)
        layer, _, rest = key.rpartition(".conv2d.") if ".conv2d." in key else key.rpartition(".")
        target = "pytorch-examples/" + _pytorch_to_blogroto(layer)
        if ".conv2d." in key:
            # torch (out, in, kh, kw) -> Keras (kh, kw, in, out); both cross-correlate, no flip
            arr = value.transpose(2, 3, 1, 0) if rest == "weight" else value
            weights[f"{target}/{'kernel' if rest == 'weight' else 'bias'}"] = np.ascontiguousarray(arr, np.float32)
        else:
            weights[f"{target}/{'gamma' if rest == 'weight' else 'beta'}"] = np.asarray(value, np.float32)
    _check_finite(weights, where)
    return Imported("pytorch-examples", width, blocks, weights, fmt, container, files)


def read_pytorch(path: Path) -> Imported:
    from blogroto import torchfile

    state = torchfile.load(path)
    with open(path, "rb") as handle:
        container = "torch.save state dict (zip archive)" if handle.read(4) == b"PK\x03\x04" else \
            "torch.save state dict (legacy pickle)"
    return from_pytorch_state(state, path, "pytorch", container, [path])


# ----------------------------------------------------------------------------- ONNX


def _nearest_is_duplication(coordinate_mode: str, nearest_mode: str, n: int = 8) -> bool:
    """Whether ONNX nearest resizing by 2 with these modes repeats each pixel twice (as torch's
    interpolate(mode='nearest', scale_factor=2) does)."""
    import math

    def transform(x):
        return {"asymmetric": x / 2, "half_pixel": (x + 0.5) / 2 - 0.5, "pytorch_half_pixel": (x + 0.5) / 2 - 0.5,
                "tf_half_pixel_for_nn": (x + 0.5) / 2, "align_corners": x * (n - 1) / (2 * n - 1)}.get(coordinate_mode)

    def rounding(v):
        frac = v - math.floor(v)
        return {"floor": math.floor(v), "ceil": math.ceil(v),
                "round_prefer_floor": math.floor(v) if frac == 0.5 else round(v),
                "round_prefer_ceil": math.ceil(v) if frac == 0.5 else round(v)}.get(nearest_mode)

    out = []
    for x in range(2 * n):
        v = transform(x)
        if v is None:
            return False
        r = rounding(v)
        if r is None:
            return False
        out.append(min(max(int(r), 0), n - 1))
    return out == [i // 2 for i in range(2 * n)]


class _OnnxGraph:
    """Follows a pytorch/examples TransformerNet through an ONNX graph, layer by layer."""

    def __init__(self, path: Path, model):
        from onnx import numpy_helper

        self.path = path
        self.model = model
        graph = model.graph
        self.consts: dict[str, np.ndarray] = {}
        for init in graph.initializer:
            if init.data_location == 1:  # TensorProto.EXTERNAL
                raise FilterError("refused: the weights are stored in external files; blogroto reads ONNX files "
                                  "with the weights inside (as the model zoo's are)", path)
            self.consts[init.name] = numpy_helper.to_array(init)
        alias: dict[str, str] = {}

        def resolve(name):
            seen = set()
            while name in alias:
                if name in seen:  # Identity nodes that feed each other
                    raise FilterError(f"malformed ONNX graph: Identity nodes form a cycle through "
                                      f"{ascii(name)[:80]}", path)
                seen.add(name)
                name = alias[name]
            return name

        self.nodes = []
        for node in graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant(node)
            elif node.op_type == "Identity":
                alias[node.output[0]] = node.input[0]
            else:
                self.nodes.append(node)
        self.resolve = resolve
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in self.nodes:
            if node.op_type in ("Shape", "Size"):  # reads a tensor's shape only (exports that compute the upsampling's scale)
                continue
            for name in node.input:
                if name:
                    self.consumers[resolve(name)].append(node)
        inputs = [i.name for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise FilterError(f"the graph has {len(inputs)} image inputs ({', '.join(inputs)}); the style network has one", path)
        self.input = inputs[0]
        # shapes of the tensors walked so far, from a static input shape (the model zoo's are 1x3x224x224)
        self.shape_of: dict[str, tuple[int, ...]] = {}
        dims = next(i for i in graph.input if i.name == self.input).type.tensor_type.shape.dim
        if len(dims) == 4 and all(d.HasField("dim_value") for d in dims):
            self.shape_of[self.input] = tuple(d.dim_value for d in dims)
        self.outputs = {resolve(o.name) for o in graph.output}
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        self._shapes = None
        self._values: dict[str, np.ndarray | None] = {}

    def _constant(self, node):
        from onnx import numpy_helper

        attr = {a.name: a for a in node.attribute}
        if "value" in attr:
            if attr["value"].t.data_location == 1:  # external: numpy_helper would open the file it names
                raise FilterError("refused: a constant stored in an external file", self.path)
            return numpy_helper.to_array(attr["value"].t)
        for key, kind in (("value_floats", np.float32), ("value_ints", np.int64)):
            if key in attr:
                return np.asarray(list(getattr(attr[key], key[len("value_"):])), kind)
        if "value_float" in attr:
            return np.asarray(attr["value_float"].f, np.float32)
        if "value_int" in attr:
            return np.asarray(attr["value_int"].i, np.int64)
        raise FilterError(f"unsupported Constant node {node.name or node.output[0]!r}", self.path)

    @staticmethod
    def attr(node, name, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def describe(self, node) -> str:
        return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node"

    def fail(self, message: str):
        raise FilterError(f"not the pytorch/examples fast_neural_style network: {message}", self.path)

    def only(self, tensor: str, ops: tuple[str, ...], where: str):
        nodes = self.consumers.get(self.resolve(tensor), [])
        if len(nodes) != 1 or nodes[0].op_type not in ops:
            found = ", ".join(self.describe(n) for n in nodes) or \
                ("the graph's output" if self.resolve(tensor) in self.outputs else "nothing")
            self.fail(f"{where}: expected {' or '.join(ops)}, found {found}")
        return nodes[0]

    def const(self, name: str, node, what: str) -> np.ndarray:
        name = self.resolve(name)
        if name not in self.consts:
            self.fail(f"{self.describe(node)}: its {what} is computed in the graph, not stored")
        return self.consts[name]

    def static_shape(self, tensor: str):
        """The tensor's shape, from the layers walked or from ONNX shape inference, when every
        dimension is known; else None."""
        if tensor in self.shape_of:
            return self.shape_of[tensor]
        if self._shapes is None:
            import onnx

            self._shapes = {}
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model)
            except Exception:  # noqa: BLE001  inference is a fallback only
                return None
            for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
                dims = info.type.tensor_type.shape.dim
                if dims and all(d.HasField("dim_value") for d in dims):
                    self._shapes[info.name] = tuple(d.dim_value for d in dims)
        return self._shapes.get(tensor)

    def evaluate(self, name: str, depth: int = 0):
        """The value of a small tensor computed from stored constants and static shapes (exporters
        that compute the upsampling's scales from the input's shape), None where it is not. Each
        tensor is computed once; these are shape computations, so any intermediate of more than
        EVALUATE_LIMIT elements (and anything that fails) is "not computable"."""
        name = self.resolve(name)
        if name in self.consts:
            return self.consts[name]
        if name in self._values:
            return self._values[name]
        self._values[name] = None  # while it is computed: a loop back to it is not computable
        try:
            value = self._evaluate(name, depth)
        except BlogrotoError:
            raise
        except Exception:  # noqa: BLE001  anything a malformed node raises here: not computable
            value = None
        if value is not None and np.asarray(value).size > EVALUATE_LIMIT:
            value = None
        self._values[name] = value
        return value

    def _evaluate(self, name: str, depth: int):
        from onnx import helper

        node = self.producer.get(name)
        if node is None or depth > 64 or len(node.input) > EVALUATE_LIMIT:
            return None
        op = node.op_type
        if op == "Shape":
            shape = self.static_shape(self.resolve(node.input[0]))
            if shape is None:
                return None
            return np.array(shape, np.int64)[self.attr(node, "start", 0): self.attr(node, "end", None)]
        values = [self.evaluate(i, depth + 1) if i else None for i in node.input]
        if any(v is None for v, i in zip(values, node.input) if i):
            return None
        values = [np.asarray(v) if v is not None else None for v in values]
        if any(v is not None and v.size > EVALUATE_LIMIT for v in values):
            return None
        try:
            if op == "Gather":
                return np.take(values[0], values[1].astype(np.int64), axis=self.attr(node, "axis", 0))
            if op in ("Unsqueeze", "Squeeze"):
                axes = self.attr(node, "axes")
                if axes is None and len(values) > 1 and values[1] is not None:
                    axes = [int(a) for a in values[1].ravel()]
                x = values[0]
                if op == "Unsqueeze":
                    for axis in sorted(int(a) for a in axes):
                        x = np.expand_dims(x, axis)
                    return x
                return np.squeeze(x, axis=tuple(int(a) for a in axes) if axes else None)
            if op == "Concat":
                return np.concatenate([np.atleast_1d(v) for v in values], axis=self.attr(node, "axis", 0))
            if op == "Cast":
                return values[0].astype(helper.tensor_dtype_to_np_dtype(self.attr(node, "to")))
            if op in ("Mul", "Add", "Sub"):
                return {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract}[op](values[0], values[1])
            if op == "Div":
                a, b = values
                return np.trunc(a / b).astype(a.dtype) if a.dtype.kind in "iu" else a / b
            if op in ("Floor", "Ceil"):
                return (np.floor if op == "Floor" else np.ceil)(values[0])
            if op == "Slice":
                if len(values) == 1:  # opset < 10: attributes
                    starts, ends, axes = self.attr(node, "starts"), self.attr(node, "ends"), self.attr(node, "axes")
                else:
                    starts, ends = values[1].ravel(), values[2].ravel()
                    axes = values[3].ravel() if len(values) > 3 and values[3] is not None else None
                x = values[0]
                index = [slice(None)] * x.ndim
                for i, (a, b) in enumerate(zip(starts, ends)):
                    axis = int(axes[i]) if axes is not None else i
                    index[axis] = slice(int(a), int(b))
                return x[tuple(index)]
        except (ValueError, TypeError, IndexError):
            return None
        return None

    # -- one layer of each kind

    def upsample(self, node, where: str) -> None:
        if node.op_type == "Upsample":  # opset 7-9: floor(x / scale), i.e. asymmetric + floor
            coordinate, nearest = "asymmetric", "floor"
            if self.attr(node, "mode", "nearest") != "nearest":
                self.fail(f"{where}: {self.describe(node)} is not nearest-neighbour")
            scales = self.attr(node, "scales")
            if scales is None and len(node.input) > 1:
                scales = self.evaluate(node.input[1])
            sizes = None
        else:  # Resize (opset 10+)
            if self.attr(node, "mode", "nearest") != "nearest":
                self.fail(f"{where}: {self.describe(node)} is not nearest-neighbour")
            coordinate = self.attr(node, "coordinate_transformation_mode", "half_pixel")
            nearest = self.attr(node, "nearest_mode", "round_prefer_floor")
            inputs = list(node.input)
            # opset 10: Resize(X, scales); 11+: Resize(X, roi, scales, sizes)
            scale_input = (inputs[1] if len(inputs) > 1 else "") if self.opset <= 10 else (inputs[2] if len(inputs) > 2 else "")
            scales = self.evaluate(scale_input) if scale_input else None
            sizes = self.evaluate(inputs[3]) if len(inputs) > 3 and inputs[3] else None
            if scales is not None and np.asarray(scales).size == 0:
                scales = None
        doubled = None
        if scales is not None:
            doubled = [float(v) for v in np.asarray(scales).ravel()] == [1.0, 1.0, 2.0, 2.0]
        else:
            before, after = self.static_shape(self.resolve(node.input[0])), self.static_shape(self.resolve(node.output[0]))
            if sizes is not None and before is not None:
                after = tuple(int(v) for v in np.asarray(sizes).ravel())
            if before is not None and after is not None and len(before) == len(after) == 4:
                doubled = before[:2] == after[:2] and after[2] == 2 * before[2] and after[3] == 2 * before[3]
        if doubled is None:
            self.fail(f"{where}: the scale of {self.describe(node)} is computed in the graph and the shapes are not "
                      "static; cannot check that it doubles the size")
        if not doubled:
            self.fail(f"{where}: {self.describe(node)} does not scale by exactly 2")
        if not _nearest_is_duplication(coordinate, nearest):
            self.fail(f"{where}: {self.describe(node)} ({coordinate}, {nearest}) does not repeat each pixel twice")

    def reflect_pad(self, node, where: str) -> int:
        if self.attr(node, "mode", "constant") != "reflect":
            self.fail(f"{where}: {self.describe(node)} pads with {self.attr(node, 'mode', 'constant')!r}, not reflection")
        pads = self.attr(node, "pads")
        if pads is None:
            pads = self.const(node.input[1], node, "padding")
        pads = [int(v) for v in np.asarray(pads).ravel()]
        if len(node.input) > 3 and node.input[3]:  # opset 18 axes: pads for those axes only
            axes = [int(a) % 4 for a in np.asarray(self.const(node.input[3], node, "axes")).ravel()]
            full = [0] * 8
            for i, axis in enumerate(axes):
                full[axis], full[axis + 4] = pads[i], pads[i + len(axes)]
            pads = full
        if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5] or len(set(pads[2:4] + pads[6:8])) != 1:
            self.fail(f"{where}: {self.describe(node)} pads {pads}, not the same amount on every side of H and W")
        return pads[2]

    def conv(self, node, pad: int, stride: int, where: str):
        weight = self.const(node.input[1], node, "weight")
        bias = self.const(node.input[2], node, "bias") if len(node.input) > 2 and node.input[2] else \
            np.zeros(weight.shape[0], np.float32)
        k = weight.shape[-1] if weight.ndim == 4 else None
        strides = list(self.attr(node, "strides", [1, 1]))
        if (self.attr(node, "group", 1) != 1 or list(self.attr(node, "dilations", [1, 1])) != [1, 1]
                or any(self.attr(node, "pads", [0, 0, 0, 0])) or self.attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID")):
            self.fail(f"{where}: {self.describe(node)} is grouped, dilated or zero-padded")
        if k is None or weight.shape[-2] != k or k != 2 * pad + 1:
            self.fail(f"{where}: {self.describe(node)} has a {tuple(weight.shape)} kernel after padding {pad}")
        if strides != [stride, stride]:
            self.fail(f"{where}: {self.describe(node)} has strides {strides}, expected {[stride, stride]}")
        return np.asarray(weight, np.float32), np.asarray(bias, np.float32)

    def norm(self, node, where: str):
        eps = float(self.attr(node, "epsilon", 1e-5))
        if abs(eps - 1e-5) > 1e-9:
            self.fail(f"{where}: {self.describe(node)} has epsilon {eps:g}; InstanceNorm2d's is 1e-05")
        scale = self.const(node.input[1], node, "scale")
        bias = self.const(node.input[2], node, "bias")
        return np.asarray(scale, np.float32), np.asarray(bias, np.float32)

    def layer(self, tensor: str, name: str, norm: str | None, *, stride: int = 1, upsample: bool = False,
              relu: bool = True, pad_node=None):
        """[Upsample] -> Pad(reflect) -> Conv [-> InstanceNormalization [-> Relu]]; returns the output
        tensor and fills the state dict entries of conv `name` and norm `norm`."""
        shape = self.shape_of.get(self.resolve(tensor))

        def reached(node, new_shape):
            if new_shape is not None:
                self.shape_of[self.resolve(node.output[0])] = new_shape
            return node.output[0], new_shape

        if upsample:
            node = self.only(tensor, ("Upsample", "Resize"), f"before {name}")
            self.upsample(node, name)
            tensor, shape = reached(node, shape and (*shape[:2], 2 * shape[2], 2 * shape[3]))
        node = pad_node or self.only(tensor, ("Pad",), f"before {name}")
        pad = self.reflect_pad(node, name)
        tensor, shape = reached(node, shape and (*shape[:2], shape[2] + 2 * pad, shape[3] + 2 * pad))
        node = self.only(tensor, ("Conv",), name)
        weight, bias = self.conv(node, pad, stride, name)
        self.state[f"{name}.conv2d.weight"], self.state[f"{name}.conv2d.bias"] = weight, bias
        k = weight.shape[-1]
        tensor, shape = reached(node, shape and (shape[0], weight.shape[0], (shape[2] - k) // stride + 1,
                                                 (shape[3] - k) // stride + 1))
        if norm is not None:
            node = self.only(tensor, ("InstanceNormalization",), f"after {name}")
            self.state[f"{norm}.weight"], self.state[f"{norm}.bias"] = self.norm(node, norm)
            tensor, shape = reached(node, shape)
            if relu:
                tensor, shape = reached(self.only(tensor, ("Relu",), f"after {norm}"), shape)
        return tensor

    def state_dict(self) -> dict[str, np.ndarray]:
        self.state: dict[str, np.ndarray] = OrderedDict()
        t = self.layer(self.input, "conv1", "in1")
        t = self.layer(t, "conv2", "in2", stride=2)
        t = self.layer(t, "conv3", "in3", stride=2)
        block = 0
        while True:
            nodes = self.consumers.get(self.resolve(t), [])
            kinds = sorted(n.op_type for n in nodes)
            if kinds == ["Upsample"] or kinds == ["Resize"]:
                break
            if kinds != ["Add", "Pad"]:
                self.fail(f"after {'conv3' if not block else f'res{block}'}: expected a residual block (Pad and Add) or "
                          f"the upsampling, found {', '.join(self.describe(n) for n in nodes) or 'nothing'}")
            block += 1
            if block > 256:
                self.fail("more than 256 residual blocks (or a graph that loops)")
            add = next(n for n in nodes if n.op_type == "Add")
            pad = next(n for n in nodes if n.op_type == "Pad")
            u = self.layer(t, f"res{block}.conv1", f"res{block}.in1", pad_node=pad)
            u = self.layer(u, f"res{block}.conv2", f"res{block}.in2", relu=False)
            after = self.only(u, ("Add",), f"after res{block}.in2")
            if after is not add or sorted(self.resolve(i) for i in add.input) != sorted([self.resolve(t), self.resolve(u)]):
                self.fail(f"res{block}: the block's output is not added to its input")
            if self.resolve(t) in self.shape_of:
                self.shape_of[self.resolve(add.output[0])] = self.shape_of[self.resolve(t)]
            t = add.output[0]
        t = self.layer(t, "deconv1", "in4", upsample=True)
        t = self.layer(t, "deconv2", "in5", upsample=True)
        t = self.layer(t, "deconv3", None)
        if self.resolve(t) not in self.outputs or self.consumers.get(self.resolve(t)):
            following = ", ".join(self.describe(n) for n in self.consumers.get(self.resolve(t), []))
            self.fail(f"the graph goes on after deconv3 ({following or 'not its output'}); the network's output is "
                      "deconv3's")
        return self.state


def read_onnx(path: Path) -> Imported:
    try:
        import onnx
    except ImportError as exc:
        raise FilterError("reading ONNX files needs the onnx package: pip install 'blogroto[onnx]' "
                          "(or pip install onnx)", path) from exc
    if path.stat().st_size > MAX_BYTES:
        raise FilterError("refused: far larger than a style network", path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  protobuf decode errors have many types
        raise FilterError(f"not a readable ONNX model: {exc}", path) from exc
    try:
        graph = _OnnxGraph(path, model)
        state = graph.state_dict()
    except (IndexError, ValueError, TypeError, KeyError, UnicodeDecodeError, AttributeError, OverflowError,
            StopIteration, RecursionError, MemoryError) as exc:  # a malformed node (FilterError passes through)
        text = ascii(f"{type(exc).__name__}: {exc}")[1:-1]
        raise FilterError(f"malformed ONNX graph: {text[:120]}", path) from exc
    producer = f"{model.producer_name} {model.producer_version}".strip() or "unknown producer"
    imported = from_pytorch_state(state, path, "onnx", f"ONNX (opset {graph.opset}, from {producer})", [path])
    return imported


# ----------------------------------------------------------------------------- the filter folder


def sha256_of(files: list[Path]) -> str:
    """One sha256 over the files' bytes in this order (a checkpoint's index and data files)."""
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as handle:
            hashlib.file_digest(handle, lambda: digest)
    return digest.hexdigest()


def provenance(imported: Imported, source: Path) -> dict:
    """filter.yaml's `training:` record of an imported network."""
    files = imported.files
    record = {"file": provenance_file(imported, source), "sha256": sha256_of(files)}
    if len(files) > 1:
        record["files"] = [f.name for f in files]  # the sha256 is of their bytes in this order
    return {
        "imported_from": record,
        "format": imported.format,
        "container": imported.container,
        "original": ORIGINALS[imported.format],
        "parameters": imported.parameters,
        "blogroto_version": __version__,
        "date": datetime.date.today().isoformat(),
    }


def write_filter(imported: Imported, source_path: Path, name: str, out_dir: Path, source: dict, *,
                 display_name: str | None = None, description: str | None = None, artwork: Path | None = None,
                 force: bool = False, precision_check: bool = False, log=lambda msg: None):
    """Write `imported` as the filter folder out_dir/name: weights, filter.yaml, the preview and the
    before/after example (rendered as `blogroto train` renders a trained filter's), the artwork
    when given. Swapped into place in one rename; an existing folder only with `force`."""
    from blogroto.engine.filter_folder import (
        load_filter_as,
        save_artwork,
        swap_into_place,
    )
    from blogroto.engine.network import TransformNet, save_weights
    from blogroto.filters import (
        DEFAULT_FILES,
        SLUG_RE,
        NetworkSpec,
        load_filter,
        write_metadata,
    )

    if not SLUG_RE.match(name):
        raise BlogrotoError(f"filter name {name!r} must be lower-case letters, digits and dashes")
    out_dir = Path(out_dir)
    final = out_dir / name
    if final.exists() and not force:
        raise BlogrotoError("a filter of this name exists already (--force replaces it)", final)
    if artwork is not None and not Path(artwork).is_file():
        raise BlogrotoError("artwork not found", artwork)
    partial = out_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        net = TransformNet(imported.width, imported.blocks, arch=imported.arch).ensure_built()
        net.set_weight_dict(imported.weights, source=source_path)
        save_weights(net, partial / DEFAULT_FILES["weights"])
        del net
        files = {"weights": DEFAULT_FILES["weights"]}
        if artwork is not None:
            save_artwork(partial, artwork)
            files["artwork"] = DEFAULT_FILES["artwork"]
        tool = {"fast-style-transfer": "fast-style-transfer", "pytorch": "pytorch/examples fast_neural_style",
                "onnx": "an ONNX export of pytorch/examples fast_neural_style"}[imported.format]
        meta = {
            "format": 1,
            "name": name,
            "display_name": display_name or name.replace("-", " ").title(),
            "description": description or f"Colours and textures learned from {source['title']} with {tool}, "
                                          f"imported from {provenance_file(imported, source_path)}.",
            "source": source,
            "network": NetworkSpec(imported.width, imported.blocks, "instance", imported.arch).as_dict(),
            "training": provenance(imported, source_path),
            "files": files,
        }
        write_metadata(partial, meta)
        flt = load_filter_as(partial, name)  # validate before it becomes visible
        log(f"rendering the preview and the before/after example of {name}")
        files.update(render_examples(flt, partial))  # `meta` holds this very dict
        write_metadata(partial, meta)
        if precision_check:
            from blogroto.engine.calibration import (
                measure_bfloat16_psnr,
                precision_record,
            )

            log("measuring bfloat16 against float32 on the built-in photos (--no-precision-check skips it)")
            meta["precision"] = precision_record(measure_bfloat16_psnr(flt))  # the weights validated above
            write_metadata(partial, meta)
        load_filter_as(partial, name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    swap_into_place(partial, final)
    return load_filter(final)


def provenance_file(imported: Imported, source_path: Path) -> str:
    return imported.files[0].name if len(imported.files) == 1 else _checkpoint_prefix(source_path).name


def render_examples(flt, folder: Path) -> dict[str, str]:
    """The preview and before/after pictures of the built-in preview photo, as `blogroto train`
    makes a trained filter's (blogroto.engine.train.save_examples)."""
    from blogroto import datasets
    from blogroto.engine.filter_folder import EXAMPLE_SIDE, save_examples
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.imaging.decode import load_image
    from blogroto.imaging.resize import resize_long_side

    img = resize_long_side(load_image(datasets.preview_photo()), EXAMPLE_SIDE)
    return save_examples(folder, img.rgb, Stylizer(precision="float32").stylize_array(img.rgb, flt, StyleOptions(max_size=0)))


def describe_import(training: dict) -> str | None:
    """'Imported from mosaic.pth (pytorch/examples fast_neural_style ...)' for an imported
    filter's training record, None for a trained one."""
    record = training.get("imported_from") if isinstance(training, dict) else None
    if not isinstance(record, dict):
        return None
    text = f"Imported from {record.get('file') or 'a file'}"
    original = training.get("original")
    if original:
        text += f", a network trained with {original}"
    return text
