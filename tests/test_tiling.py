"""The tiled executor: exact whole-image statistics, halos from the receptive field, bounded memory.

Tiled and untiled results are compared with a float32 feature buffer (then the only differences
are float rounding: statistics summed in float64 per tile vs tf.nn.moments in float32; measured
max abs diff ~1e-5, PSNR ~115 dB), and with the float16 buffer used for very large photos
(measured max ~2e-3, ~72 dB)."""

from __future__ import annotations

import numpy as np
import pytest

from blogroto.engine.stylize import StyleOptions, Stylizer, quantised
from blogroto.engine.tiling import _grid, _padded_window, _reach, padded_size
from tests.conftest import make_filter, make_photo
from tests.test_stylize import photo_array, psnr


@pytest.fixture(scope="module")
def filters(tmp_path_factory):
    """Random networks: tiny with 2 blocks, slim (16/3), full-size (32/5) and slim with centered or capped decoder norms."""
    from blogroto.filters import load_filter

    base = tmp_path_factory.mktemp("tiling-filters")
    specs = {"tiny2": (4, 2, "instance"), "slim": (16, 3, "instance"), "full": (32, 5, "instance"),
             "slim-centered": (16, 3, "centered-decoder"), "slim-capped": (16, 3, "capped-decoder")}
    return {name: load_filter(make_filter(base, name, width=w, blocks=b, seed=11, norm=norm))
            for name, (w, b, norm) in specs.items()}


def tiled_and_untiled(flt, photo, options=StyleOptions(), tile_side=32, buffer_dtype="float32"):
    whole = Stylizer(tile_pixels=10**9).stylize_array(photo, flt, options)
    tiled = Stylizer(tile_pixels=0, tile_side=tile_side, buffer_dtype=buffer_dtype).stylize_array(photo, flt, options)
    return whole, tiled


def test_tiled_equals_untiled_tiny(tiny_filter):
    # odd sizes, many tiles at every level (full res 32 px; at 1/4 res: trunk 8, up path 4)
    for h, w in [(151, 109), (37, 203)]:
        assert len(_grid(padded_size(h, w)[0], 32, 4)) * len(_grid(padded_size(h, w)[1], 32, 4)) >= 8
        whole, tiled = tiled_and_untiled(tiny_filter, photo_array(h, w, seed=h))
        assert tiled.shape == (h, w, 3)
        assert np.abs(whole - tiled).max() < 1e-4 and psnr(whole, tiled) > 90, (h, w)


@pytest.mark.parametrize("name", ["tiny2", "slim", "full", "slim-centered", "slim-capped"])
def test_tiled_equals_untiled_random_networks(filters, name):
    photo = photo_array(123, 97, seed=2)
    whole, tiled = tiled_and_untiled(filters[name], photo)
    assert np.abs(whole - tiled).max() < 1e-4 and psnr(whole, tiled) > 90


def test_tiled_bfloat16_matches_untiled_bfloat16(filters):
    """bf16 CPUs run the tiled executor in bfloat16 too: tiles still share the whole photo's statistics."""
    photo = photo_array(120, 96, seed=5)
    whole = Stylizer(tile_pixels=10**9, precision="bfloat16").stylize_array(photo, filters["slim"], StyleOptions())
    tiled = Stylizer(tile_pixels=0, tile_side=32, precision="bfloat16").stylize_array(photo, filters["slim"], StyleOptions())
    assert psnr(whole, tiled) > 40  # bf16 rounding, not seams (those would cost > 20 dB)


def test_tiled_blends_per_tile(filters):
    photo = photo_array(75, 61, seed=4)
    options = StyleOptions(strength=0.6, keep_colors=True)
    whole, tiled = tiled_and_untiled(filters["tiny2"], photo, options, tile_side=16)
    assert np.abs(whole - tiled).max() < 1e-4


def test_float16_buffer_stays_close(filters):
    """float16 rounds the stored 1/4-res features (5-6 times for 5 blocks): still far below one
    8-bit level on average, and at most about half a level."""
    whole, tiled = tiled_and_untiled(filters["full"], photo_array(123, 97, seed=2), buffer_dtype="float16")
    assert np.abs(whole - tiled).max() < 4e-3 and psnr(whole, tiled) > 60


def test_auto_buffer_is_float32_unless_large():
    st = Stylizer()
    assert st.buffer_dtype_for(2000, 3000, 32) == np.float32  # 6 MP: 192 MB in float32
    assert st.buffer_dtype_for(4000, 6000, 32) == np.float16  # 24 MP: 768 MB in float32
    assert Stylizer(buffer_dtype="float32").buffer_dtype_for(4000, 6000, 32) == np.float32


def test_tiled_is_deterministic(filters):
    photo = photo_array(90, 70, seed=5)
    st = Stylizer(tile_pixels=0, tile_side=32)
    first = st.stylize_array(photo, filters["slim"], StyleOptions())
    assert np.array_equal(first, Stylizer(tile_pixels=0, tile_side=32).stylize_array(photo, filters["slim"], StyleOptions()))


def test_tiles_without_whole_image_statistics_would_disagree(tiny_filter):
    """Guard for the tests above: tiles normalised by their own statistics (even with the same
    halos) give visible seams, so the agreement really comes from the shared statistics."""
    photo = photo_array(96, 128, seed=3)
    photo[:, 64:] = photo[:, 64:] * 0.3  # left and right halves differ a lot
    net = Stylizer().network(tiny_filter)
    whole = net.whole(photo)
    own = np.empty_like(photo)
    halo = 32
    for y0, y1 in _grid(96, 32, 4):
        for x0, x1 in _grid(128, 32, 4):
            wy0, wx0 = max(0, y0 - halo), max(0, x0 - halo)
            region = net.whole(photo[wy0 : y1 + halo, wx0 : x1 + halo])
            own[y0:y1, x0:x1] = region[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    shared = Stylizer(tile_pixels=0, tile_side=32, buffer_dtype="float32").stylize_array(photo, tiny_filter, StyleOptions())
    assert psnr(whole, own) < 45 < 90 < psnr(whole, shared)


def core_changes(units, run, in_channels, rows, core=(24, 40), size=64) -> bool:
    """Whether changing the given input rows alters the stage's output on the core rows."""
    from keras import ops

    from blogroto.engine.runtime import to_numpy
    from blogroto.engine.tiling import _scale

    x = np.random.default_rng(0).random((1, size, 24, in_channels)).astype(np.float32)
    y = x.copy()
    y[:, rows] += 0.5
    scale = _scale(units)
    lo, hi = round(core[0] * scale), round(core[1] * scale)
    x, y = (to_numpy(run(ops.convert_to_tensor(v)))[:, lo:hi] for v in (x, y))
    return not np.array_equal(x, y)


def checked_halos(arch: str = "blogroto") -> list[int]:
    """The halo of every stage of a tiny random network (width 4, 1 block) of `arch`, each checked
    to be exactly how far a core's inputs reach: changing any input row beyond it never alters the
    core, and the row at the halo's edge does."""
    import keras

    from blogroto.engine.network import TransformNet

    keras.utils.set_random_seed(3)
    net = TransformNet(width=4, blocks=1, arch=arch).ensure_built()

    def fixed(units, n):  # given statistics: a tensor's own would make every output depend on every input
        return [(np.zeros((1, 1, 1, c), np.float32), np.ones((1, 1, 1, c), np.float32))
                for c in (norm.gamma.shape[0] for _conv, norm, _up, _relu in units[:n])]

    halos = []
    for part, units, run, channels in [("front", net.front_units(), net.front, 3),
                                       ("block", net.block_units(0), lambda x, st: net.block(0, x, st), 16),
                                       ("up", net.up_units(), net.up, 16)]:
        for n in range(len(units)):
            stage, stage_run = units[: n + 1], (lambda x, run=run, st=fixed(units, n): run(x, st))
            halo = _reach(stage)
            halos.append(halo)
            beyond = [r for r in range(64) if not 24 - halo <= r < 40 + halo]
            assert not core_changes(stage, stage_run, channels, beyond), (part, n)  # nothing beyond the halo matters
            edges = [24 - halo], [40 + halo - 1]  # and the halo is no larger than needed (on one side at least)
            assert (core_changes(stage, stage_run, channels, edges[0])
                    or core_changes(stage, stage_run, channels, edges[1])), (part, n)
    return halos


def test_halos_are_the_receptive_reach():
    # hand-derived: 9x9 -> 4; stride-2 3x3 adds 1 before the core, ...
    assert checked_halos() == [4, 5, 7, 1, 2, 1, 1, 2]


def test_padded_window_matches_numpy_pad():
    rng = np.random.default_rng(1)
    for h, w in [(17, 23), (5, 9), (1, 1), (33, 2)]:
        rgb = rng.random((h, w, 3)).astype(np.float32)
        hp, wp, mode = padded_size(h, w)
        assert hp % 4 == wp % 4 == 0 and hp >= 16 and wp >= 16
        full = np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode=mode)
        assert np.array_equal(_padded_window(rgb, 0, hp, 0, wp), full)
        assert np.array_equal(_padded_window(rgb, 4, hp, wp // 2, wp), full[4:, wp // 2 :])


def test_grid_covers_and_aligns():
    for n, side, align in [(152, 32, 4), (1000, 512, 4), (16, 512, 4), (38, 16, 1), (7, 3, 1)]:
        parts = _grid(n, side, align)
        assert parts[0][0] == 0 and parts[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        assert all(a % align == 0 and b - a <= side + align for a, b in parts)
        assert all(b - a >= side / 2 for a, b in parts) or len(parts) == 1


def test_tiled_numpy_memory_stays_below_a_photo_copy(tiny_filter):
    """The tiled path pads and reads tiles lazily: besides its output, the numpy memory it
    allocates stays well below one float32 copy of the photo (TensorFlow's own is not traced)."""
    import tracemalloc

    photo = photo_array(512, 384, seed=6)
    st = Stylizer(tile_pixels=0, tile_side=64, buffer_dtype="float32")
    out = np.empty(photo.shape, np.uint8)
    st.stylize_array(photo, tiny_filter, StyleOptions(), out=out)  # load and compile first (JAX: per tile shape)
    tracemalloc.start()
    try:
        st.stylize_array(photo, tiny_filter, StyleOptions(), out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    buffer = 512 * 384 // 16 * 16 * 4  # the 1/4-res features of a width-4 network, float32
    assert peak < buffer + photo.nbytes // 4, peak


def test_eight_bit_photos_run_as_uint8_exactly(tiny_filter, tmp_path):
    """stylize_file keeps 8-bit photos as uint8 (a quarter of the memory): same pixels as float."""
    from blogroto.imaging.decode import load_image

    loaded = load_image(make_photo(tmp_path / "p.jpg", (50, 70))).rgb
    photo = quantised(loaded, rows=16)  # several chunks
    assert photo is not None and photo.dtype == np.uint8
    assert quantised(loaded + np.float32(1e-4)) is None  # not 8-bit (16-bit, resized): stays float
    options = StyleOptions(keep_colors=True, strength=0.7)
    for st in (Stylizer(tile_pixels=10**9), Stylizer(tile_pixels=0, tile_side=32)):
        assert np.array_equal(st.stylize_array(photo, tiny_filter, options), st.stylize_array(loaded, tiny_filter, options))
