"""What a downloaded body is (only recognisable raster images are accepted) and what to call it."""

from __future__ import annotations

import io
import re
from urllib.parse import unquote, urlsplit

from blogroto.imaging.sniff import raster_format

# Detected format -> (extension to add, extensions that already fit it).
_FORMATS = {
    "jpeg": (".jpg", {".jpg", ".jpeg", ".jpe", ".jfif"}),
    "png": (".png", {".png"}),
    "gif": (".gif", {".gif"}),
    "webp": (".webp", {".webp"}),
    "bmp": (".bmp", {".bmp", ".dib"}),
    "tiff": (".tif", {".tif", ".tiff"}),
    "avif": (".avif", {".avif"}),
    "heic": (".heic", {".heic", ".heif"}),
    "ico": (".ico", {".ico"}),
    "jxl": (".jxl", {".jxl"}),
}
_IMAGE_EXTS = {ext for _, exts in _FORMATS.values() for ext in exts} | {".svg", ".svgz"}
_BMFF_BRANDS = {b"avif": "avif", b"avis": "avif", b"heic": "heic", b"heix": "heic", b"heif": "heic",
                b"mif1": "heic", b"msf1": "heic", b"hevc": "heic"}


def image_format(body: bytes, content_type: str) -> str | None:
    """The raster format of `body` ('jpeg', 'png', ... or a Pillow format name), or None.

    Magic bytes decide, not Content-Type: servers label images application/octet-stream, and
    label HTML error pages image/png. Formats without a cheap signature are left to Pillow, which
    the build needs to decode the image anyway.
    """
    head = body[:32]
    fmt = raster_format(head)
    if fmt is not None and (fmt != "bmp" or len(body) > 26):
        return fmt
    if head[4:8] == b"ftyp" and head[8:12] in _BMFF_BRANDS:
        return _BMFF_BRANDS[head[8:12]]
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "jxl"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ico"
    if re.match(rb"\s*(\xef\xbb\xbf)?\s*<", head):
        return None  # HTML, XML, SVG: not a raster image whatever the Content-Type says
    try:
        from PIL import Image, UnidentifiedImageError  # lazy: only for unusual formats
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(body)) as image:
            return image.format.lower() if image.format else None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def suggested_name(url: str, fmt: str | None) -> str:
    """A safe file name from the last segment of the URL path, with an extension that fits `fmt`."""
    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", segment).strip(".-_")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    suffix = "." + suffix.lower() if suffix else ""
    stem = stem[:80].strip(".-_") or "image"
    wanted, fitting = _FORMATS.get(fmt, (None, set()))
    if wanted is None and fmt:
        wanted, fitting = _pillow_extension(fmt)
    if wanted is None or suffix in fitting:
        return stem + suffix
    if suffix in _IMAGE_EXTS or len(suffix) > 6:
        return stem + wanted  # a misleading image extension is replaced, not kept
    return stem + suffix + wanted


def _pillow_extension(fmt: str) -> tuple[str | None, set[str]]:
    try:
        from PIL import Image
    except ImportError:
        return None, set()
    exts = sorted(ext for ext, name in Image.registered_extensions().items() if name.lower() == fmt)
    return (exts[0], set(exts)) if exts else (None, set())
