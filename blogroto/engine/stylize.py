"""Apply a filter to photos: options, blending, warm networks, files, animations and videos.

Importing this module is cheap; the backend (blogroto.engine.runtime) is imported the first time
a network is loaded.
Photos larger than `Stylizer.tile_pixels` go through the tiled executor (engine/tiling.py), which
keeps memory bounded and the result equal to the untiled one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from blogroto.engine.runtime import enable_determinism
from blogroto.engine.tiling import LoadedNetwork, TiledRun, as_float, padded_size, store
from blogroto.errors import BlogrotoError
from blogroto.filters import Filter

FORMATS = ("jpeg", "png", "webp")
log = logging.getLogger(__name__)

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


FLOAT32_BUFFER_BYTES = 256 * 2**20  # see Stylizer.buffer_dtype
def quantised(rgb: np.ndarray, rows: int = 256) -> np.ndarray | None:
    """The photo as uint8 when that loses nothing (8-bit sources), else None.

    A 24 MP photo takes 288 MB as float32 but 72 MB as uint8, and the tiled executor keeps the
    photo for its whole run. Row chunks: no full-size float temporaries."""
    from blogroto.imaging.pixels import to_uint8

    out = np.empty(rgb.shape, np.uint8)
    for y in range(0, rgb.shape[0], rows):
        q = to_uint8(rgb[y : y + rows])
        if not np.array_equal(as_float(q), rgb[y : y + rows]):
            return None
        out[y : y + rows] = q
    return out


def _thumbnail(photo: np.ndarray) -> np.ndarray:
    """A 32x32 average of a uint8 frame (float32): a moving camera barely changes it, a cut or a new
    slide does."""
    import cv2

    return cv2.resize(photo, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


class ClipPrecision:
    """Stylizes the frames of one animation or video in `trial` (bfloat16) while that agrees with
    float32 on the clip's own frames. A frame is checked (stylized in both, compared) when it is the
    first, when CHECK_EVERY frames have passed since the last check, or when the picture changed
    since then (a cut, the next slide of a slow GIF: mean difference over SCENE_CHANGE levels); a
    passing check keeps the trial's frame, so precision does not step once a second. The first check
    under BF16_MIN_PSNR_DB keeps its float32 frame and puts the rest of the clip in float32.
    A filter's recorded agreement is its worst calibration photo (a coin on a white backdrop for
    most built-ins: 34-38 dB, their median photo 49-57 dB), so most clips of such filters run in
    bfloat16 (`starry-night`, a 720p frame: 0.18 instead of 0.28 s, benchmarks/results/video.md)."""

    CHECK_EVERY = 30  # a second of video at 30 fps
    SCENE_CHANGE = 12.0  # mean absolute difference (8-bit levels) of 32x32 thumbnails from the last checked frame

    def __init__(self, stylizer: Stylizer, flt: Filter, options: StyleOptions, trial: str):
        self.stylizer, self.flt, self.options, self.trial = stylizer, flt, options, trial
        self.frames, self.agreement_db = 0, []  # frames so far; the PSNR of each check
        self.checked_at: list[int] = []  # the (1-based) frame of each check
        self.last_checked: tuple | None = None  # (shape, thumbnail) of the last checked frame

    @property
    def policy(self) -> str:
        """The policy frames run in now: the trial until a check fails."""
        from blogroto.engine.precision import BF16_MIN_PSNR_DB

        return self.trial if all(db >= BF16_MIN_PSNR_DB for db in self.agreement_db) else "float32"

    def describe(self) -> str:
        """What the clip ran in and why, e.g. for the log."""
        if not self.agreement_db:
            return "no frames"
        from blogroto.engine.precision import precision_name

        low, trial = min(self.agreement_db), precision_name(self.trial)
        if self.policy == self.trial:
            return f"{trial}: agreed with float32 to {low:.1f} dB or better at {len(self.agreement_db)} check(s)"
        before = f"{trial}, then " if len(self.agreement_db) > 1 else ""  # failing at frame 1: float32 throughout
        return f"{before}float32 from frame {self.checked_at[-1]}: {trial} agreed with it to only {low:.1f} dB there"

    def _due(self, photo: np.ndarray) -> bool:
        if self.policy != self.trial:
            return False  # failed once: float32 for good
        if self.last_checked is None or self.frames + 1 - self.checked_at[-1] >= self.CHECK_EVERY:  # 1, 31, 61, ...
            return True
        shape, thumbnail = self.last_checked
        return shape != photo.shape or float(np.mean(np.abs(_thumbnail(photo) - thumbnail))) > self.SCENE_CHANGE

    def __call__(self, photo: np.ndarray) -> np.ndarray:
        from blogroto.engine.precision import psnr_db

        run = lambda policy: self.stylizer.stylize_array(  # noqa: E731
            photo, self.flt, self.options, out=np.empty(photo.shape, np.uint8), policy=policy)
        due = self._due(photo)
        self.frames += 1
        if not due:
            return run(self.policy)
        exact, trial = run("float32"), run(self.trial)
        self.agreement_db.append(psnr_db(exact / 255.0, trial / 255.0))
        self.checked_at.append(self.frames)
        self.last_checked = (photo.shape, _thumbnail(photo))
        return trial if self.policy == self.trial else exact


class Stylizer:
    """Stylizes images with filters, keeping each loaded network warm for the next image.

    `tile_pixels`: photos with more pixels than this are stylized in tiles (bounded memory).
    `tile_side`: tile core side in px at full resolution (multiple of 4) for tiled photos.
    `buffer_dtype`: dtype of the 1/4-resolution feature buffer of tiled photos, the biggest
    allocation (1/16 of the pixels x 4*width channels). auto: float32 (exact) while that is at
    most FLOAT32_BUFFER_BYTES, else float16 (a 24 MP photo and a width-32 network: 384 MB instead
    of 768 MB; ~70 dB from the untiled result, see tests/test_tiling.py).
    `precision`: auto | float32 | bfloat16 | float16 (auto: float16 on GPUs, bfloat16 on CPUs with
    native bf16 for filters whose recorded bf16 output is visually identical, else float32; the
    frames of animations and videos check bfloat16 on themselves instead, `ClipPrecision`; see
    blogroto/engine/precision.py).
    """

    def __init__(self, tile_pixels: int = 2_600_000, tile_side: int = 512, buffer_dtype: str = "auto", precision: str = "auto"):
        if tile_side < 16 or tile_side % 4:
            raise ValueError(f"tile_side must be a multiple of 4 and at least 16, got {tile_side}")
        self.tile_pixels = int(tile_pixels)
        self.tile_side = int(tile_side)
        self.buffer_dtype = buffer_dtype if buffer_dtype == "auto" else np.dtype(buffer_dtype)
        self.precision = precision
        self._networks: dict[tuple[str, str], LoadedNetwork] = {}
        self._lock = threading.Lock()  # TF functions are thread-safe, but loading twice wastes seconds

    def policy(self, flt: Filter) -> str:
        """The Keras dtype policy `flt` runs in here (see blogroto.engine.precision)."""
        from blogroto.engine.precision import inference_policy

        return inference_policy(self.precision, flt.meta)

    def network(self, flt: Filter, policy: str | None = None) -> LoadedNetwork:
        """`flt`'s network in `policy` (a Keras dtype policy; default: the one `self.policy` picks),
        loaded once."""
        from blogroto.engine.precision import POLICIES

        if policy is not None and policy not in POLICIES.values():
            raise ValueError(f"not a dtype policy: {policy!r} (one of {', '.join(POLICIES.values())})")
        enable_determinism()  # every computation gets its network here, stills and clips alike
        with self._lock:
            key = (flt.fingerprint, policy or self.policy(flt))
            if key not in self._networks:
                self._networks[key] = LoadedNetwork(flt, key[1])
            return self._networks[key]

    def tiled(self, h: int, w: int) -> bool:
        """Whether a photo of h x w px goes through the tiled executor."""
        return h * w > self.tile_pixels

    def buffer_dtype_for(self, h: int, w: int, width: int) -> np.dtype:
        if not isinstance(self.buffer_dtype, str):
            return self.buffer_dtype
        hp, wp, _ = padded_size(h, w)
        return np.dtype(np.float32 if hp * wp // 16 * 4 * width * 4 <= FLOAT32_BUFFER_BYTES else np.float16)

    # -- arrays

    def stylize_array(self, rgb: np.ndarray, flt: Filter, options: StyleOptions, out: np.ndarray | None = None,
                      policy: str | None = None) -> np.ndarray:
        """rgb: float32 HxWx3 in [0,1] (already resized), or uint8 (k -> k/255, see `quantised`).
        Returns float32 HxWx3 in [0,1], or fills and returns `out` (HxWx3, float32 or uint8 as
        `imaging.pixels.to_uint8` quantises). `policy`: a Keras dtype policy instead of `self.policy`'s."""
        net = self.network(flt, policy)
        h, w = rgb.shape[:2]
        if out is None:
            out = np.empty((h, w, 3), np.float32)
        if not self.tiled(h, w):
            store(out, (0, h, 0, w), blend(as_float(rgb), net.whole(rgb), options))
        else:
            run = TiledRun(net, rgb, self.tile_side, self.buffer_dtype_for(h, w, net.net.width))
            run.run(out, lambda photo, styled: blend(photo, styled, options))
        return out

    # -- PIL and files

    def stylize_image(self, image: Image.Image, flt: Filter, options: StyleOptions = StyleOptions()) -> Image.Image:
        import io

        from blogroto.imaging.decode import load_image
        from blogroto.imaging.pixels import to_uint8
        from blogroto.imaging.resize import resize_long_side

        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        img = resize_long_side(load_image(buffer.getvalue(), name="image"), options.max_size)
        rgb = self.stylize_array(img.rgb, flt, options, out=np.empty(img.rgb.shape, np.uint8))
        if img.alpha is not None:
            return Image.fromarray(np.dstack([rgb, to_uint8(img.alpha[..., None])[..., 0]]), "RGBA")
        return Image.fromarray(rgb, "RGB")

    def stylize_file(self, src: str | Path | bytes, dst: str | Path, flt: Filter, options: StyleOptions = StyleOptions(), name: str | None = None, xmp: bytes | None = None) -> Path:
        """Read `src` (a path or bytes), stylize, write `dst` atomically. Returns `dst`."""
        from blogroto.fsutil import atomic_write_bytes
        from blogroto.imaging.decode import load_image
        from blogroto.imaging.encode import encode_uint8
        from blogroto.imaging.pixels import to_uint8
        from blogroto.imaging.resize import resize_long_side

        img = resize_long_side(load_image(src, name=name), options.max_size)
        fmt = output_format(img.format, options)
        alpha = None if img.alpha is None else to_uint8(img.alpha)
        photo = quantised(img.rgb)
        photo = img.rgb if photo is None else photo
        exif, shape = img.exif, img.rgb.shape
        del img  # an 8-bit photo now lives on as uint8 only (288 -> 72 MB at 24 MP)
        # uint8 output too, for the same reason; encoded without float copies
        styled = self.stylize_array(photo, flt, options, out=np.empty(shape, np.uint8))
        del photo
        data = encode_uint8(styled, alpha, fmt, options.quality, exif=exif, xmp=xmp)
        atomic_write_bytes(dst, data)
        return Path(dst)

    def _frames(self, flt: Filter, options: StyleOptions, label: str, total: int | None, progress: bool):
        """(stylize one uint8 frame, a progress bar counting frames) for animations and videos."""
        from tqdm import tqdm

        from blogroto.engine.precision import clip_policy

        trial = clip_policy(self.precision, flt.meta)
        frame = (ClipPrecision(self, flt, options, trial) if trial else
                 lambda photo: self.stylize_array(photo, flt, options, out=np.empty(photo.shape, np.uint8)))

        bar = tqdm(total=total, desc=f"frames of {Path(label).name[:30]}", unit="frame", disable=not progress,
                   leave=False)
        return frame, bar

    def stylize_animation_file(self, src: str | Path | bytes, dst: str | Path, flt: Filter, options: StyleOptions,
                               animation, name: str | None = None, xmp: bytes | None = None,
                               progress: bool = False, note=None) -> Path:
        """An animated GIF/WebP/APNG, every frame stylized with flicker reduction, written to `dst`
        atomically in its own format (blogroto.animation; `animation` is a site.AnimationSettings).
        `note(text)`, if given, hears what precision the frames ran in (ClipPrecision)."""
        from blogroto.animation import (
            encode_animation,
            load_animation,
            stylize_animation,
        )
        from blogroto.fsutil import atomic_write_bytes

        label = name or str(src)
        data = src if isinstance(src, (bytes, bytearray)) else Path(src).read_bytes()
        anim = load_animation(bytes(data), label, animation, options.max_size)
        frame, bar = self._frames(flt, options, label, len(anim.frames), progress)
        with bar:
            styled = stylize_animation(anim, frame, animation.smoothing, progress=bar.update)
        _tell_clip_precision(label, frame, note)
        atomic_write_bytes(dst, encode_animation(styled, options.quality, xmp=xmp))
        return Path(dst)

    def stylize_video_file(self, src: str | Path, dst: str | Path, flt: Filter, options: StyleOptions, animation,
                           name: str | None = None, progress: bool = False, note=None) -> Path:
        """An MP4/WebM video stylized into `dst` atomically (same container, audio copied;
        blogroto.video; `animation` is a site.AnimationSettings; `note` as for animations)."""
        from blogroto.fsutil import atomic_write_bytes
        from blogroto.video import stylize_video

        label = name or str(src)
        frame, bar = self._frames(flt, options, label, None, progress)  # its total: from the opened stream
        with bar:
            data = stylize_video(Path(src), frame, animation.smoothing, options.max_size,
                                 animation.max_video_seconds, label, progress=bar)
        _tell_clip_precision(label, frame, note)
        atomic_write_bytes(dst, data)
        return Path(dst)


def _tell_clip_precision(label: str, frame, note) -> None:
    """What a clip's frames ran in: to the log (INFO) and to `note`, where the checks ran."""
    if isinstance(frame, ClipPrecision):
        ran = frame.describe()
        log.info("%s: frames in %s", label, ran, extra={"clip_precision": frame})
        if note is not None:
            note(f"{Path(label).name}: frames in {ran}")
