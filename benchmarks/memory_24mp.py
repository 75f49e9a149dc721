"""Peak memory of stylizing a 24-megapixel photo, and the cost of tiling.

    python benchmarks/memory_24mp.py                  # slim (16/3) and full (32/5) random networks
    python benchmarks/memory_24mp.py --nets 16/3      # one network
    python benchmarks/memory_24mp.py --record         # also write benchmarks/results/memory_24mp.md

Requirement: a 24 MP photo stylizes in at most ~1.5 GB of peak memory. Each measurement runs in
a fresh process: decode the JPEG -> `Stylizer.stylize_file` (tiled, full size) -> encode the JPEG,
and reports that process's peak resident set size (`ru_maxrss`: everything it ever had resident,
TensorFlow's shared libraries included). A process that only imports TensorFlow and builds the
network is measured the same way, as the floor.

The overhead of the multi-pass tiled executor is timed on a photo small enough for the untiled
path: both paths warmed up (traced) first, then timed on the same photo in the same process.

The networks are random (untrained) with the shipped architecture's sizes: memory and time depend
on the sizes only. The photo is synthetic (gradients, waves and noise), 6000x4000, JPEG quality 92.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import load_average, machine_line  # noqa: E402

LIMIT_MB = 1536
# Not 90: random networks paint pixel-level noise, which at quality 90 (4:4:4) can exceed the
# one byte per pixel Pillow reserves for a progressive JPEG ("Suspension not allowed here").
JPEG_QUALITY = 85


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_photo(path: Path, width: int = 6000, height: int = 4000) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(24)
    rows = []
    for y0 in range(0, height, 500):  # in strips: the generator should not need gigabytes either
        yy, xx = np.mgrid[y0 : min(height, y0 + 500), 0:width].astype(np.float32)
        rgb = np.stack([xx / width, yy / height, 0.5 + 0.4 * np.sin(xx * 0.011 + yy * 0.004)], -1) * 220
        rgb += 30 * np.sin(xx * 0.05)[..., None] * (yy[..., None] > height / 2) + rng.normal(0, 10, rgb.shape)
        rows.append(np.clip(rgb, 0, 255).astype(np.uint8))
    Image.fromarray(np.concatenate(rows)).save(path, quality=92)


def make_filter(folder: Path, width: int, blocks: int) -> Path:
    from tests.conftest import make_filter as make

    return make(folder, f"random-{width}-{blocks}", width=width, blocks=blocks, seed=width + blocks)


def child(argv: list[str]) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    mode, precision, folder, *rest = argv
    folder = Path(folder)
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import load_filter

    flt = load_filter(folder)
    if mode == "floor":
        Stylizer(precision=precision).network(flt)
        print(json.dumps({"peak_mb": peak_mb()}))
    elif mode == "file":
        photo, out = Path(rest[0]), Path(rest[1])
        start = time.perf_counter()
        Stylizer(precision=precision).stylize_file(photo, out, flt, StyleOptions(max_size=0, quality=JPEG_QUALITY))
        print(json.dumps({"peak_mb": peak_mb(), "seconds": time.perf_counter() - start, "bytes": out.stat().st_size}))
    elif mode == "overhead":
        import numpy as np

        from blogroto.imaging.decode import load_image
        from blogroto.imaging.resize import resize_long_side

        rgb = resize_long_side(load_image(Path(rest[0])), int(rest[1])).rgb
        untiled, tiled = Stylizer(tile_pixels=10**9, precision=precision), Stylizer(tile_pixels=0, precision=precision)
        warm = {}
        for name, st in (("untiled", untiled), ("tiled", tiled)):  # trace the functions on a small crop first
            start = time.perf_counter()
            st.stylize_array(rgb[:64, :64], flt, StyleOptions())
            warm[name] = time.perf_counter() - start
        times, peaks = {}, {}
        for name, st in (("untiled", untiled), ("tiled", tiled)):
            start = time.perf_counter()
            times[name] = (st.stylize_array(rgb, flt, StyleOptions()), time.perf_counter() - start)
            peaks[name] = peak_mb()  # the untiled one first: its figure is the untiled path's peak
        diff = np.abs(times["untiled"][0] - times["tiled"][0])
        mse = float(np.mean(diff.astype(np.float64) ** 2))
        print(json.dumps({"size": list(rgb.shape[:2]), "untiled_s": times["untiled"][1], "tiled_s": times["tiled"][1],
                          "untiled_peak_mb": peaks["untiled"], "trace_s": warm,
                          "max_diff": float(diff.max()), "psnr": 10 * np.log10(1 / mse) if mse else float("inf")}))


def run_child(*args: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nets", default="16/3,32/5", help="width/blocks, comma separated")
    parser.add_argument("--precisions", default="float32,bfloat16", help="Stylizer precisions, comma separated")
    parser.add_argument("--overhead-size", type=int, default=1600, help="long side of the photo for the overhead timing")
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--note", default="", help="free text for the results file (e.g. concurrent jobs)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = tmp / "photo-24mp.jpg"
        make_photo(photo)
        for spec in args.nets.split(","):
            width, blocks = (int(v) for v in spec.split("/"))
            folder = make_filter(tmp / "filters", width, blocks)
            for precision in args.precisions.split(","):
                floor = run_child("floor", precision, str(folder))
                file = run_child("file", precision, str(folder), str(photo), str(tmp / "out.jpg"))
                over = run_child("overhead", precision, str(folder), str(photo), str(args.overhead_size))
                row = {"net": f"{width}/{blocks} {precision}", "floor": floor, "file": file, "overhead": over}
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.record:
        record(rows, f"{machine_line()}, load average {load_average()} at the start", args.note)


def record(rows: list[dict], machine: str, note: str) -> None:
    lines = [
        "# 24-megapixel memory benchmark",
        "",
        "Generated by `python benchmarks/memory_24mp.py --record`. Photo: synthetic 6000x4000 JPEG; networks:",
        "random weights with the given width/blocks. Each figure comes from a fresh process; peak = `ru_maxrss`",
        f"(resident set, TensorFlow's shared libraries included). Output: full size, JPEG quality {JPEG_QUALITY}.",
        "",
        f"Machine: {machine}.",
    ]
    if note:
        lines += ["", note]
    lines += [
        "",
        "| network (width/blocks), precision | floor: TF + network loaded | 24 MP decode -> stylize -> JPEG: peak | seconds | limit |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ok = "met" if r["file"]["peak_mb"] <= LIMIT_MB else "**exceeded**"
        lines.append(f"| {r['net']} | {r['floor']['peak_mb']:.0f} MB | {r['file']['peak_mb']:.0f} MB | {r['file']['seconds']:.0f} s | {ok} (<= {LIMIT_MB} MB) |")
    lines += [
        "",
        "Multi-pass overhead, same photo (downscaled) through both paths in one warm process:",
        "",
        "| network | photo | untiled | tiled | ratio | tiled vs untiled: max abs diff, PSNR | untiled path's peak | first call (tracing): untiled, tiled |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        o = r["overhead"]
        lines.append(f"| {r['net']} | {o['size'][1]}x{o['size'][0]} | {o['untiled_s']:.1f} s | {o['tiled_s']:.1f} s | "
                     f"{o['tiled_s'] / o['untiled_s']:.2f}x | {o['max_diff']:.1e}, {o['psnr']:.1f} dB | {o['untiled_peak_mb']:.0f} MB | "
                     f"{o['trace_s']['untiled']:.1f} s, {o['trace_s']['tiled']:.1f} s |")
    (REPO / "benchmarks/results/memory_24mp.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
