"""`blogroto catalog`: a contact sheet of every available filter applied to one photo."""

from __future__ import annotations

from pathlib import Path

import click

from blogroto.ui import verbosity_options


@click.command("catalog")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The photo to apply every filter to (default: blogroto's built-in preview photo).")
@click.option("--filters-dir", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Extra filter folders, searched first (then the site's _filters/ when run inside a site, "
                   "your filter library, the built-ins; repeatable).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("filters-contact-sheet.png"),
              show_default=True, help="The PNG to write.")
@click.option("--size", type=click.IntRange(64, 2048), default=320, show_default=True,
              help="Size of each picture on the sheet, in px.")
@click.option("--columns", type=click.IntRange(1, 16), default=None, help="Pictures per row (default: up to 4).")
@verbosity_options
def command(photo, filters_dir, output, size, columns, quiet, verbose):
    """Render one PNG showing PHOTO through every available filter, each labelled with the filter's
    name and the artwork it learned from: for choosing a filter."""
    from blogroto import ui
    from blogroto.datasets import preview_photo
    from blogroto.errors import BlogrotoError, FilterError
    from blogroto.locate import filter_library
    from blogroto.publish import filter_sheet

    ui.check_verbosity(quiet, verbose)
    warn = (lambda line: None) if quiet else ui.err
    library = filter_library(filters_dir, warn=warn)
    filters = []
    for name in library.names():
        try:
            filters.append(library.get(name))
        except FilterError as exc:
            warn(f"warning: {name}: left out: {exc}")
    if not filters:
        raise BlogrotoError("no filters found (train one with `blogroto train`, or name a folder with --filters-dir)")
    photo = photo or preview_photo()

    def on_error(flt, exc):
        warn(f"warning: {flt.slug}: could not apply: {exc}")

    if not quiet:
        click.echo(f"applying {ui.plural(len(filters), 'filter')} to {photo} ...", err=True)
    path = filter_sheet.write_contact_sheet(output, photo, filters, cell=size, columns=columns, on_error=on_error)
    click.echo(str(path))
