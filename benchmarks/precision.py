"""Quality (PSNR vs float32) and speed of reduced-precision inference for the trained shipped filters.

    python benchmarks/precision.py                    # every trained filter in styles/, 3 photos at 1024 px
    python benchmarks/precision.py --filters copper-circuit --size 512
    python benchmarks/precision.py --record           # write benchmarks/results/precision.md

Issue: "use bfloat16 mixed precision where the CPU supports it only if a trained filter's output
stays visually identical (measure PSNR against float32 and record it); on a GPU use it automatically
(float16 mixed precision there)".

For each precision (`Stylizer(precision=...)`: float32, bfloat16 = keras "mixed_bfloat16",
float16 = "mixed_float16"), a fresh process stylizes 3 real photos with every trained filter found
in `styles/` (filters whose filter.yaml records training steps > 0) through the public
`Stylizer.stylize_array` and saves the float outputs; the parent compares them with float32's:
PSNR on the float output in [0, 1], PSNR after 8-bit quantisation (what is written to disk), the
largest difference in 8-bit levels, and the share of pixels off by more than 2 levels. Speed: warm-up
once per filter (tracing), then the median time of the photos' calls.

Photos: astronaut.jpg, sample_site/assets/img/coffee.jpg and rocket.jpg (512x512, 600x400, 640x427
real photos), resized (LANCZOS, i.e. upscaled) so the long side is `--size` (default 1024).

The decision rule for `precision="auto"` on a CPU: bfloat16 only where the CPU has native bf16
(avx512_bf16 or amx_bf16 in /proc/cpuinfo) AND PSNR >= 40 dB vs float32 on every shipped filter
and photo; otherwise float32. Without native bf16, TensorFlow/oneDNN emulate bf16 (convert to and
from float32 around the kernels), so it is expected to be slower, not faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PHOTOS = [REPO / "blogroto" / "data" / "content" / "astronaut.jpg",
          REPO / "sample_site" / "assets" / "img" / "coffee.jpg",
          REPO / "sample_site" / "assets" / "img" / "rocket.jpg"]
PRECISIONS = ("float32", "bfloat16", "float16")
from benchmarks.common import cpu_facts, load_average  # noqa: E402
from blogroto.engine.precision import BF16_MIN_PSNR_DB as THRESHOLD_DB  # noqa: E402
from blogroto.engine.precision import cpu_supports_bf16, psnr_db  # noqa: E402


def trained_filters(names: list[str] | None) -> list[Path]:
    from blogroto.filters import load_filter

    out = []
    for folder in sorted((REPO / "styles").iterdir()):
        if not (folder / "filter.yaml").exists() or (names and folder.name not in names):
            continue
        try:
            flt = load_filter(folder)
        except Exception as exc:  # a filter still being written
            print(f"skipping {folder.name}: {exc}", file=sys.stderr)
            continue
        if (flt.training or {}).get("steps", 0) > 0:
            out.append(folder)
    return out


def recorded_bf16(folder: Path) -> float | None:
    """The agreement `precision="auto"` decides by: the filter's own record, not this benchmark's photos."""
    from blogroto.filters import load_filter

    return (load_filter(folder).meta.get("precision") or {}).get("bfloat16_psnr_db")


def prepare_photos(size: int, tmp: Path) -> list[str]:
    import numpy as np
    from PIL import Image

    paths = []
    for photo in PHOTOS:
        with Image.open(photo) as im:
            im = im.convert("RGB")
            scale = size / max(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        path = tmp / f"{photo.stem}-{size}.npy"
        np.save(path, np.asarray(im, np.float32) / 255.0)
        paths.append(str(path))
    return paths


def child(cfg: dict) -> dict:
    """One precision, every filter and photo, in this fresh process."""
    import numpy as np

    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import load_filter

    options = StyleOptions(max_size=0)
    out = {}
    st = Stylizer(precision=cfg["precision"])
    for folder in cfg["filters"]:
        flt = load_filter(Path(folder))
        start = time.perf_counter()
        st.network(flt)
        load_s = time.perf_counter() - start
        photos = [np.load(p) for p in cfg["photos"]]
        start = time.perf_counter()
        st.stylize_array(photos[0], flt, options)  # warm-up: traces the network
        warmup_s = time.perf_counter() - start
        times = []
        for path, rgb in zip(cfg["photos"], photos):
            start = time.perf_counter()
            y = st.stylize_array(rgb, flt, options)
            times.append(time.perf_counter() - start)
            np.save(Path(cfg["out"]) / f"{cfg['precision']}-{flt.slug}-{Path(path).stem}.npy", y)
        out[flt.slug] = {"times": times, "seconds": statistics.median(times), "warmup_s": warmup_s, "load_s": load_s,
                         "policy": st.policy(flt)}
    return out


def compare(a_path: Path, ref_path: Path) -> dict:
    import numpy as np

    from blogroto.imaging.pixels import to_uint8

    a, ref = np.load(a_path).astype(np.float64), np.load(ref_path).astype(np.float64)
    a8, r8 = to_uint8(a).astype(np.int16), to_uint8(ref).astype(np.int16)
    diff8 = np.abs(a8 - r8)
    return {"psnr": psnr_db(a, ref), "psnr_uint8": psnr_db(a8 / 255.0, r8 / 255.0),
            "max_levels": int(diff8.max()), "pct_over_2_levels": float(np.mean(diff8.max(axis=-1) > 2) * 100)}


def cpu_info() -> dict:
    facts = cpu_facts()
    relevant = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "f16c")
    return {"cpu": facts["cpu"], "cores": facts["cores"], "ram_gib": facts["ram_gib"],
            "flags": {f: f in facts["flags"] for f in relevant}, "native_bf16": cpu_supports_bf16(),
            "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="long side of the photos in px")
    parser.add_argument("--filters", default="", help="comma separated slugs (default: every trained filter in styles/)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/precision.md")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if precisions[0] != "float32":
        precisions = ["float32"] + [p for p in precisions if p != "float32"]
    filters = trained_filters(args.filters.split(",") if args.filters else None)
    if not filters:
        raise SystemExit("no trained filter found in styles/")
    res = {"cpu": cpu_info(), "load_before": load_average(),
           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "filters": [f.name for f in filters], "size": args.size,
           "recorded_bf16": {f.name: recorded_bf16(f) for f in filters},
           "photos": [p.name for p in PHOTOS], "speed": {}, "quality": {}}
    print(json.dumps(res["cpu"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        tmp = Path(tmp)
        photos = prepare_photos(args.size, tmp)
        for precision in precisions:
            cfg = {"precision": precision, "filters": [str(f) for f in filters], "photos": photos, "out": str(tmp)}
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True,
                                  env=env, cwd=REPO)
            lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
            if proc.returncode or not lines:
                raise SystemExit(f"{precision} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
            res["speed"][precision] = json.loads(lines[-1][len("RESULT "):])
            print(precision, json.dumps(res["speed"][precision]), flush=True)
            if precision == "float32":
                continue
            res["quality"][precision] = {}
            for f in filters:
                for photo in photos:
                    stem = Path(photo).stem
                    q = compare(tmp / f"{precision}-{f.name}-{stem}.npy", tmp / f"float32-{f.name}-{stem}.npy")
                    res["quality"][precision][f"{f.name}/{stem}"] = q
                    print(precision, f.name, stem, json.dumps(q), flush=True)
    res["load_after"] = load_average()
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if args.record:
        (REPO / "benchmarks" / "results" / "precision.md").write_text(render(res, args.note))
        print("wrote benchmarks/results/precision.md")


def render(res: dict, note: str) -> str:
    cpu = res["cpu"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["flags"].items())
    lines = ["# Reduced precision: quality vs float32 and speed on this CPU", ""]
    verdict = []
    for precision, q in res["quality"].items():
        worst = min(v["psnr"] for v in q.values())
        verdict.append(f"{precision}: worst PSNR {worst:.1f} dB over {len(q)} filter x photo pairs "
                       f"({'>=' if worst >= THRESHOLD_DB else '<'} {THRESHOLD_DB:.0f} dB)")
    lines += ["**" + "; ".join(verdict) + ".**", ""]
    lines += [f"Generated by `python benchmarks/precision.py --record` ({res['started']} to {res['finished']}).", "",
              f"Machine: {cpu['cpu']}, {cpu['cores']} cores, {cpu['ram_gib']} GiB RAM, Python {cpu['python']}. "
              f"CPU flags: {flags}. **Native bf16: {'yes' if cpu['native_bf16'] else 'no'}** "
              f"(avx512_bf16 / amx_bf16){'' if cpu['native_bf16'] else ': bf16 and fp16 are emulated here'}.",
              f"Load average before: {res['load_before']}; after: {res['load_after']}."]
    if note:
        lines += ["", f"Note: {note}"]
    lines += ["", f"Filters (trained, found in styles/ at run time): {', '.join(res['filters'])}. Photos: "
              f"{', '.join(res['photos'])} (real photos, 400-640 px, LANCZOS-resized to {res['size']} px long side). "
              "`Stylizer(precision=P).stylize_array` (untiled at this size), outputs compared with float32's.", "",
              "## Quality vs float32", "",
              "| precision | filter / photo | PSNR dB (float) | PSNR dB (8-bit output) | max diff (8-bit levels) | pixels > 2 levels off |",
              "| --- | --- | --- | --- | --- | --- |"]
    for precision, q in res["quality"].items():
        for key, v in q.items():
            lines.append(f"| {precision} | {key} | {v['psnr']:.1f} | {v['psnr_uint8']:.1f} | {v['max_levels']} | {v['pct_over_2_levels']:.2f} % |")
    lines += ["", f"## Speed at {res['size']} px on this CPU", "",
              "Median of the 3 photos' calls after one warm-up call per filter; fresh process per precision.", "",
              "| filter | " + " | ".join(f"{p} s" for p in res["speed"]) + " | " +
              " | ".join(f"{p} / float32" for p in res["speed"] if p != "float32") + " |",
              "| --- " * (1 + 2 * len(res["speed"]) - 1) + "|"]
    for f in res["filters"]:
        base = res["speed"]["float32"][f]["seconds"]
        cells = [f] + [f"{res['speed'][p][f]['seconds']:.2f}" for p in res["speed"]]
        cells += [f"{res['speed'][p][f]['seconds'] / base:.2f}x" for p in res["speed"] if p != "float32"]
        lines.append("| " + " | ".join(cells) + " |")
    recorded = res.get("recorded_bf16", {})
    bf16_ok = [f for f, p in recorded.items() if p is not None and p >= THRESHOLD_DB] if cpu["native_bf16"] else []
    float32 = [f for f in recorded if f not in bf16_ok]
    decision = (" => auto uses **bfloat16** for " + (", ".join(bf16_ok) or "none")
                + (f" and **float32** for {', '.join(float32)}" if float32 else "") + " on this machine.")
    bf = res["quality"].get("bfloat16")
    per_filter = {f: min(v["psnr"] for k, v in (bf or {}).items() if k.startswith(f + "/")) for f in res["filters"]} if bf else {}
    lines += ["", "## Decision rule for `precision=\"auto\"`", "",
              f"- CPU: bfloat16 only if the CPU has native bf16 (avx512_bf16 or amx_bf16) **and** the filter's recorded "
              f"bf16 PSNR vs float32 (`precision.bfloat16_psnr_db` in its filter.yaml, measured by `blogroto train` on the "
              f"built-in photos at 512 px) is >= {THRESHOLD_DB:.0f} dB; otherwise float32 (`blogroto.engine.precision`).",
              f"- Here: native bf16 {'yes' if cpu['native_bf16'] else 'no'}. Worst PSNR above per filter (these photos): "
              + ", ".join(f"{f} {p:.1f} dB" for f, p in per_filter.items()) + ". Recorded in each filter.yaml (what "
              "`auto` decides by; its calibration photos include a white-backdrop one where most disagree most): "
              + ", ".join(f"{f} {p if p is None else f'{p:.1f} dB'}" for f, p in recorded.items())
              + decision,
              "- GPU: float16 mixed precision automatically (the issue's rule). The float16 rows above were computed on this "
              "CPU (emulated); they indicate the rounding error of float16 activations for these networks, not GPU speed."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        out = child(json.loads(sys.argv[2]))
        print("RESULT " + json.dumps(out))
    else:
        main()
