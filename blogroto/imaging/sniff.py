"""What a file is, from its first bytes: the six raster formats blogroto decodes, SVG, and the
things people put in posts that are not images (for a message that names them); frame counts
read from a GIF's structure."""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

SVG_MESSAGE = "SVG is a vector image; blogroto stylizes raster images only"
FORMAT_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff"}
DISPLAY = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP", "gif": "GIF", "tiff": "TIFF", "bmp": "BMP"}


def looks_like_svg(data: bytes, label: str) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and b"<svg" in head:
        return True
    # .svgz is gzip; no raster format starts with the gzip magic.
    return data[:2] == b"\x1f\x8b" and label.lower().endswith(".svgz")


# Magic numbers of things people put in posts that blogroto does not decode, for a message
# that says what the file is instead of "not an image".
_OTHER_KINDS = [
    (re.compile(rb"^....ftyp(avif|avis)", re.S), "AVIF"),
    (re.compile(rb"^....ftyp(heic|heix|heim|heis|hevc|hevx|mif1|msf1)", re.S), "HEIC/HEIF"),
    (re.compile(rb"^(\x00\x00\x00\x0cjP  |\xff\x4f\xff\x51)", re.S), "JPEG 2000"),
    (re.compile(rb"^(\xff\x0a|\x00\x00\x00\x0cJXL )", re.S), "JPEG XL"),
    (re.compile(rb"^%PDF-"), "PDF"),
    (re.compile(rb"^8BPS"), "Photoshop PSD"),
    (re.compile(rb"^\x00\x00\x01\x00"), "ICO"),
    (re.compile(rb"^%!PS"), "PostScript/EPS"),
]
_RASTER_MAGIC = [
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
]


def raster_format(head: bytes) -> str | None:
    """The format blogroto decodes ('jpeg', 'png', 'webp', 'gif', 'tiff', 'bmp') that the file's first
    bytes announce, or None. Magic numbers decide, never the name or a Content-Type."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, fmt in _RASTER_MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def supported_kind(data: bytes) -> str | None:
    """'PNG image' etc. from the magic number, for messages about files Pillow gave up on."""
    fmt = raster_format(data)
    return None if fmt is None else f"{DISPLAY[fmt]} image"


def unidentified_message(data: bytes, label: str) -> str:
    kind = supported_kind(data)
    if kind:
        return f"cannot read {kind} (truncated or corrupt)"
    for pattern, kind in _OTHER_KINDS:
        if pattern.match(data):
            return f"unsupported image format {kind}; blogroto reads JPEG, PNG, WebP, GIF, TIFF and BMP"
    if label.lower().endswith((".svg", ".svgz")):
        return SVG_MESSAGE
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "not an image: this is an HTML page"
    return "not an image (or an unsupported format; blogroto reads JPEG, PNG, WebP, GIF, TIFF and BMP)"


def png_without_chunk(data: bytes, kind: bytes) -> bytes | None:
    """The PNG with every `kind` chunk removed, or None if it has none (or is not a PNG)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or kind not in data:
        return None
    out, pos, removed = bytearray(data[:8]), 8, False
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 12 + length
        if data[pos + 4:pos + 8] == kind:
            removed = True
        else:
            out += data[pos:end]
        pos = end
    out += data[pos:]  # whatever trails (truncated data stays truncated)
    return bytes(out) if removed else None


def count_frames(im: Image.Image, data: bytes) -> int:
    # Must run before load(): seeking a TIFF re-reads its IFD and drops the decoded frame.
    if im.format == "MPO":
        return 1
    if im.format == "GIF":
        return gif_frame_count(data)  # Pillow's n_frames decodes every frame: a DoS vector
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:  # a broken later frame must not stop us reading the first one
        return 1


def gif_frame_count(data: bytes) -> int:
    """Count image descriptors by walking the GIF block structure, without decoding."""
    n = len(data)
    if n < 13:
        return 1
    pos = 13
    flags = data[10]
    if flags & 0x80:
        pos += 3 * (2 << (flags & 7))
    frames = 0
    while pos < n:
        block = data[pos]
        pos += 1
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_gif_sub_blocks(data, pos + 1)
        elif block == 0x2C:  # image descriptor
            if pos + 9 > n:
                break
            flags = data[pos + 8]
            pos += 9
            if flags & 0x80:
                pos += 3 * (2 << (flags & 7))
            pos = _skip_gif_sub_blocks(data, pos + 1)  # +1: LZW minimum code size
            frames += 1
        else:
            break  # garbage after the last frame: what we counted stands
    return max(frames, 1)


def _skip_gif_sub_blocks(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n:
        size = data[pos]
        pos += 1
        if size == 0:
            return pos
        pos += size
    return n
