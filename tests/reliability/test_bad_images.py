"""Images as they come from the real world, broken and hostile ones included.

An image that cannot be stylized is a warning naming the post and line (`--strict` makes it an
error); the reference is left as it was and the rest of the site builds. Unusual but valid
images are stylized. The network is faked (colour inversion); decoding is blogroto's own.
"""

from __future__ import annotations

import builtins
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reliability.kit import decodes_fully, files_under, photo, write


def image_post(kit, name: str, image_rel: str, extra: str = "") -> str:
    """A post showing the good image (line 5) and `image_rel` (line 7)."""
    return kit.post(name, f"![good](/assets/img/good.jpg)\n\n![it](/{image_rel}){extra}\n")


def build_with_warning(kit, rel: str, ref: str, *fragments: str) -> str:
    result = kit.build()
    assert result.code == 0, result.text
    warnings = [w for w in result.lines("warning") if w.startswith(f"{kit.root}/{rel}:7: ")]
    assert len(warnings) == 1, result.err
    for fragment in fragments:
        assert fragment in warnings[0], (fragment, warnings[0])
    text = kit.output(rel)
    assert f"![it]({ref})" in text  # left as it was
    assert len(kit.stylized(rel)) == 1  # the good image of the same post still stylized
    kit.assert_good_post_built()
    strict = kit.build("--strict")
    assert strict.code == 1, strict.text
    return warnings[0]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header claims width x height (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(photo(fmt="GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    i = data.index(b",")  # first image descriptor
    data[i + 5:i + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(photo())
    i = data.index(b"\xff\xc0")  # SOF0: length(2) precision(1) height(2) width(2)
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# -- refused: a warning, the reference left alone ---------------------------------------------


BROKEN = {
    "zero.jpg": (b"", "empty file (0 bytes)"),
    "truncated.jpg": (lambda: photo((96, 64))[: len(photo((96, 64))) * 6 // 10], "cannot read JPEG image (truncated or corrupt)"),
    "truncated.png": (lambda: photo((96, 64), fmt="PNG")[:400], "truncated or corrupt"),
    "garbage.jpg": (b"this is not an image at all\n" * 10, "not an image"),
    "page.png": (b"<!doctype html><html><body>404</body></html>", "not an image: this is an HTML page"),
    "vector.png": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
                   "SVG is a vector image"),
    "bomb.png": (png_claiming(100_000, 100_000), "possible decompression bomb"),
    "bomb.gif": (lambda: gif_claiming(65_000, 65_000), "possible decompression bomb"),
    "bomb.jpg": (lambda: jpeg_claiming(65_000, 65_000), "possible decompression bomb"),
    "photoshop.jpg": (b"8BPS\x00\x01" + b"\x00" * 64, "unsupported image format Photoshop PSD"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_and_hostile_images_warn_and_are_left_alone(kit, name):
    data, message = BROKEN[name]
    data = data() if callable(data) else data
    kit.write(f"assets/img/{name}", data)
    rel = image_post(kit, name.replace(".", "-"), f"assets/img/{name}")
    warning = build_with_warning(kit, rel, f"/assets/img/{name}", f"cannot stylize /assets/img/{name}: ", message)
    assert warning.endswith("; left as it is")


def test_bombs_are_refused_before_decoding(kit, monkeypatch):
    """The pixel count is checked from the header: no pixel buffer is ever allocated."""
    import PIL.ImageFile

    kit.write("assets/img/bomb.png", png_claiming(60_000, 60_000))
    rel = image_post(kit, "bomb", "assets/img/bomb.png")

    def no_decoding(self, *args, **kwargs):
        if self.size == (60_000, 60_000):
            raise AssertionError("the bomb was decoded")
        return real_load(self, *args, **kwargs)

    real_load = PIL.ImageFile.ImageFile.load
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", no_decoding)
    build_with_warning(kit, rel, "/assets/img/bomb.png", "3600000000 pixels", "decompression bomb")


def test_missing_image_is_named(kit):
    rel = image_post(kit, "missing", "assets/img/nope.jpg")
    build_with_warning(kit, rel, "/assets/img/nope.jpg", "image not found: /assets/img/nope.jpg")


def test_svg_reference_is_skipped_quietly(kit):
    kit.write("assets/img/logo.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>')
    rel = image_post(kit, "svg", "assets/img/logo.svg")
    result = kit.build("-v")
    assert result.code == 0 and not result.lines("warning"), result.text
    assert "![it](/assets/img/logo.svg)" in kit.output(rel)
    assert f"{kit.root}/{rel}:7: skipping vector image /assets/img/logo.svg" in result.err  # the note (-v)
    assert kit.build("--strict").code == 0  # not a problem, just not a raster image


# -- unreadable files -------------------------------------------------------------------------


@pytest.fixture
def deny_reading(monkeypatch):
    """Make chosen paths unreadable as a non-root user would see them (root ignores chmod 000)."""
    denied: set[str] = set()
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(file)) in denied:
            raise PermissionError(13, "Permission denied", os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    return lambda path: denied.add(os.path.realpath(path))


def test_unreadable_image_warns(kit, deny_reading):
    kit.write("assets/img/secret.jpg", photo(seed=5))
    rel = image_post(kit, "unreadable", "assets/img/secret.jpg")
    deny_reading(kit.root / "assets/img/secret.jpg")
    build_with_warning(kit, rel, "/assets/img/secret.jpg", "/assets/img/secret.jpg", "ermission denied")


def test_unreadable_post_fails_alone(kit, deny_reading):
    rel = image_post(kit, "locked", "assets/img/good.jpg")
    deny_reading(kit.root / rel)
    result = kit.build()
    assert result.code == 1, result.text
    (error,) = result.lines("error")
    assert error.startswith(f"{kit.root}/{rel}: ") and "ermission denied" in error, error
    kit.assert_good_post_built()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode; covered by the mocked tests above")
def test_really_unreadable_image_warns(kit):
    path = kit.write("assets/img/secret.jpg", photo(seed=5))
    rel = image_post(kit, "unreadable", "assets/img/secret.jpg")
    path.chmod(0)
    try:
        build_with_warning(kit, rel, "/assets/img/secret.jpg", "ermission denied")
    finally:
        path.chmod(0o644)


# -- valid but unusual: stylized --------------------------------------------------------------


def stylized_image(kit, rel: str) -> Image.Image:
    result = kit.build()
    assert result.code == 0 and not result.lines("warning") and not result.lines("error"), result.text
    names = [n for n in kit.stylized(rel) if not n.startswith("good-")]
    assert len(names) == 1, names
    return Image.open(kit.out / "assets/algorotoscope" / names[0])


def test_wrong_extension_goes_by_content(kit):
    # transparent, so it stays PNG (an opaque PNG becomes JPEG: tests/test_responsive.py)
    kit.write("assets/img/actually-png.jpg", photo(fmt="PNG", seed=3, mode="RGBA"))
    rel = image_post(kit, "ext", "assets/img/actually-png.jpg")
    im = stylized_image(kit, rel)
    assert im.format == "PNG" and Path(im.filename).suffix == ".png"


def test_very_detailed_photo_encodes(kit):
    """Noise at JPEG quality 90 / 4:4:4 takes more than the 1 byte per pixel Pillow reserves for
    progressive JPEGs ("broken data stream when writing image file" before the fix)."""
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=95)
    kit.write("assets/img/noise.jpg", buffer.getvalue())
    rel = image_post(kit, "noise", "assets/img/noise.jpg")
    im = stylized_image(kit, rel)
    assert im.format == "JPEG" and im.size == (320, 240)
    assert len(Path(im.filename).read_bytes()) > 320 * 240  # the case Pillow's buffer was too small for


def test_cmyk_jpeg(kit):
    kit.write("assets/img/cmyk.jpg", photo(mode="CMYK", seed=3))
    rel = image_post(kit, "cmyk", "assets/img/cmyk.jpg")
    im = stylized_image(kit, rel)
    assert im.format == "JPEG" and im.mode == "RGB"


def test_16_bit_png(kit):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 65535, (24, 32), dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")  # really 16 bits per sample
    kit.write("assets/img/deep.png", buffer.getvalue())
    rel = image_post(kit, "deep", "assets/img/deep.png")
    im = stylized_image(kit, rel)
    assert im.format == "JPEG" and im.size == (32, 24)  # opaque: published as JPEG, like any stylized photo


def test_palette_png_with_transparency_keeps_its_alpha(kit):
    im = Image.new("P", (20, 10), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (10, 0, 20, 10))
    buffer = io.BytesIO()
    im.save(buffer, "PNG", transparency=0)
    kit.write("assets/img/palette.png", buffer.getvalue())
    rel = image_post(kit, "palette", "assets/img/palette.png")
    out = stylized_image(kit, rel).convert("RGBA")
    assert out.getpixel((2, 2))[3] == 0  # transparent stays transparent
    assert out.getpixel((15, 5))[3] == 255 and out.getpixel((15, 5))[:3] == (255, 255, 0)  # inverted blue


def test_animated_gif_stays_animated(kit):
    # (with `animation: false` it becomes its first frame as a still PNG: tests/test_animation.py)
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    kit.write("assets/img/anim.gif", buffer.getvalue())
    rel = image_post(kit, "anim", "assets/img/anim.gif")
    out = stylized_image(kit, rel)
    assert out.format == "GIF" and out.n_frames == 3
    for i, (r, g, b) in enumerate(((0, 255, 255), (255, 0, 255), (255, 255, 0))):  # each frame, inverted
        out.seek(i)
        got = out.convert("RGB").getpixel((8, 6))
        assert all(abs(x - y) < 12 for x, y in zip(got, (r, g, b))), (i, got)


# -- symlinks ---------------------------------------------------------------------------------


def test_symlinks_out_of_the_site_are_never_followed(kit, tmp_path):
    outside = tmp_path / "outside"
    secret = write(outside / "secret.jpg", photo(seed=42))
    secret_bytes = secret.read_bytes()
    write(outside / "notes.md", "---\nalgorotoscope: tiny\n---\n![s](/secret.jpg)\n")
    (kit.root / "assets/img").mkdir(parents=True, exist_ok=True)
    os.symlink(secret, kit.root / "assets/img/leak.jpg")  # absolute
    os.symlink(os.path.relpath(secret, kit.root / "assets/img"), kit.root / "assets/img/leak-rel.jpg")
    os.symlink(outside, kit.root / "assets/ext")  # a folder
    os.symlink(outside / "notes.md", kit.root / "_posts/2024-03-01-linked.md")  # a post
    os.symlink("loop.jpg", kit.root / "assets/img/loop.jpg")
    os.symlink("good.jpg", kit.root / "assets/img/alias.jpg")  # inside: fine
    refs = ["/assets/img/leak.jpg", "/assets/img/leak-rel.jpg", "/assets/ext/secret.jpg", "../assets/ext/secret.jpg"]
    rel = kit.post("links", "".join(f"![l{i}]({r})\n\n" for i, r in enumerate(refs))
                   + "![loop](/assets/img/loop.jpg)\n\n![alias](/assets/img/alias.jpg)\n")
    result = kit.build()
    assert result.code == 0, result.text
    warnings = result.lines("warning")
    for i, ref in enumerate(refs):
        assert f"{kit.root}/{rel}:{5 + 2 * i}: refusing image reference {ref!r}: it points outside the site" in warnings
    assert f"{kit.root}/{rel}:13: image not found: /assets/img/loop.jpg" in warnings
    not_published = [w for w in warnings if "not published: a symlink" in w]
    assert sorted(w.split(":")[0] for w in not_published) == sorted(
        str(kit.root / p) for p in ("assets/img/leak.jpg", "assets/img/leak-rel.jpg", "assets/ext",
                                    "_posts/2024-03-01-linked.md", "assets/img/loop.jpg"))
    assert len(warnings) == len(refs) + 1 + len(not_published), warnings
    text = kit.output(rel)
    assert all(f"]({r})" in text for r in refs)
    assert len(kit.stylized(rel)) == 1  # the in-site alias
    # Nothing from outside was read into the output or the cache; links that point outside are not
    # published (Jekyll's rule), the in-site one is published as its target; no symlink in the output.
    for folder in (kit.out, kit.cache):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert secret_bytes not in path.read_bytes(), path
    for gone in ("assets/img/leak.jpg", "assets/img/leak-rel.jpg", "assets/ext", "_posts/2024-03-01-linked.md",
                 "assets/img/loop.jpg"):
        assert not os.path.lexists(kit.out / gone), gone
    assert (kit.out / "assets/img/alias.jpg").read_bytes() == (kit.root / "assets/img/good.jpg").read_bytes()
    assert not [p for p in kit.out.rglob("*") if p.is_symlink()]
    # the output's copy of a linked post is the link, not a stylized copy of the outside file
    assert not any("secret" in name for name in files_under(kit.out / "assets/algorotoscope"))


def test_decoded_output_of_every_accepted_format_is_complete(kit):
    for fmt, ext in (("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")):
        kit.write(f"assets/img/x.{ext}", photo(fmt=fmt, seed=7))
    rel = kit.post("formats", "".join(f"![{e}](/assets/img/x.{e})\n\n" for e in ("bmp", "tif", "webp")))
    result = kit.build()
    assert result.code == 0 and not result.lines("warning"), result.text
    names = kit.stylized(rel)
    assert len(names) == 3 and all(decodes_fully(kit.out / "assets/algorotoscope" / n) for n in names)
