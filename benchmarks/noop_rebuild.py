"""No-op rebuild benchmark: 1,000 posts with 2,000 images, built once, then rebuilt unchanged.

    python benchmarks/noop_rebuild.py                 # generate, build, time 5 no-op rebuilds
    python benchmarks/noop_rebuild.py --posts 100     # smaller
    python benchmarks/noop_rebuild.py --record        # also write benchmarks/results/noop_rebuild.md

Requirement: an unchanged site rebuilds in <= 1 s and never imports TensorFlow. Each timed rebuild
runs in a fresh process (`blogroto build SITE -q`), so interpreter start-up and imports count;
the in-process time of `Builder.build()` is measured separately in another fresh process that
also checks `'tensorflow' not in sys.modules` and that nothing was written.

The filter is a real filter folder with a really tiny random network (width 4, one residual
block) so that the first, stylizing build takes a minute or two rather than hours; the images
are 24x24 PNGs with distinct random pixels so every one is a separate stylization and cache entry.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILTER = "bench-tiny"
sys.path.insert(0, str(REPO))

from benchmarks.common import load_average, machine_line, write_keeping_section  # noqa: E402


def png_bytes(rng: random.Random, size: int = 24) -> bytes:
    """A small RGB PNG with random pixels (no Pillow needed to write it)."""
    raw = b"".join(b"\x00" + bytes(rng.getrandbits(8) for _ in range(size * 3)) for _ in range(size))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_tiny_filter(folder: Path) -> None:
    """A valid filter folder with a width-4, 1-block network (imports TensorFlow: setup only)."""
    from blogroto.engine.network import TransformNet, save_weights
    from blogroto.filters import write_metadata

    folder.mkdir(parents=True, exist_ok=True)
    net = TransformNet(width=4, blocks=1).ensure_built()
    save_weights(net, folder / "weights.npz")
    write_metadata(folder, {
        "format": 1, "name": FILTER, "display_name": "Bench Tiny",
        "description": "A random, untrained width-4 network for benchmarks.",
        "source": {"title": "Random weights", "creator": "blogroto benchmarks", "year": 2026,
                   "licence": "CC0-1.0", "credit": "Untrained network; no artwork."},
        "network": {"width": 4, "blocks": 1},
    })


def generate(site: Path, posts: int, images_per_post: int) -> None:
    rng = random.Random(1234)
    (site / "_posts").mkdir(parents=True)
    (site / "_layouts").mkdir()
    (site / "assets/img").mkdir(parents=True)
    (site / "_config.yml").write_text("title: Bench\nbaseurl: /bench\nalgorotoscope:\n  max_size: 64\n")
    (site / "_layouts/post.html").write_text("<html><body>{{ content }}</body></html>\n")
    (site / "index.html").write_text("---\n---\n{% for p in site.posts %}<a href='{{ p.url }}'>{{ p.title }}</a>{% endfor %}\n")
    for i in range(posts):
        lines = []
        for j in range(images_per_post):
            name = f"p{i:04d}-{j}.png"
            (site / "assets/img" / name).write_bytes(png_bytes(rng))
            lines.append(f"![Picture {j} of post {i}]({{{{ site.baseurl }}}}/assets/img/{name})")
        day = 1 + i % 28
        (site / "_posts" / f"2024-01-{day:02d}-post-{i:04d}.md").write_text(
            f"---\ntitle: Post {i}\nlayout: post\nalgorotoscope: {FILTER}\n---\n\nSome words about post {i}.\n\n"
            + "\n\n".join(lines) + "\n")
    make_tiny_filter(site / "_filters" / FILTER)


def cli_build(site: Path, *extra: str, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "blogroto", "build", str(site), "-q", *extra],
                          capture_output=True, text=True, cwd=REPO, env=env)
    return time.perf_counter() - started, proc


def interpreter_start(runs: int) -> list[float]:
    """Wall time of `python -c pass`: the floor no command can go under on this machine."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return times


PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from blogroto.build import Builder
report = Builder(sys.argv[1]).build()
t1 = time.perf_counter()
print(json.dumps({"build_seconds": t1 - t0, "tensorflow_imported": "tensorflow" in sys.modules,
                  "pil_imported": "PIL" in sys.modules, "jinja2_imported": "jinja2" in sys.modules,
                  "posts": report.posts, "written": len(report.written), "removed": len(report.removed),
                  "stylized": report.images_stylized, "errors": report.errors[:3]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--images-per-post", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to generate the site (default: a temporary folder)")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/noop_rebuild.md")
    args = parser.parse_args()

    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="blogroto-bench-")
        args.dir = Path(tmp.name)
    site = args.dir / "site"
    if not (site / "_posts").is_dir():
        print(f"generating {args.posts} posts x {args.images_per_post} images in {site} ...", flush=True)
        generate(site, args.posts, args.images_per_post)

    first, proc = cli_build(site)
    print(f"first build: {first:.1f}s (exit {proc.returncode})", flush=True)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        return 1

    cli_times = []
    for _ in range(args.runs):
        seconds, proc = cli_build(site)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 1
        cli_times.append(seconds)
    # With PYTHONDONTWRITEBYTECODE set (as in some CI/dev shells) every run compiles blogroto's
    # sources again; an installed package has its .pyc files. Measure both.
    pyc_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cli_build(site, env=pyc_env)  # writes the bytecode cache
    pyc_times = [cli_build(site, env=pyc_env)[0] for _ in range(args.runs)]
    floor = interpreter_start(args.runs)
    probes = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", PROBE, str(site)], capture_output=True, text=True, cwd=REPO)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        probes.append(json.loads(out.stdout.strip().splitlines()[-1]))
    build_times = [p["build_seconds"] for p in probes]
    last = probes[-1]
    ok = (statistics.median(cli_times) <= 1.0 and max(build_times) <= 1.0
          and not any(p["tensorflow_imported"] for p in probes)
          and all(p["written"] == 0 and p["removed"] == 0 and p["stylized"] == 0 for p in probes))
    images = args.posts * args.images_per_post
    lines = [
        "# No-op rebuild benchmark",
        "",
        f"Site: {args.posts} posts, {images} images (24x24 PNG, distinct), filter `{FILTER}` "
        f"(width 4, 1 block). Generated by `python benchmarks/noop_rebuild.py`.",
        "",
        f"Machine: {machine_line()}, {platform.system()} {platform.release()}. Shared with other jobs while measured (load average {load_average()}); "
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}.",
        "",
        "| measurement | value |",
        "| --- | --- |",
        f"| first build (stylizes {images} images, CLI process) | {first:.1f} s |",
        f"| no-op rebuild, `blogroto build SITE -q` process wall time, {args.runs} runs | "
        f"median {statistics.median(cli_times):.3f} s, max {max(cli_times):.3f} s |",
        f"| same, with bytecode cached (PYTHONDONTWRITEBYTECODE unset) | "
        f"median {statistics.median(pyc_times):.3f} s, max {max(pyc_times):.3f} s |",
        f"| floor: `python -c pass` wall time on this machine | median {statistics.median(floor):.3f} s |",
        f"| no-op rebuild, `Builder.build()` in-process, {args.runs} fresh processes | "
        f"median {statistics.median(build_times):.3f} s, max {max(build_times):.3f} s |",
        f"| TensorFlow imported during no-op rebuild | {any(p['tensorflow_imported'] for p in probes)} |",
        f"| Pillow / Jinja2 imported during no-op rebuild | {last['pil_imported']} / {last['jinja2_imported']} |",
        f"| files written / removed / images stylized by the no-op rebuild | "
        f"{last['written']} / {last['removed']} / {last['stylized']} |",
        f"| posts reported | {last['posts']} |",
        "",
        f"Requirement (median CLI no-op <= 1 s, in-process build <= 1 s, no TensorFlow): "
        f"{'met' if ok else 'NOT met'}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        out = REPO / "benchmarks/results/noop_rebuild.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_keeping_section(out, text, "## Reading")
        print(f"recorded in {out}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
