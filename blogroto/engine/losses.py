"""The losses a filter is trained on, computed from the VGG16 loss network (engine/vgg.py).

Artwork training: content (the photo's shapes), style (the artwork's pixel and feature
distributions, sliced Wasserstein), total variation, tone (the photo's light and dark in the
artwork's tones) and saturation (no spikes where tanh is flat). Distillation: a slim student
against a trained teacher's output.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from blogroto.engine.recipe import SATURATION_LIMIT
from blogroto.engine.runtime import import_keras, to_numpy
from blogroto.engine.vgg import CONTENT_LAYER, STYLE_LAYERS, LossNetwork


def _ops():
    return import_keras().ops


def gram(features):
    """Gram matrix normalised by the number of elements (as in Johnson et al.)."""
    ops = _ops()
    n, h, w, c = ops.shape(features)
    flat = ops.reshape(features, (-1, h * w, c))
    return ops.matmul(ops.transpose(flat, (0, 2, 1)), flat) / ops.cast(h * w * c, "float32")


SAMPLED_POSITIONS = 4096


def _quantile_levels(count: int, quantiles: int) -> np.ndarray:
    """Indices of `quantiles` evenly spaced quantiles (cell centres) among `count` sorted values."""
    q = min(count, quantiles)
    return np.minimum(((np.arange(q) + 0.5) / q * count).astype(np.int64), count - 1)


class StyleTarget:
    """What training matches: the artwork's pixel and STYLE_LAYERS feature distributions, seen
    along DIRECTION_SETS fixed sets of random unit directions (up to MAX_DIRECTIONS per set), each
    projection sorted once here and kept at up to QUANTILES levels. A training step uses one set:
    sorting the artwork every step would cost more than the VGG passes.
    `artwork`: 1,H,W,3 in [0, 1]; `seed`: the run's seed (the directions are part of the recipe)."""

    DIRECTION_SETS = 16
    QUANTILES = 4096
    MAX_DIRECTIONS = 64

    def __init__(self, lossnet: LossNetwork, artwork, seed: int = 0):
        ops = _ops()
        art = ops.convert_to_tensor(np.asarray(artwork, np.float32))
        feats = {"rgb": art, **{name: f for name, f in lossnet(art).items() if name in STYLE_LAYERS}}
        rng = np.random.default_rng([seed, 1234])
        self.directions, self.sorted = {}, {}
        for name, f in feats.items():
            flat = ops.reshape(f, (-1, f.shape[-1]))
            channels, positions = int(flat.shape[-1]), int(flat.shape[0])
            dirs = rng.standard_normal((self.DIRECTION_SETS, channels, min(channels, self.MAX_DIRECTIONS))).astype(np.float32)
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            levels = _quantile_levels(positions, self.QUANTILES)
            with ThreadPoolExecutor(os.cpu_count()) as workers:  # numpy sorts outside the GIL
                sorted_sets = list(workers.map(lambda d: _sorted_at(to_numpy(ops.matmul(flat, d)), levels), dirs))
            self.directions[name] = ops.convert_to_tensor(dirs)
            self.sorted[name] = ops.convert_to_tensor(np.stack(sorted_sets))  # sets, levels, directions
        # the artwork's luminance quantiles: what the tone term maps the photo's luminance onto
        luma = to_numpy(ops.reshape(_luma(art), (-1, 1)))
        self.tone = ops.convert_to_tensor(_sorted_at(luma, _quantile_levels(len(luma), self.QUANTILES))[:, 0])


def _sorted_at(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each column of `values` (positions, K) sorted, kept at rows `levels`. In numpy: TensorFlow
    sorts with top_k, which took 95 s for a 1024 px artwork's sixteen direction sets (numpy, in threads: 34 s)."""
    return np.sort(np.ascontiguousarray(values.T), axis=-1)[:, levels].T


def _levels(n, q):
    """For each of n sorted values, the index of its quantile among q (int32)."""
    ops = _ops()
    return ops.minimum(ops.cast((ops.cast(ops.arange(n), "float32") + 0.5) / ops.cast(n, "float32")
                                * ops.cast(q, "float32"), "int32"), q - 1)


def sliced_wasserstein(features, directions, target_sorted):
    """Sliced Wasserstein distance between each image's feature distribution and the artwork's
    (Heitz et al. 2021, "A Sliced Wasserstein Loss for Neural Texture Synthesis"): project on
    random unit directions, sort, compare quantile by quantile; relative to the artwork's own second
    moment, so every layer weighs about the same.

    Unlike Gram matrices (second moments only) this matches the whole distribution: a network
    cannot satisfy it with a few extreme activations (the spikes behind "droplet" blobs), and on
    pixels it asks for the artwork's palette, not only its average colour.
    features: N,H,W,C; directions: C,K; target_sorted: Q,K (the artwork's sorted projections)."""
    ops = _ops()
    channels = directions.shape[0]
    ours = ops.sort(ops.matmul(ops.reshape(features, (ops.shape(features)[0], -1, channels)), directions), axis=1)
    theirs = ops.take(target_sorted, _levels(ops.shape(ours)[1], ops.shape(target_sorted)[0]), axis=0)
    return ops.mean(ops.square(ours - theirs[None])) / (ops.mean(ops.square(target_sorted)) + 1e-8)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 luma weights
TONE_CELL = 8  # the tone term compares luminance averaged over cells this many pixels wide


def _luma(rgb):
    ops = _ops()
    return ops.sum(ops.cast(rgb, "float32") * ops.convert_to_tensor(LUMA), axis=-1)


def tone_loss(x, y, artwork_tone, cell: int = TONE_CELL):
    """How far the stylized image's coarse light-and-dark layout is from the photo's, with the
    photo's luminance remapped onto the artwork's (rank by rank, so the palette's tones are the
    artwork's but what was light in the photo stays lighter than what was dark).

    Without it, matching the artwork's colour distribution leaves the network free to put the
    artwork's dark and light wherever it likes: a white tiger painted dark, edges embossed in bright
    colour, the subject lost. Averaged over `cell`-pixel cells so brush strokes inside a cell are free.
    x, y: N,H,W,3 in [0, 1]; artwork_tone: the artwork's sorted luminance quantiles (StyleTarget.tone)."""
    ops = _ops()
    luma_x, luma_y = _luma(x), _luma(y)
    flat = ops.reshape(luma_x, (ops.shape(luma_x)[0], -1))
    ranks = ops.argsort(ops.argsort(flat, axis=1), axis=1)  # equal luminances: their ranks in any order
    levels = _levels(ops.shape(flat)[1], ops.shape(artwork_tone)[0])
    wanted = ops.reshape(ops.take(artwork_tone, ops.take(levels, ranks), axis=0), ops.shape(luma_x))
    pool = lambda v: ops.average_pool(v[..., None], cell, cell, "valid")  # noqa: E731
    return ops.mean(ops.square(pool(luma_y) - ops.stop_gradient(pool(wanted))))


COLOUR_CELL = 8  # the colour term compares colours averaged over cells this many pixels wide


class PaletteTransfer:
    """Photos (H,W,3 uint8) in an artwork's colours: iterative distribution transfer (Pitie et al.
    2005), i.e. sliced optimal transport of the photo's pixels onto the artwork's: along random
    orthonormal axes, each pixel moves to the artwork's value of the same rank. What was the photo's
    sky stays one region, now in the colours the artwork has most alike, and light and dark keep
    their places (the artwork's luminances are given back in the photo's order); the whole photo is
    mapped at once, so every crop of it asks for a consistent palette. The axes and the artwork's
    sorted projections are computed once for all photos. Deterministic for a seed."""

    def __init__(self, artwork: np.ndarray, iterations: int = 8, seed: int = 0, samples: int = 1 << 16):
        rng = np.random.default_rng([seed, 77])
        tgt = np.asarray(artwork, np.float32).reshape(-1, 3)
        if len(tgt) > samples:
            tgt = tgt[rng.choice(len(tgt), samples, replace=False)]
        self.axes = [np.linalg.qr(rng.standard_normal((3, 3)))[0].astype(np.float32) for _ in range(iterations)]
        self.levels = (np.arange(len(tgt), dtype=np.float32) + 0.5) / len(tgt)
        self.sorted = [np.sort(tgt @ axes, axis=0) for axes in self.axes]  # the artwork along each axis set
        self.luma_sorted = np.sort(tgt @ LUMA)

    def __call__(self, photo: np.ndarray) -> np.ndarray:
        src = photo.reshape(-1, 3).astype(np.float32) / 255.0
        # argsort's default (introsort, SIMD where the CPU has it): 3x faster than kind="stable" and
        # as deterministic; the two differ only in the order of exactly equal values
        by_luma = np.argsort(src @ LUMA)  # the photo's own light-to-dark order
        levels = (np.arange(len(src), dtype=np.float32) + 0.5) / len(src)
        for axes, target in zip(self.axes, self.sorted):
            ps = src @ axes
            moved = np.empty_like(ps)
            for k in range(3):
                order = np.argsort(ps[:, k])
                moved[order, k] = np.interp(levels, self.levels, target[:, k])
            src += (moved - ps) @ axes.T
        # The transport may have swapped light and dark regions (it minimises colour moves, not
        # layout changes): last, the artwork's luminances go back to the pixels in the photo's order.
        luma = src @ LUMA
        wanted = np.empty_like(luma)
        wanted[by_luma] = np.interp(levels, self.levels, self.luma_sorted)
        src += ((wanted - luma) / float(LUMA @ LUMA))[:, None] * LUMA
        return (np.clip(src, 0.0, 1.0).reshape(photo.shape) * 255.0 + 0.5).astype(np.uint8)


def colour_loss(y, reference, cell: int = COLOUR_CELL):
    """How far the stylized image's coarse colours are from the photo's in the artwork's palette
    (`PaletteTransfer`, computed on the whole photo), averaged over `cell`-pixel cells so the
    strokes inside a cell are free. y, reference: N,H,W,3 in [0, 1]."""
    ops = _ops()
    pool = lambda v: ops.average_pool(ops.cast(v, "float32"), cell, cell, "valid")  # noqa: E731
    return ops.mean(ops.square(pool(y) - ops.stop_gradient(pool(reference))))


def sample_grid(f, step):
    """Every s-th row and column of `f` (N,H,W,C), s chosen so at most ~SAMPLED_POSITIONS positions
    remain, the offset moving with `step` (an int tensor): gathered with a row and column count
    fixed by the shape, so a compiled step (jax.jit) sees static shapes."""
    ops = _ops()
    _, h, w, _ = ops.shape(f)
    if isinstance(h, int) and isinstance(w, int):  # static shapes (JAX, PyTorch): the stride is a number
        stride = max(1, int(np.ceil(np.sqrt(np.float32(h * w) / np.float32(SAMPLED_POSITIONS)))))
    else:  # a tf.function traced for any crop size
        stride = ops.maximum(1, ops.cast(ops.ceil(ops.sqrt(ops.cast(h * w, "float32") / SAMPLED_POSITIONS)), "int32"))
    at = ops.cast(step, "int32") % (stride * stride)
    rows = at // stride + stride * ops.arange(h // stride)
    cols = at % stride + stride * ops.arange(w // stride)
    return ops.take(ops.take(f, rows, axis=1), cols, axis=2)


def perceptual_losses(lossnet: LossNetwork, x, y, target: StyleTarget, weights: dict, step, reference=None):
    """(total, content, style, tv, tone, colour) of stylized `y` for photo `x`:
    - content: relu2_2 feature MSE relative to the photo's own feature energy;
    - style: sliced Wasserstein distance to the artwork on each of STYLE_LAYERS, averaged, and on
      its pixels (the palette) unless the colour term is on: matching the artwork's whole colour
      distribution in every crop plants its colours where the photo has none (red patches in a
      sky), which the colour term replaces by the photo's own layout in the artwork's palette;
    - tv: total variation (mean absolute neighbour difference);
    - tone: the photo's coarse light-and-dark layout in the artwork's tones (`tone_loss`);
    - colour: the photo's coarse colours in the artwork's palette (`colour_loss`; `reference` is
      the crop of the palette-transferred photo, None without the term).
    `step` (an int tensor) picks the set of projection directions: the sets take turns over a run,
    and the same step gives the same loss, so a resumed run is exact."""
    ops = _ops()
    feats_y = lossnet(y)
    fx = lossnet(x, upto=CONTENT_LAYER)[CONTENT_LAYER]  # the photo's pass: only as deep as content reads
    content = ops.mean(ops.square(feats_y[CONTENT_LAYER] - fx)) / (ops.mean(ops.square(fx)) + 1e-8)
    # Each layer is compared on a grid of at most ~SAMPLED_POSITIONS positions per image: the same
    # distribution for a fraction of the sorting, which otherwise costs more than the VGG passes
    # at 192 px crops.
    colour_on = reference is not None and weights.get("colour", 0.0) > 0
    layers = {**({} if colour_on else {"rgb": ops.cast(y, "float32")}), **{n: feats_y[n] for n in STYLE_LAYERS}}
    which = ops.cast(step, "int32") % StyleTarget.DIRECTION_SETS
    style = sum(sliced_wasserstein(sample_grid(f, step), ops.take(target.directions[n], which, axis=0),
                                   ops.take(target.sorted[n], which, axis=0))
                for n, f in layers.items()) / len(layers)
    tv = ops.mean(ops.abs(y[:, 1:] - y[:, :-1])) + ops.mean(ops.abs(y[:, :, 1:] - y[:, :, :-1]))
    tone = tone_loss(x, y, target.tone)
    colour = colour_loss(y, reference) if colour_on else ops.zeros((), "float32")
    total = (weights["content"] * content + weights["style"] * style + weights["tv"] * tv
             + weights.get("tone", 0.0) * tone + weights.get("colour", 0.0) * colour)
    return total, content, style, tv, tone, colour


DISTILL_LAYERS = ("relu1_2", "relu2_2", "relu3_3")  # edges and colour, small and mid-sized texture


def distillation_losses(lossnet: LossNetwork, y, target, weights: dict):
    """(total, pixel, features, texture) of a student's output `y` against a teacher filter's output
    `target` for the same photo: mean absolute pixel difference, then feature MSE and Gram-matrix MSE
    summed over DISTILL_LAYERS. The pixel term pins colours; the feature term, edges and strokes in
    place; the texture term asks only for the teacher's texture *statistics*, so where the slim student
    cannot place every via and trace exactly it still paints them instead of a blurred average."""
    ops = _ops()
    y, target = ops.cast(y, "float32"), ops.cast(target, "float32")
    pixel = ops.mean(ops.abs(y - target))
    feats_y, feats_t = lossnet(y), lossnet(target)
    features = sum(ops.mean(ops.square(feats_y[n] - feats_t[n])) for n in DISTILL_LAYERS)
    texture = sum(ops.mean(ops.square(gram(feats_y[n]) - gram(feats_t[n]))) for n in DISTILL_LAYERS)
    total = weights["pixel"] * pixel + weights["features"] * features + weights["texture"] * texture
    return total, pixel, features, texture


def stability_loss(net, photo, noise, styled, sigma: float):
    """How much the first image's output moves when its photo gets `noise` (N(0, sigma) per
    pixel), as a mean squared change relative to sigma^2 (1: the noise passes through at its own
    size). A filter that grows texture out of the noise in a flat sky or backdrop scores high:
    its output changes under a re-encode, flickers frame to frame in a video, and differs in
    bfloat16. Only the first image of the batch: instance norm is per image, so its clean output
    is `styled[:1]`, and the second pass costs 1/batch of the first (16 % more per step at 192 px)."""
    ops = _ops()
    moved = ops.cast(net(photo[:1] + noise[:1]), "float32") - ops.stop_gradient(ops.cast(styled[:1], "float32"))
    return ops.mean(ops.square(moved)) / (sigma * sigma)


def saturation_loss(logits, limit: float = SATURATION_LIMIT):
    """Mean square of the last layer's output beyond +-`limit`, where tanh is flat (at 3, within
    0.25 % of black or white, under a level of 255; at 2, 1.8 %). Without it a network can plant a
    spike there (on the circuit board: -62, a solid black patch on 1-2 % of a photo) that no other
    loss can remove, since tanh passes no gradient."""
    ops = _ops()
    return ops.mean(ops.square(ops.relu(ops.abs(ops.cast(logits, "float32")) - limit)))
