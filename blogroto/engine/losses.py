"""The losses a filter is trained on, computed from the VGG16 loss network (engine/vgg.py).

Artwork training: content (the photo's shapes), style (the artwork's pixel and feature
distributions, sliced Wasserstein), total variation, tone (the photo's light and dark in the
artwork's tones) and saturation (no spikes where tanh is flat). Distillation: a slim student
against a trained teacher's output.
"""

from __future__ import annotations

import numpy as np

from blogroto.engine.runtime import import_tensorflow
from blogroto.engine.vgg import CONTENT_LAYER, STYLE_LAYERS, LossNetwork


def gram(features):
    """Gram matrix normalised by the number of elements (as in Johnson et al.)."""
    tf = import_tensorflow()[0]

    shape = tf.shape(features)
    n, hw, c = shape[0], shape[1] * shape[2], shape[3]
    flat = tf.reshape(features, [n, hw, c])
    return tf.matmul(flat, flat, transpose_a=True) / tf.cast(hw * c, tf.float32)


SAMPLED_POSITIONS = 4096


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
        tf = lossnet.tf
        art = tf.constant(artwork, tf.float32)
        feats = {"rgb": art, **{name: f for name, f in lossnet(art).items() if name in STYLE_LAYERS}}
        rng = np.random.default_rng([seed, 1234])
        self.directions, self.sorted = {}, {}
        for name, f in feats.items():
            flat = tf.reshape(f, [-1, f.shape[-1]])
            channels, positions = int(flat.shape[-1]), int(flat.shape[0])
            dirs = rng.standard_normal((self.DIRECTION_SETS, channels, min(channels, self.MAX_DIRECTIONS))).astype(np.float32)
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            levels = np.minimum(((np.arange(min(positions, self.QUANTILES)) + 0.5) / min(positions, self.QUANTILES)
                                 * positions).astype(np.int64), positions - 1)
            sorted_sets = [tf.gather(tf.sort(tf.matmul(flat, d), axis=0), levels) for d in dirs]
            self.directions[name] = tf.constant(dirs)
            self.sorted[name] = tf.stack(sorted_sets)  # sets, levels, directions
        # the artwork's luminance quantiles: what the tone term maps the photo's luminance onto
        luma = tf.reshape(tf.reduce_sum(art * LUMA, axis=-1), [-1])
        count = int(luma.shape[0])
        levels = np.minimum(((np.arange(min(count, self.QUANTILES)) + 0.5) / min(count, self.QUANTILES)
                             * count).astype(np.int64), count - 1)
        self.tone = tf.gather(tf.sort(luma), levels)


def sliced_wasserstein(features, directions, target_sorted):
    """Sliced Wasserstein distance between each image's feature distribution and the artwork's
    (Heitz et al. 2021, "A Sliced Wasserstein Loss for Neural Texture Synthesis"): project on
    random unit directions, sort, compare quantile by quantile; relative to the artwork's own second
    moment, so every layer weighs about the same.

    Unlike Gram matrices (second moments only) this matches the whole distribution: a network
    cannot satisfy it with a few extreme activations (the spikes behind "droplet" blobs), and on
    pixels it asks for the artwork's palette, not only its average colour.
    features: N,H,W,C; directions: C,K; target_sorted: Q,K (the artwork's sorted projections)."""
    tf = import_tensorflow()[0]

    channels = directions.shape[0]
    shape = tf.shape(features)
    ours = tf.sort(tf.matmul(tf.reshape(features, [shape[0], -1, channels]), directions), axis=1)
    n, q = tf.shape(ours)[1], tf.shape(target_sorted)[0]
    levels = tf.cast((tf.range(n, dtype=tf.float32) + 0.5) / tf.cast(n, tf.float32) * tf.cast(q, tf.float32), tf.int32)
    theirs = tf.gather(target_sorted, tf.minimum(levels, q - 1))
    return tf.reduce_mean(tf.square(ours - theirs[None])) / (tf.reduce_mean(tf.square(target_sorted)) + 1e-8)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 luma weights
TONE_CELL = 8  # the tone term compares luminance averaged over cells this many pixels wide


def tone_loss(x, y, artwork_tone, cell: int = TONE_CELL):
    """How far the stylized image's coarse light-and-dark layout is from the photo's, with the
    photo's luminance remapped onto the artwork's (rank by rank, so the palette's tones are the
    artwork's but what was light in the photo stays lighter than what was dark).

    Without it, matching the artwork's colour distribution leaves the network free to put the
    artwork's dark and light wherever it likes: a white tiger painted dark, edges embossed in bright
    colour, the subject lost. Averaged over `cell`-pixel cells so brush strokes inside a cell are free.
    x, y: N,H,W,3 in [0, 1]; artwork_tone: the artwork's sorted luminance quantiles (StyleTarget.tone)."""
    tf = import_tensorflow()[0]

    luma_x = tf.reduce_sum(tf.cast(x, tf.float32) * LUMA, axis=-1)
    luma_y = tf.reduce_sum(tf.cast(y, tf.float32) * LUMA, axis=-1)
    shape = tf.shape(luma_x)
    flat = tf.reshape(luma_x, [shape[0], -1])
    n, q = tf.shape(flat)[1], tf.shape(artwork_tone)[0]
    ranks = tf.argsort(tf.argsort(flat, axis=1, stable=True), axis=1, stable=True)
    levels = tf.cast((tf.cast(ranks, tf.float32) + 0.5) / tf.cast(n, tf.float32) * tf.cast(q, tf.float32), tf.int32)
    wanted = tf.reshape(tf.gather(artwork_tone, tf.minimum(levels, q - 1)), shape)
    pool = lambda v: tf.nn.avg_pool2d(v[..., None], cell, cell, "VALID")  # noqa: E731
    return tf.reduce_mean(tf.square(pool(luma_y) - tf.stop_gradient(pool(wanted))))


def perceptual_losses(lossnet: LossNetwork, x, y, target: StyleTarget, weights: dict, step):
    """(total, content, style, tv, tone) of stylized `y` for photo `x`:
    - content: relu2_2 feature MSE relative to the photo's own feature energy;
    - style: sliced Wasserstein distance to the artwork on its pixels (the palette) and on each of
      STYLE_LAYERS, averaged;
    - tv: total variation (mean absolute neighbour difference);
    - tone: the photo's coarse light-and-dark layout in the artwork's tones (`tone_loss`).
    `step` (an int tensor) picks the set of projection directions: the sets take turns over a run,
    and the same step gives the same loss, so a resumed run is exact."""
    tf = import_tensorflow()[0]

    feats_y = lossnet(y)
    feats_x = lossnet(x)
    fx = feats_x[CONTENT_LAYER]
    content = tf.reduce_mean(tf.square(feats_y[CONTENT_LAYER] - fx)) / (tf.reduce_mean(tf.square(fx)) + 1e-8)
    layers = {"rgb": tf.cast(y, tf.float32), **{n: feats_y[n] for n in STYLE_LAYERS}}
    # Each layer is compared on a grid of at most ~SAMPLED_POSITIONS positions per image (every
    # s-th row and column, the offset moving with the step): the same distribution for a fraction
    # of the sorting, which otherwise costs more than the VGG passes at 192 px crops.
    for name, f in layers.items():
        hw = tf.cast(tf.shape(f)[1] * tf.shape(f)[2], tf.float32)
        stride = tf.maximum(1, tf.cast(tf.math.ceil(tf.sqrt(hw / SAMPLED_POSITIONS)), tf.int32))
        at = tf.cast(step, tf.int32) % (stride * stride)
        layers[name] = f[:, at // stride :: stride, at % stride :: stride]
    which = tf.cast(step, tf.int32) % StyleTarget.DIRECTION_SETS
    style = tf.add_n([sliced_wasserstein(f, target.directions[n][which], target.sorted[n][which])
                      for n, f in layers.items()]) / len(layers)
    tv = tf.reduce_mean(tf.abs(y[:, 1:] - y[:, :-1])) + tf.reduce_mean(tf.abs(y[:, :, 1:] - y[:, :, :-1]))
    tone = tone_loss(x, y, target.tone)
    total = weights["content"] * content + weights["style"] * style + weights["tv"] * tv + weights.get("tone", 0.0) * tone
    return total, content, style, tv, tone


DISTILL_LAYERS = ("relu1_2", "relu2_2", "relu3_3")  # edges and colour, small and mid-sized texture


def distillation_losses(lossnet: LossNetwork, y, target, weights: dict):
    """(total, pixel, features, texture) of a student's output `y` against a teacher filter's output
    `target` for the same photo: mean absolute pixel difference, then feature MSE and Gram-matrix MSE
    summed over DISTILL_LAYERS. The pixel term pins colours; the feature term, edges and strokes in
    place; the texture term asks only for the teacher's texture *statistics*, so where the slim student
    cannot place every via and trace exactly it still paints them instead of a blurred average."""
    tf = import_tensorflow()[0]

    y, target = tf.cast(y, tf.float32), tf.cast(target, tf.float32)
    pixel = tf.reduce_mean(tf.abs(y - target))
    feats_y, feats_t = lossnet(y), lossnet(target)
    features = tf.add_n([tf.reduce_mean(tf.square(feats_y[n] - feats_t[n])) for n in DISTILL_LAYERS])
    texture = tf.add_n([tf.reduce_mean(tf.square(gram(feats_y[n]) - gram(feats_t[n]))) for n in DISTILL_LAYERS])
    total = weights["pixel"] * pixel + weights["features"] * features + weights["texture"] * texture
    return total, pixel, features, texture


def saturation_loss(logits, limit: float = 3.0):
    """Mean square of the last layer's output beyond +-`limit`, where tanh is flat (0.5 % from black
    or white). Without it a network can plant a spike there (on the circuit board: -62, a solid
    black patch on 1-2 % of a photo) that no other loss can remove, since tanh passes no gradient."""
    tf = import_tensorflow()[0]

    return tf.reduce_mean(tf.square(tf.nn.relu(tf.abs(tf.cast(logits, tf.float32)) - limit)))
