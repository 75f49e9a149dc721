"""`blogroto filters`: list the filters available (site folders first, then built-in)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("filters")
@click.option("--filters-dir", multiple=True, type=click.Path(file_okay=False, path_type=Path), help="Extra filter folders, searched first.")
@click.option("--record-precision", "record", multiple=True, metavar="FILTER_DIR",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Measure this filter's bfloat16 output against float32 and record it in its filter.yaml "
                   "(lets `--precision auto` use bf16 on CPUs that have it). Writes to the filter folder.")
def command(filters_dir, record):
    """List available filters with the work each was learned from."""
    from blogroto.errors import FilterError
    from blogroto.filters import FilterLibrary

    if record:
        from blogroto.precision import BF16_MIN_PSNR_DB, record_bfloat16_psnr

        for folder in record:
            psnr = record_bfloat16_psnr(folder)
            verdict = "bfloat16 allowed" if psnr >= BF16_MIN_PSNR_DB else "stays float32"
            click.echo(f"{folder}: bfloat16 vs float32 {psnr:.1f} dB ({verdict})")
        return
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
