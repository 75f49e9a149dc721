"""Apply a filter to photos: options, tiling with whole-image statistics, warm networks.

Importing this module is cheap; TensorFlow is imported the first time a network is loaded.

Large photos are stylized in overlapping tiles so memory stays bounded (a 24 MP photo in about
1.5 GB). Tiles must not disagree in colour, so every tile is normalised with instance-norm
statistics of the *whole* photo: a first pass measures them (exactly where the photo fits in
`stats_pixels`, else pooled over a batch of full-resolution crops spread over the photo) and the
tiles then use them. Where the photo fits in `stats_pixels` the tiled result differs from the
untiled one only by padding effects far inside the overlap.

Strength and keep-colours are per-pixel operations and run tile by tile too.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from blogroto.errors import BlogrotoError, ImageError
from blogroto.filters import Filter

FORMATS = ("jpeg", "png", "webp")
DEFAULT_MAX_SIZE = 1600  # long side in px: sharp on retina-width blog columns, quick to stylize


@dataclass(frozen=True)
class StyleOptions:
    strength: float = 1.0  # 0 = the photo, 1 = fully stylized
    keep_colors: bool = False  # keep the photo's colours, take luminance from the filter
    max_size: int = DEFAULT_MAX_SIZE  # long side of the output; 0 = full size
    format: str | None = None  # jpeg | png | webp; None = keep the input's format
    quality: int = 90

    def __post_init__(self):
        if not (isinstance(self.strength, (int, float)) and 0.0 <= float(self.strength) <= 1.0):
            raise BlogrotoError(f"strength must be a number between 0 and 1, got {self.strength!r}")
        if not isinstance(self.keep_colors, bool):
            raise BlogrotoError(f"keep_colors must be true or false, got {self.keep_colors!r}")
        if not (isinstance(self.max_size, int) and not isinstance(self.max_size, bool) and self.max_size >= 0):
            raise BlogrotoError(f"max_size must be a whole number of pixels (0 = full size), got {self.max_size!r}")
        if self.format is not None and self.format not in FORMATS:
            raise BlogrotoError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not (isinstance(self.quality, int) and 1 <= self.quality <= 100):
            raise BlogrotoError(f"quality must be between 1 and 100, got {self.quality!r}")

    def pixel_key(self) -> dict:
        """Every option that changes the output bytes, for cache keys."""
        return asdict(self)


def output_format(src_format: str, options: StyleOptions) -> str:
    """The format the output is written in: the requested one, else the input's when we can write
    it, else JPEG (photos) — GIF/TIFF/BMP inputs become PNG to keep transparency and sharpness."""
    if options.format:
        return options.format
    src_format = (src_format or "").lower().lstrip(".")
    src_format = {"jpg": "jpeg", "tif": "tiff"}.get(src_format, src_format)
    if src_format in FORMATS:
        return src_format
    return "png"


def blend(photo: np.ndarray, styled: np.ndarray, options: StyleOptions) -> np.ndarray:
    """Apply keep-colours and strength to one region (both float32 HxWx3 in [0,1])."""
    if options.keep_colors:
        # luminance transfer (Gatys et al. 2016): Y from the stylized image, chroma from the photo
        y_styled = styled @ np.array([0.299, 0.587, 0.114], np.float32)
        y_photo = photo @ np.array([0.299, 0.587, 0.114], np.float32)
        styled = photo + (y_styled - y_photo)[..., None]
    if options.strength < 1.0:
        styled = photo + (styled - photo) * np.float32(options.strength)
    return np.clip(styled, 0.0, 1.0)


MIN_SIDE = 16  # reflection padding inside the network needs a few pixels at the 1/4-scale bottleneck


def _pad_to_multiple(x: np.ndarray, multiple: int = 4) -> np.ndarray:
    """Pad bottom/right so both sides are multiples of 4 (two stride-2 layers) and at least MIN_SIDE;
    the caller crops the result back to the input size."""
    h, w = x.shape[:2]
    ph, pw = max(MIN_SIDE, h + (-h % multiple)) - h, max(MIN_SIDE, w + (-w % multiple)) - w
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "edge"
        x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode=mode)
    return x


class _LoadedNetwork:
    """One filter's network with traced functions that accept any input size."""

    def __init__(self, flt: Filter, policy: str):
        import tensorflow as tf

        from blogroto.network import load_network

        self.tf = tf
        spec = flt.network
        self.net = load_network(flt.file("weights"), spec.width, spec.blocks, dtype_policy=policy)
        channels = self.net.norm_channels()
        image = tf.TensorSpec([1, None, None, 3], tf.float32)
        self.collect = tf.function(lambda x: self.net.run(x), input_signature=[image])
        crops = tf.TensorSpec([None, None, None, 3], tf.float32)
        self.pooled = tf.function(lambda x: self.net.run(x, pooled=True)[1], input_signature=[crops])
        stats_spec = [(tf.TensorSpec([1, 1, 1, c], tf.float32), tf.TensorSpec([1, 1, 1, c], tf.float32)) for c in channels]
        self.with_stats = tf.function(lambda x, stats: self.net.run(x, stats)[0], input_signature=[image, stats_spec])

    def whole(self, rgb: np.ndarray):
        y, stats = self.collect(self.tf.constant(_pad_to_multiple(rgb)[None]))
        return y[0].numpy()[: rgb.shape[0], : rgb.shape[1]], stats

    def pooled_stats(self, crops: np.ndarray):
        return self.pooled(self.tf.constant(crops))

    def tile(self, rgb: np.ndarray, stats) -> np.ndarray:
        y = self.with_stats(self.tf.constant(_pad_to_multiple(rgb)[None]), stats)
        return y[0].numpy()[: rgb.shape[0], : rgb.shape[1]]


def _configure_tensorflow():
    import tensorflow as tf

    # Same photo, filter and options -> identical bytes on the same machine.
    tf.config.experimental.enable_op_determinism()
    return tf


class Stylizer:
    """Stylizes images with filters, keeping each loaded network warm for the next image.

    `tile_pixels`: photos with more pixels than this are stylized in tiles (bounded memory).
    `overlap`: context in px added around each tile (the network's reach; enough to hide seams).
    `stats_pixels`: pixels of the statistics pass (the whole photo if it fits, else full-resolution crops).
    `precision`: auto | float32 | bfloat16 | float16 (auto: float16 on GPUs, bf16 on CPUs with
    native bf16 only if enabled per filter, else float32; see docs/precision.md).
    """

    def __init__(self, tile_pixels: int = 2_600_000, overlap: int = 64, stats_pixels: int = 2_600_000, stats_crop: int = 128, precision: str = "auto"):
        self.tile_pixels = int(tile_pixels)
        self.overlap = int(overlap)
        self.stats_pixels = int(stats_pixels)
        self.stats_crop = int(stats_crop)
        self.precision = precision
        self._networks: dict[tuple[str, str], _LoadedNetwork] = {}
        self._lock = threading.Lock()  # TF functions are thread-safe, but loading twice wastes seconds

    def _policy(self) -> str:
        if self.precision == "float32":
            return "float32"
        if self.precision == "bfloat16":
            return "mixed_bfloat16"
        if self.precision == "float16":
            return "mixed_float16"
        tf = _configure_tensorflow()
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"

    def network(self, flt: Filter) -> _LoadedNetwork:
        with self._lock:
            _configure_tensorflow()
            key = (flt.fingerprint, self._policy())
            if key not in self._networks:
                self._networks[key] = _LoadedNetwork(flt, key[1])
            return self._networks[key]

    # -- arrays

    def stylize_array(self, rgb: np.ndarray, flt: Filter, options: StyleOptions) -> np.ndarray:
        """rgb: float32 HxWx3 in [0,1] (already resized). Returns float32 HxWx3 in [0,1]."""
        net = self.network(flt)
        h, w = rgb.shape[:2]
        if h * w <= self.tile_pixels:
            styled, _ = net.whole(rgb)
            return blend(rgb, styled, options)
        stats = self._whole_image_stats(net, rgb)
        out = np.empty_like(rgb)
        for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in self.tiles(h, w):
            region = rgb[cy0:cy1, cx0:cx1]
            styled = net.tile(region, stats)
            core = styled[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
            out[y0:y1, x0:x1] = blend(rgb[y0:y1, x0:x1], core, options)
        return out

    def _whole_image_stats(self, net: _LoadedNetwork, rgb: np.ndarray):
        """Normalisation statistics of the whole photo at full resolution, in bounded memory.

        If the photo fits in `stats_pixels` they are exact. Otherwise they are estimated from a
        batch of full-resolution crops spread evenly over the photo, with every norm layer pooling
        its statistics over the whole batch (statistics of a downscaled copy would be wrong:
        they depend on the scale of detail, measured ~20 dB worse)."""
        h, w = rgb.shape[:2]
        if h * w <= self.stats_pixels:
            _, stats = net.whole(rgb)
            return stats
        # many small crops on an even grid sample the photo's regions better than a few big ones
        side = max(MIN_SIDE, min(self.stats_crop, h, w) // 4 * 4)
        count = max(1, self.stats_pixels // (side * side))
        rows = max(1, min(h // side, round(math.sqrt(count * h / w))))
        cols = max(1, min(w // side, count // rows))
        ys = np.linspace(0, h - side, rows).round().astype(int)
        xs = np.linspace(0, w - side, cols).round().astype(int)
        crops = np.stack([rgb[y : y + side, x : x + side] for y in ys for x in xs])
        return net.pooled_stats(crops)

    def tiles(self, h: int, w: int):
        """Yield (core box, context box) pairs covering the image; boxes are (y0, y1, x0, x1)."""
        side = max(64, int(math.sqrt(min(self.tile_pixels, 1024 * 1024))) - 2 * self.overlap) // 4 * 4
        for y0 in range(0, h, side):
            for x0 in range(0, w, side):
                y1, x1 = min(h, y0 + side), min(w, x0 + side)
                context = (max(0, y0 - self.overlap), min(h, y1 + self.overlap), max(0, x0 - self.overlap), min(w, x1 + self.overlap))
                yield (y0, y1, x0, x1), context

    # -- PIL and files

    def stylize_image(self, image: Image.Image, flt: Filter, options: StyleOptions = StyleOptions()) -> Image.Image:
        from blogroto.images import LoadedImage, resize_long_side, to_uint8

        import io

        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        from blogroto.images import load_image

        img = resize_long_side(load_image(buffer.getvalue(), name="image"), options.max_size)
        rgb = to_uint8(self.stylize_array(img.rgb, flt, options))
        if img.alpha is not None:
            return Image.fromarray(np.dstack([rgb, to_uint8(img.alpha[..., None])[..., 0]]), "RGBA")
        return Image.fromarray(rgb, "RGB")

    def stylize_file(self, src: str | Path | bytes, dst: str | Path, flt: Filter, options: StyleOptions = StyleOptions(), name: str | None = None, xmp: bytes | None = None) -> Path:
        """Read `src` (a path or bytes), stylize, write `dst` atomically. Returns `dst`."""
        from blogroto.images import encode_image, load_image, resize_long_side

        from blogroto.fsutil import atomic_write_bytes

        img = resize_long_side(load_image(src, name=name), options.max_size)
        fmt = output_format(img.format, options)
        styled = self.stylize_array(img.rgb, flt, options)
        data = encode_image(styled, img.alpha, fmt, options.quality, exif=img.exif, xmp=xmp)
        atomic_write_bytes(dst, data)
        return Path(dst)
