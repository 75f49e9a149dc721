"""`blogroto gc SITE`: remove cache entries and output images that no document references any more."""

from __future__ import annotations

import click

from blogroto.ui import verbosity_options


@click.command("gc")
@click.argument("site", type=click.Path(exists=True, file_okay=False, dir_okay=True), default=".")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None, help="Output folder, as given to build.")
@click.option("--cache", "cache", type=click.Path(file_okay=False), default=None, help="Cache folder, as given to build.")
@click.option("--no-config", is_flag=True, help="SITE has no _config.yml (as given to build).")
@verbosity_options
def command(site, out, cache, no_config, quiet, verbose):
    """Remove stylized images nothing references any more (cache and output).

    What is referenced is what the last build of each output folder recorded, so run it after a
    build (or use `blogroto build --prune`).
    """
    from blogroto import ui
    from blogroto.build import Builder, BuildOptions
    from blogroto.locate import site_for_command

    ui.check_verbosity(quiet, verbose)
    site = site_for_command(site, no_config, note=None if quiet else ui.err)
    report = Builder(site, BuildOptions(out=out, cache=cache)).gc()
    if verbose:
        for rel in report.output_images_removed:
            click.echo(f"removed {rel}", err=True)
    if not quiet:
        for message in report.warnings:
            ui.warning(message)
        line = (f"removed {ui.plural(report.cache_entries_removed, 'cache entry', 'cache entries')}, "
                f"{ui.plural(report.remote_removed, 'remote download')} and "
                f"{ui.plural(len(report.output_images_removed), 'output image')}")
        if report.left_alone:
            line += f"; left {ui.plural(report.left_alone, 'file')} blogroto did not record writing"
        click.echo(line)
