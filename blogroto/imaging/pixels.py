"""Pixel values between float32 [0, 1] and 8 bits, the same way everywhere (k -> k/255 -> k)."""

from __future__ import annotations

import numpy as np


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8: rint(x * 255), clipped. Deterministic; NaN -> 0."""
    x = np.nan_to_num(np.asarray(rgb, dtype=np.float32), nan=0.0)
    return np.clip(np.rint(x * np.float32(255)), 0, 255).astype(np.uint8)


def from_uint8(arr: np.ndarray) -> np.ndarray:
    # Booleans (tRNS masks) become 0.0 / 1.0; uint8 k -> k/255, which to_uint8 maps back to k.
    if arr.dtype == bool:
        return arr.astype(np.float32)
    return arr.astype(np.float32) / np.float32(255)
