"""The image transformation network (Johnson et al. 2016) in Keras 3.

9x9 conv, two stride-2 downsamples, residual blocks, two resize-convolution upsamples (nearest x2
then conv, which avoids the checkerboard artifacts of transposed convolutions), 9x9 conv, with
reflection padding and instance normalisation throughout.

Instance normalisation normally uses the statistics of the tensor it sees. To stylize a large
photo in tiles without seams, every tile must be normalised with the statistics of the *whole*
image: `TransformNet.run` can therefore return the statistics it used and accept given ones.

Weights are saved as a plain `.npz` (numpy, no pickles) keyed by stable layer names, so loading a
filter never runs code from the filter folder.

Besides blogroto's own layout, the network can be wired like the Johnson-style networks of other
tools, so that a filter imported from them (`blogroto import`, blogroto/importing/) computes what
the original computes, not an approximation: see `layouts.ARCH_SPECS`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blogroto.engine.layouts import EPSILON, arch_of_weights, arch_spec, expected_shapes
from blogroto.engine.runtime import fused_norm, import_keras, to_numpy
from blogroto.engine.weights_file import read_weights, shape_mismatch
from blogroto.errors import FilterError

keras = import_keras()
ops = keras.ops

# Where the network normalises by variance (see InstanceNorm): "instance" everywhere (Johnson et
# al.; every filter trained before recipe 2); "centered-decoder": full instance norm in the
# encoder (c1, d1, d2: the photo's contrast does not matter), centering only in the residual trunk
# and the decoder, where the picture is painted; "capped-decoder": the same, but a trunk or decoder
# channel whose variance exceeds 1 is scaled back to 1 (recipe 3: with centering only, nothing
# bounds the activations, and on dark artworks training blew them up to ~1e9 and saturated the
# output: flat colour, then black).
from blogroto.filters import DEFAULT_ARCH, NORMS  # noqa: E402  (beside the filter format, which records it)

NORM_MODES = ("normalise", "centre", "cap")


def norm_divisor(mode: str, var, epsilon: float):
    """(d, e) such that an InstanceNorm in `mode` computes gamma * (x - mean) / sqrt(d + e) + beta:
    normalise (var, epsilon); cap (max(var, 1), 0); centre (1, 0)."""
    if mode == "normalise":
        return var, epsilon
    if mode == "cap":
        return ops.maximum(var, 1.0), 0.0
    return ops.ones_like(var), 0.0


class InstanceNorm(keras.layers.Layer):
    """Instance normalisation with learned scale/offset; statistics in float32 for stability.

    mode "normalise": zero mean, unit variance per channel over the image. "centre" subtracts the
    mean only: the channel keeps the variance its conv gives it. Full instance norm forces every
    channel to unit variance, so a network that wants a channel flat over most of a picture (the
    flat colour fields of a print) can only get there by spending the variance on a small spike,
    which the output shows as a blown white or black blob (the "droplet" of StyleGAN2, Karras et
    al. 2020, section 2). Centering cannot be gamed that way, but it does not bound the scale
    either; "cap" centres and divides by max(std, 1): flat channels pass as they are, loud ones
    cannot grow without bound."""

    def __init__(self, mode: str = "normalise", epsilon: float = EPSILON, fused=None, **kwargs):
        if mode not in NORM_MODES:
            raise ValueError(f"unknown InstanceNorm mode {mode!r}")
        self.fused = fused  # a runtime.FusedNorm for inference on TensorFlow, else None
        # No autocast: under mixed precision Keras would round given float32 statistics (the
        # tiled executor's whole-image ones) to bfloat16/float16 before `call` sees them.
        super().__init__(autocast=False, **kwargs)
        self.mode = mode
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        # autocast=False: under mixed precision the scale/offset stay float32, like the statistics
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones", autocast=False)
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros", autocast=False)

    def call(self, x, stats=None):
        if self.fused is not None and x.shape[0] == 1:
            return self._fused_call(x, stats)
        x32 = ops.cast(x, "float32")
        if stats is None:
            # E[x^2] - E[x]^2: both reductions read x once (tf.nn.moments reads it twice and writes a
            # squared-difference tensor): 10% faster for the whole network, 74 dB from the two-pass
            # form ("norm-moments" in benchmarks/results/apply.md).
            mean = ops.mean(x32, axis=(1, 2), keepdims=True)
            var = ops.maximum(ops.mean(ops.square(x32), axis=(1, 2), keepdims=True) - ops.square(mean), 0.0)
        else:
            mean, var = stats
        # folded into one multiply-add per element
        divisor, epsilon = norm_divisor(self.mode, var, self.epsilon)
        scale = self.gamma * ops.rsqrt(divisor + epsilon)
        y = x32 * scale + (self.beta - mean * scale)
        return ops.cast(y, x.dtype), (mean, var)

    def _fused_call(self, x, stats):
        """`call` on one image through the fused kernel: every mode is a batch norm with the
        variance and epsilon of `norm_divisor`."""
        kernel, channels = self.fused, x.shape[-1]
        gamma, beta = ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32")
        if stats is None and self.mode == "normalise":
            y, mean, var = kernel.normalise(x, gamma, beta, self.epsilon)
        else:
            mean, var = kernel.moments(x) if stats is None else (ops.reshape(s, (channels,)) for s in stats)
            y = kernel.apply(x, gamma, beta, mean, *norm_divisor(self.mode, var, self.epsilon))
        return y, (ops.reshape(mean, (1, 1, 1, channels)), ops.reshape(var, (1, 1, 1, channels)))


class TransposeConv(keras.layers.Layer):
    """A transposed convolution with TF's SAME padding and no bias: fast-style-transfer's upsampling
    (`_conv_tranpose_layer`), output `stride` times the input's size. The kernel is stored as
    TensorFlow stores it, [k, k, out_channels, in_channels]."""

    transposed = True  # for the tiled executor's receptive reach (blogroto.engine.tiling._reach)

    def __init__(self, filters: int, kernel_size: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = (int(kernel_size),) * 2
        self.strides = (int(stride),) * 2

    def build(self, input_shape):
        k = self.kernel_size[0]
        self.kernel = self.add_weight(name="kernel", shape=(k, k, self.filters, int(input_shape[-1])),
                                      initializer="glorot_uniform")

    def call(self, x):
        # keras.ops.conv_transpose pads as TensorFlow's SAME on every backend: output = stride x input
        return ops.conv_transpose(x, ops.cast(self.kernel, x.dtype), self.strides, padding="same")


def _reflect(x, pad):
    return ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")


def _taps(kernel, axis: int):
    """A 3-tap kernel along `axis` seen from the low-res grid after nearest x2 upsampling: output
    phase 0 reads low-res pixels (i-1, i) with taps (k0, k1+k2), phase 1 reads (i, i+1) with
    (k0+k1, k2). Returns the two 2-tap kernels."""
    k0, k1, k2 = ops.split(kernel, 3, axis=axis)
    return ops.concatenate([k0, k1 + k2], axis=axis), ops.concatenate([k0 + k1, k2], axis=axis)


def upsample_conv(conv, h):
    """conv(reflect_pad_1(nearest_x2(h))) for a 3x3 `conv`, computed exactly at low resolution.

    Reflect-padding the upsampled image by 1 equals symmetric padding of h by 1, and each of the
    four output phases (2i+a, 2j+b) is a 2x2 conv of that: 16 instead of 36 multiply-adds per
    low-res pixel and channel pair, and no 4x-sized upsampled tensor (only 3% faster for the whole
    network on an AVX-512 CPU: "up-repeat" in benchmarks/results/apply.md)."""
    if not conv.built:
        conv.build(h.shape)
    kernel = ops.cast(conv.kernel, h.dtype)
    padded = ops.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")
    batch, rows, cols, _ = ops.shape(h)
    phases = []
    for a, k_a in enumerate(_taps(kernel, 0)):
        row = [ops.conv(padded[:, a : a + rows + 1, b : b + cols + 1], k_ab, 1, "valid")
               for b, k_ab in enumerate(_taps(k_a, 1))]
        phases.append(ops.stack(row, axis=3))  # N, H, W, b, C
    # phase (a, b) goes to output pixel (2i+a, 2j+b): N, H, a, W, b, C -> N, 2H, 2W, C
    y = ops.stack(phases, axis=2)
    # the batch size as a number where it is known (not -1): the fused norm needs to see batch 1
    y = ops.reshape(y, (batch, 2 * rows, 2 * cols, ops.shape(y)[-1]))
    return y + ops.cast(conv.bias, h.dtype)


def _phase_taps(k: int) -> np.ndarray:
    """S[t, a, i, u] = 1 where tap u of a k-tap kernel, seen from output phase a of a 2x2-block
    grid, reads block offset t, input phase i (see `reflect_conv_by_phases`)."""
    taps = np.zeros((k // 2 + 1, 2, 2, k), np.float32)
    for a in (0, 1):
        for u in range(k):
            taps[(a + u) // 2, a, (a + u) % 2, u] = 1.0
    return taps


def by_phases(conv, h) -> bool:
    """Whether `reflect_conv_by_phases` computes this reflect-padded conv: a stride-1 conv with a
    9x9 or larger kernel and fewer output than input channels (the output layer, 16 -> 3). The
    input layer (3 -> 16) on blocks made the network no faster (benchmarks/results/apply.md:
    "conv9-direct" and "conv9-input-blocks"), so it stays a plain conv."""
    if conv.kernel_size[0] < 9 or conv.strides[0] != 1:
        return False
    if not conv.built:
        conv.build(h.shape)
    return conv.filters < conv.kernel.shape[2]  # the kernel's, not h's: a traced step may not know h's channels


def reflect_conv_by_phases(conv, h):
    """conv(reflect_pad(h, k // 2)) for a stride-1 conv with a large odd kernel k, computed on 2x2
    blocks of pixels (space to depth): a (k//2+1)^2 conv from 4x the input channels to 4x the
    output channels at half resolution, then back to full size. More multiply-adds (25 x 64 x 12
    for 81 x 16 x 3 per 4 pixels), but channel counts a CPU's vector units fill ("conv9-direct" in
    benchmarks/results/apply.md). h's height and width must be even (the network's are multiples of 4)."""
    k = conv.kernel_size[0]
    if not conv.built:
        conv.build(h.shape)
    x = _reflect(h, k // 2)
    batch, rows, cols, c = ops.shape(x)  # batch: a number where known, as in upsample_conv
    x = ops.reshape(ops.transpose(ops.reshape(x, (batch, rows // 2, 2, cols // 2, 2, c)), (0, 1, 3, 2, 4, 5)),
                    (batch, rows // 2, cols // 2, 4 * c))
    taps = ops.convert_to_tensor(_phase_taps(k))
    kernel = ops.cast(conv.kernel, "float32")
    c_out = kernel.shape[-1]
    # kernel[t, s, (i, j, c), (a, b, d)]: block offset (t, s), input phase (i, j), output phase (a, b)
    kernel = ops.einsum("taiu,sbjv,uvcd->tsijcabd", taps, taps, kernel)
    kernel = ops.cast(ops.reshape(kernel, (k // 2 + 1, k // 2 + 1, 4 * c, 4 * c_out)), h.dtype)
    y = ops.conv(x, kernel, 1, "valid") + ops.cast(ops.tile(conv.bias, [4]), h.dtype)
    _, rows, cols, _ = ops.shape(y)
    y = ops.transpose(ops.reshape(y, (batch, rows, cols, 2, 2, c_out)), (0, 1, 3, 2, 4, 5))
    return ops.reshape(y, (batch, 2 * rows, 2 * cols, c_out))


class TransformNet(keras.Model):
    """Johnson-style feed-forward stylization network. `width` is the first layer's channel count
    (then 2x and 4x); `blocks` the number of residual blocks; `arch` the layout (`ARCH_SPECS`).
    Input and output: RGB in [0, 1]."""

    def __init__(self, width: int = 32, blocks: int = 5, dtype_policy: str = "float32", norm: str = "instance",
                 arch: str = DEFAULT_ARCH, inference: bool = False, **kwargs):
        super().__init__(name="transform_net", **kwargs)
        if norm not in NORMS:
            raise FilterError(f"unknown network norm {norm!r}; known: {', '.join(NORMS)}")
        spec = arch_spec(arch)
        if arch != DEFAULT_ARCH and norm != "instance":
            raise FilterError(f"network arch {arch} has instance norm only, not {norm!r}")
        self.width = int(width)
        self.blocks = int(blocks)
        self.norm = norm
        self.arch = arch
        self.spec = spec
        policy = keras.DTypePolicy(dtype_policy)
        w = self.width

        if arch == DEFAULT_ARCH:
            def conv(name, filters, kernel, stride=1):
                return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", name=name, dtype=policy)
        else:
            padding = "valid" if spec.padding == "reflect" else "same"  # reflection is padded in `_chain`

            def conv(name, filters, kernel, stride=1):
                return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=spec.bias,
                                           name=name, dtype=policy)

        def up_conv(name, filters):
            if spec.upsample == "transpose":
                return TransposeConv(filters, 3, 2, name=name, dtype=policy)
            return conv(name, filters, 3)

        painting_mode = {"instance": "normalise", "centered-decoder": "centre", "capped-decoder": "cap"}[norm]
        # a network only applied (never trained) normalises through the backend's fused kernel, if any
        fused = fused_norm() if inference else None

        def norm(name, encoder=False):
            if arch != DEFAULT_ARCH:
                # not the output's norm: TensorFlow's graph optimiser fuses a batch norm with the tanh
                # after it, and its oneDNN kernel refuses that pair ("Fusion is not implemented")
                return InstanceNorm(mode="normalise", epsilon=spec.epsilon, fused=None if name == "nout" else fused,
                                    name=name, dtype=policy)
            return InstanceNorm(mode="normalise" if encoder else painting_mode, fused=fused, name=name, dtype=policy)

        # (name, conv, norm, kernel, upsample-before) for the layers outside the residual trunk
        self.c1, self.n1 = conv("c1", w, 9), norm("n1", encoder=True)
        self.d1, self.nd1 = conv("d1", 2 * w, 3, 2), norm("nd1", encoder=True)
        self.d2, self.nd2 = conv("d2", 4 * w, 3, 2), norm("nd2", encoder=True)
        self.res = []
        for i in range(self.blocks):
            self.res.append((conv(f"r{i}a", 4 * w, 3), norm(f"r{i}an"), conv(f"r{i}b", 4 * w, 3), norm(f"r{i}bn")))
        self.u1, self.nu1 = up_conv("u1", 2 * w), norm("nu1")
        self.u2, self.nu2 = up_conv("u2", w), norm("nu2")
        self.out = conv("out", 3, 9)
        self.nout = norm("nout") if spec.out_norm else None  # fast-style-transfer normalises its output layer too
        self.compute_dtype_name = policy.compute_dtype

    @property
    def norm_count(self) -> int:
        return 5 + 2 * self.blocks + (self.nout is not None)

    @property
    def up_norm_count(self) -> int:
        """Norms in the up path (u1, u2, and out where the arch normalises it)."""
        return 2 + (self.nout is not None)

    def norm_channels(self) -> list[int]:
        w = self.width
        return [w, 2 * w, 4 * w] + [4 * w] * (2 * self.blocks) + [2 * w, w] + ([3] if self.nout is not None else [])

    # The network as three chains of units (conv, norm or None, upsample before, relu after); a
    # residual block is a two-unit chain whose output is added to its input. `run` and the tiled
    # executor in stylize.py both go through these, so there is one definition of the architecture.
    def front_units(self):
        return [(self.c1, self.n1, False, True), (self.d1, self.nd1, False, True), (self.d2, self.nd2, False, True)]

    def block_units(self, i: int):
        conv_a, norm_a, conv_b, norm_b = self.res[i]
        return [(conv_a, norm_a, False, True), (conv_b, norm_b, False, False)]

    def up_units(self):
        # a transposed convolution upsamples by itself: its unit has no separate upsampling
        nearest = self.spec.upsample == "nearest"
        return [(self.u1, self.nu1, nearest, True), (self.u2, self.nu2, nearest, True), (self.out, self.nout, False, False)]

    def _chain(self, h, units, stats, used):
        """Run `units` on h, normalising unit k with stats[k] (None: h's own statistics).

        Stops at the pre-norm output of unit len(stats) when there are fewer entries than norms:
        that is what a statistics pass over tiles needs to measure."""
        reflect = self.spec.padding == "reflect"
        for k, (conv, norm, upsample, relu) in enumerate(units):
            if upsample:
                h = upsample_conv(conv, h)  # nearest-neighbour x2, then the conv
            elif reflect and by_phases(conv, h):
                h = reflect_conv_by_phases(conv, h)
            elif reflect:
                h = conv(_reflect(h, conv.kernel_size[0] // 2))
            else:
                h = conv(h)  # SAME zero padding (or a transposed conv), inside the layer
            if norm is None or k == len(stats):
                return h
            h, st = norm(h, stats=stats[k])
            used.append(st)
            if relu:
                h = ops.relu(h)
        return h

    def front(self, x, stats, used=None):
        """Full resolution -> 1/4 resolution (c1, d1, d2); see `_chain` for `stats`."""
        if self.spec.input_scale != 1.0:  # a network that works on 0..255 pixels
            x = ops.cast(x, "float32") * self.spec.input_scale
        return self._chain(ops.cast(x, self.compute_dtype_name), self.front_units(), stats, [] if used is None else used)

    def block(self, i: int, h, stats, used=None):
        """Residual block i at 1/4 resolution: h + norm_b(conv_b(relu(norm_a(conv_a(h))))) given
        both statistics, else the pre-norm output of conv a (no stats) or conv b (stats of a)."""
        h = ops.cast(h, self.compute_dtype_name)
        r = self._chain(h, self.block_units(i), stats, [] if used is None else used)
        return h + r if len(stats) == 2 else r

    def up(self, h, stats, used=None, logits=False):
        """1/4 resolution -> the image in [0, 1] (u1, u2, out) given all its statistics
        (`up_norm_count`), else the pre-norm output of u1 (no stats), u2 (stats of nu1) or, where
        the arch normalises it, out (stats of nu1 and nu2). `logits`: the last layer's output
        before `to_image` instead of the image."""
        y = self._chain(ops.cast(h, self.compute_dtype_name), self.up_units(), stats, [] if used is None else used)
        return self.to_image(y) if len(stats) == self.up_norm_count and not logits else y

    def to_image(self, y):
        """The last layer's output as an image in [0, 1], as the arch maps it."""
        y = ops.cast(y, "float32")
        output = self.spec.output
        if output == "tanh":
            return (ops.tanh(y) + 1.0) * 0.5
        if output == "tanh150":  # fast-style-transfer: tanh(y) * 150 + 255/2, pixels clipped to 0..255
            return ops.clip((ops.tanh(y) * 150.0 + 127.5) / 255.0, 0.0, 1.0)
        return ops.clip(y / 255.0, 0.0, 1.0)  # pytorch/examples: the conv's output is the 0..255 image

    def run(self, x, stats=None, logits=False):
        """Stylize `x` (N,H,W,3 in [0,1]; H and W multiples of 4). Returns (y, stats_used); with
        `logits`, y is the last layer's output before `to_image` (training penalises its extremes).

        With `stats` (a list of (mean, var) per norm layer) those statistics are used instead of
        the tensor's own: that is how tiles of one photo share the whole photo's statistics."""
        stats = list(stats) if stats is not None else [None] * self.norm_count
        used = []
        h = self.front(x, stats[0:3], used)
        for i in range(self.blocks):
            h = self.block(i, h, stats[3 + 2 * i : 5 + 2 * i], used)
        return self.up(h, stats[3 + 2 * self.blocks :], used, logits=logits), used

    def call(self, x):
        return self.run(x)[0]

    def ensure_built(self):
        if not self.built or not self.weights:
            self(ops.zeros((1, 16, 16, 3)))
        return self

    def named_layers(self):
        layers = [self.c1, self.n1, self.d1, self.nd1, self.d2, self.nd2]
        for block in self.res:
            layers.extend(block)
        layers += [self.u1, self.nu1, self.u2, self.nu2, self.out]
        return layers + ([self.nout] if self.nout is not None else [])

    # Weight I/O: a flat {"layer/variable": array} mapping, stable across processes (names behind
    # the arch's prefix, e.g. "johnson-tf1/c1/kernel", for the imported layouts).
    def weight_dict(self) -> dict[str, np.ndarray]:
        self.ensure_built()
        out = {}
        for layer in self.named_layers():
            for var in layer.weights:
                out[f"{self.spec.prefix}{layer.name}/{var.name}"] = np.array(to_numpy(var.value), dtype=np.float32)
        return out

    def set_weight_dict(self, weights: dict[str, np.ndarray], source: str | Path = "weights") -> None:
        self.ensure_built()
        expected = {}
        for layer in self.named_layers():
            for var in layer.weights:
                expected[f"{self.spec.prefix}{layer.name}/{var.name}"] = var
        missing = sorted(set(expected) - set(weights))
        extra = sorted(set(weights) - set(expected))
        if missing or extra:
            raise FilterError(
                f"weights do not match the network (width {self.width}, {self.blocks} blocks): "
                f"missing {missing[:3]}{'…' if len(missing) > 3 else ''}, unexpected {extra[:3]}{'…' if len(extra) > 3 else ''}",
                source,
            )
        for key, var in expected.items():
            value = weights[key]
            if tuple(value.shape) != tuple(var.shape):
                raise FilterError(f"weight {key} has shape {tuple(value.shape)}, expected {tuple(var.shape)}", source)
            if not np.all(np.isfinite(value)):
                raise FilterError(f"weight {key} contains NaN or infinite values", source)
            var.assign(value.astype(np.float32))


def save_weights(net: TransformNet, path: str | Path) -> None:
    """Write the weights as an uncompressed .npz, atomically (deterministic bytes for equal weights)."""
    import io

    from blogroto.fsutil import atomic_write_bytes

    buffer = io.BytesIO()
    weights = net.weight_dict()
    np.savez(buffer, **{k: weights[k] for k in sorted(weights)})
    atomic_write_bytes(path, buffer.getvalue())


def load_network(path: str | Path, width: int, blocks: int, dtype_policy: str = "float32", norm: str = "instance",
                 arch: str = DEFAULT_ARCH, inference: bool = False) -> TransformNet:
    described = f"width {width}, {blocks} blocks" + (f", arch {arch}" if arch != DEFAULT_ARCH else "")
    want = expected_shapes(width, blocks, arch)
    try:  # shapes checked from the .npy headers, before anything is decompressed
        weights = read_weights(path, want)
    except FilterError as exc:
        if exc.message.startswith("weights do not match the network: "):
            other = arch_of_weights(path)
            if other is not None and other != arch:  # e.g. an imported filter's weights read as blogroto's own
                raise FilterError(f"these weights are laid out for network arch {other}, not {arch} "
                                  f"(network.arch in filter.yaml)", path) from exc
            raise FilterError(exc.message.replace("the network: ", f"the network ({described}): ", 1),
                              path) from exc
        raise
    # Check the shapes before building: a hostile filter.yaml (width 256, 256 blocks) with a tiny
    # weights file must not make Keras allocate a 19 GB network first.
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    if shapes != want:
        raise FilterError(f"weights do not match the network ({described}): {shape_mismatch(shapes, want)}", path)
    net = TransformNet(width=width, blocks=blocks, dtype_policy=dtype_policy, norm=norm, arch=arch,
                       inference=inference).ensure_built()
    net.set_weight_dict(weights, source=path)
    return net
