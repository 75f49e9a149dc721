"""ONNX graphs of fast_neural_style networks (the model zoo's, or `neural_style.py eval
--export_onnx`): followed from the input and mapped onto the pytorch/examples layout. Needs the
optional `onnx` package."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np

from blogroto.errors import BlogrotoError, FilterError
from blogroto.importing.model import EVALUATE_LIMIT, MAX_BYTES, Imported
from blogroto.importing.pytorch import from_pytorch_state


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
