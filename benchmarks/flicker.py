"""Flicker of stylized animations: frames stylized independently vs blogroto's flow blend.

    python benchmarks/flicker.py --photos DIR --filters starry-night hokusai-fine-wind \
        --out benchmarks/results/flicker

Clips are generated from photos (none of them trained on) by a moving camera: each frame samples
the photo through an affine transform that pans, zooms and turns a little, so the true motion
between frames is known exactly, independent of the optical flow the method estimates. Metric,
per clip: the warping error (Lai et al. 2018), the mean absolute difference (0-255) between
stylized frame t and stylized frame t-1 carried to frame t by the true motion, over pixels that
were inside frame t-1. Time: seconds per frame for stylizing alone and for stylizing plus the
flow blend, measured in the same run: each kind run --repeats times, alternately, the fastest counted
(a 24-frame clip is ~1.5 s of work, and one run's timing moved by up to 40 %). A sheet shows frames
of one clip side by side with the warping-error map under each (brighter = more flicker).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_line, write_keeping_section  # noqa: E402


def camera(t: int, frames: int, w: int, h: int, photo_wh: tuple[int, int]) -> np.ndarray:
    """3x3 map from frame pixels to photo pixels at time t: a slow pan, zoom-in and turn."""
    pw, ph = photo_wh
    s = t / max(1, frames - 1)
    scale = min(pw / w, ph / h) * (0.8 - 0.15 * s)  # the frame covers 80 % -> 65 % of the photo
    angle = np.deg2rad(3.0 * s)
    cx, cy = pw * (0.45 + 0.1 * s), ph * (0.5 + 0.05 * np.sin(np.pi * s))
    c, si = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -si, cx - c * w / 2 + si * h / 2], [si, c, cy - si * w / 2 - c * h / 2], [0, 0, 1]])


def render_clip(photo: Image.Image, frames: int, w: int, h: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    clip, maps = [], []
    for t in range(frames):
        m = camera(t, frames, w, h, photo.size)
        clip.append(np.asarray(photo.transform((w, h), Image.AFFINE, tuple(m[:2].ravel()), Image.BICUBIC)))
        maps.append(m)
    return clip, maps


def true_backward(maps: list[np.ndarray], t: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of frame t was in frame t-1 (a cv2.remap map), and whether it was inside."""
    m = np.linalg.inv(maps[t - 1]) @ maps[t]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return np.dstack([x, y]).astype(np.float32), inside


def warping_errors(outs: list[np.ndarray], maps, w: int, h: int) -> tuple[float, np.ndarray]:
    import cv2

    errors, last_map = [], None
    for t in range(1, len(outs)):
        mapping, inside = true_backward(maps, t, w, h)
        carried = cv2.remap(outs[t - 1], mapping, None, cv2.INTER_LINEAR)
        diff = np.abs(outs[t].astype(np.float32) - carried.astype(np.float32)).mean(axis=2)
        errors.append(float(diff[inside].mean()))
        last_map = np.where(inside, diff, 0)
    return float(np.mean(errors)), last_map


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--filters", nargs="+", required=True, help="filter names or folders")
    parser.add_argument("--clips", type=int, default=3, help="photos to make clips from")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each kind per clip (the fastest counts)")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--smoothing", type=float, default=0.6)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "flicker")
    args = parser.parse_args()
    w, h = map(int, args.size.split("x"))

    from blogroto.animation import FlowBlend
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import resolve_filter

    ours = Stylizer()
    options = StyleOptions(max_size=0)
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.clips]
    rows, sheet_rows = [], []
    for name in args.filters:
        flt = resolve_filter(name, [])
        ours.stylize_array(np.zeros((h, w, 3), np.uint8), flt, options, out=np.empty((h, w, 3), np.uint8))  # warm-up
        for photo_path in photos:
            clip, maps = render_clip(Image.open(photo_path).convert("RGB"), args.frames, w, h)
            t_plain, t_blend = float("inf"), float("inf")
            for _ in range(args.repeats):  # alternated, the fastest of each kept: a clip is ~1.5 s of work
                start = time.perf_counter()
                independent = [ours.stylize_array(f, flt, options, out=np.empty(f.shape, np.uint8)) for f in clip]
                t_plain = min(t_plain, (time.perf_counter() - start) / len(clip))
                blend = FlowBlend(args.smoothing)
                start = time.perf_counter()
                blended = [blend(f, ours.stylize_array(f, flt, options, out=np.empty(f.shape, np.uint8))) for f in clip]
                t_blend = min(t_blend, (time.perf_counter() - start) / len(clip))
            e_plain, map_plain = warping_errors(independent, maps, w, h)
            e_blend, map_blend = warping_errors(blended, maps, w, h)
            rows.append({"filter": flt.slug, "photo": photo_path.name, "frames": len(clip), "size": f"{w}x{h}",
                         "warp_error_independent": e_plain, "warp_error_blend": e_blend,
                         "reduction": 1 - e_blend / e_plain, "s_per_frame_independent": t_plain,
                         "s_per_frame_blend": t_blend, "time_ratio": t_blend / t_plain})
            print(json.dumps(rows[-1]), flush=True)
            if photo_path == photos[0]:
                sheet_rows.append((flt.slug, clip, independent, blended, map_plain, map_blend))

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flicker.json").write_text(json.dumps({"machine": machine_line(), "rows": rows}, indent=1))
    write_sheets(args.out, sheet_rows, w, h)
    write_table(args.out / "flicker.md", rows, args)


def write_sheets(out: Path, sheet_rows, w: int, h: int) -> None:
    picks = [0, 1, 2, 3]
    cell_w, cell_h = 320, round(320 * h / w)
    for slug, clip, independent, blended, map_plain, map_blend in sheet_rows:
        labels = ["photo frames", "each frame alone", "flow blend (blogroto)"]
        sheet = Image.new("RGB", (cell_w * (len(picks) + 1), (cell_h + 16) * 3), "white")
        draw = ImageDraw.Draw(sheet)
        for r, frames in enumerate((clip, independent, blended)):
            y = r * (cell_h + 16)
            draw.text((4, y + 2), labels[r], fill="black")
            for c, i in enumerate(picks):
                sheet.paste(Image.fromarray(frames[i]).resize((cell_w, cell_h), Image.LANCZOS), (c * cell_w, y + 16))
            if r:
                err = map_plain if r == 1 else map_blend
                heat = Image.fromarray(np.clip(err * 4, 0, 255).astype(np.uint8)).resize((cell_w, cell_h))
                sheet.paste(heat.convert("RGB"), (len(picks) * cell_w, y + 16))
                draw.text((len(picks) * cell_w + 4, y + 2), "warping error x4, last frame", fill="black")
        sheet.save(out / f"sheet-{slug}.jpg", quality=88)


def write_table(path: Path, rows: list[dict], args) -> None:
    lines = ["# Flicker: frames stylized independently vs the flow blend", "",
             f"Machine: {machine_line()}. Clips: {args.frames} frames of {args.size} generated from "
             f"{args.clips} photos by a moving camera (true motion known); smoothing {args.smoothing}; "
             f"times: the fastest of {args.repeats} alternated runs.",
             "Generated by `benchmarks/flicker.py` (method in its docstring); sheets `sheet-*.jpg` beside this file.", "",
             "| filter | photo | warping error, independent | warping error, flow blend | reduction | s/frame independent | s/frame blend | time ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['filter']} | {r['photo']} | {r['warp_error_independent']:.2f} | {r['warp_error_blend']:.2f} | "
                     f"{100 * r['reduction']:.0f} % | {r['s_per_frame_independent']:.3f} | {r['s_per_frame_blend']:.3f} | "
                     f"{r['time_ratio']:.2f} |")
    red = np.mean([r["reduction"] for r in rows])
    ratio = np.mean([r["time_ratio"] for r in rows])
    lines += ["", f"Mean reduction of the warping error: {100 * red:.0f} % (goal: at least 50 %); "
                  f"mean time ratio: {ratio:.2f} (goal: at most 1.30).", ""]
    write_keeping_section(path, "\n".join(lines), "## Reading")


if __name__ == "__main__":
    main()
