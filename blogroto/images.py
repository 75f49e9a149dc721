"""Read any real-world raster image into float32 sRGB (+ optional alpha), resize, encode, save.

Decisions (the stylizer and the build rely on these):

* **Colour.** Pixels come out as plain sRGB. An embedded ICC profile (JPEG/PNG/WebP/TIFF) is
  converted to sRGB with LittleCMS (`PIL.ImageCms`), using the profile's own rendering intent.
  Profiles whose description names sRGB are not converted (they already are sRGB; converting
  would only add rounding). A corrupt or unusable profile, or one whose colour space does not
  match the pixels, is ignored: the image is treated as sRGB, like browsers do; never an error.
  Output files embed **no** ICC profile: untagged means sRGB on the web, and it keeps the bytes
  small and deterministic.
* **Precision.** 16-bit PNGs (grey, grey+alpha, RGB, RGBA) keep their 16 bits (65535 -> 1.0);
  Pillow itself would truncate 16-bit colour to 8 bits, so we decode the two bytes separately.
  A 16-bit image with an ICC profile is converted in float when the profile is a matrix/TRC
  profile (nearly all RGB and grey ones); a LUT-based profile goes through LittleCMS at 8 bits.
  16-bit colour TIFFs are read at 8 bits (Pillow's limit).
* **Alpha.** RGBA, LA, palette/grey/RGB with tRNS, GIF transparency: `alpha` is set (even if
  every pixel happens to be opaque: the source declared transparency). JPEG output cannot hold
  alpha, so `encode_image` composites onto white; BMP likewise (browser support for BMP alpha
  is patchy). PNG, WebP and TIFF keep alpha; GIF keeps 1-bit alpha (threshold 0.5).
* **Orientation.** EXIF orientation (1-8) is applied to the pixels, and the carried EXIF says 1.
* **Metadata carried.** EXIF minus the GPS IFD (privacy), minus TIFF pixel-layout tags, minus
  the IFD1 thumbnail (it would show the unstylized, unrotated picture). XMP is carried with its
  `exif:GPS*` properties and `tiff:Orientation` removed. Nothing else (IPTC, comments) is.
* **Animation.** Animated GIF/WebP/APNG and multi-page TIFF: the FIRST frame only is read;
  `frames` reports how many there are. A multi-picture JPEG (MPO, e.g. a phone's depth map)
  counts as one frame of format 'jpeg'.
* **Safety.** Only the six formats blogroto writes are decoded (no EPS/PSD/... parsers on
  untrusted bytes). The pixel count is checked against `max_pixels` from the header, before
  any pixel is decoded. Pillow's own hard ceiling (2 x `PIL.Image.MAX_IMAGE_PIXELS`, about
  179 MP) still applies on top of a larger `max_pixels`. Truncated files are errors:
  `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` is never set here.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import struct
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

from blogroto.errors import ImageError
from blogroto.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "tiff": ".tif", "bmp": ".bmp"}
DEFAULT_MAX_PIXELS = 120_000_000

SVG_MESSAGE = "SVG is a vector image; blogroto stylizes raster images only"

# Pillow format name -> ours. Only these plugins are ever asked to parse input (MPO files come
# out of the JPEG opener, which is why MPO is not in the list handed to Image.open).
_PIL_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tiff", "BMP": "bmp"}
_OPEN_FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"]
_FORMAT_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff"}

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


# --------------------------------------------------------------------------------------------
# Loading


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
    if _looks_like_svg(data, label):
        raise ImageError(SVG_MESSAGE, label)

    # Our max_pixels is the policy; Pillow's warning band below its hard limit is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            try:
                im = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
            except (SyntaxError, ValueError, OSError):
                # A broken iCCP chunk makes Pillow refuse the whole PNG; a corrupt profile
                # must only cost the colour management, so retry without it.
                stripped = _png_without_chunk(data, b"iCCP")
                if stripped is None:
                    raise
                im = Image.open(io.BytesIO(stripped), formats=_OPEN_FORMATS)
                log.warning("%s: ignoring corrupt embedded ICC profile; treating as sRGB", label)
                data = stripped
        except Image.DecompressionBombError as exc:
            raise ImageError(f"image is too large to decode safely (possible decompression bomb): {exc}", label) from exc
        except UnidentifiedImageError as exc:
            raise ImageError(_unidentified_message(data, label), label) from exc
        except Exception as exc:  # Pillow's header parsers raise many types on garbage
            kind = _supported_kind(data) or "image"
            raise ImageError(f"cannot read {kind} (truncated or corrupt): {_describe(exc)}", label) from exc

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
            frames = _count_frames(im, data)
            try:
                rgb, alpha, exif_obj, xmp = _decode(im, data, fmt, label)
            except ImageError:
                raise
            except Image.DecompressionBombError as exc:
                raise ImageError(f"image is too large to decode safely (possible decompression bomb): {exc}", label) from exc
            except MemoryError as exc:
                raise ImageError(f"not enough memory to decode a {width}x{height} image", label) from exc
            except Exception as exc:  # truncated data, bad CRC, broken stream, ... in Pillow
                raise ImageError(f"cannot read {_DISPLAY[fmt]} image (truncated or corrupt): {_describe(exc)}", label) from exc

    orientation = _orientation_of(exif_obj)
    rgb = _orient(rgb, orientation)
    if alpha is not None:
        alpha = _orient(alpha, orientation)
    exif = _carried_exif(exif_obj, keep_gps=keep_gps, label=label)
    xmp = _carried_xmp(xmp, keep_gps=keep_gps)
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        format=fmt,
        exif=exif,
        source_name=label,
        frames=frames,
        xmp=xmp,
    )


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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _looks_like_svg(data: bytes, label: str) -> bool:
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
_SUPPORTED_MAGIC = [
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
]


_DISPLAY = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP", "gif": "GIF", "tiff": "TIFF", "bmp": "BMP"}


def _supported_kind(data: bytes) -> str | None:
    """'PNG image' etc. from the magic number, for messages about files Pillow gave up on."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP image"
    for magic, kind in _SUPPORTED_MAGIC:
        if data.startswith(magic):
            return f"{kind} image"
    return None


def _unidentified_message(data: bytes, label: str) -> str:
    kind = _supported_kind(data)
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


def _png_without_chunk(data: bytes, kind: bytes) -> bytes | None:
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


def _count_frames(im: Image.Image, data: bytes) -> int:
    # Must run before load(): seeking a TIFF re-reads its IFD and drops the decoded frame.
    if im.format == "MPO":
        return 1
    if im.format == "GIF":
        return _gif_frame_count(data)  # Pillow's n_frames decodes every frame: a DoS vector
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:  # a broken later frame must not stop us reading the first one
        return 1


def _gif_frame_count(data: bytes) -> int:
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
        return _icc_float(rgb, icc, "RGB", label), alpha, exif_obj, xmp
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        grey, alpha = _wide_grey(im)
        rgb = _icc_float(grey, icc, "L", label)
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
        return _u8(np.asarray(_lab_to_srgb(im))), None

    if mode in ("LA", "RGBA"):
        arr = np.asarray(im)
        alpha = _u8(arr[..., -1])
        im = im.convert(mode[:-1])
        mode = im.mode
    elif mode == "L" and isinstance(t, int):
        alpha = _u8(np.asarray(im) != t)
    elif mode == "RGB" and isinstance(t, tuple) and len(t) == 3:
        alpha = _u8(~np.all(np.asarray(im) == np.array(t, dtype=np.uint8), axis=2))

    if mode not in ("L", "RGB", "CMYK"):
        raise ImageError(f"unsupported pixel mode {mode}", label)
    converted = _icc_to_srgb_pil(im, icc, label) if icc else None
    if converted is None:
        converted = im if mode == "RGB" else im.convert("RGB")
    rgb = np.asarray(converted)
    return _u8(rgb), alpha


def _u8(arr: np.ndarray) -> np.ndarray:
    # Booleans (tRNS masks) become 0.0 / 1.0; uint8 k -> k/255, which to_uint8 maps back to k.
    if arr.dtype == bool:
        return arr.astype(np.float32)
    return arr.astype(np.float32) / np.float32(255)


# --------------------------------------------------------------------------------------------
# Colour management

_SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_ICC_SPACE_FOR_MODE = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}


def _open_profile(icc: bytes, label: str) -> ImageCms.ImageCmsProfile | None:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except Exception as exc:  # corrupt profile: the image is still worth showing, as sRGB
        log.warning("%s: ignoring unreadable ICC profile (%s); treating as sRGB", label, _describe(exc))
        return None


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    try:
        desc = profile.profile.profile_description or ""
    except Exception:
        return False
    return "srgb" in desc.lower()


@functools.lru_cache(maxsize=16)
def _transform_for(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A LittleCMS transform from `icc` to sRGB for a Pillow `mode`, or None (treat as sRGB).

    Cached: a site usually has a handful of distinct profiles, and building is the slow part.
    """
    profile = _open_profile(icc, "<icc>")
    if profile is None or _is_srgb(profile):
        return None
    space = (profile.profile.xcolor_space or "").strip().upper()
    if space != _ICC_SPACE_FOR_MODE.get(mode):
        return None  # e.g. an RGB profile on a greyscale JPEG: browsers ignore it too
    try:
        intent = ImageCms.Intent(profile.profile.rendering_intent)
    except ValueError:
        intent = ImageCms.Intent.PERCEPTUAL
    try:
        return ImageCms.buildTransform(profile, _SRGB_PROFILE, mode, "RGB", renderingIntent=intent)
    except Exception as exc:  # e.g. an abstract/link profile, or one LittleCMS cannot use
        log.warning("ignoring unusable ICC profile (%s); treating as sRGB", _describe(exc))
        return None


def _icc_to_srgb_pil(im: Image.Image, icc: bytes, label: str) -> Image.Image | None:
    if _open_profile(icc, label) is None:  # logs with the file name; the cache below cannot
        return None
    transform = _transform_for(bytes(icc), im.mode)
    if transform is None:
        return None
    try:
        return transform.apply(im)
    except Exception as exc:
        log.warning("%s: ICC conversion failed (%s); treating as sRGB", label, _describe(exc))
        return None


def _lab_to_srgb(im: Image.Image) -> Image.Image:
    lab = ImageCms.createProfile("LAB", 5000)
    return ImageCms.profileToProfile(im, lab, _SRGB_PROFILE, outputMode="RGB")


def _icc_float(values: np.ndarray, icc: bytes | None, mode: str, label: str) -> np.ndarray:
    """ICC -> sRGB for float data (16-bit sources). `values` is HxWx3 ('RGB') or HxW ('L').

    Returns HxWx3. Matrix/TRC profiles are evaluated in float here; anything else goes
    through LittleCMS at 8 bits (documented precision loss, rare in practice).
    """
    def as_rgb(x: np.ndarray) -> np.ndarray:
        return x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=2)

    if not icc:
        return as_rgb(values)
    profile = _open_profile(icc, label)
    if profile is None or _is_srgb(profile):
        return as_rgb(values)
    space = (profile.profile.xcolor_space or "").strip().upper()
    if space != _ICC_SPACE_FOR_MODE[mode]:
        return as_rgb(values)
    try:
        shaper = _MatrixShaper.from_icc(bytes(icc))
    except Exception:
        shaper = None
    if shaper is not None:
        return shaper.to_srgb(values)
    # LUT-based profile: let LittleCMS do it at 8 bits.
    im8 = Image.fromarray(to_uint8(values), "RGB" if values.ndim == 3 else "L")
    converted = _icc_to_srgb_pil(im8, icc, label)
    if converted is None:
        return as_rgb(values)
    return _u8(np.asarray(converted))


def _s15f16(buf: bytes, offset: int, count: int) -> np.ndarray:
    raw = struct.unpack_from(f">{count}i", buf, offset)
    return np.array(raw, dtype=np.float64) / 65536.0


class _MatrixShaper:
    """The float evaluation of an ICC matrix/TRC (RGB) or grey-TRC profile, to sRGB.

    Relative colorimetric, as LittleCMS does for these profiles: the colorants are already
    D50-adapted, so device -> linear (TRC) -> XYZ(D50) -> linear sRGB -> sRGB transfer.
    """

    def __init__(self, curves, matrix: np.ndarray | None):
        self.curves = curves
        self.matrix = matrix  # linear device RGB -> linear sRGB (3x3), None for grey

    @staticmethod
    def _tags(icc: bytes) -> dict[bytes, bytes]:
        (count,) = struct.unpack_from(">I", icc, 128)
        tags = {}
        for i in range(min(count, 200)):
            sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            if offset + size > len(icc):
                raise ValueError("ICC tag outside the profile")
            tags[sig] = icc[offset:offset + size]
        return tags

    @classmethod
    def from_icc(cls, icc: bytes) -> _MatrixShaper | None:
        tags = cls._tags(icc)
        if any(t in tags for t in (b"A2B0", b"A2B1", b"A2B2", b"D2B0")):
            return None  # LUT profiles: LittleCMS prefers the LUT; so must we (or not use float)
        space = icc[16:20]
        if space == b"GRAY" and b"kTRC" in tags:
            return cls([_Curve.parse(tags[b"kTRC"])], None)
        needed = (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")
        if space != b"RGB " or not all(t in tags for t in needed):
            return None
        src = np.stack([_s15f16(tags[t], 8, 3) for t in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)
        curves = [_Curve.parse(tags[t]) for t in (b"rTRC", b"gTRC", b"bTRC")]
        return cls(curves, np.linalg.solve(_srgb_colorants(), src))

    def to_srgb(self, values: np.ndarray) -> np.ndarray:
        if self.matrix is None:
            linear = self.curves[0](values.astype(np.float64))
            linear = np.repeat(linear[..., None], 3, axis=2)
        else:
            linear = np.stack([c(values[..., i].astype(np.float64)) for i, c in enumerate(self.curves)], axis=2)
            linear = linear @ self.matrix.T
        linear = np.clip(linear, 0.0, 1.0)
        encoded = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
        return np.clip(encoded, 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _srgb_colorants() -> np.ndarray:
    # The same sRGB LittleCMS converts to in the 8-bit path, so both paths agree.
    tags = _MatrixShaper._tags(_SRGB_PROFILE.tobytes())
    return np.stack([_s15f16(tags[t], 8, 3) for t in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)


class _Curve:
    """An ICC 'curv' or 'para' tone curve as a vectorised function on [0, 1]."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(np.clip(x, 0.0, 1.0))

    @classmethod
    def parse(cls, tag: bytes) -> _Curve:
        kind = tag[:4]
        if kind == b"curv":
            (n,) = struct.unpack_from(">I", tag, 8)
            if n == 0:
                return cls(lambda x: x)
            if n == 1:
                (g,) = struct.unpack_from(">H", tag, 12)
                gamma = g / 256.0
                return cls(lambda x: np.power(x, gamma))
            table = np.array(struct.unpack_from(f">{n}H", tag, 12), dtype=np.float64) / 65535.0
            grid = np.linspace(0.0, 1.0, n)
            return cls(lambda x: np.interp(x, grid, table))
        if kind == b"para":
            (ftype,) = struct.unpack_from(">H", tag, 8)
            nparams = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(ftype)
            if nparams is None:
                raise ValueError(f"unknown parametric curve type {ftype}")
            p = list(_s15f16(tag, 12, nparams)) + [0.0] * (7 - nparams)
            g, a, b, c, d, e, f = p
            if ftype == 0:
                return cls(lambda x: np.power(x, g))

            def powered(x):
                return np.power(np.maximum(a * x + b, 0.0), g)

            if ftype == 1:
                return cls(lambda x: np.where(x >= -b / a, powered(x), 0.0))
            if ftype == 2:
                return cls(lambda x: np.where(x >= -b / a, powered(x) + c, c))
            if ftype == 3:
                return cls(lambda x: np.where(x >= d, powered(x), c * x))
            return cls(lambda x: np.where(x >= d, powered(x) + e, c * x + f))
        raise ValueError(f"unsupported ICC curve type {kind!r}")


# --------------------------------------------------------------------------------------------
# Orientation and metadata


def _orientation_of(exif: Image.Exif | None) -> int:
    if exif is None:
        return 1
    value = exif.get(_ORIENTATION, 1)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
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


def _carried_exif(exif: Image.Exif | None, *, keep_gps: bool, label: str) -> bytes | None:
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
        log.warning("%s: dropping unreadable EXIF (%s)", label, _describe(exc))
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


def _carried_xmp(xmp: bytes | None, *, keep_gps: bool) -> bytes | None:
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


# --------------------------------------------------------------------------------------------
# Resizing


def long_side_size(w: int, h: int, max_size: int) -> tuple[int, int]:
    """(width, height) with the long side at most `max_size` (0 = as is); never larger. Integer
    round-half-up: deterministic on every platform, and the same for stills, animations and videos."""
    if max_size == 0 or max(h, w) <= max_size:
        return w, h
    if w >= h:
        return max_size, max(1, (2 * h * max_size + w) // (2 * w))
    return max(1, (2 * w * max_size + h) // (2 * h)), max_size


def resize_long_side(img: LoadedImage, max_size: int) -> LoadedImage:
    """Downscale so the long side is at most `max_size` (LANCZOS, in float). 0 = no change.

    Never upscales. Alpha is resized with the colour premultiplied, so transparent pixels'
    (arbitrary) colours do not bleed into the edges of visible ones.
    """
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0, got {max_size}")
    h, w = img.rgb.shape[:2]
    size = long_side_size(w, h, max_size)
    if size == (w, h):
        return img
    if img.alpha is None:
        rgb = _resize_channels(img.rgb, size)
        return replace(img, rgb=np.clip(rgb, 0.0, 1.0))
    alpha = np.clip(_resize_plane(img.alpha, size), 0.0, 1.0)
    if img.alpha.min() >= 1.0:  # declared but unused transparency: premultiplying changes nothing
        return replace(img, rgb=np.clip(_resize_channels(img.rgb, size), 0.0, 1.0), alpha=alpha)
    premult = _resize_channels(img.rgb * img.alpha[..., None], size)
    visible = alpha > 1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        rgb = premult / np.where(visible, alpha, 1.0)[..., None]
    if not visible.all():
        # Where nothing shows, colour is undefined; the straight resize is a sane filler.
        rgb = np.where(visible[..., None], rgb, _resize_channels(img.rgb, size))
    return replace(img, rgb=np.clip(rgb, 0.0, 1.0).astype(np.float32), alpha=alpha)


def _resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # Mode 'F' keeps full float precision through Pillow's LANCZOS.
    src = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), "F")
    return np.asarray(src.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)


def _resize_channels(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([_resize_plane(rgb[..., c], size) for c in range(rgb.shape[2])], axis=2)


# --------------------------------------------------------------------------------------------
# Encoding


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8: rint(x * 255), clipped. Deterministic; NaN -> 0."""
    x = np.nan_to_num(np.asarray(rgb, dtype=np.float32), nan=0.0)
    return np.clip(np.rint(x * np.float32(255)), 0, 255).astype(np.uint8)


def normalise_format(fmt: str) -> str:
    """'JPG', 'jpeg', '.jpg' -> 'jpeg'; raises ValueError for formats blogroto does not write."""
    key = fmt.lower().lstrip(".")
    key = _FORMAT_ALIASES.get(key, key)
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

    exif_bytes = _exif_for_output(exif, width, height) if fmt not in ("gif", "bmp") else None
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
        raise ImageError(f"cannot encode {fmt.upper()}: {_describe(exc)}") from exc
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
        exif = _exif_without_makernote(exif)
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


def _exif_for_output(exif: bytes | None, width: int, height: int) -> bytes | None:
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
        log.warning("dropping unreadable EXIF (%s)", _describe(exc))
        return None


def _exif_without_makernote(exif: bytes) -> bytes | None:
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        sub = parsed.get_ifd(_EXIF_IFD)
        sub.pop(_MAKERNOTE, None)
        return parsed.tobytes()
    except Exception:
        return None
