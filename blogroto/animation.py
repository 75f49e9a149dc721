"""Animated GIF, WebP and APNG: every frame stylized, written back animated, without flicker.

Read: frames composited by Pillow (disposal and blending applied), bounded in count and total
pixels *before* any frame is decoded. Stylize: each frame through the filter, then blended with
the previous stylized frame carried along the optical flow of the photo frames (OpenCV's DIS),
except where the flow fails a forward-backward check or the warped photo does not match
(occlusions, cuts): the short-term consistency of Ruder et al. 2016, without its optimisation,
which is why it fits a CPU. Write: the input's format, frame timing, loop count and
transparency; GIF with one palette for every frame and no dithering, so colours do not shimmer.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from blogroto.errors import ImageError
from blogroto.imaging.decode import DEFAULT_MAX_PIXELS
from blogroto.imaging.encode import png_xmp
from blogroto.imaging.resize import long_side_size
from blogroto.imaging.sniff import gif_frame_count, raster_format
from blogroto.site.config import AnimationSettings

ANIMATED_FORMATS = {"GIF": "gif", "PNG": "png", "WEBP": "webp"}
MIN_FLOW_SIDE = 16  # smaller frames are not blended
FULL_RES_FLOW_SIDE = 480  # frames with a shorter side than this get their flow at full resolution


@dataclass
class Animation:
    frames: list[np.ndarray]  # uint8 HxWx3, every frame composited in full
    alphas: list[np.ndarray | None]  # uint8 HxW, or None where a frame is opaque
    durations: list[int]  # milliseconds per frame
    loop: int | None  # 0: for ever; n: n times; None: once (a GIF without a loop block)
    format: str  # gif | png | webp


# ------------------------------------------------------------------------------------ detect


def frame_count(source: Path | bytes) -> int:
    """How many frames a GIF, PNG or WebP holds, read from its structure without decoding
    (1 for any other format). Cheap enough for every build: a PNG is read only up to its
    first image data, a WebP only its header; a GIF's blocks are walked."""
    if isinstance(source, (bytes, bytearray)):
        handle = io.BytesIO(source)
    else:
        handle = open(source, "rb")
    with handle:
        head = handle.read(32)
        fmt = raster_format(head)
        if fmt == "gif":
            return gif_frame_count(head + handle.read())
        if fmt == "png":
            return _apng_frames(handle)
        if fmt == "webp" and head[12:16] == b"VP8X" and len(head) >= 21 and head[20] & 0x02:
            return 2  # the animation flag: the exact count needs the demuxer (load_animation)
    return 1


def _apng_frames(handle) -> int:
    handle.seek(8)
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return 1
        length, kind = struct.unpack(">I4s", header)
        if kind == b"acTL":
            body = handle.read(8)
            return max(1, struct.unpack(">I", body[:4])[0]) if len(body) == 8 else 1
        if kind in (b"IDAT", b"IEND"):
            return 1  # acTL must come before the image data
        handle.seek(length + 4, io.SEEK_CUR)


# ------------------------------------------------------------------------------------ read


def load_animation(data: bytes, label: str, options: AnimationSettings, max_size: int) -> Animation:
    """Every frame of an animated GIF/PNG/WebP, resized to `max_size` long side (0: as is).
    Raises ImageError naming `label` past a bound or for a broken file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=list(ANIMATED_FORMATS))
        except Exception as exc:
            raise ImageError(f"cannot read animated image: {exc}", label) from exc
        with im:
            fmt = ANIMATED_FORMATS[im.format]
            if im.size[0] * im.size[1] > DEFAULT_MAX_PIXELS:  # one frame, before it is decoded
                raise ImageError(f"animation frames are too large: {im.size[0]}x{im.size[1]}, over the limit of "
                                 f"{DEFAULT_MAX_PIXELS / 1e6:g} megapixels per frame", label)
            count = frame_count(data) if fmt == "gif" else int(getattr(im, "n_frames", 1))
            size = long_side_size(*im.size, max_size)
            if count > options.max_frames:
                raise ImageError(f"animation has {count} frames, over the limit of {options.max_frames} "
                                 f"(algorotoscope.animation.max_frames); left as it is", label)
            total = count * size[0] * size[1]
            if total > options.max_pixels:
                raise ImageError(f"animation has {count} frames of {size[0]}x{size[1]} = {total / 1e6:.0f} megapixels, "
                                 f"over the limit of {options.max_pixels / 1e6:g} "
                                 f"(algorotoscope.animation.max_pixels); left as it is", label)
            loop = im.info.get("loop")
            im_size = im.size
            anim = Animation([], [], [], None if loop is None else int(loop), fmt)
            try:
                for frame in ImageSequence.Iterator(im):
                    if len(anim.frames) == count:
                        break  # never more frames than were counted and allowed
                    if frame.size != im_size:
                        # Pillow grows a GIF to fit a frame larger than its declared screen: the
                        # bounds above were checked on the declared size, so such a file is refused
                        raise ImageError(f"frame {len(anim.frames) + 1} is {frame.size[0]}x{frame.size[1]}, not the "
                                         f"animation's {im_size[0]}x{im_size[1]}; not stylized", label)
                    rgba = frame.convert("RGBA")  # loads the frame: WebP sets its duration only then
                    anim.durations.append(max(0, int(frame.info.get("duration", 100) or 0)))
                    if rgba.size != size:
                        rgba = rgba.resize(size, Image.LANCZOS)  # premultiplied inside Pillow
                    pixels = np.asarray(rgba)
                    anim.frames.append(np.ascontiguousarray(pixels[..., :3]))
                    alpha = pixels[..., 3]
                    anim.alphas.append(None if alpha.min() == 255 else np.ascontiguousarray(alpha))
            except ImageError:
                raise
            except Exception as exc:  # truncated frames, bad chunks: Pillow raises many types
                raise ImageError(f"cannot read frame {len(anim.frames) + 1} of the animation: {exc}", label) from exc
    if not anim.frames:
        raise ImageError("animation has no frames", label)
    return anim


# ------------------------------------------------------------------------------------ stylize


class FlowBlend:
    """Carries the previous stylized frame along the photo's optical flow and blends it into the
    next, where the flow can be trusted."""

    def __init__(self, smoothing: float):
        import cv2

        self.cv2 = cv2
        self.smoothing = float(smoothing)
        # FAST, not MEDIUM: 5 ms instead of 19 ms a flow at 640x360, and as much flicker removed
        # (benchmarks/flicker.py); this has to stay cheap next to stylizing the frame
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.grids: dict[tuple[int, int], np.ndarray] = {}
        self.prev_photo: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None

    def __call__(self, photo: np.ndarray, styled: np.ndarray) -> np.ndarray:
        """photo, styled: uint8 HxWx3 of one frame -> the frame to show (uint8)."""
        cv2, out = self.cv2, styled
        # DIS needs a dozen pixels a side; tiny frames (icons) are shown as stylized
        if self.prev_photo is not None and self.smoothing > 0 and min(photo.shape[:2]) >= MIN_FLOW_SIDE:
            try:
                mapping, trusted = self.backward(self.prev_photo, photo)
                # cubic: the carried picture is resampled again every frame, and linear would blur it
                carried = cv2.remap(self.prev_out, mapping, None, cv2.INTER_CUBIC,
                                    borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
                weight = cv2.merge([trusted * np.float32(self.smoothing)] * 3)
                out = cv2.convertScaleAbs(styled + weight * (carried - styled))  # rounds and saturates to uint8
            except cv2.error:
                out = styled  # OpenCV refused these frames: shown as stylized, not blended
        self.prev_photo, self.prev_out = photo, out
        return out

    def backward(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each pixel of `cur`, where it was in `prev` (a cv2.remap map, float32 HxWx2) and how
        far that can be trusted (float32 HxW in [0, 1]): 0 where the forward and backward flows
        disagree (occluded), the warped photo differs (a cut, a change of light) or it left the frame."""
        cv2 = self.cv2
        g_prev, g_cur = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY), cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
        h, w = g_cur.shape
        # Large frames: flow and trust of a half-size copy, scaled up (motion is smooth at that
        # scale, and a quarter of the pixels keeps this cheap next to stylizing the frame)
        if min(h, w) > FULL_RES_FLOW_SIDE:
            size = (max(1, w // 2), max(1, h // 2))
            g_prev, g_cur = (cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (g_prev, g_cur))
        back = self.dis.calc(g_cur, g_prev, None)
        fwd = self.dis.calc(g_prev, g_cur, None)
        trusted = trusted_mask(cv2, self._grid(*g_cur.shape) + back, back, fwd, g_prev, g_cur)
        if g_cur.shape != (h, w):
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(w / g_cur.shape[1])
            trusted = cv2.resize(trusted, (w, h), interpolation=cv2.INTER_LINEAR)
        return self._grid(h, w) + back, trusted

    def _grid(self, h: int, w: int) -> np.ndarray:
        """Every pixel's own (x, y): a flow plus this is a cv2.remap map."""
        grid = self.grids.get((h, w))
        if grid is None:
            grid = self.grids[(h, w)] = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32),
                                                              np.arange(h, dtype=np.float32)))
        return grid


def trusted_mask(cv2, mapping: np.ndarray, back: np.ndarray, fwd: np.ndarray, g_prev: np.ndarray,
                 g_cur: np.ndarray) -> np.ndarray:
    """1 where the flow `back` (cur -> prev) can be trusted, 0 where not, soft at the edges."""
    h, w = back.shape[:2]
    fwd_there = cv2.remap(fwd, mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Sundaram et al. 2010: a round trip prev -> cur -> prev must come back to where it started
    loop = np.einsum("hwc,hwc->hw", back + fwd_there, back + fwd_there)
    consistent = loop <= 0.01 * (np.einsum("hwc,hwc->hw", back, back) + np.einsum("hwc,hwc->hw", fwd_there, fwd_there)) + 0.5
    x, y = mapping[..., 0], mapping[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    warped = cv2.remap(g_prev, mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    matches = cv2.absdiff(warped, g_cur) <= 20
    trusted = (consistent & inside & matches).astype(np.float32)
    # soften the mask's edges: hard seams between carried and fresh texture read as cracks
    return cv2.GaussianBlur(trusted, (0, 0), 1.5) * trusted


def stylize_animation(anim: Animation, stylize_frame, smoothing: float, progress=None) -> Animation:
    """`stylize_frame(uint8 HxWx3) -> uint8 HxWx3` on every frame, flicker reduced."""
    blend = FlowBlend(smoothing)
    frames = []
    for photo in anim.frames:
        frames.append(blend(photo, stylize_frame(photo)))
        if progress is not None:
            progress(1)
    return Animation(frames, anim.alphas, anim.durations, anim.loop, anim.format)


# ------------------------------------------------------------------------------------ write


def encode_animation(anim: Animation, quality: int = 90, xmp: bytes | None = None) -> bytes:
    """The animation in its own format, timing, loop count and transparency kept, with the XMP
    packet (the credit) embedded."""
    out = io.BytesIO()
    params: dict = {"save_all": True, "duration": list(anim.durations)}
    if anim.loop is not None:
        params["loop"] = anim.loop
    try:
        if anim.format == "gif":
            images = _gif_frames(anim)
            if any(a is not None for a in anim.alphas):
                params.update(transparency=255, disposal=2)  # transparent pixels show the page, not the last frame
            images[0].save(out, "GIF", append_images=images[1:], optimize=False, **params)
            if xmp:
                return _gif_with_xmp(out.getvalue(), bytes(xmp))
        else:
            images = [_rgba(f, a) for f, a in zip(anim.frames, anim.alphas)]
            if anim.format == "webp":
                params.update(quality=int(quality), method=4, loop=anim.loop or 0)
                if xmp:
                    params["xmp"] = bytes(xmp)
                images[0].save(out, "WEBP", append_images=images[1:], **params)
            else:
                params.update(disposal=0, blend=0, compress_level=6, loop=anim.loop or 0)
                info = png_xmp(xmp)
                if info is not None:
                    params["pnginfo"] = info
                images[0].save(out, "PNG", append_images=images[1:], **params)
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot encode animated {anim.format.upper()}: {exc}") from exc
    return out.getvalue()


def _gif_with_xmp(data: bytes, xmp: bytes) -> bytes:
    """XMP in a GIF the way the XMP specification (part 3, 1.1.2) puts it: an application
    extension "XMP DataXMP" holding the packet as is, then the 258-byte "magic trailer" that
    makes readers which walk it as sub-blocks land on the terminator. Pillow has no writer for it."""
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)  # after the global colour table
    trailer = bytes([1]) + bytes(range(255, -1, -1)) + b"\x00"
    return data[:pos] + b"\x21\xff\x0bXMP DataXMP" + xmp + trailer + data[pos:]


def _rgba(frame: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    return Image.fromarray(frame, "RGB") if alpha is None else Image.fromarray(np.dstack([frame, alpha]), "RGBA")


def _gif_frames(anim: Animation) -> list[Image.Image]:
    """Every frame on one palette (255 colours + a transparent index) taken from all frames,
    without dithering: per-frame palettes or error diffusion make still areas shimmer."""
    budget = max(1, 1_000_000 // max(1, len(anim.frames)))  # ~1 MP of samples in all
    samples = []
    for frame in anim.frames:
        step = max(1, int(np.sqrt(frame.shape[0] * frame.shape[1] / budget)))
        samples.append(frame[::step, ::step].reshape(-1, 3))
    pool = np.concatenate(samples)
    palette = Image.fromarray(pool[None], "RGB").quantize(255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    entries = (palette.getpalette() or [0, 0, 0])[: 255 * 3]
    real = len(entries) // 3
    # unused entries repeat the first colour; pixels matched to them are moved onto it, so index
    # 255 is only ever the transparent one
    entries += entries[:3] * (256 - real)
    palette.putpalette(entries)
    images = []
    for frame, alpha in zip(anim.frames, anim.alphas):
        values = np.asarray(Image.fromarray(frame, "RGB").quantize(palette=palette, dither=Image.Dither.NONE)).copy()
        values[values >= real] = 0
        if alpha is not None:
            values[alpha < 128] = 255
        idx = Image.fromarray(values, "P")
        idx.putpalette(entries)
        images.append(idx)
    return images
