"""What training sees: the content photos (decoded once, cropped and flipped per step, with their
palette references for the colour term) and the artwork at its brush size (`style_size`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from blogroto.errors import BlogrotoError


class ContentPool:
    """Content photos decoded once and kept in memory, slightly larger than the crop size.
    Crops and flips for step i come from a generator seeded by (seed, i): resumable and repeatable."""

    EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}

    def __init__(self, paths: list[Path], size: int, log=print, keep_short_side: int | None = None):
        """keep_short_side: shrink photos only down to this short side (default 1.25 crop sizes)."""
        from blogroto.imaging.decode import load_image
        from blogroto.imaging.resize import resize_long_side

        keep = max(size * 1.25, keep_short_side or 0)

        self.images: list[np.ndarray] = []
        self.names: list[str] = []
        # each photo in the artwork's palette (losses.PaletteTransfer), for the colour term: when
        # set, a batch holds each crop's reference as three more channels (N,H,W,6)
        self.references: list[np.ndarray] | None = None
        for path in paths:
            try:
                img = load_image(path)
            except BlogrotoError as exc:
                log(f"warning: skipping content image: {exc}")
                continue
            h, w = img.rgb.shape[:2]
            # short side ~1.25 crop sizes: crops cover most of each photo, memory stays small
            scale = min(1.0, keep / min(h, w))
            if scale < 1.0:
                img = resize_long_side(img, int(round(max(h, w) * scale)))
            rgb = img.rgb
            if min(rgb.shape[:2]) < size:
                pil = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
                factor = size / min(rgb.shape[:2])
                pil = pil.resize((math.ceil(pil.width * factor), math.ceil(pil.height * factor)), Image.LANCZOS)
                rgb = np.asarray(pil, np.float32) / 255.0
            self.images.append((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
            self.names.append(path.name)
        if not self.images:
            raise BlogrotoError("no usable content images (give --content DIR with photos)")

    @staticmethod
    def find(dirs: list[Path]) -> list[Path]:
        found = []
        for d in dirs:
            d = Path(d)
            if d.is_file():
                found.append(d)
                continue
            if not d.is_dir():
                raise BlogrotoError("content folder not found", d)
            found.extend(p for p in sorted(d.rglob("*")) if p.suffix.lower() in ContentPool.EXTENSIONS and p.is_file())
        return found

    def batch(self, seed: int, step: int, batch: int, size: int, zoom: float = 1.0, noise: float = 0.0) -> np.ndarray:
        """zoom > 1: crops as small as size/zoom too, upscaled (log-uniform crop side), i.e. the
        photos also seen up to `zoom` times larger than their own pixels. noise > 0: three more
        channels of Gaussian noise of that sigma (the stability term's), drawn from the step's own
        generator so a resumed run sees the same noise."""
        rng = np.random.default_rng([seed, step])
        out = np.empty((batch, size, size, 3 if self.references is None else 6), np.float32)
        for b in range(batch):
            which = rng.integers(len(self.images))
            img = self.images[which]
            if self.references is not None:  # the reference is cropped (and flipped) with its photo
                img = np.concatenate([img, self.references[which]], axis=-1)
            h, w = img.shape[:2]
            if zoom > 1.0:
                low = max(8, round(size / zoom))
                side = int(round(math.exp(rng.uniform(math.log(low), math.log(min(h, w))))))
            else:
                # random scale between crop size and the whole short side: varied object sizes
                side = int(rng.integers(size, min(h, w) + 1))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = img[y : y + side, x : x + side]
            if side != size:
                crop = np.concatenate([np.asarray(Image.fromarray(crop[..., c:c + 3]).resize((size, size), Image.BILINEAR))
                                       for c in range(0, crop.shape[-1], 3)], axis=-1)
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            out[b] = crop.astype(np.float32) / 255.0
        if noise > 0:
            out = np.concatenate([out, rng.normal(0.0, noise, out.shape[:3] + (3,)).astype(np.float32)], axis=-1)
        return out


def load_style_image(path: Path, style_size: int) -> np.ndarray:
    from blogroto.imaging.decode import load_image
    from blogroto.imaging.resize import resize_long_side

    img = load_image(path)
    h, w = img.rgb.shape[:2]
    if max(h, w) != style_size:
        if max(h, w) > style_size:
            img = resize_long_side(img, style_size)
        else:  # upscale small artworks so the "brush size" still matches
            pil = Image.fromarray((np.clip(img.rgb, 0, 1) * 255).astype(np.uint8))
            f = style_size / max(h, w)
            pil = pil.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)
            return np.asarray(pil, np.float32)[None] / 255.0
    return img.rgb[None].astype(np.float32)
