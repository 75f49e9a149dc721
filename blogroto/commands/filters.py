"""`blogroto filters`: list the filters available (site folders first, then built-in)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("filters")
@click.option("--filters-dir", multiple=True, type=click.Path(file_okay=False, path_type=Path), help="Extra filter folders, searched first.")
def command(filters_dir):
    """List available filters with the work each was learned from."""
    from blogroto.errors import FilterError
    from blogroto.filters import FilterLibrary

    library = FilterLibrary(filters_dir)
    for name in library.names():
        try:
            flt = library.get(name)
        except FilterError as exc:
            click.echo(f"{name:24} (broken: {exc})")
            continue
        t = flt.training
        trained = f"{t.get('steps', '?')} steps, {float(t.get('seconds', 0)) / 60:.0f} min" if t else "training record missing"
        click.echo(f"{name:24} {flt.credit_line()}  [{trained}]  {flt.folder}")
