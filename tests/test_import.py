"""`blogroto import`: networks trained with other tools become filters that compute what the
originals compute.

Each test writes a network in the original format itself, with the original project's layer
names and shapes (no downloads): a TensorFlow 1 checkpoint as lengstrom/fast-style-transfer's
optimize.py saves it (unnamed tf.Variables, Adam slots and all), `torch.save` state dicts of
pytorch/examples' TransformerNet in both the zip and the legacy layout (written by a tiny pickler
here: torch is not needed), and ONNX graphs as torch.onnx exports that network (opsets 8, 9 and 11).
The original network's forward pass is computed independently in numpy, float64, from the
original code's definition (src/transform.py, neural_style/transformer_net.py): SAME zero
padding, conv2d_transpose, instance norm with epsilon 1e-3, tanh * 150 + 255/2 on 0..255 pixels;
reflection padding, nearest x2 + conv, InstanceNorm2d (1e-5), raw 0..255 output. onnxruntime,
where installed, runs the ONNX files themselves as a second reference.

Measured on the 2-core development machine (PSNR of blogroto's output against the reference;
float: the Stylizer's output vs the reference in [0, 1]; 8-bit: `blogroto apply`'s PNG vs the
reference rounded to 8 bits; "=" identical):
  fast-style-transfer, width 32, 5 blocks, index + data checkpoint   116.4 dB   87.8 dB
  fast-style-transfer, width 8, 2 blocks, single-file checkpoint     120.3 dB   =
  pytorch/examples .pth, width 32, 5 blocks, zip and legacy layout   117.5 dB   83.0 dB
  pytorch/examples .model of PyTorch 0.3 (running statistics), 4/1   119.6 dB   =
  ONNX opset 8 (4/1) / opset 9 (32/5)                      113.8 / 121.9 dB   85.7 / 81.0 dB
  ONNX opset 9, scales computed from the input shape (4/1) / opset 11 (4/1)   128.5 / 129.1 dB   85.7 dB / =
The threshold asked for is 40 dB; the tests assert >= 40 dB on the 8-bit files and > 80 dB in float.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import make_photo

# --------------------------------------------------------------------------------------------
# the reference: the original networks in numpy (float64)


def conv2d(x, w, stride=1):
    """VALID cross-correlation of x (H, W, Cin) with w (k, k, Cin, Cout)."""
    k = w.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(0, 1))[::stride, ::stride]  # h, w, C, k, k
    h, wd = win.shape[:2]
    cols = win.reshape(h * wd, -1)  # C, k, k order
    return (cols @ w.transpose(2, 0, 1, 3).reshape(-1, w.shape[3])).reshape(h, wd, -1)


def same_pad(x, k, s):
    """TensorFlow's SAME padding: zeros, the odd one after."""
    def amounts(n):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    return np.pad(x, (amounts(x.shape[0]), amounts(x.shape[1]), (0, 0)))


def conv_transpose_same(x, w, s=2):
    """tf.nn.conv2d_transpose(x, w, [H*s, W*s], s, "SAME"), w [k, k, out, in]: the gradient of the
    SAME conv from H*s to H, i.e. out[s*i + t - before] += x[i] w[t]."""
    h, wd, _ = x.shape
    k = w.shape[0]
    before = [max((n - 1) * s + k - n * s, 0) // 2 for n in (h, wd)]
    buf = np.zeros(((h - 1) * s + k, (wd - 1) * s + k, w.shape[2]))
    for i in range(k):
        for j in range(k):
            buf[i : i + (h - 1) * s + 1 : s, j : j + (wd - 1) * s + 1 : s] += x @ w[i, j].T
    return buf[before[0] : before[0] + h * s, before[1] : before[1] + wd * s]


def instance_norm(x, scale, shift, eps):
    mean = x.mean(axis=(0, 1))
    var = ((x - mean) ** 2).mean(axis=(0, 1))
    return (x - mean) / np.sqrt(var + eps) * scale + shift


def fst_forward(values, pixels, blocks):
    """fast-style-transfer's src/transform.py `net` as evaluate.py runs it: `values` are Variable,
    Variable_1, ... in creation order, `pixels` 0..255. Returns tanh(.) * 150 + 255/2."""
    it = iter(np.asarray(v, np.float64) for v in values)

    def layer(x, stride=1, relu=True, transpose=False):
        w, shift, scale = next(it), next(it), next(it)
        x = conv_transpose_same(x, w) if transpose else conv2d(same_pad(x, w.shape[0], stride), w, stride)
        x = instance_norm(x, scale, shift, 1e-3)
        return np.maximum(x, 0) if relu else x

    x = layer(np.asarray(pixels, np.float64))
    x = layer(x, 2)
    x = layer(x, 2)
    for _ in range(blocks):
        x = x + layer(layer(x), relu=False)
    x = layer(x, transpose=True)
    x = layer(x, transpose=True)
    x = layer(x, relu=False)
    return np.tanh(x) * 150 + 255.0 / 2


def pytorch_forward(sd, pixels, blocks):
    """pytorch/examples' TransformerNet.forward on `pixels` 0..255 (H, W, 3): ReflectionPad2d +
    Conv2d, InstanceNorm2d(affine) with eps 1e-5, nearest x2 upsampling; the raw output."""
    def conv(x, name, stride=1, upsample=False):
        w = np.asarray(sd[f"{name}.conv2d.weight"], np.float64).transpose(2, 3, 1, 0)
        if upsample:
            x = x.repeat(2, axis=0).repeat(2, axis=1)
        p = w.shape[0] // 2
        return conv2d(np.pad(x, ((p, p), (p, p), (0, 0)), mode="reflect"), w, stride) + sd[f"{name}.conv2d.bias"]

    def norm(x, name):
        return instance_norm(x, np.asarray(sd[f"{name}.weight"], np.float64), np.asarray(sd[f"{name}.bias"], np.float64), 1e-5)

    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    y = relu(norm(conv(np.asarray(pixels, np.float64), "conv1"), "in1"))
    y = relu(norm(conv(y, "conv2", 2), "in2"))
    y = relu(norm(conv(y, "conv3", 2), "in3"))
    for i in range(1, blocks + 1):
        r = relu(norm(conv(y, f"res{i}.conv1"), f"res{i}.in1"))
        y = y + norm(conv(r, f"res{i}.conv2"), f"res{i}.in2")
    y = relu(norm(conv(y, "deconv1", upsample=True), "in4"))
    y = relu(norm(conv(y, "deconv2", upsample=True), "in5"))
    return conv(y, "deconv3")


def psnr(a, b):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


# --------------------------------------------------------------------------------------------
# networks in the original formats


def fst_values(width=32, blocks=5, seed=0):
    """Variable, Variable_1, ... of fast-style-transfer's net: per layer kernel, shift, scale."""
    rng = np.random.default_rng(seed)
    w = width
    kernels = [(9, 9, 3, w), (3, 3, w, 2 * w), (3, 3, 2 * w, 4 * w)] + [(3, 3, 4 * w, 4 * w)] * (2 * blocks) \
        + [(3, 3, 2 * w, 4 * w), (3, 3, w, 2 * w), (9, 9, w, 3)]  # conv2d_transpose kernels: [k, k, out, in]
    values = []
    for i, shape in enumerate(kernels):
        transposed = i in (len(kernels) - 3, len(kernels) - 2)
        cout = shape[2] if transposed else shape[3]
        values.append((rng.standard_normal(shape) * 0.1).astype(np.float32))  # WEIGHTS_INIT_STDEV
        values.append((rng.standard_normal(cout) * 0.1).astype(np.float32))  # shift
        values.append((1 + rng.standard_normal(cout) * 0.1).astype(np.float32))  # scale
    return values


def write_fst_checkpoint(prefix: Path, values, version=2) -> Path:
    """Save `values` as optimize.py does: tf.compat.v1 Saver over the graph's variables, which
    are unnamed tf.Variables (Variable, Variable_1, ...) plus Adam's slots."""
    import tensorflow as tf

    prefix.parent.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(v) for v in values]
        loss = tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables])
        tf.compat.v1.train.AdamOptimizer(1e-3).minimize(loss)
        saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1 if version == 1
                                         else tf.compat.v1.train.SaverDef.V2)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(prefix), write_meta_graph=version == 2)
    return prefix


def pytorch_state(width=32, blocks=5, seed=0, running=False):
    """A state dict of pytorch/examples' TransformerNet (numpy arrays in torch's layouts). The last
    conv is scaled so the raw output spans 0..255 like a trained network's."""
    rng = np.random.default_rng(seed)
    w = width
    sd = OrderedDict()

    def conv(name, cin, cout, k, std=0.1, bias=0.0):
        sd[f"{name}.conv2d.weight"] = (rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32)
        sd[f"{name}.conv2d.bias"] = (bias + rng.standard_normal(cout) * 0.1).astype(np.float32)

    def norm(name, c):
        sd[f"{name}.weight"] = (1 + rng.standard_normal(c) * 0.1).astype(np.float32)
        sd[f"{name}.bias"] = (rng.standard_normal(c) * 0.1).astype(np.float32)
        if running:  # old .model files: InstanceNorm's deprecated running statistics
            sd[f"{name}.running_mean"] = rng.standard_normal(c).astype(np.float32)
            sd[f"{name}.running_var"] = rng.random(c).astype(np.float32) + 0.5

    conv("conv1", 3, w, 9), norm("in1", w)
    conv("conv2", w, 2 * w, 3), norm("in2", 2 * w)
    conv("conv3", 2 * w, 4 * w, 3), norm("in3", 4 * w)
    for i in range(1, blocks + 1):
        conv(f"res{i}.conv1", 4 * w, 4 * w, 3), norm(f"res{i}.in1", 4 * w)
        conv(f"res{i}.conv2", 4 * w, 4 * w, 3), norm(f"res{i}.in2", 4 * w)
    conv("deconv1", 4 * w, 2 * w, 3), norm("in4", 2 * w)
    conv("deconv2", 2 * w, w, 3), norm("in5", w)
    conv("deconv3", w, 3, 9, std=60 / np.sqrt(81 * w * 0.5), bias=128.0)
    return sd


class _Global:
    """A name as a pickle writes it (GLOBAL module name); never called."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise AssertionError("only written")


class _Storage:
    def __init__(self, key, array, legacy):
        self.key, self.array, self.legacy = key, array, legacy

    def pid(self):
        stype = _Global("torch", {"<f4": "FloatStorage", "<f2": "HalfStorage", "<i8": "LongStorage"}[self.array.dtype.str])
        base = ("storage", stype, self.key, "cpu", int(self.array.size))
        return base + (None,) if self.legacy else base


class _Tensor:
    """Pickled as torch pickles a tensor: torch._utils._rebuild_tensor_v2(storage, offset, size,
    stride, requires_grad, backward_hooks) (or the 4-argument _rebuild_tensor of PyTorch 0.3)."""

    def __init__(self, storage, shape, v1=False):
        self.storage, self.shape, self.v1 = storage, tuple(shape), v1

    def __reduce_ex__(self, protocol):
        stride = tuple(int(np.prod(self.shape[i + 1 :], dtype=np.int64)) for i in range(len(self.shape)))
        if self.v1:
            return _Global("torch._utils", "_rebuild_tensor"), (self.storage, 0, self.shape, stride)
        return _Global("torch._utils", "_rebuild_tensor_v2"), (self.storage, 0, self.shape, stride, False, OrderedDict())


class _TorchPickler(pickle._Pickler):
    """pickle's Python pickler, writing _Global as GLOBAL and storages as persistent ids: the same
    opcodes torch.save's pickler writes for a state dict (protocol 2)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = _save_global

    def persistent_id(self, obj):
        return obj.pid() if isinstance(obj, _Storage) else None


def _pickled_state(sd, legacy, v1=False):
    storages = []
    state = OrderedDict()
    for name, array in sd.items():
        key = str(140234000000000 + 64 * len(storages)) if legacy else str(len(storages))
        storage = _Storage(key, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")), legacy)
        storages.append(storage)
        state[name] = _Tensor(storage, array.shape, v1=v1)
    state._metadata = OrderedDict([("", {"version": 1})] + [(n.rsplit(".", 1)[0], {"version": 1}) for n in sd])
    buffer = io.BytesIO()
    _TorchPickler(buffer, protocol=2).dump(state)
    return buffer.getvalue(), storages


def write_torch_zip(path: Path, sd) -> Path:
    """torch.save's zip layout (PyTorch >= 1.6): <name>/data.pkl, <name>/data/<key>, version, byteorder."""
    data, storages = _pickled_state(sd, legacy=False)
    root = path.stem
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{root}/data.pkl", data)
        archive.writestr(f"{root}/byteorder", "little")
        for storage in storages:
            archive.writestr(f"{root}/data/{storage.key}", storage.array.tobytes())
        archive.writestr(f"{root}/version", "3\n")
        archive.writestr(f"{root}/.data/serialization_id", "1234567890123456789012345678901234567890")
    return path


def write_torch_legacy(path: Path, sd, v1=False) -> Path:
    """torch.save's legacy layout: magic, protocol, sys info, the pickle, the storage keys, then
    each storage as an int64 element count and its bytes."""
    data, storages = _pickled_state(sd, legacy=True, v1=v1)
    out = io.BytesIO()
    for value in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                                 "type_sizes": {"short": 2, "int": 4, "long": 8}}):
        pickle.dump(value, out, protocol=2)
    out.write(data)
    pickle.dump([s.key for s in storages], out, protocol=2)
    for storage in storages:
        out.write(struct.pack("<q", storage.array.size))
        out.write(storage.array.tobytes())
    path.write_bytes(out.getvalue())
    return path


def write_onnx(path: Path, sd, blocks, opset=9, size=None, computed_scales=False) -> Path:
    """pytorch/examples' TransformerNet as torch.onnx exports it: Pad(reflect) -> Conv ->
    InstanceNormalization -> Relu, residual Add, nearest Upsample (opset 8: scales attribute; 9:
    scales input, stored or, with `computed_scales`, computed from the input's shape as
    Shape -> Gather -> Cast -> Mul -> Floor -> Div -> Concat) or Resize (11: asymmetric, floor);
    initializers named after the state dict."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = iter(range(10_000))

    def node(op, inputs, **attrs):
        i = next(counter)
        out = str(i + 1000)
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{i}", **attrs))
        return out

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    for key, value in sd.items():
        if "running" not in key:
            const(key, value)

    def layer(x, name, norm=None, stride=1, upsample=False, relu=True):
        if upsample:
            if opset == 8:
                x = node("Upsample", [x], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0])
            elif opset == 9 and computed_scales:
                shape = node("Shape", [x])
                ratios = []
                for axis in (2, 3):
                    n = node("Cast", [node("Gather", [shape, const(f"axis{axis}_{name}", np.array(axis, np.int64))], axis=0)],
                             to=TensorProto.FLOAT)
                    doubled = node("Floor", [node("Mul", [n, const(f"two{axis}_{name}", np.array(2.0, np.float32))])])
                    ratios.append(node("Unsqueeze", [node("Div", [doubled, n])], axes=[0]))
                scales = node("Concat", [const(f"ones_{name}", np.ones(2, np.float32)), *ratios], axis=0)
                x = node("Upsample", [x, scales], mode="nearest")
            elif opset == 9:
                scales = node("Constant", [], value=numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32)))
                x = node("Upsample", [x, scales], mode="nearest")
            else:
                roi = const(f"roi_{name}", np.zeros(0, np.float32))
                scales = const(f"scales_{name}", np.array([1, 1, 2, 2], np.float32))
                x = node("Resize", [x, roi, scales], mode="nearest", coordinate_transformation_mode="asymmetric",
                         nearest_mode="floor")
        k = sd[f"{name}.conv2d.weight"].shape[-1]
        p = k // 2
        if opset < 11:
            x = node("Pad", [x], mode="reflect", pads=[0, 0, p, p, 0, 0, p, p])
        else:
            pads = node("Constant", [], value=numpy_helper.from_array(np.array([0, 0, p, p, 0, 0, p, p], np.int64)))
            x = node("Pad", [x, pads], mode="reflect")
        x = node("Conv", [x, f"{name}.conv2d.weight", f"{name}.conv2d.bias"], kernel_shape=[k, k],
                 strides=[stride, stride], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
        if norm:
            x = node("InstanceNormalization", [x, f"{norm}.weight", f"{norm}.bias"], epsilon=1e-5)
            if relu:
                x = node("Relu", [x])
        return x

    x = layer("input1", "conv1", "in1")
    x = layer(x, "conv2", "in2", 2)
    x = layer(x, "conv3", "in3", 2)
    for i in range(1, blocks + 1):
        r = layer(x, f"res{i}.conv1", f"res{i}.in1")
        r = layer(r, f"res{i}.conv2", f"res{i}.in2", relu=False)
        x = node("Add", [r, x])
    x = layer(x, "deconv1", "in4", upsample=True)
    x = layer(x, "deconv2", "in5", upsample=True)
    x = layer(x, "deconv3")
    nodes.append(helper.make_node("Identity", [x], ["output1"], name="Identity_out"))
    h, w = size if size else ("height", "width")
    graph = helper.make_graph(nodes, "torch-jit-export",
                              [helper.make_tensor_value_info("input1", TensorProto.FLOAT, [1, 3, h, w])],
                              [helper.make_tensor_value_info("output1", TensorProto.FLOAT, [1, 3, h, w])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch",
                              producer_version="1.0")
    model.ir_version = 4 if opset < 11 else 6
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# --------------------------------------------------------------------------------------------
# running blogroto


class Outcome:
    def __init__(self, exit_code: int, output: str):
        self.exit_code, self.output = exit_code, output


def cli(*args) -> Outcome:
    """The command line in-process, with blogroto.cli.main's exit codes and one-line errors."""
    from click.testing import CliRunner

    from blogroto.cli import cli as group
    from blogroto.errors import BlogrotoError, ConfigError

    result = CliRunner().invoke(group, [str(a) for a in args])
    exc = result.exception
    if isinstance(exc, BlogrotoError):
        return Outcome(2 if isinstance(exc, ConfigError) else 1, result.output + f"error: {exc}\n")
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return Outcome(result.exit_code, result.output)


@pytest.fixture
def small_preview(tmp_path, monkeypatch):
    """The filter's preview pictures rendered on a small photo (tests stay fast)."""
    photo = make_photo(tmp_path / "preview-photo.png", (40, 28), seed=5)
    monkeypatch.setattr("blogroto.datasets.preview_photo", lambda: photo)
    return photo


def import_filter(src, out, name, *extra):
    result = cli("import", src, "--name", name, "--out", out, "--no-precision-check", *extra)
    assert result.exit_code == 0, result.output
    return out / name


def photo_pixels(tmp_path, size=(64, 48), seed=3):
    path = make_photo(tmp_path / f"photo-{seed}.png", size, seed=seed)
    return path, np.asarray(Image.open(path).convert("RGB"))


def compare(folder: Path, photo: Path, pixels: np.ndarray, reference: np.ndarray, tmp_path: Path) -> dict:
    """blogroto's output against the reference (0..255, float): float PSNR through the Stylizer,
    8-bit PSNR through `blogroto apply` (PNG) against the reference rounded the same way."""
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import load_filter

    flt = load_filter(folder)
    want = np.clip(reference, 0, 255) / 255.0
    got = Stylizer(precision="float32").stylize_array(pixels.astype(np.float32) / 255, flt, StyleOptions(max_size=0))
    out = tmp_path / f"{folder.name}-out.png"
    result = cli("apply", photo, "-f", folder, "-o", out, "--max-size", "0", "--precision", "float32", "-q")
    assert result.exit_code == 0, result.output
    applied = np.asarray(Image.open(out).convert("RGB"))
    assert applied.shape == pixels.shape
    measured = {"float_db": psnr(got, want), "png_db": psnr(applied / 255.0, np.rint(want * 255) / 255.0),
                "max_abs": float(np.abs(got - want).max())}
    print(f"{folder.name}: {measured}")
    return measured


# --------------------------------------------------------------------------------------------
# equivalence: fast-style-transfer


def test_fast_style_transfer_checkpoint_real_shapes(tmp_path, small_preview):
    from blogroto.importing import read_network

    values = fst_values(32, 5, seed=1)
    prefix = write_fst_checkpoint(tmp_path / "ckpt/fns.ckpt", values)
    # evaluate.py's --checkpoint takes the prefix (no file of that name) or the folder
    folder = import_filter(prefix, tmp_path / "filters", "fst-wave", "--title", "The Great Wave",
                           "--creator", "Katsushika Hokusai", "--year", "1831", "--licence", "public domain")
    by_folder = read_network(tmp_path / "ckpt").weights
    assert all(np.array_equal(v, by_folder[k]) for k, v in read_network(prefix).weights.items())
    meta = yaml.safe_load((folder / "filter.yaml").read_text())
    assert meta["network"] == {"width": 32, "blocks": 5, "arch": "johnson-tf1"}
    assert meta["source"] == {"title": "The Great Wave", "creator": "Katsushika Hokusai", "year": 1831,
                              "licence": "public domain"}
    t = meta["training"]
    assert t["format"] == "fast-style-transfer" and t["imported_from"]["file"] == "fns.ckpt"
    assert t["imported_from"]["files"] == ["fns.ckpt.index", "fns.ckpt.data-00000-of-00001"]
    import hashlib

    assert t["imported_from"]["sha256"] == hashlib.sha256((tmp_path / "ckpt/fns.ckpt.index").read_bytes() + (
        tmp_path / "ckpt/fns.ckpt.data-00000-of-00001").read_bytes()).hexdigest()
    assert {"preview.jpg", "example-before.jpg", "example-after.jpg", "weights.npz", "filter.yaml"} <= \
        {p.name for p in folder.iterdir()}
    photo, pixels = photo_pixels(tmp_path)
    measured = compare(folder, photo, pixels, fst_forward(values, pixels, 5), tmp_path)
    assert measured["float_db"] > 80 and measured["png_db"] >= 40


def test_fast_style_transfer_reference_is_the_original_tensorflow_ops(tmp_path):
    """The numpy reference above agrees with the TensorFlow ops src/transform.py calls
    (conv2d SAME, conv2d_transpose SAME, moments): it is a faithful stand-in for the original."""
    import tensorflow as tf

    values = fst_values(4, 1, seed=2)
    pixels = np.random.default_rng(0).random((20, 28, 3)) * 255

    def net(image):
        it = iter(tf.constant(v) for v in values)

        def layer(x, stride=1, relu=True, transpose=False):
            w, shift, scale = next(it), next(it), next(it)
            if transpose:
                shape = tf.stack([1, x.shape[1] * 2, x.shape[2] * 2, w.shape[2]])
                x = tf.nn.conv2d_transpose(x, w, shape, [1, 2, 2, 1], padding="SAME")
            else:
                x = tf.nn.conv2d(x, w, [1, stride, stride, 1], padding="SAME")
            mu, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
            x = scale * (x - mu) / (var + 1e-3) ** 0.5 + shift
            return tf.nn.relu(x) if relu else x

        x = layer(layer(layer(image), 2), 2)
        x = x + layer(layer(x), relu=False)
        x = layer(layer(x, transpose=True), transpose=True)
        return tf.nn.tanh(layer(x, relu=False)) * 150 + 255.0 / 2

    tf_out = net(tf.constant(pixels[None], tf.float32))[0].numpy()
    assert np.abs(tf_out - fst_forward(values, pixels, 1)).max() < 1e-2  # of 255


def test_fast_style_transfer_single_file_checkpoint_and_tiny_width(tmp_path, small_preview):
    """The older single-file .ckpt (the published fast-style-transfer models), a modified width."""
    values = fst_values(8, 2, seed=4)
    write_fst_checkpoint(tmp_path / "la_muse.ckpt", values, version=1)
    assert not (tmp_path / "la_muse.ckpt.index").exists()
    folder = import_filter(tmp_path / "la_muse.ckpt", tmp_path / "filters", "la-muse")
    meta = yaml.safe_load((folder / "filter.yaml").read_text())
    assert meta["network"] == {"width": 8, "blocks": 2, "arch": "johnson-tf1"}
    assert meta["source"] == {"title": "la_muse"} and meta["training"]["imported_from"]["file"] == "la_muse.ckpt"
    photo, pixels = photo_pixels(tmp_path, (52, 36), seed=4)
    measured = compare(folder, photo, pixels, fst_forward(values, pixels, 2), tmp_path)
    assert measured["float_db"] > 80 and measured["png_db"] >= 40


# --------------------------------------------------------------------------------------------
# equivalence: pytorch/examples


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_pytorch_state_dict_real_shapes(tmp_path, small_preview, layout):
    sd = pytorch_state(32, 5, seed=2)
    src = tmp_path / "mosaic.pth"
    (write_torch_zip if layout == "zip" else write_torch_legacy)(src, sd)
    folder = import_filter(src, tmp_path / "filters", "mosaic", "--title", "Mosaic", "--licence", "BSD-3-Clause")
    meta = yaml.safe_load((folder / "filter.yaml").read_text())
    assert meta["network"] == {"width": 32, "blocks": 5, "arch": "pytorch-examples"}
    assert meta["training"]["format"] == "pytorch"
    assert meta["training"]["container"].endswith("(zip archive)" if layout == "zip" else "(legacy pickle)")
    assert meta["training"]["parameters"] == sum(v.size for v in sd.values())
    photo, pixels = photo_pixels(tmp_path)
    measured = compare(folder, photo, pixels, pytorch_forward(sd, pixels, 5), tmp_path)
    assert measured["float_db"] > 80 and measured["png_db"] >= 40


def test_old_model_file_with_running_statistics(tmp_path, small_preview):
    """A `.model` checkpoint of PyTorch 0.3 days: legacy layout, 4-argument _rebuild_tensor,
    InstanceNorm running_mean/running_var (ignored, as neural_style.py eval deletes them)."""
    sd = pytorch_state(4, 1, seed=3, running=True)
    src = write_torch_legacy(tmp_path / "epoch_2_Sat_Feb_4_2017_100.0_10000000000.0.model", sd, v1=True)
    folder = import_filter(src, tmp_path / "filters", "old-model")
    photo, pixels = photo_pixels(tmp_path, (36, 44), seed=6)
    clean = {k: v for k, v in sd.items() if "running" not in k}
    measured = compare(folder, photo, pixels, pytorch_forward(clean, pixels, 1), tmp_path)
    assert measured["float_db"] > 80 and measured["png_db"] >= 40


def test_torchfile_reads_what_it_is_given(tmp_path):
    from blogroto import torchfile

    sd = OrderedDict([("a", np.arange(6, dtype=np.float32).reshape(2, 3)), ("b", np.array([1.5], np.float16)),
                      ("n", np.array(7, np.int64).reshape(()))])
    for writer in (write_torch_zip, write_torch_legacy):
        got = torchfile.load(writer(tmp_path / f"t-{writer.__name__}.pth", sd))
        assert list(got) == ["a", "b", "n"] and got["a"].dtype == np.float32
        assert np.array_equal(got["a"], sd["a"]) and got["b"].dtype == np.float16 and got["n"] == 7


# --------------------------------------------------------------------------------------------
# equivalence: ONNX


@pytest.mark.parametrize("opset,computed", [(8, False), (9, False), (9, True), (11, False)])
def test_onnx_export(tmp_path, small_preview, opset, computed):
    pytest.importorskip("onnx")
    blocks = 5 if opset == 9 and not computed else 1
    sd = pytorch_state(32 if blocks == 5 else 4, blocks, seed=opset)
    photo, pixels = photo_pixels(tmp_path, (48, 40), seed=opset)
    # the model zoo's models have a fixed input size (needed where the upsampling's scale is computed
    # from it); the others a free one
    src = write_onnx(tmp_path / f"candy-{opset}.onnx", sd, blocks, opset, computed_scales=computed,
                     size=pixels.shape[:2] if opset == 8 or computed else None)
    folder = import_filter(src, tmp_path / "filters", f"candy-{opset}")
    meta = yaml.safe_load((folder / "filter.yaml").read_text())
    assert meta["network"]["arch"] == "pytorch-examples" and meta["training"]["format"] == "onnx"
    assert meta["training"]["container"] == f"ONNX (opset {opset}, from pytorch 1.0)"
    reference = pytorch_forward(sd, pixels, blocks)
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    if onnxruntime is not None:  # the file itself, run by ONNX's own runtime, agrees with the numpy reference
        session = onnxruntime.InferenceSession(str(src), providers=["CPUExecutionProvider"])
        ort = session.run(None, {"input1": pixels.astype(np.float32).transpose(2, 0, 1)[None]})[0][0].transpose(1, 2, 0)
        assert psnr(np.clip(ort, 0, 255) / 255, np.clip(reference, 0, 255) / 255) > 80
    measured = compare(folder, photo, pixels, reference, tmp_path)
    assert measured["float_db"] > 80 and measured["png_db"] >= 40


def test_onnx_graph_that_is_not_the_network_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from blogroto.errors import FilterError
    from blogroto.importing import read_network

    sd = pytorch_state(4, 1, seed=0)
    src = write_onnx(tmp_path / "net.onnx", sd, 1, 9)
    model = onnx.load(str(src))
    for node in model.graph.node:
        if node.op_type == "Pad":
            for a in node.attribute:
                if a.name == "mode":
                    a.s = b"constant"  # zero padding: another network
            break
    onnx.save(model, str(tmp_path / "zero.onnx"))
    with pytest.raises(FilterError, match="zero.onnx.*pads with 'constant', not reflection"):
        read_network(tmp_path / "zero.onnx")
    model = onnx.load(str(src))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "Sigmoid"
    onnx.save(model, str(tmp_path / "sigmoid.onnx"))
    with pytest.raises(FilterError, match=r"sigmoid.onnx.*after in1: expected Relu, found Sigmoid"):
        read_network(tmp_path / "sigmoid.onnx")


# --------------------------------------------------------------------------------------------
# refusals: hostile pickles, wrong layers and shapes


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_hostile_pth_is_refused_and_nothing_runs(tmp_path, layout):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(OrderedDict([("conv1.conv2d.weight", _Evil(marker))]), protocol=2)
    src = tmp_path / "mosaic.pth"
    if layout == "zip":
        with zipfile.ZipFile(src, "w") as archive:
            archive.writestr("mosaic/data.pkl", payload)
            archive.writestr("mosaic/version", "3\n")
    else:
        out = io.BytesIO()
        for value in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(value, out, protocol=2)
        src.write_bytes(out.getvalue() + payload)
    result = cli("import", src, "--name", "evil", "--out", tmp_path / "filters", "--no-precision-check")
    assert result.exit_code == 1
    assert "mosaic.pth" in result.output and "refused: the pickle names posix.system" in result.output
    assert "nothing was executed" in result.output
    assert not marker.exists() and not (tmp_path / "filters").exists()  # nothing written either


def test_full_model_pickle_is_refused(tmp_path):
    """torch.save(model) pickles the training script's classes: refused by name, not imported."""
    from blogroto.errors import FilterError
    from blogroto.torchfile import load

    data = (b"\x80\x02cneural_style.transformer_net\nTransformerNet\nq\x00)\x81q\x01.")
    with zipfile.ZipFile(tmp_path / "model.pth", "w") as archive:
        archive.writestr("model/data.pkl", data)
    with pytest.raises(FilterError, match="model.pth: refused: the pickle names neural_style.transformer_net.TransformerNet"):
        load(tmp_path / "model.pth")


def test_unknown_layers_and_wrong_shapes_name_the_file(tmp_path):
    from blogroto.errors import FilterError
    from blogroto.importing import read_network

    sd = pytorch_state(4, 1)
    extra = OrderedDict(sd, **{"conv4.conv2d.weight": np.zeros((4, 4, 3, 3), np.float32)})
    with pytest.raises(FilterError, match=r"extra\.pth: not pytorch/examples' TransformerNet \(width 4, 1 residual "
                                          r"block\): unknown layers conv4\.conv2d\.weight"):
        read_network(write_torch_zip(tmp_path / "extra.pth", extra))
    wrong = OrderedDict(sd)
    wrong["in2.weight"] = np.ones(5, np.float32)
    with pytest.raises(FilterError, match=r"wrong\.pth: in2\.weight has shape \(5,\), expected \(8,\)"):
        read_network(write_torch_zip(tmp_path / "wrong.pth", wrong))
    missing = OrderedDict((k, v) for k, v in sd.items() if not k.startswith("deconv2"))
    with pytest.raises(FilterError, match=r"missing\.pth: .*missing deconv2\.conv2d\.bias, deconv2\.conv2d\.weight"):
        read_network(write_torch_legacy(tmp_path / "missing.pth", missing))
    other = OrderedDict([("fc.weight", np.zeros((10, 4), np.float32))])
    with pytest.raises(FilterError, match=r"other\.pth: not a pytorch/examples fast_neural_style network: "
                                          r"conv1\.conv2d\.weight is missing"):
        read_network(write_torch_zip(tmp_path / "other.pth", other))

    values = fst_values(4, 1)
    values[6] = np.zeros((3, 3, 8, 9), np.float32)  # conv3's kernel
    write_fst_checkpoint(tmp_path / "bad/fns.ckpt", values)
    with pytest.raises(FilterError, match=r"fns\.ckpt\.index: Variable_6 is \[3, 3, 8, 9\], expected \[3, 3, 8, 16\]"):
        read_network(tmp_path / "bad")
    write_fst_checkpoint(tmp_path / "short/fns.ckpt", fst_values(4, 1)[:-3])
    with pytest.raises(FilterError, match=r"fns\.ckpt\.index: 21 network variables"):
        read_network(tmp_path / "short/fns.ckpt.index")


def test_corrupt_files_are_clear_errors(tmp_path):
    from blogroto.errors import FilterError
    from blogroto.importing import read_network

    (tmp_path / "noise.pth").write_bytes(b"\x80\x02garbage")
    with pytest.raises(FilterError, match="noise.pth: "):
        read_network(tmp_path / "noise.pth")
    good = write_torch_zip(tmp_path / "good.pth", pytorch_state(4, 1))
    data = bytearray(good.read_bytes())
    (tmp_path / "cut.pth").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(FilterError, match="cut.pth: "):
        read_network(tmp_path / "cut.pth")
    (tmp_path / "empty.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(FilterError, match="empty.ckpt: not a readable TensorFlow checkpoint"):
        read_network(tmp_path / "empty.ckpt")


# --------------------------------------------------------------------------------------------
# the network variants: tiling, weights layout


@pytest.mark.parametrize("arch", ["johnson-tf1", "pytorch-examples"])
def test_variants_tile_like_untiled(tmp_path, arch):
    """The tiled executor (whole-image statistics, halos from the layers) works for the imported
    layouts too, fast-style-transfer's output norm and SAME/transposed convs included."""
    from blogroto.engine.network import TransformNet, save_weights
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import load_filter, write_metadata
    from blogroto.importing import from_pytorch_state, read_network

    if arch == "johnson-tf1":  # read from the checkpoint prefix, as evaluate.py's --checkpoint names it
        imported = read_network(write_fst_checkpoint(tmp_path / "ck/fns.ckpt", fst_values(4, 2, seed=7)))
    else:
        imported = from_pytorch_state(pytorch_state(4, 2, seed=7), tmp_path / "x.pth", "pytorch", "test", [])
    folder = tmp_path / "filters" / "v"
    folder.mkdir(parents=True)
    net = TransformNet(4, 2, arch=arch).ensure_built()
    net.set_weight_dict(imported.weights)
    save_weights(net, folder / "weights.npz")
    write_metadata(folder, {"format": 1, "name": "v", "source": {"title": "t"},
                            "network": {"width": 4, "blocks": 2, "arch": arch}})
    flt = load_filter(folder)
    photo = np.random.default_rng(1).random((123, 97, 3)).astype(np.float32)
    whole = Stylizer(tile_pixels=10**9, precision="float32").stylize_array(photo, flt, StyleOptions())
    tiled = Stylizer(tile_pixels=0, tile_side=32, buffer_dtype="float32", precision="float32").stylize_array(
        photo, flt, StyleOptions())
    assert np.abs(whole - tiled).max() < 1e-4 and psnr(whole, tiled) > 90


@pytest.mark.parametrize("arch", ["johnson-tf1", "pytorch-examples"])
def test_variant_halos_are_the_receptive_reach(arch):
    """As tests/test_tiling.py checks for blogroto's own layout: changing input rows beyond the
    halo never alters a stage's core, and a row at the halo's edge does."""
    from tests.test_tiling import checked_halos

    halos = checked_halos(arch)
    if arch == "pytorch-examples":
        assert halos == [4, 5, 7, 1, 2, 1, 1, 2]  # blogroto's own layout's (tests/test_tiling.py)


def test_weights_of_one_layout_are_not_read_as_another(tmp_path):
    """pytorch/examples' layout has blogroto's shapes exactly: its weights carry the arch in their
    names, so reading them as blogroto's own (say, as a distillation teacher) is refused."""
    from blogroto.engine.layouts import expected_shapes
    from blogroto.engine.network import TransformNet, load_network, save_weights
    from blogroto.errors import FilterError

    net = TransformNet(4, 1, arch="pytorch-examples").ensure_built()
    save_weights(net, tmp_path / "w.npz")
    with pytest.raises(FilterError, match="laid out for network arch pytorch-examples, not blogroto"):
        load_network(tmp_path / "w.npz", 4, 1)
    load_network(tmp_path / "w.npz", 4, 1, arch="pytorch-examples")  # its own arch loads
    assert {k.split("/", 1)[1] for k in expected_shapes(4, 1, "pytorch-examples")} == set(expected_shapes(4, 1))
    tf1 = expected_shapes(4, 1, "johnson-tf1")
    assert tf1["johnson-tf1/u1/kernel"] == (3, 3, 8, 16) and "johnson-tf1/nout/gamma" in tf1
    assert not any(k.endswith("/bias") for k in tf1)


# --------------------------------------------------------------------------------------------
# where the filter goes, and what shows it


def test_import_writes_into_the_site_and_builds_it(tmp_path, small_preview, monkeypatch):
    """Run inside a site, the filter goes into its _filters/ (as `blogroto train`'s do), the last
    line says how to use it, a post using it builds, and the catalog shows where it came from."""
    from blogroto.build import IMAGES_DIR, Builder
    from tests.test_build import jpeg, stylized_names, write

    site = tmp_path / "blog"
    write(site / "_config.yml", "title: Blog\n")
    write(site / "assets/a.jpg", jpeg(1, size=(64, 48)))
    write(site / "_posts/2024-01-01-x.md", "---\ntitle: X\nalgorotoscope: mosaic\n---\n![a](/assets/a.jpg)\n")
    src = write_torch_zip(tmp_path / "mosaic.pth", pytorch_state(4, 1, seed=9))
    art = make_photo(tmp_path / "mosaic.jpg", (48, 40), seed=2, fmt="JPEG")
    monkeypatch.chdir(site / "_posts")
    result = cli("import", src, "--name", "mosaic", "--artwork", art, "--creator", "Unknown", "--no-precision-check")
    assert result.exit_code == 0, result.output
    folder = site / "_filters/mosaic"
    assert (folder / "artwork.jpg").is_file()
    meta = yaml.safe_load((folder / "filter.yaml").read_text())
    assert meta["source"]["title"] == "mosaic" and meta["source"]["creator"] == "Unknown"
    assert result.output.strip().splitlines()[-1].startswith("use it: put `algorotoscope: mosaic`")
    # a second import of the same name is refused without --force
    again = cli("import", src, "--name", "mosaic", "--no-precision-check")
    assert again.exit_code == 1 and "exists already" in again.output
    assert cli("import", src, "--name", "mosaic", "--force", "--no-precision-check").exit_code == 0

    report = Builder(site).build()
    assert report.errors == [] and report.images_stylized == 1
    (name,) = set(stylized_names((site / "_blogroto/site/_posts/2024-01-01-x.md").read_text()))
    with Image.open(site / "_blogroto/site" / IMAGES_DIR / name) as im:
        assert im.size == (64, 48)
    pages = list((site / "_blogroto/site").rglob("mosaic/index.html"))
    assert len(pages) == 1, "the catalog page of the imported filter"
    html = pages[0].read_text()
    assert "Imported from mosaic.pth, a network trained with pytorch/examples fast_neural_style" in html
    assert meta["training"]["imported_from"]["sha256"] in html


def test_filters_command_and_catalog_show_provenance(tmp_path, small_preview):
    from blogroto.build import training_record

    src = write_torch_legacy(tmp_path / "udnie.pth", pytorch_state(4, 1, seed=1))
    out = tmp_path / "lib"
    import_filter(src, out, "udnie", "--title", "Udnie", "--creator", "Francis Picabia", "--year", "1913")
    result = cli("filters", "--filters-dir", out)
    line = next(l for l in result.output.splitlines() if l.startswith("udnie"))
    assert "imported from udnie.pth, a network trained with pytorch/examples fast_neural_style" in line
    assert "“Udnie”, Francis Picabia, 1913" in line
    from blogroto.filters import load_filter

    t = load_filter(out / "udnie").training
    assert training_record.describe_training(t).startswith("Imported from udnie.pth")
    rows = dict(training_record.training_details(t))
    assert rows["Imported file"] == "udnie.pth (torch.save state dict (legacy pickle))"
    assert rows["SHA-256"] == t["imported_from"]["sha256"] and "Imported" in rows


def test_precision_check_records_bfloat16_psnr(tmp_path, small_preview, monkeypatch):
    """--precision-check measures bf16 against float32, as training does (here on one small photo)."""
    photo = make_photo(tmp_path / "content.png", (40, 32), seed=1)
    monkeypatch.setattr("blogroto.datasets.content_images", lambda: [photo])
    src = write_torch_zip(tmp_path / "candy.pth", pytorch_state(4, 1, seed=4))
    result = cli("import", src, "--name", "candy", "--out", tmp_path / "lib", "--precision-check")
    assert result.exit_code == 0, result.output
    meta = yaml.safe_load((tmp_path / "lib/candy/filter.yaml").read_text())
    assert meta["precision"]["bfloat16_psnr_db"] > 20 and meta["precision"]["measured_on"].startswith("1 built-in")


def test_an_imported_filter_can_teach_a_slim_student(tmp_path, small_preview):
    """`train --teacher` loads the teacher in its own layout (was: refused as a foreign layout)."""
    from blogroto.engine.train import train
    from blogroto.filters import load_filter
    from tests.train_helpers import tiny_config

    src = write_torch_zip(tmp_path / "candy.pth", pytorch_state(4, 1, seed=5))
    art = make_photo(tmp_path / "candy.png", (48, 40), seed=9)
    teacher = load_filter(import_filter(src, tmp_path / "filters", "candy", "--title", "Candy", "--artwork", art))
    student = train(tiny_config(tmp_path, name="student", artwork=None, teacher=teacher.folder, preset="distill",
                                source={}, steps=2, size=32, batch=1, width=4, blocks=1, progressive=0.0,
                                preview_every=2), log=lambda m: None)
    assert student.network.arch == "blogroto" and student.training["teacher"]["name"] == "candy"


# --------------------------------------------------------------------------------------------
# hostile .pth files: bounded memory and time, a FilterError naming the file, never a traceback


class _Built:
    """Pickled as REDUCE of `func(*args)` followed by BUILD with `state` (what a pickle may do to
    any object it made, including the reader's own storages and tensors)."""

    def __init__(self, func, args, state):
        self.func, self.args, self.state = func, args, state

    def __reduce_ex__(self, protocol):
        return self.func, self.args, self.state


class _RawTensor:
    """A tensor with whatever offset, size and stride a hostile file declares."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce_ex__(self, protocol):
        return _Global("torch._utils", "_rebuild_tensor_v2"), (self.storage, self.offset, self.size, self.stride,
                                                               False, OrderedDict())


def write_torch_zip_raw(path: Path, obj, storages=(), members=None, compression=zipfile.ZIP_STORED) -> Path:
    """A zip-layout .pth holding `obj` (pickled like torch does) and the given storages' bytes."""
    buffer = io.BytesIO()
    _TorchPickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.array.tobytes())
        for name, data in (members or {}).items():
            archive.writestr(f"archive/{name}", data)
    return path


def _one_storage(n=4):
    return _Storage("0", np.arange(n, dtype=np.float32), legacy=False)


def test_pickle_cannot_set_the_state_of_the_readers_objects(tmp_path):
    from blogroto.errors import FilterError
    from blogroto.torchfile import load

    storage = _one_storage()
    tensor = _Tensor(storage, (4,))
    rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
    cases = {
        "tensor": _Built(rebuild, (storage, 0, (4,), (1,), False, OrderedDict()), {"offset": "x"}),
        "numel": _Built(_Global("torch._utils", "_rebuild_parameter"), (storage,), {"numel": 2 ** 40}),
        "stype": _Built(_Global("torch._utils", "_rebuild_parameter"), (_Global("torch", "FloatStorage"),),
                        {"dtype": None}),
    }
    for name, built in cases.items():
        src = write_torch_zip_raw(tmp_path / f"{name}.pth", OrderedDict([("a", tensor), ("b", built)]), [storage])
        with pytest.raises(FilterError, match=rf"{name}\.pth: .*the pickle sets the state of a"):
            load(src)


def test_hostile_offsets_sizes_and_strides_are_refused(tmp_path):
    from blogroto.errors import FilterError
    from blogroto.torchfile import load

    storage = _one_storage(4)
    cases = {
        "broadcast": (0, (2 ** 50,), (0,)),  # 4 PiB from 16 bytes
        "broadcast2": (0, (2 ** 40, 2 ** 40), (0, 0)),  # the product overflows int64
        "bigstride": (0, (1, 2), (2 ** 70, 1)),
        "hugestride": (0, (2, 1), (2 ** 61, 1)),
        "negative": (0, (4,), (-1,)),
        "inf": (float("inf"), (4,), (1,)),
        "bigoffset": (2 ** 80, (1,), (1,)),
        "stroffset": ("x", (4,), (1,)),
        "floatsize": (0, (4.0,), (1,)),
        "beyond": (2, (4,), (1,)),
    }
    for name, (offset, size, stride) in cases.items():
        src = write_torch_zip_raw(tmp_path / f"{name}.pth",
                                  OrderedDict([("w", _RawTensor(storage, offset, size, stride))]), [storage])
        with pytest.raises(FilterError, match=rf"{name}\.pth: "):
            load(src)


def test_shared_and_nested_references_are_bounded(tmp_path, monkeypatch):
    from blogroto import torchfile
    from blogroto.errors import FilterError

    storage = _one_storage(1000)
    tensor = _Tensor(storage, (1000,))
    shared = OrderedDict((f"k{i}", tensor) for i in range(1000))
    got = torchfile.load(write_torch_zip_raw(tmp_path / "shared.pth", shared, [storage]))
    assert len(got) == 1000 and got["k0"] is got["k999"]  # converted once, not 1000 copies

    nested = [tensor]
    for _ in range(64):  # 2**64 paths to one tensor
        nested = [nested, nested]
    src = write_torch_zip_raw(tmp_path / "nested.pth", OrderedDict([("w", nested)]), [storage])
    with pytest.raises(FilterError, match=r"nested\.pth: not a state dict of tensors: w is a list"):
        torchfile.load(src)
    src = write_torch_zip_raw(tmp_path / "deep.pth", OrderedDict([("state_dict", OrderedDict([("a", {"b": tensor})]))]),
                              [storage])
    with pytest.raises(FilterError, match=r"deep\.pth: not a state dict of tensors: state_dict\.a is a dict"):
        torchfile.load(src)
    wrapped = torchfile.load(write_torch_zip_raw(tmp_path / "wrapped.pth", OrderedDict(
        [("epoch", 3), ("optimizer", [nested]), ("state_dict", OrderedDict([("a", tensor)]))]), [storage]))
    assert list(wrapped) == ["state_dict"] and wrapped["state_dict"]["a"].shape == (1000,)

    many = OrderedDict((f"k{i}", _Tensor(storage, (1000,))) for i in range(5))  # distinct views, one storage
    src = write_torch_zip_raw(tmp_path / "views.pth", many, [storage])
    monkeypatch.setattr(torchfile, "MAX_TOTAL", 10_000)
    with pytest.raises(FilterError, match=r"views\.pth: refused: the tensors add up to more than 10000 bytes"):
        torchfile.load(src)


def test_zip_members_are_read_within_limits(tmp_path, monkeypatch):
    from blogroto import torchfile
    from blogroto.errors import FilterError

    storage = _one_storage(1000)
    sd = OrderedDict([("a", _Tensor(storage, (1000,)))])
    src = write_torch_zip_raw(tmp_path / "order.pth", sd, [storage], {"byteorder": "little" + " " * 100})
    with pytest.raises(FilterError, match=r"order\.pth: refused: archive/byteorder declares 106 bytes"):
        torchfile.load(src)
    src = write_torch_zip_raw(tmp_path / "big.pth", sd, [storage], compression=zipfile.ZIP_DEFLATED)
    monkeypatch.setattr(torchfile, "MAX_TOTAL", 3999)
    with pytest.raises(FilterError, match=r"big\.pth: refused: its storages add up to more than 3999 bytes"):
        torchfile.load(src)
    monkeypatch.setattr(torchfile, "MAX_PICKLE", 64)
    with pytest.raises(FilterError, match=r"big\.pth: refused: archive/data\.pkl declares \d+ bytes \(at most 64\)"):
        torchfile.load(src)


def test_broken_zip_members_are_clear_errors(tmp_path):
    from blogroto.errors import FilterError
    from blogroto.torchfile import load

    storage = _one_storage(1000)
    good = write_torch_zip_raw(tmp_path / "good.pth", OrderedDict([("a", _Tensor(storage, (1000,)))]), [storage],
                               compression=zipfile.ZIP_DEFLATED)
    data = good.read_bytes()
    with zipfile.ZipFile(good) as archive:
        info = archive.getinfo("archive/data.pkl")
    central = data.index(b"PK\x01\x02")  # data.pkl's central directory entry comes first
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)

    def patched(name, at, value):
        out = bytearray(data)
        out[at : at + len(value)] = value
        (tmp_path / name).write_bytes(bytes(out))
        return tmp_path / name

    cases = {
        "method.pth": patched("method.pth", central + 10, struct.pack("<H", 99)),  # unsupported compression
        "crypt.pth": patched("crypt.pth", central + 8, struct.pack("<H", 1)),  # encrypted
        "zlib.pth": patched("zlib.pth", start, b"\xff" * 8),  # a corrupt deflate stream
    }
    for name, src in cases.items():
        with pytest.raises(FilterError, match=rf"{name.replace('.', chr(92) + '.')}: corrupt or unsupported"):
            load(src)


def test_names_from_the_file_are_escaped_in_errors(tmp_path):
    from blogroto.errors import FilterError
    from blogroto.torchfile import load

    module = "evil\x1b[2J\u202e" + "A" * 500
    data = b"\x80\x02c" + module.encode() + b"\nname\n)\x81."
    with zipfile.ZipFile(tmp_path / "esc.pth", "w") as archive:
        archive.writestr("esc/data.pkl", data)
    with pytest.raises(FilterError) as info:
        load(tmp_path / "esc.pth")
    message = str(info.value)
    assert "esc.pth: refused: the pickle names evil\\x1b[2J\\u202eAAA" in message
    assert "\x1b" not in message and "\u202e" not in message and "A" * 100 not in message


# --------------------------------------------------------------------------------------------
# hostile TensorFlow checkpoints


def test_truncated_checkpoint_data_is_a_clear_error(tmp_path):
    from blogroto.errors import FilterError
    from blogroto.importing import read_network

    write_fst_checkpoint(tmp_path / "cut/fns.ckpt", fst_values(4, 1))
    data = next((tmp_path / "cut").glob("fns.ckpt.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(FilterError, match=r"fns\.ckpt\.index: cannot read Variable_\d+ from the checkpoint"):
        read_network(tmp_path / "cut")


def test_checkpoint_types_and_sizes_are_checked_before_reading(tmp_path, monkeypatch):
    import tensorflow as tf

    from blogroto.errors import FilterError
    from blogroto.importing import read_network

    values = fst_values(4, 1)
    values[1] = values[1].astype(np.float64)  # conv1's shift
    write_fst_checkpoint(tmp_path / "f64/fns.ckpt", values)
    with pytest.raises(FilterError, match=r"fns\.ckpt\.index: Variable_1 is float64, not float32"):
        read_network(tmp_path / "f64")

    # an index may declare any shape: width 2**31 is refused before a tensor is read (or allocated)
    write_fst_checkpoint(tmp_path / "wide/fns.ckpt", fst_values(4, 1))
    w, n = 2 ** 31, 24

    class Reader:
        def get_variable_to_shape_map(self):
            kernels = [(9, 9, 3, w), (3, 3, w, 2 * w), (3, 3, 2 * w, 4 * w), (3, 3, 4 * w, 4 * w), (3, 3, 4 * w, 4 * w),
                       (3, 3, 2 * w, 4 * w), (3, 3, w, 2 * w), (9, 9, w, 3)]
            shapes = {}
            for i, kernel in enumerate(kernels):
                cout = kernel[2] if i in (5, 6) else kernel[3]
                for slot, shape in enumerate((kernel, (cout,), (cout,))):
                    shapes[f"Variable_{3 * i + slot}" if 3 * i + slot else "Variable"] = list(shape)
            assert len(shapes) == n
            return shapes

        def get_variable_to_dtype_map(self):
            return {name: tf.float32 for name in self.get_variable_to_shape_map()}

        def get_tensor(self, name):
            raise AssertionError("read before the sizes were checked")

    monkeypatch.setattr(tf.train, "load_checkpoint", lambda prefix: Reader())
    with pytest.raises(FilterError, match=r"fns\.ckpt\.index: a network of width 2147483648"):
        read_network(tmp_path / "wide")


# --------------------------------------------------------------------------------------------
# hostile ONNX graphs


def _onnx_variant(tmp_path, name, change, opset=9):
    """The exported network (width 4, 1 block), changed by `change(model)`, saved as `name`."""
    import onnx

    src = write_onnx(tmp_path / f"base-{opset}.onnx", pytorch_state(4, 1, seed=0), 1, opset)
    model = onnx.load(str(src))
    change(model)
    onnx.save(model, str(tmp_path / name))
    return tmp_path / name


def test_onnx_identity_cycle_is_refused(tmp_path):
    pytest.importorskip("onnx")
    from onnx import helper

    from blogroto.errors import FilterError
    from blogroto.importing import read_network

    def cycle(model):
        model.graph.node.extend([helper.make_node("Identity", ["cyc_b"], ["cyc_a"]),
                                 helper.make_node("Identity", ["cyc_a"], ["cyc_b"]),
                                 helper.make_node("Relu", ["cyc_a"], ["cyc_out"])])

    with pytest.raises(FilterError, match=r"cycle\.onnx: malformed ONNX graph: Identity nodes form a cycle"):
        read_network(_onnx_variant(tmp_path, "cycle.onnx", cycle))


def test_onnx_constant_evaluation_is_bounded(tmp_path):
    pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from blogroto.errors import FilterError
    from blogroto.importing import read_network

    def scales_from(build):
        def change(model):
            upsample = next(n for n in model.graph.node if n.op_type == "Upsample")
            upsample.input[1] = build(model)
        return change

    def doubling(model):  # Add(x, x) 60 deep: 2**60 evaluations without a memo
        model.graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "k0"))
        for i in range(60):
            model.graph.node.append(helper.make_node("Add", [f"k{i}", f"k{i}"], [f"k{i + 1}"]))
        return "k60"

    def broadcast(model):  # 400 million elements from two stored vectors
        model.graph.initializer.extend([numpy_helper.from_array(np.ones((1, 20000), np.float32), "row"),
                                        numpy_helper.from_array(np.ones((20000, 1), np.float32), "col")])
        model.graph.node.append(helper.make_node("Mul", ["row", "col"], ["big"]))
        return "big"

    def bad_cast(model):
        model.graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "k0"))
        model.graph.node.append(helper.make_node("Cast", ["k0"], ["cast"], to=12345))
        return "cast"

    def concat(model):  # small inputs, a large result
        model.graph.initializer.append(numpy_helper.from_array(np.ones(16, np.float32), "k16"))
        model.graph.node.append(helper.make_node("Concat", ["k16", "k16"], ["cat"], axis=0))
        return "cat"

    with pytest.raises(FilterError, match=r"doubling\.onnx: .*does not scale by exactly 2"):
        read_network(_onnx_variant(tmp_path, "doubling.onnx", scales_from(doubling)))
    for name, build in (("broadcast", broadcast), ("cast", bad_cast), ("concat", concat)):
        with pytest.raises(FilterError, match=rf"{name}\.onnx: .*the scale of Upsample node .* is computed in the graph"):
            read_network(_onnx_variant(tmp_path, f"{name}.onnx", scales_from(build)))


def test_malformed_onnx_nodes_are_clear_errors(tmp_path):
    pytest.importorskip("onnx")
    from onnx import helper

    from blogroto.errors import FilterError
    from blogroto.importing import read_network

    def first(model, op):
        return next(n for n in model.graph.node if n.op_type == op)

    def set_attr(node, name, value):
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(kept + ([helper.make_attribute(name, value)] if value is not None else []))

    def no_pads(model):  # Pad with one input and no pads attribute
        set_attr(first(model, "Pad"), "pads", None)

    def bad_dims(model):  # dims that do not match the data
        model.graph.initializer[0].dims[0] += 1

    def bad_utf8(model):
        for a in first(model, "Pad").attribute:
            if a.name == "mode":
                a.s = b"\xff\xfe"

    def int_strides(model):
        set_attr(first(model, "Conv"), "strides", 1)

    for name, change in (("nopads", no_pads), ("dims", bad_dims), ("utf8", bad_utf8), ("strides", int_strides)):
        with pytest.raises(FilterError, match=rf"{name}\.onnx: malformed ONNX graph: "):
            read_network(_onnx_variant(tmp_path, f"{name}.onnx", change))


def test_pickle_cannot_set_attributes_of_the_readers_functions(tmp_path):
    from blogroto import torchfile
    from blogroto.errors import FilterError

    storage = _one_storage()
    # GLOBAL torch._utils._rebuild_parameter, then BUILD (None, {"__defaults__": (1,)}): setattr on the function
    built = _Built(_Global("torch._utils", "_rebuild_parameter"), (_Global("torch._utils", "_rebuild_parameter"),),
                   (None, {"__defaults__": (1,)}))
    src = write_torch_zip_raw(tmp_path / "func.pth", OrderedDict([("a", _Tensor(storage, (4,))), ("f", built)]),
                              [storage])
    with pytest.raises(FilterError, match=r"func\.pth: .*the pickle sets the state of a Callable"):
        torchfile.load(src)
    assert torchfile._rebuild_parameter.__defaults__ is None
