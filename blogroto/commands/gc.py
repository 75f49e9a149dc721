"""`blogroto gc SITE`: remove cache entries and output images that no document references any more."""

from __future__ import annotations

import click


@click.command("gc")
@click.argument("site", type=click.Path(exists=True, file_okay=False, dir_okay=True), default=".")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None, help="Output folder, as given to build.")
@click.option("--cache", "cache", type=click.Path(file_okay=False), default=None, help="Cache folder, as given to build.")
@click.option("--quiet", "-q", is_flag=True)
def command(site, out, cache, quiet):
    """Remove stylized images nothing references any more (cache and output).

    What is referenced is what the last build of each output folder recorded, so run it after a
    build (or use `blogroto build --prune`).
    """
    from blogroto.build import BuildOptions, Builder

    report = Builder(site, BuildOptions(out=out, cache=cache)).gc()
    if not quiet:
        for message in report.warnings:
            click.echo(f"warning: {message}", err=True)
        line = (f"removed {report.cache_entries_removed} cache entries, {report.remote_removed} remote "
                f"downloads and {len(report.output_images_removed)} output images")
        if report.left_alone:
            line += f"; left {report.left_alone} files blogroto did not record writing"
        click.echo(line)
