"""blogroto.imaging: decoding real-world rasters to float sRGB, resizing, encoding.

Every image is generated here, tiny (a few pixels), so the suite is fast and self-contained.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile

from blogroto.errors import ImageError
from blogroto.imaging.decode import LoadedImage, load_image
from blogroto.imaging.encode import EXTENSIONS, encode_image, save_image
from blogroto.imaging.pixels import to_uint8
from blogroto.imaging.resize import resize_long_side
from blogroto.imaging.sniff import gif_frame_count

W, H = 8, 6


# --------------------------------------------------------------------------------------------
# helpers


def reference_rgb(w: int = W, h: int = H) -> np.ndarray:
    """Every pixel a different colour, so any flip/rotation/shift is visible."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 30 + 5, y * 40 + 3, (x + y * w) * 4], axis=2).astype(np.uint8)


def encode_pil(im: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def u8(x: np.ndarray) -> np.ndarray:
    return to_uint8(x)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def filtered_rows(samples: np.ndarray) -> bytes:
    """Rows use filters None/Sub/Up in turn, so the decoder must unfilter with the right
    bytes-per-pixel (6 for 16-bit RGB, where Pillow's 8-bit view would use 3)."""
    h, w = samples.shape[:2]
    channels = 1 if samples.ndim == 2 else samples.shape[2]
    rows = samples.astype(">u2").reshape(h, w * channels).view(np.uint8).reshape(h, -1).astype(np.int32)
    bpp = 2 * channels
    raw = bytearray()
    for i, row in enumerate(rows):
        kind = i % 3
        if kind == 1:  # Sub
            left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
            line = (row - left) % 256
        elif kind == 2:  # Up
            line = (row - rows[i - 1]) % 256
        else:
            line = row
        raw += bytes([kind]) + line.astype(np.uint8).tobytes()
    return bytes(raw)


def png16(samples: np.ndarray, color_type: int, extra_chunks: list[tuple[bytes, bytes]] = (),
          interlace: bool = False) -> bytes:
    """Write a 16-bit PNG by hand (Pillow cannot), optionally Adam7-interlaced."""
    h, w = samples.shape[:2]
    if interlace:
        raw = b"".join(filtered_rows(samples[y0::dy, x0::dx]) for x0, y0, dx, dy in ADAM7
                       if samples[y0::dy, x0::dx].size)
    else:
        raw = filtered_rows(samples)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, int(interlace))
    body = png_chunk(b"IHDR", ihdr)
    for kind, data in extra_chunks:
        body += png_chunk(kind, data)
    body += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size; its (tiny) pixel data must never be decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def icc_tags(icc: bytes) -> list[list]:
    (count,) = struct.unpack_from(">I", icc, 128)
    return [list(struct.unpack_from(">4sII", icc, 132 + 12 * i)) for i in range(count)]


def write_tags(icc: bytearray, tags: list[list]) -> None:
    for i, (sig, off, size) in enumerate(tags):
        struct.pack_into(">4sII", icc, 132 + 12 * i, sig, off, size)


def s15f16(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def make_profile(colorants=None, gamma=None, swap_red_green=False, name=b"Test") -> bytes:
    """A real RGB matrix/TRC ICC profile, made by editing LittleCMS's own sRGB profile.

    colorants: D50 XYZ of R, G, B (columns of the device->XYZ matrix); gamma: a pure power TRC.
    The description is renamed so the profile is not mistaken for sRGB.
    """
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = icc_tags(bytes(icc))
    by_sig = {t[0]: t for t in tags}
    if colorants is not None:
        for sig, xyz in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants):
            off = by_sig[sig][1]
            icc[off:off + 20] = b"XYZ \x00\x00\x00\x00" + b"".join(s15f16(v) for v in xyz)
    if gamma is not None:
        off = by_sig[b"rTRC"][1]  # the three TRC tags share one curve
        curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, int(round(gamma * 256)))
        icc[off:off + len(curve)] = curve
        for sig in (b"rTRC", b"gTRC", b"bTRC"):
            by_sig[sig][2] = len(curve)
    if swap_red_green:
        r, g = by_sig[b"rXYZ"], by_sig[b"gXYZ"]
        r[1], g[1] = g[1], r[1]
    write_tags(icc, tags)
    desc = "sRGB".encode("utf-16-be")
    assert desc in icc
    return bytes(icc).replace(desc, name.decode().encode("utf-16-be"))


def grey_profile(gamma: float = 1.0) -> bytes:
    """A minimal ICC v2 greyscale display profile with a pure power curve (1.0 = linear)."""
    d50 = s15f16(0.9642) + s15f16(1.0) + s15f16(0.8249)
    tags = [(b"wtpt", b"XYZ \0\0\0\0" + d50),
            (b"kTRC", b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    header = (struct.pack(">I4sI4s4s4s", 128 + len(table) + len(body), b"lcms", 0x02100000, b"mntr", b"GRAY", b"XYZ ")
              + b"\0" * 12 + b"acsp" + b"\0" * 28 + d50 + b"\0" * 48)
    return header + table + body


ADOBE_D50 = [(0.6097559, 0.3111242, 0.0194811), (0.2052401, 0.6256560, 0.0608902), (0.1492240, 0.0632197, 0.7448387)]
ADOBE_GAMMA = 563 / 256


def adobe_to_srgb_reference(rgb8: np.ndarray) -> np.ndarray:
    """Adobe RGB (1998) -> sRGB with the published D65 matrices (independent of LittleCMS)."""
    adobe_to_xyz = np.array([[0.5767309, 0.1855540, 0.1881852],
                             [0.2973769, 0.6273491, 0.0752741],
                             [0.0270343, 0.0706872, 0.9911085]])
    xyz_to_srgb = np.array([[3.2404542, -1.5371385, -0.4985314],
                            [-0.9692660, 1.8760108, 0.0415560],
                            [0.0556434, -0.2040259, 1.0572252]])
    linear = np.power(rgb8 / 255.0, ADOBE_GAMMA) @ adobe_to_xyz.T @ xyz_to_srgb.T
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055) * 255


def exif_with(**tags) -> Image.Exif:
    exif = Image.Exif()
    for key, value in tags.items():
        exif[getattr(ExifTags.Base, key)] = value
    return exif


XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
       b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
       b'<dc:creator><rdf:Seq><rdf:li>Ada Lovelace</rdf:li></rdf:Seq></dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


# --------------------------------------------------------------------------------------------
# basics


def test_to_uint8_is_exact_inverse_of_load_scaling_and_clips():
    levels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_uint8(levels.astype(np.float32) / 255), levels)
    assert to_uint8(np.array([-0.5, 1.5, np.nan, 0.5 / 255, 1.5 / 255], np.float32)).tolist() == [0, 255, 0, 0, 2]


def test_extensions_and_truncated_loading_stays_off():
    assert EXTENSIONS == {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "tiff": ".tif", "bmp": ".bmp"}
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP", "WEBP"])
def test_lossless_formats_round_trip_exactly(fmt):
    ref = reference_rgb()
    params = {"lossless": True} if fmt == "WEBP" else {}
    img = load_image(encode_pil(Image.fromarray(ref), fmt, **params), name=f"x.{fmt.lower()}")
    assert img.format == fmt.lower()
    assert img.rgb.dtype == np.float32 and img.rgb.shape == (H, W, 3)
    assert img.alpha is None and img.frames == 1
    assert np.array_equal(u8(img.rgb), ref)


def test_load_from_path_and_odd_size_unchanged(tmp_path):
    ref = reference_rgb(7, 5)
    path = tmp_path / "odd.png"
    Image.fromarray(ref).save(path)
    img = load_image(path)
    assert img.source_name == str(path)
    assert img.rgb.shape == (5, 7, 3) and (img.width, img.height) == (7, 5)
    assert np.array_equal(u8(img.rgb), ref)
    assert load_image(str(path), name="posts/odd.png").source_name == "posts/odd.png"
    back = load_image(encode_image(img.rgb, None, "png"))
    assert np.array_equal(u8(back.rgb), ref)


# --------------------------------------------------------------------------------------------
# orientation

# Stored pixels that, displayed with orientation o, show the reference picture.
_STORE_FOR = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,   # inverse of 6's ROTATE_270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # inverse of 8's ROTATE_90
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_and_reset(orientation):
    ref = Image.fromarray(reference_rgb())
    stored = ref if orientation == 1 else ref.transpose(_STORE_FOR[orientation])
    exif = exif_with(Orientation=orientation, Make="Blogcam")
    data = encode_pil(stored, "PNG", exif=exif)
    # Cross-check the fixture with Pillow's own exif_transpose.
    from PIL import ImageOps
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))), np.asarray(ref))

    img = load_image(data, name="o.png")
    assert np.array_equal(u8(img.rgb), np.asarray(ref))
    carried = Image.Exif()
    carried.load(img.exif)
    assert carried[ExifTags.Base.Orientation] == 1
    assert carried[ExifTags.Base.Make] == "Blogcam"


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "JPEG"])
def test_orientation_in_other_containers(fmt):
    ref = np.kron(reference_rgb(), np.ones((2, 2, 1), np.uint8))
    params = {"lossless": True} if fmt == "WEBP" else {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}
    data = encode_pil(Image.fromarray(ref).transpose(Image.Transpose.ROTATE_90), fmt,
                      exif=exif_with(Orientation=6, Make="Blogcam"), **params)
    img = load_image(data)
    assert np.abs(u8(img.rgb).astype(int) - ref).max() <= (8 if fmt == "JPEG" else 0)
    carried = parse_exif(img.exif)
    # (Pillow applies TIFF orientation itself while decoding and drops the tag: either way, 1)
    assert carried.get(ExifTags.Base.Orientation, 1) == 1 and carried[ExifTags.Base.Make] == "Blogcam"


def test_orientation_applies_to_alpha_and_jpeg():
    ref = reference_rgb()
    alpha = (np.arange(W * H).reshape(H, W) * 5).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([ref, alpha]), "RGBA")
    img = load_image(encode_pil(rgba.transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif_with(Orientation=6)))
    assert np.array_equal(u8(img.alpha), alpha)
    assert np.array_equal(u8(img.rgb), ref)

    big = np.kron(ref, np.ones((4, 4, 1), np.uint8))  # blocks survive JPEG well enough
    jpeg = encode_pil(Image.fromarray(big).transpose(Image.Transpose.ROTATE_270), "JPEG", quality=95,
                      exif=exif_with(Orientation=8))
    img = load_image(jpeg)
    assert img.rgb.shape == big.shape
    assert np.abs(u8(img.rgb).astype(int) - big).mean() < 6


# --------------------------------------------------------------------------------------------
# colour modes


def test_cmyk_jpeg_and_tiff_become_rgb():
    cmyk = np.zeros((H, W, 4), np.uint8)
    cmyk[:, :4] = (0, 255, 255, 0)  # red ink
    cmyk[:, 4:] = (0, 0, 0, 0)      # no ink: white
    im = Image.fromarray(cmyk, "CMYK")
    jpeg = encode_pil(im, "JPEG", quality=100)
    assert "adobe" in Image.open(io.BytesIO(jpeg)).info  # Adobe (inverted) CMYK, as Photoshop writes
    for data, tol in ((encode_pil(im, "TIFF"), 0), (jpeg, 3)):
        img = load_image(data)
        got = u8(img.rgb).astype(int)
        assert np.abs(got[:, :4] - (255, 0, 0)).max() <= tol
        assert np.abs(got[:, 4:] - (255, 255, 255)).max() <= tol


def test_palette_with_trns_gives_alpha():
    idx = (np.arange(W * H).reshape(H, W) % 3).astype(np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    data = encode_pil(im, "PNG", transparency=bytes([0, 128, 255]))
    img = load_image(data)
    assert img.alpha is not None
    assert np.array_equal(u8(img.alpha), np.array([0, 128, 255], np.uint8)[idx])
    assert np.array_equal(u8(img.rgb), np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)[idx])

    gif = load_image(encode_pil(im, "GIF", transparency=1))
    assert gif.format == "gif"
    assert np.array_equal(gif.alpha, (idx != 1).astype(np.float32))

    opaque = load_image(encode_pil(im, "PNG"))
    assert opaque.alpha is None


def test_grey_modes_la_1bit_and_grey_trns():
    grey = (np.arange(W * H).reshape(H, W) * 5).astype(np.uint8)
    alpha = (255 - grey).astype(np.uint8)
    img = load_image(encode_pil(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"))
    assert np.array_equal(u8(img.rgb), np.repeat(grey[..., None], 3, axis=2))
    assert np.array_equal(u8(img.alpha), alpha)

    bits = Image.fromarray(grey > 100).convert("1")
    img = load_image(encode_pil(bits, "PNG"))
    assert np.array_equal(u8(img.rgb[..., 0]), np.where(grey > 100, 255, 0))
    assert img.alpha is None

    img = load_image(encode_pil(Image.fromarray(grey, "L"), "PNG", transparency=int(grey[0, 3])))
    assert np.array_equal(img.alpha, (grey != grey[0, 3]).astype(np.float32))


def test_i16_png_keeps_16_bit_precision():
    values = (np.arange(W * H).reshape(H, W) * 1365 + 1).astype(np.uint16)  # not multiples of 257
    data = encode_pil(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    img = load_image(data)
    assert np.allclose(img.rgb[..., 1], values / 65535, atol=1e-7)
    assert img.alpha is None
    # 16-bit grey with a tRNS key
    img = load_image(png16(values, 0, [(b"tRNS", struct.pack(">H", int(values[1, 1])))]))
    assert np.array_equal(img.alpha, (values != values[1, 1]).astype(np.float32))


def test_big_endian_16_bit_tiff_grey():
    values = (np.arange(W * H).reshape(H, W) * 1365 + 7).astype(np.uint16)
    im = Image.fromarray(values.astype(">u2"))
    data = encode_pil(im, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I;16B"
    assert np.allclose(load_image(data).rgb[..., 2], values / 65535, atol=1e-7)


def test_i_mode_tiff_grey_is_scaled_like_16_bit():
    values = (np.arange(W * H).reshape(H, W) * 1000).astype(np.int32)
    img = load_image(encode_pil(Image.fromarray(values), "TIFF"))
    assert np.allclose(img.rgb[..., 0], values / 65535, atol=1e-7)


def random16(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, size=shape, dtype=np.uint16)


def test_16_bit_rgb_png_is_not_truncated_to_8_bits():
    rgb16 = random16((H, W, 3))
    data = png16(rgb16, 2)
    assert Image.open(io.BytesIO(data)).mode == "RGB"  # Pillow alone would give 8 bits
    img = load_image(data)
    assert np.allclose(img.rgb, rgb16 / 65535, atol=1e-7)
    assert img.alpha is None


@pytest.mark.parametrize("color_type,channels", [(2, 3), (6, 4), (4, 2), (0, 1)])
def test_16_bit_interlaced_pngs(color_type, channels):
    samples = random16((11, 13, channels) if channels > 1 else (11, 13), seed=9)
    img = load_image(png16(samples, color_type, interlace=True))
    assert Image.open(io.BytesIO(png16(samples, color_type, interlace=True))).info.get("interlace")
    grey = samples if channels == 1 else samples[..., 0]
    expected = samples[..., :3] if channels >= 3 else np.repeat(grey[..., None], 3, axis=2)
    assert np.allclose(img.rgb, expected / 65535, atol=1e-7)
    if channels in (2, 4):
        assert np.allclose(img.alpha, samples[..., -1] / 65535, atol=1e-7)


def test_16_bit_rgba_la_and_rgb_trns_pngs():
    rgba16 = random16((H, W, 4), seed=1)
    img = load_image(png16(rgba16, 6))
    assert np.allclose(img.rgb, rgba16[..., :3] / 65535, atol=1e-7)
    assert np.allclose(img.alpha, rgba16[..., 3] / 65535, atol=1e-7)

    la16 = random16((H, W, 2), seed=2)
    img = load_image(png16(la16, 4))
    assert np.allclose(img.rgb, np.repeat(la16[..., :1], 3, axis=2) / 65535, atol=1e-7)
    assert np.allclose(img.alpha, la16[..., 1] / 65535, atol=1e-7)

    rgb16 = random16((H, W, 3), seed=3)
    key = rgb16[2, 5]
    img = load_image(png16(rgb16, 2, [(b"tRNS", struct.pack(">3H", *key.tolist()))]))
    expected = np.ones((H, W), np.float32)
    expected[np.all(rgb16 == key, axis=2)] = 0
    assert img.alpha[2, 5] == 0 and np.array_equal(img.alpha, expected)


def test_16_bit_png_orientation():
    rgb16 = random16((H, W, 3), seed=4)
    exif = exif_with(Orientation=3).tobytes()[6:]  # eXIf holds the TIFF data without "Exif\0\0"
    img = load_image(png16(rgb16, 2, [(b"eXIf", exif)]))
    assert np.allclose(img.rgb, rgb16[::-1, ::-1] / 65535, atol=1e-7)


# --------------------------------------------------------------------------------------------
# ICC profiles


def test_icc_profile_is_converted_to_srgb():
    swapped = make_profile(swap_red_green=True)
    im = Image.fromarray(np.full((H, W, 3), (255, 0, 0), np.uint8))
    img = load_image(encode_pil(im, "PNG", icc_profile=swapped))
    assert np.abs(u8(img.rgb).astype(int) - (0, 255, 0)).max() <= 1  # "red" in this profile is sRGB green


def test_adobe_rgb_like_profile_matches_published_matrices():
    adobe = make_profile(colorants=ADOBE_D50, gamma=ADOBE_GAMMA, name=b"Adob")
    colours = np.array([[200, 100, 50], [50, 180, 90], [90, 90, 200], [128, 128, 128],
                        [230, 200, 180], [20, 60, 40], [255, 255, 255], [0, 0, 0]], np.uint8)
    pixels = np.resize(colours, (H * W, 3)).reshape(H, W, 3)
    img = load_image(encode_pil(Image.fromarray(pixels), "PNG", icc_profile=adobe))
    expected = adobe_to_srgb_reference(pixels.astype(np.float64))
    assert np.abs(img.rgb * 255 - expected).max() < 2.0
    # and it really changed something: Adobe green is more saturated than sRGB green
    assert np.abs(u8(img.rgb).astype(int) - pixels).max() > 20

    # JPEG and WebP carry profiles too
    for fmt in ("JPEG", "WEBP"):
        flat = Image.fromarray(np.full((H, W, 3), (50, 180, 90), np.uint8))
        got = load_image(encode_pil(flat, fmt, quality=100, icc_profile=adobe)).rgb[3, 3] * 255
        assert np.abs(got - adobe_to_srgb_reference(np.array([50.0, 180, 90]))).max() < 4, fmt


def test_16_bit_icc_float_path_agrees_with_littlecms():
    adobe = make_profile(colorants=ADOBE_D50, gamma=ADOBE_GAMMA, name=b"Adob")
    rgb8 = np.random.default_rng(5).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    iccp = b"adobe\x00\x00" + zlib.compress(adobe)
    wide = load_image(png16(rgb8.astype(np.uint16) * 257, 2, [(b"iCCP", iccp)]))
    narrow = load_image(encode_pil(Image.fromarray(rgb8), "PNG", icc_profile=adobe))
    assert np.abs(wide.rgb - narrow.rgb).max() * 255 < 1.5
    assert np.abs(wide.rgb * 255 - adobe_to_srgb_reference(rgb8.astype(np.float64))).max() < 2.0
    assert not np.array_equal(u8(wide.rgb), rgb8)

    swapped = load_image(png16(np.full((H, W, 3), (65535, 0, 0), np.uint16), 2,
                               [(b"iCCP", b"swap\x00\x00" + zlib.compress(make_profile(swap_red_green=True)))]))
    assert np.allclose(swapped.rgb, (0, 1, 0), atol=2e-3)


def test_grey_profile_8_and_16_bit():
    # Linear-light grey: 50% there is sRGB 188 (0.7354), not 128.
    linear = grey_profile(1.0)
    img = load_image(encode_pil(Image.fromarray(np.full((H, W), 128, np.uint8), "L"), "PNG", icc_profile=linear))
    assert np.abs(u8(img.rgb).astype(int) - 188).max() <= 1
    wide = load_image(png16(np.full((H, W), 32768, np.uint16), 0,
                            [(b"iCCP", b"grey\x00\x00" + zlib.compress(linear))]))
    expected = 1.055 * (32768 / 65535) ** (1 / 2.4) - 0.055
    assert np.allclose(wide.rgb, expected, atol=1e-5)
    la = Image.fromarray(np.dstack([np.full((H, W), 128, np.uint8), np.full((H, W), 77, np.uint8)]), "LA")
    img = load_image(encode_pil(la, "PNG", icc_profile=linear))
    assert np.abs(u8(img.rgb).astype(int) - 188).max() <= 1 and np.all(u8(img.alpha) == 77)


def test_srgb_and_corrupt_profiles_leave_pixels_alone():
    ref = reference_rgb()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert np.array_equal(u8(load_image(encode_pil(Image.fromarray(ref), "PNG", icc_profile=srgb)).rgb), ref)
    for junk in (b"not a profile at all", b"\x00" * 200, make_profile(swap_red_green=True)[:150]):
        img = load_image(encode_pil(Image.fromarray(ref), "PNG", icc_profile=junk), name="junk.png")
        assert np.array_equal(u8(img.rgb), ref)
    # a PNG iCCP chunk Pillow itself refuses (unknown compression method)
    plain = encode_pil(Image.fromarray(ref), "PNG")
    broken_iccp = png_chunk(b"iCCP", b"x\x00\x01" + zlib.compress(b"junk"))
    with pytest.raises(Exception):
        Image.open(io.BytesIO(plain[:33] + broken_iccp + plain[33:]))
    img = load_image(plain[:33] + broken_iccp + plain[33:], name="iccp.png")
    assert np.array_equal(u8(img.rgb), ref)
    # an RGB profile on a greyscale image is ignored, not an error
    grey = (np.arange(W * H).reshape(H, W) * 5).astype(np.uint8)
    img = load_image(encode_pil(Image.fromarray(grey, "L"), "PNG", icc_profile=make_profile(swap_red_green=True)))
    assert np.array_equal(u8(img.rgb[..., 0]), grey)


def test_output_embeds_no_icc_profile():
    rgb = reference_rgb() / 255
    for fmt in ("jpeg", "png", "webp", "tiff"):
        assert "icc_profile" not in Image.open(io.BytesIO(encode_image(rgb, None, fmt))).info, fmt


# --------------------------------------------------------------------------------------------
# alpha and encoding


def test_alpha_kept_by_png_webp_tiff_and_composited_on_white_for_jpeg_bmp():
    rgb = np.zeros((H, W, 3), np.float32)  # black
    alpha = np.zeros((H, W), np.float32)
    alpha[:, 4:] = 1.0
    alpha[:, 2:4] = 0.5
    for fmt in ("png", "tiff"):
        img = load_image(encode_image(rgb, alpha, fmt))
        assert np.array_equal(u8(img.alpha), u8(alpha)), fmt
    webp = load_image(encode_image(rgb, alpha, "webp", quality=100))
    assert np.abs(u8(webp.alpha).astype(int) - u8(alpha)).max() <= 2
    for fmt in ("jpeg", "bmp"):
        img = load_image(encode_image(rgb, alpha, fmt, quality=95))
        assert img.alpha is None
        got = u8(img.rgb).astype(int)
        assert np.abs(got[:, :2] - 255).max() <= 3, fmt      # transparent -> white
        assert np.abs(got[:, 2:4] - 128).max() <= 3, fmt     # half black over white
        assert np.abs(got[:, 4:] - 0).max() <= 3, fmt        # opaque black


def test_gif_output_keeps_one_bit_alpha_and_colours():
    rgb = np.zeros((H, W, 3), np.float32)
    rgb[..., 0] = 1.0
    alpha = np.ones((H, W), np.float32)
    alpha[0, :] = 0.2
    img = load_image(encode_image(rgb, alpha, "gif"))
    assert np.array_equal(img.alpha, (alpha >= 0.5).astype(np.float32))
    assert np.array_equal(u8(img.rgb[1:]), np.broadcast_to(np.array([255, 0, 0], np.uint8), (H - 1, W, 3)))


def test_jpeg_encoder_settings():
    rgb = np.random.default_rng(6).random((32, 32, 3), dtype=np.float32)
    high = Image.open(io.BytesIO(encode_image(rgb, None, "jpeg", quality=90)))
    low = Image.open(io.BytesIO(encode_image(rgb, None, "jpeg", quality=60)))
    from PIL import JpegImagePlugin
    assert JpegImagePlugin.get_sampling(high) == 0   # 4:4:4
    assert JpegImagePlugin.get_sampling(low) == 2    # 4:2:0
    assert high.info.get("progressive") and low.info.get("progressive")
    assert len(encode_image(rgb, None, "jpeg", quality=30)) < len(encode_image(rgb, None, "jpeg", quality=95))


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
def test_encoding_is_deterministic(fmt):
    rng = np.random.default_rng(7)
    rgb = rng.random((H * 3, W * 3, 3), dtype=np.float32)
    alpha = rng.random((H * 3, W * 3), dtype=np.float32)
    exif = exif_with(Make="Blogcam").tobytes()
    first = encode_image(rgb, alpha, fmt, quality=80, exif=exif, xmp=XMP)
    second = encode_image(rgb.copy(), alpha.copy(), fmt, quality=80, exif=exif, xmp=XMP)
    assert first == second
    assert load_image(first).format == fmt


def test_encode_rejects_bad_arguments():
    rgb = np.zeros((H, W, 3), np.float32)
    with pytest.raises(ValueError):
        encode_image(rgb, None, "svg")
    with pytest.raises(ValueError):
        encode_image(rgb[..., 0], None, "png")
    with pytest.raises(ValueError):
        encode_image(rgb, np.zeros((W, H), np.float32), "png")
    with pytest.raises(ValueError):
        encode_image(rgb, None, "jpeg", quality=0)
    with pytest.raises(ValueError, match="floats"):
        encode_image(reference_rgb(), None, "png")  # uint8 would silently come out white
    assert load_image(encode_image(rgb, None, "JPG")).format == "jpeg"
    assert load_image(encode_image(rgb, None, ".tif")).format == "tiff"


def test_save_image_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "out" / "a.webp"
    save_image(path, reference_rgb() / 255, None, "webp", quality=90)
    assert load_image(path).format == "webp"
    assert [p.name for p in path.parent.iterdir()] == ["a.webp"]


# --------------------------------------------------------------------------------------------
# resizing


def test_resize_long_side_landscape_portrait_and_never_upscales():
    img = load_image(encode_pil(Image.fromarray(reference_rgb(300, 200)), "PNG"))
    small = resize_long_side(img, 150)
    assert small.rgb.shape == (100, 150, 3) and small.rgb.dtype == np.float32
    assert small.format == img.format and small.frames == img.frames
    assert 0 <= small.rgb.min() and small.rgb.max() <= 1
    portrait = load_image(encode_pil(Image.fromarray(reference_rgb(201, 301)), "PNG"))
    assert resize_long_side(portrait, 100).rgb.shape == (100, 67, 3)  # 201*100/301 = 66.8
    assert resize_long_side(img, 0) is img
    assert resize_long_side(img, 300) is img
    assert resize_long_side(img, 5000).rgb.shape == (200, 300, 3)
    thin = load_image(encode_pil(Image.fromarray(reference_rgb(400, 1)), "PNG"))
    assert resize_long_side(thin, 40).rgb.shape == (1, 40, 3)
    with pytest.raises(ValueError):
        resize_long_side(img, -1)


def test_resize_is_lanczos_in_float():
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    img = LoadedImage(np.dstack([ramp] * 3), None, "png", None, "ramp", 1)
    small = resize_long_side(img, 16)
    expected = np.asarray(Image.fromarray(ramp, "F").resize((16, 16), Image.Resampling.LANCZOS))
    assert np.allclose(small.rgb[..., 0], np.clip(expected, 0, 1), atol=1e-6)


def test_resize_alpha_does_not_bleed_hidden_colour():
    rgb = np.zeros((8, 64, 3), np.float32)
    rgb[:, :32] = (1, 0, 0)   # red, but fully transparent
    rgb[:, 32:] = (0, 0, 1)   # blue, opaque
    alpha = np.zeros((8, 64), np.float32)
    alpha[:, 32:] = 1
    img = LoadedImage(rgb, alpha, "png", None, "edge", 1)
    small = resize_long_side(img, 16)
    visible = small.alpha > 0.05
    assert visible.any()
    assert small.rgb[..., 0][visible].max() < 0.02  # no red fringe where anything shows
    assert small.alpha.shape == (2, 16) and 0 <= small.alpha.min() and small.alpha.max() <= 1
    opaque = resize_long_side(LoadedImage(rgb, np.ones_like(alpha), "png", None, "o", 1), 16)
    assert np.array_equal(opaque.alpha, np.ones((2, 16), np.float32))
    assert np.allclose(opaque.rgb, resize_long_side(LoadedImage(rgb, None, "png", None, "o", 1), 16).rgb)


# --------------------------------------------------------------------------------------------
# refusing bad input


def test_decompression_bombs_are_refused_before_decoding():
    with pytest.raises(ImageError, match="too large.*decompression bomb") as err:
        load_image(png_header_only(20_000, 7_000), name="bomb.png")  # 140 MP > 120 MP default
    assert err.value.path == Path("bomb.png")
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(png_header_only(30_000, 30_000), name="huge.png")  # past Pillow's own ceiling
    small = encode_pil(Image.fromarray(reference_rgb()), "PNG")
    with pytest.raises(ImageError, match="too large"):
        load_image(small, name="s.png", max_pixels=W * H - 1)
    assert load_image(small, max_pixels=W * H).rgb.shape == (H, W, 3)


def test_missing_empty_directory_and_permission(tmp_path, monkeypatch):
    with pytest.raises(ImageError, match="no such file") as err:
        load_image(tmp_path / "nope.jpg")
    assert err.value.path == tmp_path / "nope.jpg"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_image(empty)
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
    locked = tmp_path / "locked.png"
    locked.write_bytes(encode_pil(Image.fromarray(reference_rgb()), "PNG"))

    def deny(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(ImageError, match="permission denied") as err:
        load_image(locked)
    assert str(err.value) == f"{locked}: permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_real_unreadable_file(tmp_path):
    locked = tmp_path / "locked.png"
    locked.write_bytes(encode_pil(Image.fromarray(reference_rgb()), "PNG"))
    locked.chmod(0)
    with pytest.raises(ImageError, match="permission denied"):
        load_image(locked)


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def noisy(fmt: str, **params) -> bytes:
    noise = np.random.default_rng(8).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    return encode_pil(Image.fromarray(noise), fmt, **params)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_truncated_files_are_errors_naming_the_file(fmt):
    with pytest.raises(ImageError, match="truncated or corrupt") as err:
        load_image(truncated(noisy(fmt)), name=f"posts/cut.{fmt.lower()}")
    assert err.value.path == Path(f"posts/cut.{fmt.lower()}")


def test_corrupt_png_crc_is_an_error():
    data = bytearray(noisy("PNG"))
    data[60] ^= 0xFF  # inside IDAT
    with pytest.raises(ImageError, match="corrupt"):
        load_image(bytes(data), name="bad.png")


def test_svg_not_an_image_and_other_formats():
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="8" height="6"/>'
    with pytest.raises(ImageError) as err:
        load_image(svg, name="logo.svg")
    assert err.value.message == "SVG is a vector image; blogroto stylizes raster images only"
    with pytest.raises(ImageError, match="SVG"):  # content decides, not the name
        load_image(svg, name="logo.png")
    with pytest.raises(ImageError, match="SVG"):
        load_image(b"\x1f\x8b\x08\x00junk", name="logo.svgz")
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"hello, world", name="notes.jpg")
    with pytest.raises(ImageError, match="HTML page"):
        load_image(b"<!DOCTYPE html><html><body>404</body></html>", name="remote.jpg")
    with pytest.raises(ImageError, match="unsupported image format ICO"):
        load_image(encode_pil(Image.fromarray(reference_rgb()), "ICO"), name="favicon.ico")
    with pytest.raises(ImageError, match="unsupported image format PDF"):
        load_image(b"%PDF-1.7\n...", name="doc.pdf")


def test_wrong_extension_is_read_by_content(tmp_path):
    path = tmp_path / "actually-png.jpg"
    path.write_bytes(encode_pil(Image.fromarray(reference_rgb()), "PNG"))
    img = load_image(path)
    assert img.format == "png"
    assert np.array_equal(u8(img.rgb), reference_rgb())


# --------------------------------------------------------------------------------------------
# animation


def frames_of(colours):
    return [Image.fromarray(np.full((H, W, 3), c, np.uint8)) for c in colours]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images_give_first_frame_and_count(fmt):
    first, *rest = frames_of([(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    params = {"lossless": True} if fmt == "WEBP" else {}
    data = encode_pil(first, fmt, save_all=True, append_images=rest, duration=100, loop=0, **params)
    img = load_image(data)
    assert img.frames == 3
    assert np.abs(u8(img.rgb).astype(int) - (255, 0, 0)).max() <= 1


def test_multi_page_tiff_and_mpo():
    first, *rest = frames_of([(255, 0, 0), (0, 255, 0)])
    tiff = load_image(encode_pil(first, "TIFF", save_all=True, append_images=rest))
    assert tiff.frames == 2 and np.array_equal(u8(tiff.rgb[0, 0]), [255, 0, 0])
    mpo_bytes = encode_pil(first, "MPO", save_all=True, append_images=rest, quality=100)
    assert Image.open(io.BytesIO(mpo_bytes)).format == "MPO"
    mpo = load_image(mpo_bytes)
    assert mpo.format == "jpeg" and mpo.frames == 1
    assert np.abs(u8(mpo.rgb).astype(int) - (255, 0, 0)).max() <= 3


def test_gif_frame_count_does_not_decode_and_survives_trailing_garbage():
    first, *rest = frames_of([(255, 0, 0)] * 5)
    data = encode_pil(first, "GIF", save_all=True, append_images=rest)
    assert gif_frame_count(data) == Image.open(io.BytesIO(data)).n_frames
    assert gif_frame_count(data[:-1] + b"garbage") == gif_frame_count(data)
    assert load_image(encode_pil(first, "GIF")).frames == 1


# --------------------------------------------------------------------------------------------
# metadata


def camera_exif() -> Image.Exif:
    exif = exif_with(Make="Blogcam", Model="X1", Copyright="(c) Ada", Orientation=1)
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:05:01 12:00:00"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExifImageWidth] = 4000
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExifImageHeight] = 3000
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 0.0)
    return exif


def parse_exif(data: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.load(data)
    return exif


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_gps_removed_other_exif_kept(fmt):
    data = encode_pil(Image.fromarray(reference_rgb()), fmt, exif=camera_exif())
    img = load_image(data, name="trip.jpg")
    carried = parse_exif(img.exif)
    assert ExifTags.IFD.GPSInfo not in carried
    assert carried.get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert carried[ExifTags.Base.Make] == "Blogcam"
    assert carried[ExifTags.Base.Copyright] == "(c) Ada"
    assert carried.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:05:01 12:00:00"
    kept = parse_exif(load_image(data, keep_gps=True).exif)
    assert kept.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
def test_exif_written_with_true_pixel_dimensions(fmt):
    img = load_image(encode_pil(Image.fromarray(reference_rgb()), "JPEG", exif=camera_exif()))
    out = Image.open(io.BytesIO(encode_image(img.rgb, None, fmt, exif=img.exif)))
    exif = out.getexif()
    assert exif[ExifTags.Base.Make] == "Blogcam"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    assert (sub[ExifTags.Base.ExifImageWidth], sub[ExifTags.Base.ExifImageHeight]) == (W, H)
    assert ExifTags.IFD.GPSInfo not in exif


def test_tiff_layout_tags_are_not_carried():
    img = load_image(encode_pil(Image.fromarray(reference_rgb()), "TIFF", exif=exif_with(Make="Scanner")))
    carried = parse_exif(img.exif)
    assert carried[ExifTags.Base.Make] == "Scanner"
    for tag in (256, 257, 258, 259, 262, 273, 277, 278, 279):
        assert tag not in carried


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
def test_xmp_round_trip(fmt):
    data = encode_image(reference_rgb() / 255, None, fmt, xmp=XMP)
    img = load_image(data)
    assert img.xmp is not None and b"Ada Lovelace" in img.xmp
    assert img.xmp.rstrip(b"\x00") == XMP


def test_xmp_gps_and_orientation_are_stripped():
    xmp = XMP.replace(b'rdf:about=""', b'rdf:about="" exif:GPSLatitude="51,30.0N" tiff:Orientation="6"'
                      b' xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"')
    xmp = xmp.replace(b"</dc:creator>", b"</dc:creator><exif:GPSLongitude>0,7.5W</exif:GPSLongitude>")
    data = encode_pil(Image.fromarray(reference_rgb()), "JPEG", xmp=xmp)
    img = load_image(data)
    assert b"GPS" not in img.xmp and b"Orientation" not in img.xmp
    assert b"Ada Lovelace" in img.xmp
    assert b"GPSLongitude" in load_image(data, keep_gps=True).xmp


def test_xmp_gps_is_stripped_whatever_prefix_the_packet_binds():
    # A packet may bind the EXIF namespace to any prefix; the position is just as much there.
    xmp = XMP.replace(b'rdf:about=""', b'rdf:about="" e:GPSLatitude="51,30.0N" t:Orientation="6"'
                      b" xmlns:e='http://ns.adobe.com/exif/1.0/' xmlns:t=\"http://ns.adobe.com/tiff/1.0/\"")
    xmp = xmp.replace(b"</dc:creator>", b"</dc:creator><e:GPSLongitude>0,7.5W</e:GPSLongitude><e:GPSAltitude/>")
    img = load_image(encode_pil(Image.fromarray(reference_rgb()), "JPEG", xmp=xmp))
    assert b"GPS" not in img.xmp and b"Orientation" not in img.xmp
    assert b"Ada Lovelace" in img.xmp and b"xmlns:e=" in img.xmp  # only the properties go


def test_broken_exif_costs_the_metadata_not_the_image():
    data = bytearray(encode_pil(Image.fromarray(reference_rgb()), "JPEG", exif=camera_exif()))
    start = data.find(b"Exif\x00\x00")
    data[start + 10:start + 14] = b"\xff\xff\xff\x7f"  # IFD0 offset far outside the segment
    img = load_image(bytes(data))
    assert img.rgb.shape == (H, W, 3)
