"""Does a slim network keep the quality of the full one? Slim, distilled slim and full filters of one artwork, compared.

    python benchmarks/slim_vs_full.py                                   # print the tables
    python benchmarks/slim_vs_full.py --record                          # results/slim_vs_full.md + .jpg

The filters (defaults: the built-ins, all trained with blogroto's own `train`; their filter.yaml records how):
- slim: `styles/copper-circuit`, width 16 / 3 blocks, trained on the artwork (`--preset quick`);
- distilled: `styles/copper-circuit-distilled`, the same slim network trained to reproduce the full filter's
  output (`--teacher copper-circuit-full`, preset `distill`);
- full: `styles/copper-circuit-full`, width 32 / 5 blocks (`--preset standard`), ~2.7x slower to apply.

Two measures, in float32:
1. Agreement with the full filter: PSNR and SSIM (`tf.image.ssim`) of each slim filter's output against the full
   filter's, on photos none of them trained on (the preview photo, the sample site's coffee), at their own size
   and upscaled 2x and 3x (LANCZOS), i.e. at the larger scale of a 1600 px blog image. The full filter sets the
   look we want to keep, so this is the quality test for a distilled filter.
2. The perceptual losses artwork filters are trained on (`blogroto.engine.losses.perceptual_losses`: content,
   sliced-Wasserstein style, total variation and the colour term against the photo in the artwork's palette,
   default weights, the first direction set) at 512 px, for each style size the filters were trained at (the
   "brush size"; all three built-ins take the artwork at 1,024 px since recipe 4). Lower is
   better, but each filter wins at its own brush size, so this does not rank filters of different brush sizes.

With `--record` it also writes a side-by-side JPEG (photo, then each filter) of the held-out preview photo.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_line, write_keeping_section  # noqa: E402

STYLES = REPO / "styles"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slim", type=Path, default=STYLES / "copper-circuit")
    parser.add_argument("--distilled", type=Path, default=STYLES / "copper-circuit-distilled")
    parser.add_argument("--full", type=Path, default=STYLES / "copper-circuit-full")
    parser.add_argument("--artwork", default="copper-circuit", help="built-in artwork the filters were trained on")
    parser.add_argument("--size", type=int, default=512, help="long side for the perceptual losses")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()

    from PIL import Image

    from blogroto import datasets
    from blogroto.engine.content import load_style_image
    from blogroto.engine.losses import PaletteTransfer, StyleTarget, perceptual_losses
    from blogroto.engine.precision import psnr_db
    from blogroto.engine.recipe import DEFAULT_WEIGHTS
    from blogroto.engine.runtime import import_tensorflow
    from blogroto.engine.stylize import StyleOptions, Stylizer
    from blogroto.engine.vgg import LOSS_LAYERS, LossNetwork, locate_weights
    from blogroto.filters import load_filter
    from blogroto.imaging.decode import load_image
    from blogroto.imaging.resize import resize_long_side

    tf, _ = import_tensorflow()
    filters = {role: load_filter(path) for role, path in (("slim", args.slim), ("distilled", args.distilled), ("full", args.full))
               if path.is_dir()}
    if "full" not in filters:
        raise SystemExit(f"no full filter at {args.full}")
    students = [role for role in filters if role != "full"]
    stylizer = Stylizer(precision="float32")

    def stylize(rgb, role):
        return stylizer.stylize_array(rgb, filters[role], StyleOptions(max_size=0))

    def scaled(path, factor):
        img = load_image(path)
        h, w = img.rgb.shape[:2]
        pil = Image.fromarray((np.clip(img.rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
        if factor != 1:
            pil = pil.resize((w * factor, h * factor), Image.LANCZOS)
        return np.asarray(pil, np.float32) / 255.0

    # 1. agreement with the full filter on held-out photos
    held_out = [datasets.preview_photo(), REPO / "sample_site" / "assets" / "img" / "coffee.jpg"]
    agreement, sheet = [], None
    for path in held_out:
        for factor in (1, 2, 3):
            rgb = scaled(path, factor)
            outs = {role: stylize(rgb, role) for role in filters}
            cells = []
            for role in students:
                ssim = float(tf.image.ssim(tf.constant(outs[role]), tf.constant(outs["full"]), max_val=1.0))
                cells.append((psnr_db(outs[role], outs["full"]), ssim))
            agreement.append((path.name, f"{rgb.shape[1]}x{rgb.shape[0]}", cells))
            if sheet is None:
                sheet = np.concatenate([rgb] + [outs[role] for role in filters], axis=1)

    # 2. the training losses
    lossnet = LossNetwork(locate_weights(None, log=lambda m: None), LOSS_LAYERS)
    style_sizes = sorted({int(f.training.get("style_size") or 512) for f in filters.values()})
    art_images = {size: load_style_image(datasets.artwork(args.artwork), size) for size in style_sizes}
    targets = {size: StyleTarget(lossnet, art) for size, art in art_images.items()}
    # the colour term's reference, as training makes it: the photo in the artwork's palette
    palettes = {size: PaletteTransfer(art[0]) for size, art in art_images.items()}
    photos = [(datasets.preview_photo(), "no")] + [(p, "yes") for p in datasets.content_images()]
    losses = []
    for path, seen in photos:
        rgb = resize_long_side(load_image(path), args.size).rgb
        rgb = rgb[: rgb.shape[0] // 4 * 4, : rgb.shape[1] // 4 * 4]
        outs = {role: stylize(rgb, role) for role in filters}
        for size in style_sizes:
            cells = []
            reference = palettes[size]((rgb * 255 + 0.5).astype(np.uint8)).astype(np.float32)[None] / 255
            for role in filters:
                total, content, style, *_ = (float(v) for v in perceptual_losses(
                    lossnet, tf.constant(rgb[None]), tf.constant(outs[role][None]), targets[size], DEFAULT_WEIGHTS, 0,
                    tf.constant(reference)))
                cells.append((total, content, style * DEFAULT_WEIGHTS["style"]))
            losses.append((size, path.name, seen, cells))

    def training(role) -> str:
        flt = filters[role]
        t = flt.training
        teacher = f", distilled from `{t['teacher']['name']}`" if t.get("teacher") else ""
        return (f"{role}: `{flt.folder.name}`: width {flt.network.width}, {flt.network.blocks} blocks, preset {t.get('preset')}"
                f"{teacher}, {t.get('steps')} steps at {t.get('resolution')} px, {float(t.get('seconds', 0)) / 60:.1f} min, "
                f"{t.get('precision')}")

    lines = [
        "# Slim, distilled and full networks of one artwork: how close the slim ones come to the full one",
        "",
        f"Generated by `python benchmarks/slim_vs_full.py --record` on {time.strftime('%Y-%m-%d')}. Machine: {machine_line()}.",
        "",
        *[f"- {training(role)}" for role in filters],
        "",
        "## Agreement with the full filter (higher is closer)",
        "",
        "Photos none of the filters trained on, at their own size and upscaled with LANCZOS; float32; the whole image.",
        "",
        "| photo | size | " + " | ".join(f"{role} PSNR dB | {role} SSIM" for role in students) + " |",
        "| --- | --- | " + " | ".join("--- | ---" for _ in students) + " |",
    ]
    for name, size, cells in agreement:
        lines.append(f"| {name} | {size} | " + " | ".join(f"{p:.1f} | {s:.3f}" for p, s in cells) + " |")
    means = [(np.mean([c[i][0] for _, _, c in agreement]), np.mean([c[i][1] for _, _, c in agreement])) for i in range(len(students))]
    lines.append("| **mean** | | " + " | ".join(f"**{p:.1f}** | **{s:.3f}**" for p, s in means) + " |")
    lines += [
        "",
        f"## Training losses at {args.size} px (lower is better; total / content / weighted style)",
        "",
        f"Artwork `{args.artwork}` for the style targets at each style size the filters were trained at; loss weights "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_WEIGHTS.items()) + " (the training defaults).",
        "",
        "| style size | photo | seen in training | " + " | ".join(filters) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in filters) + " |",
    ]
    for size, name, seen, cells in losses:
        lines.append(f"| {size} px | {name} | {seen} | " + " | ".join(f"{t:.1f} / {c:.1f} / {s:.1f}" for t, c, s in cells) + " |")
    lines += ["", f"Side by side (held-out photo, then {', '.join(filters)}): [slim_vs_full.jpg](slim_vs_full.jpg)", ""]
    text = "\n".join(lines)
    print(text)
    if args.record:
        out = REPO / "benchmarks" / "results"
        write_keeping_section(out / "slim_vs_full.md", text, "## Reading")
        Image.fromarray((np.clip(sheet, 0, 1) * 255 + 0.5).astype(np.uint8)).save(out / "slim_vs_full.jpg", quality=85)


if __name__ == "__main__":
    main()
