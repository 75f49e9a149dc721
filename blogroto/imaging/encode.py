"""Encoding stylized pixels into JPEG, PNG, WebP, TIFF, GIF or BMP with the carried EXIF and XMP,
written atomically."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from blogroto.errors import ImageError, describe_error
from blogroto.fsutil import atomic_write_bytes
from blogroto.imaging.exif import exif_for_output, exif_without_makernote
from blogroto.imaging.pixels import to_uint8
from blogroto.imaging.sniff import FORMAT_ALIASES

log = logging.getLogger(__name__)


EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "tiff": ".tif", "bmp": ".bmp"}


def normalise_format(fmt: str) -> str:
    """'JPG', 'jpeg', '.jpg' -> 'jpeg'; raises ValueError for formats blogroto does not write."""
    key = fmt.lower().lstrip(".")
    key = FORMAT_ALIASES.get(key, key)
    if key not in EXTENSIONS:
        raise ValueError(f"unsupported output format {fmt!r}; use one of {', '.join(EXTENSIONS)}")
    return key


def encode_image(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    fmt: str,
    quality: int = 90,
    exif: bytes | None = None,
    xmp: bytes | None = None,
) -> bytes:
    """Encode float [0, 1] pixels as `fmt`; the same arguments always give the same bytes.

    JPEG: progressive, optimized Huffman tables, 4:4:4 chroma at quality >= 90 else 4:2:0;
    alpha is composited onto white. PNG: compress level 6, alpha kept. WebP: lossy at
    `quality`, method 4, alpha kept. GIF: median-cut palette + Floyd-Steinberg, 1-bit alpha.
    TIFF: uncompressed, alpha kept. BMP: alpha composited onto white. No ICC profile is embedded
    (the pixels are sRGB). EXIF is embedded in JPEG/PNG/WebP/TIFF, with PixelX/YDimension
    updated to the real size; XMP in JPEG/PNG/WebP/TIFF. GIF and BMP carry no metadata.
    """
    fmt = normalise_format(fmt)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be HxWx3, got shape {rgb.shape}")
    # uint8 pixels here would silently encode as (nearly) white: refuse them loudly.
    if not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"rgb must be floats in [0, 1], got dtype {rgb.dtype}")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match rgb {rgb.shape[:2]}")
        if not np.issubdtype(alpha.dtype, np.floating):
            raise ValueError(f"alpha must be floats in [0, 1], got dtype {alpha.dtype}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")

    if alpha is not None and fmt in ("jpeg", "bmp"):
        a = np.clip(np.nan_to_num(np.asarray(alpha, dtype=np.float32)), 0.0, 1.0)[..., None]
        rgb = np.asarray(rgb, dtype=np.float32) * a + (1.0 - a)  # onto white
        alpha = None
    return encode_uint8(to_uint8(rgb), None if alpha is None else to_uint8(alpha), fmt, quality, exif, xmp)


def encode_uint8(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    fmt: str,
    quality: int = 90,
    exif: bytes | None = None,
    xmp: bytes | None = None,
) -> bytes:
    """`encode_image` for pixels already quantised by `to_uint8` (uint8 HxWx3, alpha uint8 HxW).

    For large photos: the float path needs several full-size float32 temporaries (a 24 MP photo:
    ~1 GB); this one none. Alpha is composited onto white for JPEG/BMP in row chunks."""
    fmt = normalise_format(fmt)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    if alpha is not None and (alpha.dtype != np.uint8 or alpha.shape != rgb.shape[:2]):
        raise ValueError(f"alpha must be uint8 {rgb.shape[:2]}, got {alpha.dtype} {alpha.shape}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")
    quality = int(quality)
    height, width = rgb.shape[:2]

    if alpha is not None and fmt in ("jpeg", "bmp"):
        flat = np.empty_like(rgb)
        for y in range(0, height, 256):
            a = alpha[y : y + 256, :, None].astype(np.float32) / 255
            flat[y : y + 256] = to_uint8(rgb[y : y + 256] / np.float32(255) * a + (1.0 - a))  # onto white
        rgb, alpha = flat, None

    if alpha is not None:
        im = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    else:
        im = Image.fromarray(rgb, "RGB")

    exif_bytes = exif_for_output(exif, width, height) if fmt not in ("gif", "bmp") else None
    xmp = bytes(xmp) if xmp else None
    out = io.BytesIO()
    try:
        if fmt == "jpeg":
            _save_jpeg(im, out, quality, exif_bytes, xmp)
        elif fmt == "png":
            _save_png(im, out, exif_bytes, xmp)
        elif fmt == "webp":
            params = {"quality": quality, "method": 4}
            if exif_bytes:
                params["exif"] = exif_bytes
            if xmp:
                params["xmp"] = xmp
            im.save(out, "WEBP", **params)
        elif fmt == "gif":
            _save_gif(im, out)
        elif fmt == "tiff":
            _save_tiff(im, out, exif_bytes, xmp)
        else:
            im.save(out, "BMP")
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot encode {fmt.upper()}: {describe_error(exc)}") from exc
    return out.getvalue()


def save_image(
    path: str | Path,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    fmt: str,
    quality: int = 90,
    exif: bytes | None = None,
    xmp: bytes | None = None,
) -> None:
    """`encode_image`, then an atomic write of `path` (readers never see a partial file)."""
    try:
        data = encode_image(rgb, alpha, fmt, quality=quality, exif=exif, xmp=xmp)
    except ImageError as exc:
        raise ImageError(exc.message, path) from exc
    atomic_write_bytes(path, data)


_MAX_JPEG_SEGMENT = 65533  # payload bytes one APP1 segment can hold


def _save_jpeg(im: Image.Image, out: io.BytesIO, quality: int, exif: bytes | None, xmp: bytes | None) -> None:
    params = {
        "quality": quality,
        "subsampling": "4:4:4" if quality >= 90 else "4:2:0",
        "optimize": True,
        "progressive": True,
    }
    if exif and len(exif) > _MAX_JPEG_SEGMENT:
        exif = exif_without_makernote(exif)
    if exif and len(exif) <= _MAX_JPEG_SEGMENT:
        params["exif"] = exif
    elif exif:
        log.warning("EXIF too large for a JPEG segment (%d bytes); not embedded", len(exif))
    if xmp and len(xmp) <= _MAX_JPEG_SEGMENT - 29:  # 29: the XMP namespace header
        params["xmp"] = xmp
    elif xmp:
        log.warning("XMP too large for a JPEG segment (%d bytes; extended XMP unsupported); not embedded", len(xmp))
    try:
        im.save(out, "JPEG", **params)
    except OSError:
        # Pillow encodes optimized/progressive JPEGs into one buffer sized at 1 byte per pixel
        # (2 at quality >= 95); very detailed images (noise, fine textures at 4:4:4) need more
        # and fail with "broken data stream". Retry with room for the worst case.
        from PIL import ImageFile

        out.seek(0)
        out.truncate()
        block = ImageFile.MAXBLOCK
        ImageFile.MAXBLOCK = max(block, 6 * im.size[0] * im.size[1] + 2 * _MAX_JPEG_SEGMENT)
        try:
            im.save(out, "JPEG", **params)
        finally:
            ImageFile.MAXBLOCK = block


def png_xmp(xmp: bytes | None):
    """A PngInfo carrying `xmp` as the iTXt chunk XMP readers look for, or None (no packet, or one
    that is not UTF-8, which an iTXt cannot hold)."""
    from PIL.PngImagePlugin import PngInfo

    if not xmp:
        return None
    try:
        text = bytes(xmp).rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        log.warning("XMP packet is not UTF-8; not embedded in PNG")
        return None
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", text, zip=False)
    return info


def _save_png(im: Image.Image, out: io.BytesIO, exif: bytes | None, xmp: bytes | None) -> None:
    params = {"optimize": False, "compress_level": 6}
    if exif:
        params["exif"] = exif
    info = png_xmp(xmp)
    if info is not None:
        params["pnginfo"] = info
    im.save(out, "PNG", **params)


def _save_tiff(im: Image.Image, out: io.BytesIO, exif: bytes | None, xmp: bytes | None) -> None:
    # Uncompressed on purpose: Pillow's compressed TIFF path (libtiff) cannot write the EXIF
    # sub-IFD and fails outright. TIFF is not a web format; this is for completeness.
    tags = Image.Exif()
    if exif:
        tags.load(exif)  # from bytes, so the EXIF sub-IFD pointer is a key Pillow will write
    if xmp:
        tags[700] = xmp  # TIFF keeps XMP in tag 700 (Pillow has no xmp= for TIFF)
    if len(tags):
        im.save(out, "TIFF", exif=tags)
    else:
        im.save(out, "TIFF")


def _save_gif(im: Image.Image, out: io.BytesIO) -> None:
    rgb = im.convert("RGB")
    transparent = None
    if im.mode == "RGBA":
        transparent = np.asarray(im)[..., 3] < 128
    colours = 255 if transparent is not None else 256
    # Two passes: Pillow only dithers when quantizing to a given palette.
    palette = rgb.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal = rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    params = {"optimize": False}
    if transparent is not None and transparent.any():
        idx = np.asarray(pal).copy()
        idx[transparent] = 255
        entries = (pal.getpalette() or [])[: 255 * 3]
        entries += [0] * (256 * 3 - len(entries))
        pal = Image.fromarray(idx, "P")
        pal.putpalette(entries)
        params["transparency"] = 255
    pal.save(out, "GIF", **params)
