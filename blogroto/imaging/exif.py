"""Orientation and the metadata carried into the output: EXIF without GPS, pixel-layout tags,
thumbnail or maker note; XMP without GPS and orientation (namespace-aware)."""

from __future__ import annotations

import logging
import re

import numpy as np
from PIL import ExifTags, Image

from blogroto.errors import describe_error

log = logging.getLogger(__name__)


_ORIENTATION = 0x0112
_GPS_IFD = int(ExifTags.IFD.GPSInfo)
_EXIF_IFD = int(ExifTags.IFD.Exif)
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_MAKERNOTE = 0x927C

# TIFF tags that describe how a TIFF stores its pixels (or its colour space, which we convert
# away). Pillow's getexif() on a TIFF returns the whole image IFD; these must not be copied into
# another file's EXIF, where they would lie about that file.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 284,
    288, 289, 290, 291, 292, 293, 297, 301, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330,
    332, 333, 334, 336, 337, 338, 339, 340, 341, 347, 512, 513, 514, 515, 517, 518, 519, 520,
    521, 529, 530, 531, 532, 700, 33723, 34377, 34675, 37724, 50341,
})


def orientation_of(exif: Image.Exif | None) -> int:
    if exif is None:
        return 1
    value = exif.get(_ORIENTATION, 1)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation to an HxW[xC] array (same result as ImageOps.exif_transpose)."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return arr.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


def carried_exif(exif: Image.Exif | None, *, keep_gps: bool, label: str) -> bytes | None:
    if exif is None or len(exif) == 0:
        return None
    try:
        for tag in [t for t in exif if t in _TIFF_LAYOUT_TAGS]:
            del exif[tag]
        if not keep_gps and _GPS_IFD in exif:
            del exif[_GPS_IFD]
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        if len(exif) == 0:
            return None
        # Re-serialising also drops IFD1 (the embedded thumbnail of the original picture).
        return exif.tobytes()
    except Exception as exc:  # broken EXIF must not cost the image; it costs the metadata
        log.warning("%s: dropping unreadable EXIF (%s)", label, describe_error(exc))
        return None


_EXIF_NS = b"http://ns.adobe.com/exif/1.0/"
_TIFF_NS = b"http://ns.adobe.com/tiff/1.0/"
_XMLNS_RE = re.compile(rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*(["'])(.*?)\2""", re.S)


def _xmp_patterns(prefix: bytes, names: bytes) -> list[re.Pattern]:
    """Attribute and element forms of the properties `names` (a regex) under `prefix`."""
    p = re.escape(prefix)
    return [
        re.compile(rb'\s+' + p + rb':(?:' + names + rb')\s*=\s*"[^"]*"'),
        re.compile(rb"\s+" + p + rb":(?:" + names + rb")\s*=\s*'[^']*'"),
        re.compile(rb"<" + p + rb":(" + names + rb")\b[^>]*/>"),
        re.compile(rb"<" + p + rb":(" + names + rb")\b[^>]*>.*?</" + p + rb":\1\s*>", re.S),
    ]


def carried_xmp(xmp: bytes | None, *, keep_gps: bool) -> bytes | None:
    """The packet without orientation (applied to the pixels) and, unless kept, GPS. Namespace-
    aware: the prefixes are the ones the packet binds to the EXIF and TIFF namespaces (a packet may
    call them anything), plus the customary `exif:`/`tiff:`."""
    if not xmp:
        return None
    bound = {ns: {m.group(1) for m in _XMLNS_RE.finditer(xmp) if m.group(3).strip() == ns} for ns in (_EXIF_NS, _TIFF_NS)}
    if len(bound[_EXIF_NS]) + len(bound[_TIFF_NS]) > 16:  # no real packet does this; each costs a pass
        return None
    patterns = []
    for prefix in bound[_TIFF_NS] | {b"tiff"}:
        patterns += _xmp_patterns(prefix, rb"Orientation")
    if not keep_gps:
        for prefix in bound[_EXIF_NS] | {b"exif"}:
            patterns += _xmp_patterns(prefix, rb"GPS\w+")
    for pattern in patterns:
        xmp = pattern.sub(b"", xmp)
    return xmp


def exif_for_output(exif: bytes | None, width: int, height: int) -> bytes | None:
    """Normalise EXIF bytes and make PixelX/YDimension (if present) tell the truth."""
    if not exif:
        return None
    try:
        parsed = Image.Exif()
        parsed.load(bytes(exif))
        sub = parsed.get_ifd(_EXIF_IFD)
        if _PIXEL_X in sub or _PIXEL_Y in sub:
            sub[_PIXEL_X] = width
            sub[_PIXEL_Y] = height
        return parsed.tobytes()
    except Exception as exc:
        log.warning("dropping unreadable EXIF (%s)", describe_error(exc))
        return None


def exif_without_makernote(exif: bytes) -> bytes | None:
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        sub = parsed.get_ifd(_EXIF_IFD)
        sub.pop(_MAKERNOTE, None)
        return parsed.tobytes()
    except Exception:
        return None
