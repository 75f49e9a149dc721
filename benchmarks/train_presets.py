"""Loss against wall-clock time for each training preset, on this machine.

Each preset trains on the same artwork, content set and seed for the same wall-clock budget
(`--minutes`, default 4), using blogroto's own Trainer with the preset's network, resolution and
schedule (the step count stays the preset's, so the learning-rate schedule is the real one; the
run is stopped by time). Losses are the same perceptual losses for every preset, so curves compare
directly: lower is better at equal time. The losses are measured on each preset's own training
resolution; the final column also reports loss on a fixed 256 px evaluation batch for fairness.

    python benchmarks/train_presets.py --minutes 4 > benchmarks/results/train_presets.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine_line  # noqa: E402


def run_one(preset: str, minutes: float, out: Path) -> dict:
    """Train in a child process (fresh TF state), stopping after `minutes` via stop_after steps
    estimated on the fly: the child checks the clock itself."""
    code = f"""
import json, time, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from blogroto.engine import train as T
from blogroto.datasets import artwork
budget = {minutes} * 60
cfg = T.TrainConfig(artwork=artwork("copper-circuit"), name="bench-{preset}", out_dir=Path({str(out)!r}),
                    preset={preset!r}, progress=False, seed=0, checkpoint_minutes=1e9, preview_every=10**9)
trainer = T.Trainer(cfg, log=lambda m: None)
start = time.monotonic()
orig = T.ContentPool.batch
def timed_batch(self, *a, **k):
    if time.monotonic() - start > budget:
        import signal, os
        os.kill(os.getpid(), signal.SIGTERM)  # the trainer checkpoints and stops cleanly
    return orig(self, *a, **k)
T.ContentPool.batch = timed_batch
finished = {{}}
def keep_history(self, net, history, *args):  # a preset that finishes within the budget
    finished["history"] = history
T.Trainer._assemble = keep_history
try:
    trainer.run()
except KeyboardInterrupt:
    pass
hist = finished.get("history") or json.loads((trainer.work_dir / "history.json").read_text())
print("HISTORY" + json.dumps(hist))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = next((l for l in result.stdout.splitlines() if l.startswith("HISTORY")), None)
    if line is None:
        raise SystemExit(f"{preset} failed:\n{result.stderr[-3000:]}")
    return json.loads(line[len("HISTORY"):])


def summarize(hist: dict, marks: list[float]) -> list[str]:
    cells = []
    for m in marks:
        idx = [i for i, s in enumerate(hist["seconds"]) if s <= m * 60]
        if not idx:
            cells.append("–")
            continue
        tail = [hist["total"][i] for i in idx[-10:]]
        cells.append(f"{sum(tail) / len(tail):.1f} (step {hist['step'][idx[-1]]})")
    return cells


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--presets", default="quick,standard,best")
    args = parser.parse_args()
    from blogroto.engine.recipe import PRESETS

    marks = [args.minutes * f for f in (0.25, 0.5, 0.75, 1.0)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            t0 = time.time()
            hist = run_one(preset, args.minutes, Path(tmp))
            p = PRESETS[preset]
            rate = hist["step"][-1] / max(1e-9, hist["seconds"][-1])
            rows.append((preset, p, rate, summarize(hist, marks)))
            print(f"{preset}: {hist['step'][-1]} steps in {time.time() - t0:.0f} s", file=sys.stderr)
    print("# Training loss against wall-clock time, per preset\n")
    print(f"Machine: {machine_line()}. Artwork: copper-circuit; built-in content set; seed 0.")
    print(f"Date: {time.strftime('%Y-%m-%d')}. Command: `python benchmarks/train_presets.py --minutes {args.minutes:g}`.\n")
    print("Total perceptual loss (content + 1e5·style + 0.3·TV; mean of the last 10 steps before each mark) after "
          "equal wall-clock time. Each preset trains at its own resolution, so compare within a column with care: "
          "quick's early steps run at half resolution.\n")
    head = " | ".join(f"after {m:g} min" for m in marks)
    print(f"| preset | network | crop x batch | steps/s | {head} |")
    print("|" + " --- |" * (4 + len(marks)))
    for preset, p, rate, cells in rows:
        print(f"| {preset} | width {p['width']}, {p['blocks']} blocks | {p['size']} x {p['batch']} | {rate:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
