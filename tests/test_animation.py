"""Animated GIF/WebP/APNG: detection, bounds, frame timing and transparency, one GIF palette,
flicker reduction along the optical flow, and the build writing animations back animated."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from blogroto.animation import (
    Animation,
    encode_animation,
    frame_count,
    load_animation,
    stylize_animation,
)
from blogroto.errors import ConfigError, ImageError
from blogroto.site.config import AnimationSettings, parse_settings


def gif_xmp(data: bytes) -> bytes | None:
    """The XMP packet blogroto embeds in a GIF (the spec's "XMP DataXMP" application extension,
    ended by its 258-byte magic trailer); Pillow does not read it."""
    start = data.find(b"\x21\xff\x0bXMP DataXMP")
    if start < 0:
        return None
    body = data[start + 14:]
    end = body.find(bytes([1]) + bytes(range(255, -1, -1)))
    return body[:end] if end >= 0 else None


def clip(frames: int = 6, size=(48, 32), shift: int = 2, seed: int = 0) -> list[np.ndarray]:
    """A textured scene panned `shift` px left per frame: frame t+1 at x is frame t at x + shift."""
    w, h = size
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 255, (h // 4, (w + shift * frames) // 4, 3), dtype=np.uint8))
    base = np.asarray(base.resize((w + shift * frames, h), Image.BICUBIC))
    return [np.ascontiguousarray(base[:, t * shift : t * shift + w]) for t in range(frames)]


def encoded(frames, fmt: str, durations=None, loop=0, alpha_rows: int = 0) -> bytes:
    images = []
    for f in frames:
        if alpha_rows:
            a = np.full(f.shape[:2], 255, np.uint8)
            a[:alpha_rows] = 0
            images.append(Image.fromarray(np.dstack([f, a]), "RGBA"))
        else:
            images.append(Image.fromarray(f))
    out = io.BytesIO()
    params = {"save_all": True, "append_images": images[1:], "duration": durations or [40] * len(frames)}
    if loop is not None:
        params["loop"] = loop
    if fmt == "GIF" and alpha_rows:
        params["disposal"] = 2
    images[0].save(out, fmt, **params)
    return out.getvalue()


def read_back(data: bytes):
    im = Image.open(io.BytesIO(data))
    frames, durations = [], []
    for f in ImageSequence.Iterator(im):
        rgba = f.convert("RGBA")
        durations.append(f.info.get("duration"))
        frames.append(np.asarray(rgba))
    return im.format, frames, durations, im.info.get("loop")


# -- detection and bounds ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_frame_count_reads_structure_only(fmt, tmp_path):
    frames = clip(5)
    data = encoded(frames, fmt)
    assert frame_count(data) > 1
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    assert frame_count(path) == frame_count(data)
    still = io.BytesIO()
    Image.fromarray(frames[0]).save(still, fmt)
    assert frame_count(still.getvalue()) == 1
    assert frame_count(data[:40]) >= 1  # truncated: no exception
    assert frame_count(b"\xff\xd8\xff" + b"\0" * 40) == 1


def test_bounds_name_the_file_and_decode_nothing():
    data = encoded(clip(6), "GIF")
    with pytest.raises(ImageError, match=r"anim\.gif.*6 frames, over the limit of 5"):
        load_animation(data, "anim.gif", AnimationSettings(max_frames=5), 0)
    with pytest.raises(ImageError, match=r"megapixels.*max_pixels"):
        load_animation(data, "anim.gif", AnimationSettings(max_pixels=6 * 48 * 32 - 1), 0)
    # at output size: the same animation fits once max_size shrinks it
    anim = load_animation(data, "anim.gif", AnimationSettings(max_pixels=6 * 24 * 16), 24)
    assert anim.frames[0].shape == (16, 24, 3)
    with pytest.raises(ImageError, match="anim.gif"):
        load_animation(data[: len(data) // 2], "anim.gif", AnimationSettings(), 0)


def test_a_frame_larger_than_the_declared_size_is_refused(monkeypatch):
    """Pillow grows a GIF whose later frame is larger than its screen; the bounds were checked on
    the screen's size, so such a frame is refused before it is decoded into the animation."""
    from blogroto import animation

    data = encoded(clip(3), "GIF")
    real = animation.ImageSequence.Iterator

    def growing(im):
        for i, frame in enumerate(real(im)):
            if i == 1:
                frame = frame.resize((480, 320))  # what a hostile later frame makes Pillow do
            yield frame

    monkeypatch.setattr(animation.ImageSequence, "Iterator", growing)
    with pytest.raises(ImageError, match=r"anim\.gif.*frame 2 is 480x320, not the animation's 48x32"):
        load_animation(data, "anim.gif", AnimationSettings(), 0)


# -- timing, loop, transparency, palette -----------------------------------------------------


@pytest.mark.parametrize("fmt,loop", [("GIF", 3), ("GIF", None), ("PNG", 2), ("WEBP", 0)])
def test_round_trip_keeps_timing_loop_and_transparency(fmt, loop):
    frames = clip(4)
    durations = [30, 50, 70, 90]
    anim = load_animation(encoded(frames, fmt, durations, loop, alpha_rows=3), "a", AnimationSettings(), 0)
    assert len(anim.frames) == 4 and anim.durations == durations and anim.loop == loop
    assert all(a is not None and a[:3].max() == 0 and a[3:].min() == 255 for a in anim.alphas)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">credit</x:xmpmeta>'
    out = encode_animation(stylize_animation(anim, lambda f: 255 - f, smoothing=0.0), xmp=xmp)
    got_fmt, got, got_durations, got_loop = read_back(out)
    assert (gif_xmp(out) if fmt == "GIF" else Image.open(io.BytesIO(out)).info["xmp"]) == xmp
    assert got_fmt == fmt and len(got) == 4 and got_durations == durations
    assert got_loop == (loop if fmt == "GIF" else loop or 0)
    tolerance = {"PNG": 0, "GIF": 8, "WEBP": 12}[fmt]  # GIF: one 255-colour palette; WebP: lossy
    for g, f in zip(got, anim.frames):
        assert g[:3, :, 3].max() == 0 and g[3:, :, 3].min() == 255  # transparency kept, per frame
        assert np.abs(g[3:, :, :3].astype(int) - (255 - f[3:]).astype(int)).mean() <= tolerance


def test_gif_frames_share_one_palette_so_still_areas_do_not_shimmer():
    frames = clip(5)
    for f in frames:
        f[:10] = np.linspace(0, 255, f.shape[1], dtype=np.uint8)[None, :, None]  # a still gradient band
    anim = Animation(frames, [None] * 5, [40] * 5, 0, "gif")
    im = Image.open(io.BytesIO(encode_animation(anim)))
    colours, bands = set(), []
    for f in ImageSequence.Iterator(im):
        rgb = np.asarray(f.convert("RGB"))
        colours |= set(map(tuple, rgb.reshape(-1, 3)))
        bands.append(rgb[:10])
    assert len(colours) <= 255  # one palette for every frame
    assert all(np.array_equal(b, bands[0]) for b in bands)


# -- flicker reduction ------------------------------------------------------------------------


def warping_error(outs: list[np.ndarray], shift: int) -> float:
    """Mean |out_t - out_{t-1} carried by the true motion| (the clip pans `shift` px left)."""
    return float(np.mean([np.abs(b[:, :-shift].astype(np.float32) - a[:, shift:].astype(np.float32)).mean()
                          for a, b in zip(outs, outs[1:])]))


def flickering(seed: int = 1):
    """A stand-in filter that flickers: a new low-frequency pattern on every frame."""
    rng = np.random.default_rng(seed)

    def stylize(frame):
        noise = Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).resize(frame.shape[1::-1], Image.BICUBIC)
        return np.clip(255 - frame.astype(np.int16) + (np.asarray(noise, np.int16) - 128) // 3, 0, 255).astype(np.uint8)

    return stylize


def test_flow_blend_removes_most_of_the_flicker_and_keeps_cuts():
    frames = clip(8, size=(96, 64), shift=3)
    anim = Animation(frames, [None] * 8, [40] * 8, 0, "gif")
    independent = stylize_animation(anim, flickering(), smoothing=0.0).frames
    smoothed = stylize_animation(anim, flickering(), smoothing=0.6).frames
    assert warping_error(smoothed, 3) < 0.5 * warping_error(independent, 3)
    # the picture is still the filter's, not a ghost of the first frame
    assert np.abs(smoothed[-1].astype(int) - (255 - frames[-1]).astype(int)).mean() < 20

    # a cut to another scene: nothing of the old one is carried over
    other = clip(2, size=(96, 64), seed=9)
    cut = Animation([frames[0], other[0]], [None] * 2, [40] * 2, 0, "gif")
    plain = stylize_animation(cut, lambda f: 255 - f, smoothing=0.0).frames[1]
    blended = stylize_animation(cut, lambda f: 255 - f, smoothing=1.0).frames[1]
    assert np.abs(plain.astype(int) - blended.astype(int)).mean() < 3


# -- settings ---------------------------------------------------------------------------------


def test_animation_settings(tmp_path):
    assert parse_settings({}, tmp_path, None).animation == AnimationSettings()
    assert parse_settings({"animation": False}, tmp_path, None).animation is None
    got = parse_settings({"animation": {"max_frames": 10, "smoothing": 0}}, tmp_path, None).animation
    assert got == AnimationSettings(max_frames=10, smoothing=0.0)
    with pytest.raises(ConfigError, match=r"animation\.smoothing must be between"):
        parse_settings({"animation": {"smoothing": 2}}, tmp_path, None, line_of=lambda k: 7)
    warnings: list[str] = []
    parse_settings({"animation": {"max_frame": 3}}, tmp_path, None, warnings=warnings)
    assert "max_frames" in warnings[0]


# -- the build --------------------------------------------------------------------------------


def one_post_site(root: Path, tiny_filter_dir: Path, body: str, config: str = "") -> Path:
    """A site with the `tiny` filter and one post showing `body`."""
    import shutil

    (root / "_posts").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "_config.yml").write_text("title: T\nalgorotoscope:\n  catalog: false\n" + config)
    shutil.copytree(tiny_filter_dir / "tiny", root / "_filters" / "tiny")
    (root / "_posts" / "2024-01-01-a.md").write_text("---\nalgorotoscope: tiny\n---\n" + body)
    return root


def build(root: Path, stylizer):
    """One build with the real (shared, warm) stylizer."""
    from blogroto.build import Builder, BuildOptions

    b = Builder(root, BuildOptions(progress=False))
    b.stylizer = stylizer
    return b.build()


def animated_site(root: Path, tiny_filter_dir: Path, config: str = "") -> Path:
    root = one_post_site(root, tiny_filter_dir, "![wave](/assets/wave.gif)\n", config)
    (root / "assets" / "wave.gif").write_bytes(encoded(clip(5), "GIF", [30, 40, 50, 60, 70], loop=0))
    return root


def test_build_writes_an_animated_gif_back_animated(tmp_path, tiny_filter_dir, stylizer):
    root = animated_site(tmp_path / "site", tiny_filter_dir)
    source = (root / "assets" / "wave.gif").read_bytes()
    report = build(root, stylizer)
    assert report.errors == [] and report.images_stylized == 1, report
    out = root / "_blogroto" / "site"
    names = list((out / "assets" / "algorotoscope").glob("wave-tiny-*.gif"))
    assert len(names) == 1
    fmt, frames, durations, loop = read_back(names[0].read_bytes())
    assert fmt == "GIF" and len(frames) == 5 and durations == [30, 40, 50, 60, 70] and loop == 0
    from blogroto.credits import xmp as credit_xmp

    credit = credit_xmp.read_xmp(gif_xmp(names[0].read_bytes()))  # the credit travels in the file
    assert credit["blogroto:filter"] == "tiny" and credit["dc:source"] == "https://example.org/art"
    assert names[0].name in (out / "_posts" / "2024-01-01-a.md").read_text()
    assert (root / "assets" / "wave.gif").read_bytes() == source  # the author's file untouched
    assert build(root, stylizer).images_stylized == 0  # cached
    # an edited animation (what watch mode sees) is stylized anew; the old output goes
    (root / "assets" / "wave.gif").write_bytes(encoded(clip(4, seed=3), "GIF", [80] * 4, loop=0))
    assert build(root, stylizer).images_stylized == 1
    (new,) = (out / "assets" / "algorotoscope").glob("wave-tiny-*.gif")
    assert new.name != names[0].name and len(read_back(new.read_bytes())[1]) == 4


def test_build_bounds_and_switch(tmp_path, tiny_filter_dir, stylizer):
    root = animated_site(tmp_path / "bounded", tiny_filter_dir, "  animation:\n    max_frames: 3\n")
    report = build(root, stylizer)
    assert any("wave.gif" in w and "over the limit of 3" in w for w in report.warnings), report.warnings
    post = (root / "_blogroto" / "site" / "_posts" / "2024-01-01-a.md").read_text()
    assert "](/assets/wave.gif)" in post  # left as it was: nothing lost

    root = animated_site(tmp_path / "off", tiny_filter_dir, "  animation: false\n")
    assert build(root, stylizer).errors == []
    stills = list((root / "_blogroto" / "site" / "assets" / "algorotoscope").glob("wave-tiny-*"))
    assert len(stills) == 1 and stills[0].suffix == ".png"  # today's behaviour: the first frame, as PNG


def test_build_says_what_precision_an_animations_frames_ran_in(tmp_path, tiny_filter_dir, monkeypatch):
    """On a CPU with native bfloat16, a filter with no recorded agreement checks it on the clip's
    frames; `build -v` (the log) says what they ran in."""
    from blogroto.build import Builder, BuildOptions
    from blogroto.engine.stylize import Stylizer

    monkeypatch.setattr("blogroto.engine.precision.cpu_supports_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr("blogroto.engine.precision.has_gpu", lambda: False)
    root = animated_site(tmp_path / "site", tiny_filter_dir)
    lines = []
    b = Builder(root, BuildOptions(progress=False, log=lines.append))
    b.stylizer = Stylizer()
    assert b.build().images_stylized == 1
    said = [line for line in lines if "wave.gif: frames in " in line]
    assert len(said) == 1 and "agreed with" in said[0] and " dB" in said[0], lines
