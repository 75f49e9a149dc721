"""The applier: options, tiling with whole-image statistics, determinism, real-world files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from blogroto.engine.stylize import StyleOptions, Stylizer, blend, output_format
from blogroto.errors import BlogrotoError, FilterError
from tests.conftest import make_photo


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def photo_array(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx * 0.3)], -1)
    return np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1).astype(np.float32)


def test_options_validate():
    with pytest.raises(BlogrotoError, match="strength"):
        StyleOptions(strength=1.5)
    with pytest.raises(BlogrotoError, match="max_size"):
        StyleOptions(max_size=-1)
    with pytest.raises(BlogrotoError, match="format"):
        StyleOptions(format="bmp")
    with pytest.raises(BlogrotoError, match="keep_colors"):
        StyleOptions(keep_colors="yes")
    assert StyleOptions().pixel_key() == {"strength": 1.0, "keep_colors": False, "max_size": 1600, "format": None, "quality": 90}


def test_output_format_keeps_input_unless_asked():
    assert output_format("jpeg", StyleOptions()) == "jpeg"
    assert output_format("png", StyleOptions()) == "png"
    assert output_format("gif", StyleOptions()) == "png"
    assert output_format("png", StyleOptions(format="webp")) == "webp"


def test_strength_zero_returns_photo_and_half_is_between():
    photo = photo_array()
    styled = np.full_like(photo, 0.25)
    assert np.allclose(blend(photo, styled, StyleOptions(strength=0.0)), photo)
    half = blend(photo, styled, StyleOptions(strength=0.5))
    assert np.allclose(half, (photo + styled) / 2, atol=1e-6)


def test_keep_colors_takes_luminance_from_styled_and_chroma_from_photo():
    photo = photo_array()
    styled = np.clip(photo[..., ::-1] * 0.8 + 0.1, 0, 1)
    out = blend(photo, styled, StyleOptions(keep_colors=True))
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    inside = (out > 0.01).all(-1) & (out < 0.99).all(-1)  # away from clipping
    assert np.allclose((out @ luma)[inside], (styled @ luma)[inside], atol=1e-5)
    # chroma differences (R-G, B-G) come from the photo
    assert np.allclose((out[..., 0] - out[..., 1])[inside], (photo[..., 0] - photo[..., 1])[inside], atol=1e-5)


def test_result_keeps_odd_sizes(tiny_filter, stylizer):
    for h, w in [(17, 23), (5, 9), (1, 1), (33, 2)]:
        out = stylizer.stylize_array(photo_array(h, w), tiny_filter, StyleOptions())
        assert out.shape == (h, w, 3)
        assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_tiled_file_matches_untiled_file(tiny_filter, tmp_path):
    """stylize_file on the tiled path (uint8 output written tile by tile) gives the untiled pixels."""
    src = make_photo(tmp_path / "in.png", (90, 70))
    a = Stylizer(tile_pixels=10**9).stylize_file(src, tmp_path / "a.png", tiny_filter, StyleOptions())
    b = Stylizer(tile_pixels=0, tile_side=32).stylize_file(src, tmp_path / "b.png", tiny_filter, StyleOptions())
    pa, pb = (np.asarray(Image.open(p)).astype(int) for p in (a, b))
    assert pa.shape == pb.shape == (70, 90, 3) and np.abs(pa - pb).max() <= 1


def test_encode_uint8_gives_encode_image_bytes():
    """stylize_file encodes quantised pixels; the float encoder quantises the same way first."""
    from blogroto.imaging.encode import encode_image, encode_uint8
    from blogroto.imaging.pixels import to_uint8

    rgb = photo_array(30, 40)
    alpha = np.linspace(0, 1, 40, dtype=np.float32)[None, :].repeat(30, 0)
    for fmt in ("jpeg", "png", "webp"):
        assert encode_uint8(to_uint8(rgb), None, fmt, 85) == encode_image(rgb, None, fmt, 85)
    assert encode_uint8(to_uint8(rgb), to_uint8(alpha), "png") == encode_image(rgb, alpha, "png")
    with pytest.raises(ValueError, match="uint8"):
        encode_uint8(rgb, None, "png")


def test_deterministic_bytes(tiny_filter, stylizer, tmp_path):
    src = make_photo(tmp_path / "in.jpg", (40, 30))
    a = stylizer.stylize_file(src, tmp_path / "a.jpg", tiny_filter, StyleOptions(quality=85))
    b = Stylizer().stylize_file(src, tmp_path / "b.jpg", tiny_filter, StyleOptions(quality=85))
    assert a.read_bytes() == b.read_bytes()


def test_max_size_and_formats(tiny_filter, stylizer, tmp_path):
    src = make_photo(tmp_path / "big.png", (80, 40))
    out = stylizer.stylize_file(src, tmp_path / "o.webp", tiny_filter, StyleOptions(max_size=40, format="webp"))
    img = Image.open(out)
    assert img.format == "WEBP" and img.size == (40, 20)
    full = stylizer.stylize_file(src, tmp_path / "o.png", tiny_filter, StyleOptions(max_size=0))
    assert Image.open(full).size == (80, 40) and Image.open(full).format == "PNG"


def test_alpha_is_kept(tiny_filter, stylizer, tmp_path):
    rgba = np.zeros((16, 20, 4), np.uint8)
    rgba[..., :3] = 120
    rgba[..., 3] = np.linspace(0, 255, 20).astype(np.uint8)[None, :]
    src = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(src)
    out = Image.open(stylizer.stylize_file(src, tmp_path / "o.png", tiny_filter, StyleOptions()))
    assert out.mode == "RGBA"
    assert np.abs(np.asarray(out)[..., 3].astype(int) - rgba[..., 3]).max() <= 1


def test_exif_orientation_is_applied(tiny_filter, stylizer, tmp_path):
    src = tmp_path / "rot.jpg"
    img = Image.fromarray(np.full((10, 30, 3), 100, np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(src, exif=exif.tobytes())
    out = Image.open(stylizer.stylize_file(src, tmp_path / "o.jpg", tiny_filter, StyleOptions()))
    assert out.size == (10, 30)
    assert out.getexif().get(0x0112, 1) == 1


def test_stylize_image_pil_roundtrip(tiny_filter, stylizer):
    img = Image.fromarray((photo_array(20, 30) * 255).astype(np.uint8))
    out = stylizer.stylize_image(img, tiny_filter, StyleOptions(strength=0.5))
    assert out.size == (30, 20) and out.mode == "RGB"


def test_corrupt_weights_are_refused_with_file_name(tiny_filter_dir, tmp_path):
    import shutil

    from blogroto.filters import load_filter

    broken = tmp_path / "broken"
    shutil.copytree(tiny_filter_dir / "tiny", broken)
    (broken / "filter.yaml").write_text((broken / "filter.yaml").read_text().replace("name: tiny", "name: broken"))
    data = (broken / "weights.npz").read_bytes()
    (broken / "weights.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FilterError, match="weights.npz"):
        Stylizer().stylize_array(photo_array(8, 8), load_filter(broken), StyleOptions())


def test_wrong_shapes_are_refused(tiny_filter_dir, tmp_path):
    import shutil

    from blogroto.filters import load_filter

    wrong = tmp_path / "wrong"
    shutil.copytree(tiny_filter_dir / "tiny", wrong)
    text = (wrong / "filter.yaml").read_text().replace("name: tiny", "name: wrong").replace("width: 4", "width: 8")
    (wrong / "filter.yaml").write_text(text)
    with pytest.raises(FilterError, match="shape"):
        Stylizer().stylize_array(photo_array(8, 8), load_filter(wrong), StyleOptions())


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_runs_and_stays_close(tiny_filter, precision):
    """GPUs use float16 and bf16 CPUs may use bfloat16: instance norm keeps float32 statistics."""
    photo = photo_array(32, 40)
    ref = Stylizer(precision="float32").stylize_array(photo, tiny_filter, StyleOptions())
    low = Stylizer(precision=precision).stylize_array(photo, tiny_filter, StyleOptions())
    assert low.dtype == np.float32 and low.shape == ref.shape
    assert psnr(ref, low) > 30


@pytest.mark.parametrize("shape", [(1, 5, 7, 8), (2, 6, 4, 8), (1, 1, 3, 8)])
def test_upsample_conv_is_exactly_upsample_then_conv(shape):
    """The network computes nearest-x2 + reflect pad + 3x3 conv as four 2x2 convs at low resolution."""
    import keras
    from keras import ops

    from blogroto.engine.network import _reflect, upsample_conv
    from blogroto.engine.runtime import to_numpy

    keras.utils.set_random_seed(1)
    conv = keras.layers.Conv2D(6, 3, padding="valid")
    h = ops.convert_to_tensor(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    naive = conv(_reflect(ops.repeat(ops.repeat(h, 2, axis=1), 2, axis=2), 1))
    fast = upsample_conv(conv, h)
    assert tuple(fast.shape) == tuple(naive.shape) == (shape[0], 2 * shape[1], 2 * shape[2], 6)
    np.testing.assert_allclose(to_numpy(fast), to_numpy(naive), atol=1e-5)


@pytest.mark.parametrize("shape,out_channels", [((1, 12, 16, 3), 16), ((2, 8, 10, 16), 3), ((1, 6, 6, 5), 7)])
def test_reflect_conv_by_phases_is_exactly_the_conv(shape, out_channels):
    """A 9x9 conv computed on 2x2 blocks of pixels (space to depth) gives the same numbers; the
    network does so where the output has fewer channels than the input (its output layer)."""
    import keras
    from keras import ops

    from blogroto.engine.network import _reflect, by_phases, reflect_conv_by_phases
    from blogroto.engine.runtime import to_numpy

    keras.utils.set_random_seed(2)
    conv = keras.layers.Conv2D(out_channels, 9, padding="valid", bias_initializer="random_normal")
    h = ops.convert_to_tensor(np.random.default_rng(1).normal(size=shape).astype(np.float32))
    direct = conv(_reflect(h, 4))
    blocks = reflect_conv_by_phases(conv, h)
    assert tuple(blocks.shape) == tuple(direct.shape) == (*shape[:3], out_channels)
    np.testing.assert_allclose(to_numpy(blocks), to_numpy(direct), atol=2e-5)
    assert by_phases(conv, h) == (out_channels < shape[-1])


@pytest.mark.parametrize("mode", ["normalise", "cap", "centre"])
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_fused_norm_matches_instance_norm(mode, dtype):
    """An applied network normalises through TensorFlow's fused kernel: instance norm in each mode
    (checked against float64 numpy), with the image's own statistics and with given ones, as the
    keras.ops form computes it with given ones."""
    import keras
    from keras import ops

    from blogroto.engine.network import InstanceNorm
    from blogroto.engine.runtime import backend_name, fused_norm, to_numpy

    if backend_name() != "tensorflow":
        assert fused_norm() is None
        return
    rng = np.random.default_rng(3)
    # channels loud (var > 1, capped), quiet (var < 1, passed as they are), nearly flat and off-centre
    x32 = rng.normal(size=(1, 24, 20, 6)).astype(np.float32) * np.array([4, 0.3, 1, 2, 0.05, 1], np.float32) + 2.5
    x = ops.cast(ops.convert_to_tensor(x32), dtype.replace("mixed_", ""))
    gamma, beta = np.linspace(0.5, 1.5, 6), np.linspace(-1, 1, 6)
    plain, fused = InstanceNorm(mode=mode, dtype=dtype), InstanceNorm(mode=mode, fused=fused_norm(), dtype=dtype)
    for layer in (plain, fused):
        layer.build(x.shape)
        layer.gamma.assign(gamma.astype(np.float32))
        layer.beta.assign(beta.astype(np.float32))

    def expected(mean, var):
        divisor = {"normalise": var + layer.epsilon, "cap": np.maximum(var, 1.0), "centre": np.ones_like(var)}[mode]
        return gamma * (to_numpy(ops.cast(x, "float32")).astype(np.float64) - mean) / np.sqrt(divisor) + beta

    as64 = to_numpy(ops.cast(x, "float32")).astype(np.float64)
    own = (as64.mean(axis=(1, 2), keepdims=True), as64.var(axis=(1, 2), keepdims=True))
    given = (np.full((1, 1, 1, 6), 0.5, np.float32), np.full((1, 1, 1, 6), 3.0, np.float32))
    tolerance = 1e-4 if dtype == "float32" else 0.05  # bfloat16 output: ~3 significant digits
    got, got_stats = fused(x)
    np.testing.assert_allclose(to_numpy(ops.cast(got, "float32")), expected(*own), atol=tolerance, rtol=tolerance)
    for g, w in zip(got_stats, own):
        assert tuple(g.shape) == (1, 1, 1, 6)
        np.testing.assert_allclose(to_numpy(g), w, rtol=1e-4, atol=1e-5)
    got, _ = fused(x, stats=given)
    want, _ = plain(x, stats=given)
    np.testing.assert_allclose(to_numpy(ops.cast(got, "float32")), expected(*given), atol=tolerance, rtol=tolerance)
    np.testing.assert_allclose(to_numpy(ops.cast(got, "float32")), to_numpy(ops.cast(want, "float32")),
                               atol=tolerance, rtol=tolerance)
    keras.backend.clear_session()


def test_applied_network_uses_the_fused_norm_and_agrees_with_the_trained_one(tiny_filter):
    """LoadedNetwork (applying) builds its norms on the fused kernel; the network as training
    builds it gives the same picture."""
    from blogroto.engine.network import load_network
    from blogroto.engine.runtime import backend_name, to_numpy
    from blogroto.engine.tiling import LoadedNetwork

    loaded = LoadedNetwork(tiny_filter, "float32")
    assert (loaded.net.n1.fused is not None) == (backend_name() == "tensorflow")
    if backend_name() == "tensorflow":
        # traced for any photo size, every norm still sees batch 1 and takes the kernel (a reshape
        # to batch -1 on the way would silently send them all back to keras.ops)
        graph = loaded._whole.get_concrete_function().graph.as_graph_def()
        fused = [node for node in graph.node if node.op == "FusedBatchNormV3"]
        assert len(fused) >= loaded.net.norm_count
    spec = tiny_filter.network
    trained = load_network(tiny_filter.file("weights"), spec.width, spec.blocks, norm=spec.norm, arch=spec.arch)
    assert trained.n1.fused is None
    photo = photo_array(40, 56)
    assert psnr(loaded.whole(photo), to_numpy(trained.run(photo[None])[0])[0]) > 90


def test_network_traces_with_nothing_known_of_its_input():
    """A step traced for any input shape (not even the channel count, as a benchmark's training
    step is) still picks each layer's form: the choice reads the layer's kernel, not the input."""
    from blogroto.engine.network import TransformNet
    from blogroto.engine.runtime import backend_name, to_numpy

    if backend_name() != "tensorflow":
        pytest.skip("traces a tf.function")
    import tensorflow as tf

    net = TransformNet(width=4, blocks=1).ensure_built()
    traced = tf.function(lambda x: net.run(x)[0], input_signature=[tf.TensorSpec([None, None, None, None], tf.float32)])
    photo = photo_array(16, 24)[None]
    assert psnr(to_numpy(traced(photo))[0], to_numpy(net.run(photo)[0])[0]) > 90
