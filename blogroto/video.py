"""Video (MP4, WebM) stylized frame by frame into a video of the same container and duration,
flicker reduced like animations (blogroto.animation.FlowBlend), audio copied untouched.

Decoding and encoding are PyAV's (FFmpeg with its codecs in the wheel: `pip install
'blogroto[video]'`); frames stream through one at a time, so memory does not grow with length.
MP4 is written as H.264 (yuv420p, the profile every browser plays), WebM as VP9, each frame at
the time stamp it had.
"""

from __future__ import annotations

from pathlib import Path

from blogroto.errors import BlogrotoError, ImageError
from blogroto.imaging.decode import DEFAULT_MAX_PIXELS

CONTAINERS = {"mp4": ("libx264", {"crf": "20", "preset": "medium"}), "webm": ("libvpx-vp9", {"crf": "32", "b": "0"})}
MAX_FPS = 240.0
INSTALL_HINT = "videos are left as they are: install PyAV to stylize them (pip install 'blogroto[video]')"


AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")  # ISO media files that hold sound only


def sniff_container(head: bytes) -> str | None:
    """'mp4' (ISO base media: MP4, M4V, MOV), 'webm' (Matroska/WebM), or None (audio-only M4A too)."""
    if head[4:8] == b"ftyp":
        return None if head[8:12] in AUDIO_BRANDS else "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def output_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The stills' size rule (imaging.resize.long_side_size), each side then made even: yuv420p needs it."""
    from blogroto.imaging.resize import long_side_size

    w, h = long_side_size(width, height, max_size)
    return max(2, w // 2 * 2), max(2, h // 2 * 2)


def _video_stream(inp, max_seconds: float, label: str):
    """The container's video stream, refused (ImageError) when the video is too long or its frames too large."""
    import av

    if not inp.streams.video:
        raise ImageError("the file has no video stream", label)
    vin = inp.streams.video[0]
    # a claim the container may not make (a browser's WebM recording has none) or may lie about:
    # the decoded frames' own times are checked too (stylize_video)
    if inp.duration:
        seconds = float(inp.duration / av.time_base)
    elif vin.duration and vin.time_base:
        seconds = float(vin.duration * vin.time_base)
    else:
        seconds = 0.0
    if seconds > max_seconds:
        raise ImageError(f"video is {seconds:.0f} s long, over the limit of {max_seconds:g} s "
                         f"(algorotoscope.animation.max_video_seconds); left as it is", label)
    width, height = vin.codec_context.width, vin.codec_context.height
    if not 0 < width * height <= DEFAULT_MAX_PIXELS:
        raise ImageError(f"video frames of {width}x{height} cannot be stylized (at most "
                         f"{DEFAULT_MAX_PIXELS / 1e6:g} megapixels)", label)
    return vin


def stylize_video(src: Path, stylize_frame, smoothing: float, max_size: int, max_seconds: float,
                  label: str, progress=None) -> bytes:
    """`src` stylized, as the bytes of a file in the same container. `stylize_frame(uint8 HxWx3) ->
    uint8 HxWx3`. Raises ImageError naming `label` for an unreadable video or one longer than
    `max_seconds`. Encoded in memory (the MP4 muxer seeks back to write its index), so the caller
    writes the file atomically. `progress`: a tqdm bar (its total set from the stream), or None."""
    import io

    import av

    from blogroto.animation import FlowBlend

    with open(src, "rb") as handle:
        kind = sniff_container(handle.read(16))
    if kind is None:
        raise ImageError("not an MP4 or WebM video", label)
    codec, options = CONTAINERS[kind]
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ImageError(f"cannot read video: {exc}", label) from exc
    with inp:
        vin = _video_stream(inp, max_seconds, label)
        ain = inp.streams.audio[0] if inp.streams.audio else None
        w, h = output_size(vin.codec_context.width, vin.codec_context.height, max_size)
        if progress is not None and vin.frames:
            progress.total = int(vin.frames)  # a tqdm bar: its total, now that the stream is open
        # the frames decoded are what is counted (a claimed frame rate is capped: it may be a lie)
        most = int(max_seconds * min(float(vin.average_rate or 60), MAX_FPS) * 1.1) + 10
        done = 0
        blend = FlowBlend(smoothing)
        buffer = io.BytesIO()
        try:
            with av.open(buffer, "w", format=kind) as out:
                vout = out.add_stream(codec, rate=vin.average_rate or 25, options=options)
                vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
                # each frame keeps its own time: the encoder counts in the input's time base, not in
                # 1/frame rate (variable-rate video would collide there)
                vout.time_base = vout.codec_context.time_base = vin.time_base
                aout = out.add_stream_from_template(ain) if ain is not None else None
                for packet in inp.demux(*(s for s in (vin, ain) if s is not None)):
                    if packet.stream is ain:
                        if packet.dts is not None:  # the demuxer's flush packet carries none
                            packet.stream = aout
                            out.mux(packet)
                        continue
                    for frame in packet.decode():
                        done += 1
                        if done > most or (frame.time or 0) > max_seconds + 1:
                            raise ImageError(f"video runs past {max_seconds:g} s "
                                             f"(algorotoscope.animation.max_video_seconds); left as it is", label)
                        rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
                        styled = blend(rgb, stylize_frame(rgb))
                        new = av.VideoFrame.from_ndarray(styled, format="rgb24").reformat(format="yuv420p")
                        new.pts, new.time_base = frame.pts, frame.time_base
                        out.mux(vout.encode(new))
                        if progress is not None:
                            progress.update(1)
                out.mux(vout.encode(None))
        except (av.FFmpegError, ValueError) as exc:  # the input's frames, or the output's header and trailer
            raise ImageError(f"cannot read video (truncated or corrupt?) or write it back: {exc}", label) from exc
    if not buffer.getbuffer().nbytes:
        raise BlogrotoError(f"{label}: the stylized video was not written")
    return buffer.getvalue()
