"""Bytes a reader downloads for stylized images, responsive output against one file per image.

    python benchmarks/responsive_bytes.py --photos DIR [--filter starry-night] [--out benchmarks/results]

Every photo in --photos goes into one post three times: as the JPEG it is, as an RGB PNG and as a greyscale
PNG (the kind of input that grew most before: a greyscale PNG became an RGB PNG three times its size). The
site is built twice from scratch with the same filter: once with `responsive: false` (the baseline: one
stylized file per image, in the input's format) and once with the default preset. For each image, the
bytes a browser fetches at 1x are what it would pick from the srcset for the slot the default `sizes`
gives ("(max-width: 800px) 100vw, 800px") at two viewport widths, phone (390 px) and desktop (1280 px):
the smallest candidate at least as wide as the slot, else the widest; from the WebP source, as every
current browser takes it. Build times include stylizing, which both runs do alike.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_line, write_keeping_section  # noqa: E402

VIEWPORTS = {"phone 390 px": 390, "desktop 1280 px": 1280}
KINDS = ("JPEG", "RGB PNG", "grey PNG")


def make_site(root: Path, photos: list[Path], filter_name: str, responsive: bool) -> Path:
    from PIL import Image

    (root / "_posts").mkdir(parents=True)
    (root / "assets").mkdir()
    for i, photo in enumerate(photos):
        (root / "assets" / f"p{i}.jpg").write_bytes(photo.read_bytes())
        with Image.open(photo) as im:
            im.convert("RGB").save(root / "assets" / f"p{i}-rgb.png")
            im.convert("L").save(root / "assets" / f"p{i}-grey.png")
    (root / "_config.yml").write_text("title: bytes\nalgorotoscope:\n  catalog: false\n"
                                      + ("  responsive: true\n" if responsive else ""))
    for n, (kind, suffix) in enumerate(zip(KINDS, (".jpg", "-rgb.png", "-grey.png"))):
        # the baseline as before this change: a PNG stylized to PNG
        options = f"{{filter: {filter_name}, format: png}}" if suffix.endswith(".png") and not responsive else filter_name
        body = "\n\n".join(f"![{kind} {i}](/assets/p{i}{suffix})" for i in range(len(photos)))
        (root / "_posts" / f"2024-01-0{n + 1}-bytes.md").write_text(f"---\nalgorotoscope: {options}\n---\n{body}\n")
    return root


def build(root: Path) -> float:
    from blogroto.build import Builder, BuildOptions

    t = time.perf_counter()
    report = Builder(root, BuildOptions(progress=False)).build()
    assert report.ok, report.errors
    return time.perf_counter() - t


def slot(viewport: int) -> int:
    return min(viewport, 800)  # the default sizes: (max-width: 800px) 100vw, 800px


def fetched(srcset: str, width: int, images: Path) -> int:
    candidates = sorted((int(w[:-1]), url.rsplit("/", 1)[1]) for url, w in (c.split() for c in srcset.split(", ")))
    pick = next((name for w, name in candidates if w >= width), candidates[-1][1])
    return (images / pick).stat().st_size


def measure(base: Path, responsive: bool) -> dict:
    post = "".join(p.read_text() for p in (base / "_blogroto/site/_posts").iterdir())
    images = base / "_blogroto/site/assets/algorotoscope"
    rows = {}
    if responsive:
        for m in re.finditer(r'<source type="image/webp" srcset="([^"]+)"[^>]*><img src="[^"]+" alt="([^"]+)"', post):
            rows[m.group(2)] = {v: fetched(m.group(1), slot(w), images) for v, w in VIEWPORTS.items()}
    else:
        for m in re.finditer(r"!\[([^\]]+)\]\(/assets/algorotoscope/([^)]+)\)", post):
            size = (images / m.group(2)).stat().st_size
            rows[m.group(1)] = {v: size for v in VIEWPORTS}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--filter", default="starry-night")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))[: args.limit]
    results, seconds, sources = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for responsive in (False, True):
            root = make_site(Path(tmp) / ("on" if responsive else "off"), photos, args.filter, responsive)
            seconds[responsive] = build(root)
            results[responsive] = measure(root, responsive)
            sources = {f"{k} {i}": (root / "assets" / name).stat().st_size
                       for i in range(len(photos))
                       for k, name in zip(KINDS, (f"p{i}.jpg", f"p{i}-rgb.png", f"p{i}-grey.png"))}

    lines = ["# Responsive output: bytes a reader downloads", "",
             f"Machine: {machine_line()}. Generated by `benchmarks/responsive_bytes.py` with the built-in "
             f"`{args.filter}` filter on {len(photos)} photos ({', '.join(p.name for p in photos)}), each as JPEG, RGB PNG "
             "and greyscale PNG; stylized at the default max_size (1600, so each at its own size, long side <= 1024).",
             "", "Mean kB per image. Baseline: as before responsive output, one stylized file in the input's "
             "format (`responsive: false`, and `format: png` for the PNG inputs, which are JPEG now when "
             "opaque). Responsive: what a browser fetches at 1x from the default preset (WebP).", "",
             "| input | source | baseline | " + " | ".join(f"responsive, {v}" for v in VIEWPORTS)
             + " | " + " | ".join(f"responsive / baseline, {v}" for v in VIEWPORTS) + " |",
             "| --- " * (3 + 2 * len(VIEWPORTS)) + "|"]
    for kind in KINDS:
        keys = [k for k in sources if k.startswith(kind + " ")]

        def mean(values):
            return sum(values) / len(values) / 1000

        src = mean([sources[k] for k in keys])
        base = mean([results[False][k][next(iter(VIEWPORTS))] for k in keys])
        resp = {v: mean([results[True][k][v] for k in keys]) for v in VIEWPORTS}
        lines.append(f"| {kind} | {src:.0f} | {base:.0f} | " + " | ".join(f"{resp[v]:.0f}" for v in VIEWPORTS)
                     + " | " + " | ".join(f"{resp[v] / base:.2f}" for v in VIEWPORTS) + " |")
    lines += ["", f"Build from scratch (stylizing included): baseline {seconds[False]:.1f} s, responsive "
                  f"{seconds[True]:.1f} s ({seconds[True] / seconds[False]:.2f}x).", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    write_keeping_section(args.out / "responsive.md", "\n".join(lines), "## Reading")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
