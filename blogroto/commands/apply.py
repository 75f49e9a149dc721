"""`blogroto apply PHOTO... --filter NAME -o OUT`: stylize photos directly."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from blogroto.engine.precision import PRECISIONS
from blogroto.engine.stylize import DEFAULT_MAX_SIZE, FORMATS
from blogroto.ui import verbosity_options


@click.command("apply")
@click.argument("photos", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--filter", "-f", "filter_name", required=True, help="Filter name (or a path to a filter folder).")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Output file (one photo) or folder (several). Default: PHOTO-FILTER.EXT beside... in the current folder.")
@click.option("--filters-dir", multiple=True, type=click.Path(file_okay=False, path_type=Path), help="Extra folders to look for filters in, first (then the site's _filters/ when run inside a site, your filter library, the built-ins).")
@click.option("--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="0 = the photo, 1 = fully stylized.")
@click.option("--keep-colors", "--keep-colours", "keep_colors", is_flag=True, help="Keep the photo's colours; take only texture and light from the filter.")
@click.option("--max-size", type=click.IntRange(0), default=DEFAULT_MAX_SIZE, show_default=True, help="Long side of the output in px; 0 = full size.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: the input's).")
@click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, help="auto: float16 on a GPU; bfloat16 on CPUs with native bf16 when the filter's recorded bf16 output is visually identical; else float32.")
@verbosity_options
def command(photos, filter_name, output, filters_dir, strength, keep_colors, max_size, fmt, quality, precision,
            quiet, verbose):
    """Apply a filter to one or more PHOTOS.

    The filter is a folder, or a name looked up in --filters-dir, the _filters/ of the site you
    are in, your filter library (where `blogroto train` writes), then the built-ins."""
    from tqdm import tqdm

    from blogroto import ui
    from blogroto.engine.stylize import StyleOptions, Stylizer, output_format
    from blogroto.errors import BlogrotoError
    from blogroto.filters import load_filter
    from blogroto.imaging.encode import EXTENSIONS
    from blogroto.locate import filter_library

    ui.check_verbosity(quiet, verbose)
    if Path(filter_name).is_dir():
        flt = load_filter(filter_name)
    else:
        flt = filter_library(filters_dir, warn=None if quiet else ui.err).get(filter_name)
    if verbose:
        ui.err(f"note: filter {flt.slug} from {flt.folder}")
    options = StyleOptions(strength=strength, keep_colors=keep_colors, max_size=max_size, format=fmt, quality=quality)
    if len(photos) > 1 and output is not None and output.suffix:
        raise click.UsageError("with several photos, --output must be a folder")
    stylizer = Stylizer(precision=precision)
    failures = 0
    # With a bar on screen every line goes through tqdm.write, which prints above the bar.
    bar = tqdm(photos, desc=f"applying {flt.slug}", unit="image", disable=len(photos) < 2 or quiet)
    for photo in bar:
        try:
            src_format = photo.suffix.lstrip(".")
            ext = EXTENSIONS[output_format(src_format, options)]
            if output is None:
                dst = Path(f"{photo.stem}-{flt.slug}{ext}")
            elif len(photos) == 1 and output.suffix:
                dst = output
            else:
                dst = output / f"{photo.stem}-{flt.slug}{ext}"
            if dst.resolve() == photo.resolve():
                raise BlogrotoError("refusing to overwrite the input photo", photo)
            stylizer.stylize_file(photo, dst, flt, options)
            if not quiet:
                tqdm.write(f"{photo} -> {dst}")
        except BlogrotoError as exc:
            failures += 1
            tqdm.write(ui.styled(f"error: {exc}", sys.stderr), file=sys.stderr)
    if failures:
        raise SystemExit(1)
