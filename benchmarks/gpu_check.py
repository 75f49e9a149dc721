"""The GPU check: train the `standard` preset on a shipped artwork and apply the filter at 24 MP, on PyTorch
or JAX, and record time, peak GPU memory and the filter's losses. Run through benchmarks/gpu_check.sh, which
prepares what a machine without network access needs (docs/backends.md).

    python benchmarks/gpu_check.py --backend torch --vgg-weights VGG.npz [--record]
    python benchmarks/gpu_check.py --backend torch --vgg-weights VGG.npz --smoke    # seconds, on any machine

Goals (issue 15): `standard` (full network, 4,000 steps) in <= 5 minutes on one H100 or H200; applying at 24 MP in
<= 1 s after warm-up. `--smoke` runs 20 steps of a tiny network and a 1 MP apply: it proves the script, not
the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ARTWORK = "starry-night"  # a shipped filter's artwork (public domain)


def card() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
        return done.stdout.strip() or "nvidia-smi printed nothing"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no nvidia-smi ({exc.__class__.__name__})"


def reset_peak_memory(backend: str) -> None:
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(backend: str) -> float | None:
    """Peak GPU memory the framework allocated (torch: since the last reset; JAX: of the process)."""
    if backend == "torch":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    import jax

    stats = [d.memory_stats() or {} for d in jax.devices() if d.platform == "gpu"]
    peaks = [s.get("peak_bytes_in_use") for s in stats if s.get("peak_bytes_in_use")]
    return max(peaks) / 2**20 if peaks else None


def photo_24mp(smoke: bool) -> np.ndarray:
    from PIL import Image

    w, h = (1200, 800) if smoke else (6000, 4000)
    img = Image.open(REPO / "sample_site" / "assets" / "img" / "coffee.jpg").convert("RGB")
    return np.asarray(img.resize((w, h), Image.LANCZOS), np.float32) / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("torch", "jax", "tensorflow"), required=True)
    parser.add_argument("--vgg-weights", required=True)
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/gpu.md")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend

    from blogroto.engine.recipe import TrainConfig
    from blogroto.engine.runtime import describe
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.engine.train import train

    engine = describe()
    print(f"engine: {engine}; card: {card()}", flush=True)
    report = {"engine": engine, "card": card(), "preset": args.preset, "smoke": args.smoke}
    with tempfile.TemporaryDirectory() as tmp:
        extra = dict(steps=20, width=8, blocks=1, size=64, batch=2, style_size=128) if args.smoke else {}
        config = TrainConfig(artwork=REPO / "styles" / ARTWORK / "artwork.jpg", name="gpu-check", out_dir=Path(tmp),
                             source={"title": f"{ARTWORK} (gpu check)"}, preset=args.preset,
                             vgg_weights=Path(args.vgg_weights), progress=False, **extra)
        reset_peak_memory(args.backend)
        t = time.perf_counter()
        flt = train(config, log=lambda *a: print(*a, flush=True))
        report["train_s"] = time.perf_counter() - t
        report["train_peak_mb"] = peak_memory_mb(args.backend)
        report["training"] = {k: flt.training.get(k) for k in ("steps", "seconds", "device", "backend", "precision",
                                                                 "final_losses", "resolution", "batch_size")}
        print(f"trained {flt.training['steps']} steps in {report['train_s']:.1f} s "
              f"(peak {report['train_peak_mb']} MB)", flush=True)

        photo = photo_24mp(args.smoke)
        stylizer = Stylizer()  # auto: float16 on a GPU, tiles above 2.6 MP
        reset_peak_memory(args.backend)
        t = time.perf_counter()
        stylizer.stylize_array(photo, flt, StyleOptions(max_size=0))
        report["apply_warm_up_s"] = time.perf_counter() - t
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            stylizer.stylize_array(photo, flt, StyleOptions(max_size=0))
            runs.append(time.perf_counter() - t)
        report.update(apply_pixels=f"{photo.shape[1]}x{photo.shape[0]}", apply_runs_s=runs,
                      apply_s=statistics.median(runs), apply_peak_mb=peak_memory_mb(args.backend),
                      apply_policy=stylizer.policy(flt))
        print(f"applied at {report['apply_pixels']}: {report['apply_s']:.2f} s (warm-up {report['apply_warm_up_s']:.1f} s, "
              f"peak {report['apply_peak_mb']} MB)", flush=True)

    text = markdown(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.record:
        (REPO / "benchmarks" / "results" / "gpu.md").write_text(text)


def markdown(r: dict) -> str:
    t = r["training"]
    goal = "" if r["smoke"] else {"standard": "goal <= 300 s", "best": "goal <= 1800 s"}.get(r["preset"], "")
    goal_train = f" ({goal})" if goal else ""
    goal_apply = "" if r["smoke"] else " (goal <= 1 s at 24 MP)"
    return "\n".join([
        f"# GPU check ({'smoke run, not the goals' if r['smoke'] else r['preset'] + ' preset'})",
        "",
        f"Generated by `benchmarks/gpu_check.sh` ({time.strftime('%Y-%m-%d %H:%M:%S')}).",
        "",
        f"- Card: {r['card']}",
        f"- Engine: {r['engine']}",
        f"- Train `{r['preset']}` on {ARTWORK}: **{r['train_s']:.1f} s**{goal_train}; {t['steps']} steps at "
        f"{t['resolution']} px x {t['batch_size']}, precision {t['precision']}; peak GPU memory "
        f"{_mb(r['train_peak_mb'])}",
        f"- Final losses: {json.dumps(t['final_losses'])}",
        f"- Apply at {r['apply_pixels']} (policy {r['apply_policy']}): **{r['apply_s']:.2f} s** median of "
        f"{', '.join(f'{x:.2f}' for x in r['apply_runs_s'])}{goal_apply}; warm-up "
        f"{r['apply_warm_up_s']:.1f} s; peak GPU memory {_mb(r['apply_peak_mb'])}",
        "",
    ])


def _mb(value) -> str:
    return "n/a (no GPU)" if value is None else f"{value:.0f} MB"


if __name__ == "__main__":
    main()
