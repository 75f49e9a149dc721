"""Running a network on a photo of any size: whole, or in tiles with exact whole-image statistics.

Photos up to `tile_pixels` go through the network in one piece. Larger ones are stylized in
overlapping tiles so memory stays bounded (a 24 MP photo within ~1.5 GB, see
benchmarks/results/memory_24mp.md), and every instance norm still uses the statistics of the
*whole* photo, exactly (up to float rounding), so tiles cannot disagree in colour. Statistics
exist only after the whole tensor before a norm has been seen, so the executor makes passes:

  front (full res -> 1/4): one pass per norm accumulates sum and sum of squares (float64) of the
      pre-norm activations over the tiles' cores, then a pass writes the normalised 1/4-res
      features into a buffer (the only full-size intermediate: 1/16 of the pixels x 4*width);
  trunk: per residual block a pass for each norm's statistics, then a pass that updates the
      buffer in place (h + block(h));
  up: a pass for each norm's statistics, then the final pass writes blended output tiles.

A tile's context (halo) is the receptive reach of its stage, computed from the layers' kernels,
strides and upsamplings, so every output pixel of a core sees exactly what it sees untiled;
tiles touching the photo's border reflect the same pixels as the untiled run. Tile origins at
full resolution are multiples of 4 so the stride-2 grids line up with the whole image's.

Strength and keep-colours are per-pixel operations and run tile by tile too.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from blogroto.engine.runtime import (
    backend_name,
    compile_function,
    import_keras,
    tensorflow_if_backend,
    to_numpy,
)
from blogroto.filters import Filter

MIN_SIDE = 16  # reflection padding inside the network needs a few pixels at the 1/4-scale bottleneck


def padded_size(h: int, w: int) -> tuple[int, int, str]:
    """The photo is padded bottom/right to multiples of 4 (two stride-2 layers), at least MIN_SIDE;
    the result is cropped back. Reflection where the photo is big enough, else edge repeat."""
    hp, wp = max(MIN_SIDE, h + (-h % 4)), max(MIN_SIDE, w + (-w % 4))
    return hp, wp, "reflect" if h > hp - h and w > wp - w else "edge"


def _source_index(positions: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Index into the unpadded axis for each position of the padded axis (numpy.pad's rules)."""
    if mode == "reflect":
        return np.where(positions < n, positions, 2 * (n - 1) - positions)
    return np.minimum(positions, n - 1)


def _padded_window(rgb: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Rows y0:y1, columns x0:x1 of the padded photo, without padding (copying) the whole photo."""
    h, w = rgb.shape[:2]
    if y1 <= h and x1 <= w:
        return rgb[y0:y1, x0:x1]
    mode = padded_size(h, w)[2]
    rows = _source_index(np.arange(y0, y1), h, mode)
    cols = _source_index(np.arange(x0, x1), w, mode)
    return rgb[np.ix_(rows, cols)]


def as_float(photo: np.ndarray) -> np.ndarray:
    """A photo region as float32 in [0, 1]; uint8 k -> k/255, bit for bit as imaging.decode.load_image."""
    return photo.astype(np.float32) / np.float32(255) if photo.dtype == np.uint8 else photo


def _grid(n: int, side: int, align: int = 1) -> list[tuple[int, int]]:
    """Split [0, n) into near-equal parts of at most ~`side`, boundaries on multiples of `align`."""
    count = max(1, math.ceil(n / side))
    edges = sorted({min(n, round(i * n / count / align) * align) for i in range(count)} | {n})
    return list(zip(edges[:-1], edges[1:]))


def _spans(n: int, side: int, halo: int, align: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(core, window) intervals along one axis. Each window holds its core plus `halo` on both
    sides (clipped to [0, n)), and all windows have one size, shifted inwards at the borders:
    TensorFlow/oneDNN keep working memory per input shape (measured: +30 MB retained per new
    shape of a 512 px front tile), so a pass should see one shape. Context beyond the halo is
    harmless: it cannot reach the core."""
    cores = _grid(n, side, align)
    size = min(n, max(b - a for a, b in cores) + 2 * halo)
    return [((a, b), (w0, w0 + size)) for a, b in cores for w0 in [min(max(0, a - halo), n - size)]]


def _reach(units) -> int:
    """Context (input pixels, each side) a stage's output core depends on: its receptive reach.

    Maps an aligned core's output interval back through every conv (kernel, stride, padding
    kernel//2) and nearest x2 upsampling, and measures how far it sticks out of the core.

    The layouts of imported networks (blogroto.engine.layouts.ARCH_SPECS) add TensorFlow's SAME padding
    (`padding="same"` convs: a stride-s conv on a size that is a multiple of s pads (k-s)//2
    before; tiles are aligned so that holds in every tile as in the whole image) and SAME
    transposed convolutions (output o = s*i + t - (k-s)//2 for input i and tap t)."""
    scale = _scale(units)
    a, b = 64, 128  # an input core far from any border, aligned for the stride-2 layers
    lo, hi = round(a * scale), round(b * scale)
    for conv, _norm, upsample, _relu in reversed(units):
        k, s = conv.kernel_size[0], conv.strides[0]
        if getattr(conv, "transposed", False):
            before = (k - s) // 2
            lo, hi = -(-(lo + before - k + 1) // s), (hi - 1 + before) // s + 1
            continue
        before = k // 2 if conv.padding == "valid" else (k - s) // 2  # reflection-padded VALID conv, or SAME
        lo, hi = s * lo - before, s * (hi - 1) - before + k
        if upsample:
            lo, hi = lo // 2, (hi - 1) // 2 + 1
    return max(a - lo, hi - b, 0)


def _scale(units) -> float:
    """Output pixels per input pixel of a stage."""
    scale = 1.0
    for conv, _norm, upsample, _relu in units:
        if getattr(conv, "transposed", False):
            scale = scale * conv.strides[0]
        else:
            scale = scale * (2 if upsample else 1) / conv.strides[0]
    return scale


def store(out: np.ndarray, box: tuple[int, int, int, int], values: np.ndarray) -> None:
    from blogroto.imaging.pixels import to_uint8

    y0, y1, x0, x1 = box
    out[y0:y1, x0:x1] = to_uint8(values) if out.dtype == np.uint8 else values


class LoadedNetwork:
    """One filter's network with traced functions that accept any input size."""

    def __init__(self, flt: Filter, policy: str):
        from blogroto.engine.network import load_network

        keras = import_keras()
        self.ops = ops = keras.ops
        self.tf = tf = tensorflow_if_backend()
        spec = flt.network
        self.net = load_network(flt.file("weights"), spec.width, spec.blocks, dtype_policy=policy, norm=spec.norm,
                                arch=spec.arch, inference=True)
        image = [tf.TensorSpec([1, None, None, 3], tf.float32)] if tf else None
        self._whole = compile_function(lambda x: self.net.run(ops.convert_to_tensor(x))[0], image)
        self._stages: dict[tuple, object] = {}

    def whole(self, rgb: np.ndarray) -> np.ndarray:
        """The untiled network on `rgb` (padded to a multiple of 4, then cropped back)."""
        h, w = rgb.shape[:2]
        hp, wp, _ = padded_size(h, w)
        y = self._whole(as_float(_padded_window(rgb, 0, hp, 0, wp))[None])
        return to_numpy(y[0])[:h, :w]

    def units(self, part: str, block: int = 0) -> list:
        net = self.net
        return {"front": net.front_units, "up": net.up_units}[part]() if part != "block" else net.block_units(block)

    def stage(self, part: str, block: int, n_stats: int, reduce: bool, in_dtype):
        """(window, core box, stats) -> the stage's output on the core box, or (reduce) its
        per-channel sum and sum of squares there, as numpy arrays, from a function compiled once
        per stage (TensorFlow: for any tile size; JAX: per window shape).

        The stage is `front`/`block`/`up` of TransformNet given its first `n_stats` statistics.
        Sums are float64 in the graph (float32 on JAX, whose float64 is off by default; the
        tiles' sums still add up in float64)."""
        key = (part, block, n_stats, reduce, np.dtype(in_dtype).name)
        if key not in self._stages:
            self._stages[key] = self._compile_stage(part, block, n_stats, reduce, in_dtype)
        return self._stages[key]

    def _compile_stage(self, part: str, block: int, n_stats: int, reduce: bool, in_dtype):
        tf, ops, net = self.tf, self.ops, self.net
        run = {"front": net.front, "up": net.up, "block": lambda h, st: net.block(block, h, st)}[part]
        # Under jax.jit shapes are static: slicing out a core box would compile once per box (46 s
        # instead of 2 s for a 640 px photo in 128 px tiles), so JAX masks the core for the sums
        # and returns the whole window, cropped here in numpy.
        masked = backend_name() == "jax"
        accumulate = "float32" if masked else "float64"

        def fn(window, core, stats):
            stats = [(ops.convert_to_tensor(m), ops.convert_to_tensor(v)) for m, v in stats]
            y = run(ops.convert_to_tensor(window), stats)
            if masked and reduce:
                rows, cols = ops.arange(ops.shape(y)[1]), ops.arange(ops.shape(y)[2])
                inside = (((rows >= core[0]) & (rows < core[1]))[:, None]
                          & ((cols >= core[2]) & (cols < core[3]))[None, :])
                y = ops.where(inside[None, :, :, None], y, ops.zeros_like(y))
            elif not masked:
                y = y[:, core[0] : core[1], core[2] : core[3], :]
            if reduce:
                y64 = ops.cast(y, accumulate)
                return ops.sum(y64, axis=(0, 1, 2)), ops.sum(ops.square(y64), axis=(0, 1, 2))
            return ops.cast(y[0], "float32")

        spec = None
        if tf:  # one trace for every tile size
            norms = [norm for _conv, norm, _up, _relu in self.units(part, block) if norm is not None]
            stats_spec = [(tf.TensorSpec([1, 1, 1, n.gamma.shape[0]], tf.float32),) * 2 for n in norms[:n_stats]]
            channels = 3 if part == "front" else 4 * net.width
            window_spec = tf.TensorSpec([1, None, None, channels], tf.as_dtype(np.dtype(in_dtype)))
            spec = [window_spec, tf.TensorSpec([4], tf.int32), stats_spec]
        compiled = compile_function(fn, spec)

        def stage(window, core, stats):
            out = compiled(window, core, stats)
            if reduce:
                return to_numpy(out[0]), to_numpy(out[1])
            out = to_numpy(out)
            return out[core[0] : core[1], core[2] : core[3]] if masked else out

        return stage


class _Plan(NamedTuple):
    halo: int  # context around each tile's core, input pixels
    scale: float  # output pixels per input pixel
    size: tuple[int, int]  # the stage's input (padded photo or 1/4-res buffer)
    side: int  # tile core side, input pixels
    align: int  # core boundaries on multiples of this


class TiledRun:
    """Stylizes one photo in tiles with exact whole-photo normalisation statistics (module doc).

    `side`: tile core side of the front passes (full resolution, `width` channels). The trunk
    (1/4 res, 4*width channels) uses side/4, the up path side/8 at 1/4 res (side/2 at full res,
    where u2 sees 2*width channels): measured, that keeps each stage's TensorFlow working memory
    about equal (width 32, side 512: ~30-40 MB a tile)."""

    def __init__(self, net: LoadedNetwork, rgb: np.ndarray, side: int, buffer_dtype):
        self.net, self.rgb, self.side = net, rgb, side
        self.buffer_dtype = np.dtype(buffer_dtype)
        self.full = padded_size(*rgb.shape[:2])[:2]
        self.quarter = (self.full[0] // 4, self.full[1] // 4)

    def _plan(self, part: str, block: int, n_stats: int) -> _Plan:
        """Tiling of the stage that ends before norm n_stats of `part` (or runs all of it)."""
        units = self.net.units(part, block)[: n_stats + 1]
        halo = _reach(units)
        if part == "front":  # keep tile origins on multiples of 4 for the stride-2 layers
            return _Plan(-(-halo // 4) * 4, _scale(units), self.full, self.side, 4)
        return _Plan(halo, _scale(units), self.quarter, max(halo, self.side // (4 if part == "block" else 8)), 1)

    def _tiles(self, plan: _Plan):
        """(core, window) boxes (y0, y1, x0, x1) covering the stage's input; see `_spans`."""
        rows, cols = (_spans(n, plan.side, plan.halo, plan.align) for n in plan.size)
        for (y0, y1), (wy0, wy1) in rows:
            for (x0, x1), (wx0, wx1) in cols:
                yield (y0, y1, x0, x1), (wy0, wy1, wx0, wx1)

    @staticmethod
    def _core_in_window(core, window, scale: float) -> np.ndarray:
        (y0, y1, x0, x1), (wy0, _, wx0, _) = core, window
        return np.array([(y0 - wy0) * scale, (y1 - wy0) * scale, (x0 - wx0) * scale, (x1 - wx0) * scale], np.int32)

    def _measure(self, part: str, block: int, stats: list, source) -> tuple[np.ndarray, np.ndarray]:
        """A statistics pass: mean and variance (E[x^2] - E[x]^2, float64) of the pre-norm
        activations of norm len(stats) of `part` over the whole (padded) image."""
        plan = self._plan(part, block, len(stats))
        fn = self.net.stage(part, block, len(stats), True, np.float32 if source is self.rgb else source.dtype)
        total = total_sq = 0.0
        for core, window in self._tiles(plan):
            s, ss = fn(self._read(source, window), self._core_in_window(core, window, plan.scale), stats)
            total, total_sq = total + s, total_sq + ss
        count = round(plan.size[0] * plan.scale) * round(plan.size[1] * plan.scale)
        mean = total / count
        var = np.maximum(total_sq / count - mean * mean, 0.0)
        return mean.astype(np.float32).reshape(1, 1, 1, -1), var.astype(np.float32).reshape(1, 1, 1, -1)

    def _read(self, source: np.ndarray, window) -> np.ndarray:
        wy0, wy1, wx0, wx1 = window
        if source is self.rgb:
            return as_float(_padded_window(self.rgb, wy0, wy1, wx0, wx1))[None]
        return source[wy0:wy1, wx0:wx1][None]

    def run(self, out: np.ndarray, finish) -> None:
        """Fills `out` with finish(photo region, stylized region) for every output tile."""
        width, blocks = self.net.net.width, self.net.net.blocks
        stats: list = []
        for _ in range(3):
            stats.append(self._measure("front", 0, list(stats), self.rgb))
        h = np.empty((*self.quarter, 4 * width), self.buffer_dtype)
        self._front_features(stats, h)
        for i in range(blocks):
            sa = self._measure("block", i, [], h)
            sb = self._measure("block", i, [sa], h)
            self._block_in_place(i, [sa, sb], h)
        up: list = []
        for _ in range(self.net.net.up_norm_count):  # 2; 3 where the arch normalises its output layer
            up.append(self._measure("up", 0, list(up), h))
        self._output(h, up, out, finish)

    def _front_features(self, stats: list, h: np.ndarray) -> None:
        """Writes relu(nd2(d2(...))) of every tile's core into the 1/4-res buffer."""
        fn = self.net.stage("front", 0, 3, False, np.float32)
        for core, window in self._tiles(self._plan("front", 0, 3)):
            y = fn(self._read(self.rgb, window), self._core_in_window(core, window, 0.25), stats)
            y0, y1, x0, x1 = (c // 4 for c in core)
            h[y0:y1, x0:x1] = y

    def _block_in_place(self, i: int, stats: list, h: np.ndarray) -> None:
        """h <- h + block_i(h) over the buffer, in place, reading only original values of h.

        Tiles go in raster order. A tile's left context belongs to the previous tile, whose
        result is written only after this one is computed; its top context belongs to the
        previous tile row, whose original bottom rows are copied before that row is written."""
        plan = self._plan("block", i, 2)
        halo = plan.halo
        fn = self.net.stage("block", i, 2, False, h.dtype)
        rows, cols = (_spans(n, plan.side, halo, 1) for n in plan.size)
        assert all(b - a >= halo for (a, b), _ in rows[:-1] + cols[:-1]), "tiles must be at least as big as their halo"
        above = h[:0].copy()  # original rows [y0 - halo, y0) above the current tile row's cores
        for (y0, y1), (wy0, wy1) in rows:
            below = h[max(y0, y1 - halo) : y1].copy()  # the next tile row's top context, before it is overwritten
            pending = None
            for (x0, x1), (wx0, wx1) in cols:
                window = h[wy0:wy1, wx0:wx1].copy()
                window[y0 - len(above) - wy0 : y0 - wy0] = above[:, wx0:wx1]
                y = fn(window[None], self._core_in_window((y0, y1, x0, x1), (wy0, wy1, wx0, wx1), 1), stats)
                if pending is not None:
                    store(h, *pending)
                pending = ((y0, y1, x0, x1), y)
            store(h, *pending)
            above = below

    def _output(self, h: np.ndarray, stats: list, out: np.ndarray, finish) -> None:
        """The final pass: up path on each 1/4-res tile, cropped to the photo, blended, stored."""
        fn = self.net.stage("up", 0, len(stats), False, h.dtype)
        height, width = self.rgb.shape[:2]
        for core, window in self._tiles(self._plan("up", 0, len(stats))):
            y = fn(self._read(h, window), self._core_in_window(core, window, 4), stats)
            y0, y1, x0, x1 = (4 * c for c in core)
            y1, x1 = min(y1, height), min(x1, width)
            if y0 < y1 and x0 < x1:
                styled = y[: y1 - y0, : x1 - x0]
                store(out, (y0, y1, x0, x1), finish(as_float(self.rgb[y0:y1, x0:x1]), styled))
