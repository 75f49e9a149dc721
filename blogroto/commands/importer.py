"""`blogroto import FILE_OR_FOLDER --name SLUG`: a network trained with fast-style-transfer,
pytorch/examples' fast_neural_style or exported to ONNX, as a blogroto filter (see
blogroto/importing.py and docs/importing.md)."""

from __future__ import annotations

from pathlib import Path

import click

from blogroto.commands.train import filter_options
from blogroto.ui import verbosity_options

FORMAT_CHOICES = ("auto", "fast-style-transfer", "pytorch", "onnx")


@click.command("import")
# not exists=True: fast-style-transfer's checkpoint prefix (`fns.ckpt` of fns.ckpt.index + .data) names no file
@click.argument("source", metavar="FILE_OR_FOLDER", type=click.Path(path_type=Path))
@filter_options("Title of the work the network learned from (defaults to the artwork's or the file's name).")
@click.option("--artwork", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The style image the network was trained on: kept as the filter's artwork.jpg (catalog, credits).")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="Which tool the file comes from (auto: from its name and first bytes).")
@click.option("--site", "site", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Import for this Jekyll site: write into its _filters/ (the default when run inside a site).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder the filter folder is written into (default: as `blogroto train`: the site's _filters/ "
                   "when run in or for a site, else your filter library).")
@click.option("--force", is_flag=True, help="Replace an existing filter of the same name.")
@click.option("--precision-check/--no-precision-check", "precision_check", default=None,
              help="Measure bfloat16 against float32 on the built-in photos and record it, so `--precision auto` may "
                   "use bf16 (default: only on CPUs with native bf16, where it matters).")
@verbosity_options
def command(source, name, title, creator, year, source_url, licence, licence_url, credit, display_name, description,
            artwork, fmt, site, out_dir, force, precision_check, quiet, verbose):
    """Convert a style network trained with another tool into a blogroto filter NAME: a
    fast-style-transfer checkpoint (.ckpt, or its folder), a pytorch/examples fast_neural_style
    state dict (.pth, .model) or an ONNX export of it (.onnx). The filter computes what the
    original computes; its filter.yaml credits the work and records where the network came from.

    Nothing in the file is executed: PyTorch pickles are read by a reader that rebuilds tensors
    only and refuses anything else."""
    from blogroto import ui
    from blogroto.commands.train import (
        destination,
        given_credit,
        how_to_use,
        source_credit,
    )
    from blogroto.importing import read_network, write_filter

    ui.check_verbosity(quiet, verbose)
    log = (lambda msg: None) if quiet else ui.err
    where = destination(site, out_dir, warn=None if quiet else ui.err)
    given = given_credit(title, creator, year, source_url, licence, licence_url, credit)
    # completed from CREDITS.yaml for artworks shipped with blogroto; titled after the file otherwise
    credit_record = source_credit(artwork if artwork is not None else source, given)
    credit_record = {k: v for k, v in credit_record.items() if v not in (None, "")}
    imported = read_network(source, fmt)
    if verbose:
        ui.err(f"note: read a {imported.format} network ({imported.container}): width {imported.width}, "
               f"{imported.blocks} residual blocks, {imported.parameters:,} parameters; arch {imported.arch}")
        ui.err(f"note: writing the filter into {where.out_dir} ({where.kind})")
    if precision_check is None:
        from blogroto.engine.precision import cpu_supports_bf16

        precision_check = cpu_supports_bf16()
    flt = write_filter(imported, source, name, where.out_dir, credit_record, display_name=display_name,
                       description=description, artwork=artwork, force=force, precision_check=precision_check, log=log)
    if not quiet:
        click.echo(f"wrote {flt.folder} (imported from {flt.training['imported_from']['file']}, {imported.format}; "
                   f"width {imported.width}, {imported.blocks} residual blocks)")
        if not precision_check:
            ui.err(f"note: runs in float32 on CPUs; `blogroto filters --record-precision {flt.folder}` measures "
                   "whether bfloat16 may be used")
    click.echo(how_to_use(flt.slug, flt.folder, where))
