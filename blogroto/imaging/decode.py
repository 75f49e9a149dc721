"""Decode untrusted bytes into a `LoadedImage`: float32 sRGB pixels (+ alpha), orientation applied,
metadata ready to carry (the decisions are in the package doc, blogroto/imaging/__init__.py)."""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from blogroto.errors import ImageError, describe_error
from blogroto.imaging.colour import icc_float, icc_to_srgb_pil, lab_to_srgb
from blogroto.imaging.exif import carried_exif, carried_xmp, orient, orientation_of
from blogroto.imaging.pixels import from_uint8
from blogroto.imaging.sniff import (
    DISPLAY,
    SVG_MESSAGE,
    count_frames,
    looks_like_svg,
    png_without_chunk,
    supported_kind,
    unidentified_message,
)

log = logging.getLogger(__name__)


DEFAULT_MAX_PIXELS = 120_000_000


# Pillow format name -> ours. Only these plugins are ever asked to parse input (MPO files come
# out of the JPEG opener, which is why MPO is not in the list handed to Image.open).
_PIL_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tiff", "BMP": "bmp"}
_OPEN_FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"]


@dataclass
class LoadedImage:
    """A decoded image: float32 sRGB pixels in [0, 1], orientation applied.

    `exif` is ready to embed in the output (orientation 1, no GPS); `xmp` likewise (GPS and
    orientation removed), or None. `frames` > 1 means only the first frame was read.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str
    exif: bytes | None
    source_name: str
    frames: int
    xmp: bytes | None = None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def load_image(
    source: str | Path | bytes,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    keep_gps: bool = False,
) -> LoadedImage:
    """Decode `source` (a path or the file's bytes) into a `LoadedImage`.

    The format is detected from the content, never from the extension. Animated images give
    their first frame only (`frames` says how many there are). Raises `ImageError` naming the
    file for anything unreadable: missing, permission denied, empty, SVG, not an image, an
    unsupported format, truncated or corrupt, or more than `max_pixels` pixels.
    """
    data, label = _read_source(source, name)
    if not data:
        raise ImageError("empty file (0 bytes)", label)
    if looks_like_svg(data, label):
        raise ImageError(SVG_MESSAGE, label)

    # Our max_pixels is the policy; Pillow's warning band below its hard limit is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im, data = _open_image(data, label)
        with im:
            fmt = _PIL_FORMATS.get(im.format or "", None)
            if fmt is None:  # cannot happen with formats= above; keep the promise anyway
                raise ImageError(f"unsupported image format {im.format}", label)
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageError(f"image has no pixels ({width}x{height})", label)
            if width * height > max_pixels:
                raise ImageError(
                    f"image is too large: {width}x{height} = {width * height / 1e6:.1f} megapixels, "
                    f"over the limit of {max_pixels / 1e6:g} megapixels (possible decompression bomb)",
                    label,
                )
            frames = count_frames(im, data)
            try:
                rgb, alpha, exif_obj, xmp = _decode(im, data, fmt, label)
            except ImageError:
                raise
            except Image.DecompressionBombError as exc:
                raise ImageError(f"image is too large to decode safely (possible decompression bomb): {exc}", label) from exc
            except MemoryError as exc:
                raise ImageError(f"not enough memory to decode a {width}x{height} image", label) from exc
            except Exception as exc:  # truncated data, bad CRC, broken stream, ... in Pillow
                raise ImageError(f"cannot read {DISPLAY[fmt]} image (truncated or corrupt): {describe_error(exc)}", label) from exc

    orientation = orientation_of(exif_obj)
    rgb = orient(rgb, orientation)
    if alpha is not None:
        alpha = orient(alpha, orientation)
    exif = carried_exif(exif_obj, keep_gps=keep_gps, label=label)
    xmp = carried_xmp(xmp, keep_gps=keep_gps)
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        format=fmt,
        exif=exif,
        source_name=label,
        frames=frames,
        xmp=xmp,
    )


def _open_image(data: bytes, label: str):
    """Pillow's lazy open of `data` (header only): (image, the bytes it reads from)."""
    try:
        try:
            im = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
        except (SyntaxError, ValueError, OSError):
            # A broken iCCP chunk makes Pillow refuse the whole PNG; a corrupt profile
            # must only cost the colour management, so retry without it.
            stripped = png_without_chunk(data, b"iCCP")
            if stripped is None:
                raise
            im = Image.open(io.BytesIO(stripped), formats=_OPEN_FORMATS)
            log.warning("%s: ignoring corrupt embedded ICC profile; treating as sRGB", label)
            data = stripped
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large to decode safely (possible decompression bomb): {exc}", label) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(unidentified_message(data, label), label) from exc
    except Exception as exc:  # Pillow's header parsers raise many types on garbage
        kind = supported_kind(data) or "image"
        raise ImageError(f"cannot read {kind} (truncated or corrupt): {describe_error(exc)}", label) from exc
    return im, data


def _read_source(source: str | Path | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<bytes>"
    path = Path(source)
    label = name or str(path)
    try:
        return path.read_bytes(), label
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ImageError("no such file", label) from exc
    except PermissionError as exc:
        raise ImageError("permission denied", label) from exc
    except IsADirectoryError as exc:
        raise ImageError("is a directory, not an image file", label) from exc
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror or exc}", label) from exc


def _decode(im: Image.Image, data: bytes, fmt: str, label: str):
    """Decode the first frame -> (rgb float32 HxWx3, alpha or None, Exif, xmp bytes or None).

    Orientation is NOT applied here.
    """
    rawmode = None
    if im.format == "PNG" and im.tile:
        rawmode = im.tile[0].args if isinstance(im.tile[0].args, str) else None
    im.load()
    # EXIF is read after load() on purpose: Pillow applies a TIFF's orientation itself while
    # decoding and then drops the tag, so what is left here is what we still have to apply.
    exif_obj = im.getexif()
    xmp = im.info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    icc = im.info.get("icc_profile") or None

    if rawmode in ("RGB;16B", "RGBA;16B", "LA;16B"):
        rgb, alpha = _decode_png16(data, rawmode, im.info.get("transparency"))
        return icc_float(rgb, icc, "RGB", label), alpha, exif_obj, xmp
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        grey, alpha = _wide_grey(im)
        rgb = icc_float(grey, icc, "L", label)
        return rgb, alpha, exif_obj, xmp
    rgb, alpha = _decode_8bit(im, icc, label)
    return rgb, alpha, exif_obj, xmp


def _decode_png16(data: bytes, rawmode: str, transparency) -> tuple[np.ndarray, np.ndarray | None]:
    """Full-precision 16-bit PNG colour, which Pillow would truncate to 8 bits.

    The trick: Pillow's zlib decoder unfilters rows with the bytes-per-pixel of the raw mode,
    so decoding with another raw mode of the same width gives us other bytes of each sample,
    unfiltered correctly (interlacing included). RGB;16L on big-endian data yields the low bytes.
    """

    def decode(new_rawmode: str) -> np.ndarray:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as again:
            again.tile = [again.tile[0]._replace(args=new_rawmode)]
            again.load()
            return np.asarray(again).astype(np.uint16)

    if rawmode == "LA;16B":
        raw = decode("RGBA")  # 32 bits: bytes L_hi, L_lo, A_hi, A_lo passed through as R,G,B,A
        grey = (raw[..., 0] << 8) | raw[..., 1]
        alpha16 = (raw[..., 2] << 8) | raw[..., 3]
        rgb = np.repeat((grey.astype(np.float32) / 65535)[..., None], 3, axis=2)
        return rgb, alpha16.astype(np.float32) / 65535
    hi = decode(rawmode)
    lo = decode(rawmode.replace("16B", "16L"))
    full = (hi << 8) | lo
    rgb16 = full[..., :3]
    if rawmode == "RGBA;16B":
        alpha = full[..., 3].astype(np.float32) / 65535
    elif isinstance(transparency, tuple) and len(transparency) == 3:
        alpha = (~np.all(rgb16 == np.array(transparency, dtype=np.uint16), axis=2)).astype(np.float32)
    else:
        alpha = None
    return rgb16.astype(np.float32) / 65535, alpha


def _wide_grey(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """16/32-bit integer or float greyscale -> grey float32 HxW in [0, 1], alpha."""
    arr = np.asarray(im)
    if im.mode == "F":
        grey = np.nan_to_num(arr.astype(np.float32), nan=0.0)
    else:
        # 'I' is how Pillow hands out 16-bit grey in some paths (TIFF, older PNG): 65535 = white.
        grey = arr.astype(np.float32) / 65535
    alpha = None
    t = im.info.get("transparency")
    if isinstance(t, int) and im.mode != "F":
        alpha = (arr != t).astype(np.float32)
    return np.clip(grey, 0.0, 1.0), alpha


def _decode_8bit(im: Image.Image, icc: bytes | None, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    t = im.info.get("transparency")
    alpha = None
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or t is not None or (im.palette is not None and im.palette.mode == "RGBA")
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    elif mode == "1":
        im = im.convert("L")
        mode = "L"
    elif mode in ("RGBa", "La"):
        im = im.convert(mode[0] + "A" if mode == "La" else "RGBA")
        mode = im.mode
    elif mode in ("YCbCr", "HSV", "RGBX"):
        im = im.convert("RGB")
        mode = "RGB"
    elif mode == "LAB":
        return from_uint8(np.asarray(lab_to_srgb(im))), None

    if mode in ("LA", "RGBA"):
        arr = np.asarray(im)
        alpha = from_uint8(arr[..., -1])
        im = im.convert(mode[:-1])
        mode = im.mode
    elif mode == "L" and isinstance(t, int):
        alpha = from_uint8(np.asarray(im) != t)
    elif mode == "RGB" and isinstance(t, tuple) and len(t) == 3:
        alpha = from_uint8(~np.all(np.asarray(im) == np.array(t, dtype=np.uint8), axis=2))

    if mode not in ("L", "RGB", "CMYK"):
        raise ImageError(f"unsupported pixel mode {mode}", label)
    converted = icc_to_srgb_pil(im, icc, label) if icc else None
    if converted is None:
        converted = im if mode == "RGB" else im.convert("RGB")
    rgb = np.asarray(converted)
    return from_uint8(rgb), alpha


