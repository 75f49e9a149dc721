"""`blogroto filters`: list the filters available along the search path, and where each comes from."""

from __future__ import annotations

from pathlib import Path

import click

from blogroto.ui import verbosity_options


@click.command("filters")
@click.option("--filters-dir", multiple=True, type=click.Path(file_okay=False, path_type=Path), help="Extra filter folders, searched first.")
@click.option("--site", "site", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="List the filters this site's posts can use (default: the site around the current folder).")
@click.option("--record-precision", "record", multiple=True, metavar="FILTER_DIR",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Measure this filter's bfloat16 output against float32 and record it in its filter.yaml "
                   "(lets `--precision auto` use bf16 on CPUs that have it). Writes to the filter folder.")
@verbosity_options
def command(filters_dir, site, record, quiet, verbose):
    """List available filters with the work each was learned from (how it was trained, or the
    file it was imported from) and where each comes from:
    --filters-dir, the site's _filters/ (when run in or for a site), user (your filter library,
    where `blogroto train` writes outside a site) or built-in. A name found in two places is
    listed once, from the place that wins."""
    from blogroto import ui
    from blogroto.errors import FilterError
    from blogroto.importing import describe_import
    from blogroto.locate import filter_library

    ui.check_verbosity(quiet, verbose)

    if record:
        from blogroto.engine.calibration import record_bfloat16_psnr
        from blogroto.engine.precision import BF16_MIN_PSNR_DB

        for folder in record:
            psnr = record_bfloat16_psnr(folder)
            verdict = "bfloat16 allowed" if psnr >= BF16_MIN_PSNR_DB else "stays float32"
            if not quiet:
                click.echo(f"{folder}: bfloat16 vs float32 {psnr:.1f} dB ({verdict})")
        return
    library = filter_library(filters_dir, site=site, warn=None if quiet else ui.err)
    if verbose:
        for folder, origin in library.entries:
            ui.err(f"note: searching {origin:13} {folder}{'' if folder.is_dir() else '  (none yet)'}")
    for name in library.names():
        origin = library.origin(name)
        try:
            flt = library.get(name)
        except FilterError as exc:
            click.echo(f"{name:24} {origin:9} (broken: {exc})")
            continue
        t = flt.training
        imported = describe_import(t)
        if imported:
            trained = f"{imported.replace('Imported from', 'imported from', 1)}"
        else:
            trained = f"{t.get('steps', '?')} steps, {float(t.get('seconds', 0)) / 60:.0f} min" if t else "training record missing"
        click.echo(f"{name:24} {origin:9} {flt.credit_line()}  [{trained}]  {flt.folder}")
    if not quiet:
        from blogroto.engine.runtime import backend_label

        # no backend import here (listing filters paints nothing): the device is in `blogroto --version`
        ui.err(f"engine: {backend_label()} (--backend or KERAS_BACKEND to change; the device: blogroto --version)")
