"""Colour management: embedded ICC profiles to sRGB (LittleCMS for 8 bits, a float matrix/TRC
path for 16 bits), Lab to sRGB."""

from __future__ import annotations

import functools
import io
import logging
import struct

import numpy as np
from PIL import Image, ImageCms

from blogroto.errors import describe_error
from blogroto.imaging.pixels import from_uint8, to_uint8

log = logging.getLogger(__name__)


_SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_ICC_SPACE_FOR_MODE = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}


def _open_profile(icc: bytes, label: str) -> ImageCms.ImageCmsProfile | None:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except Exception as exc:  # corrupt profile: the image is still worth showing, as sRGB
        log.warning("%s: ignoring unreadable ICC profile (%s); treating as sRGB", label, describe_error(exc))
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
        log.warning("ignoring unusable ICC profile (%s); treating as sRGB", describe_error(exc))
        return None


def icc_to_srgb_pil(im: Image.Image, icc: bytes, label: str) -> Image.Image | None:
    if _open_profile(icc, label) is None:  # logs with the file name; the cache below cannot
        return None
    transform = _transform_for(bytes(icc), im.mode)
    if transform is None:
        return None
    try:
        return transform.apply(im)
    except Exception as exc:
        log.warning("%s: ICC conversion failed (%s); treating as sRGB", label, describe_error(exc))
        return None


def lab_to_srgb(im: Image.Image) -> Image.Image:
    lab = ImageCms.createProfile("LAB", 5000)
    return ImageCms.profileToProfile(im, lab, _SRGB_PROFILE, outputMode="RGB")


def icc_float(values: np.ndarray, icc: bytes | None, mode: str, label: str) -> np.ndarray:
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
    converted = icc_to_srgb_pil(im8, icc, label)
    if converted is None:
        return as_rgb(values)
    return from_uint8(np.asarray(converted))


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
