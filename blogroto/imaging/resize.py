"""Resizing to a long side, with one rounding rule for stills, animations and videos."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from blogroto.imaging.decode import LoadedImage


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


def resize_array(rgb: np.ndarray, max_size: int) -> np.ndarray:
    """A float32 HxWx3 array in [0, 1] with its long side at most `max_size`: the same rule and
    filter as `resize_long_side`, for pixels that are not a loaded image (a training preview)."""
    h, w = rgb.shape[:2]
    size = long_side_size(w, h, max_size)
    return rgb if size == (w, h) else np.clip(_resize_channels(rgb, size), 0.0, 1.0)


def _resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # Mode 'F' keeps full float precision through Pillow's LANCZOS.
    src = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), "F")
    return np.asarray(src.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)


def _resize_channels(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([_resize_plane(rgb[..., c], size) for c in range(rgb.shape[2])], axis=2)
