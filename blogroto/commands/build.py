"""`blogroto build SITE`: write the site with stylized images and credits to the output folder."""

from __future__ import annotations

import sys

import click


@click.command("build")
@click.argument("site", type=click.Path(exists=True, file_okay=False, dir_okay=True), default=".")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: algorotoscope.output in _config.yml, else SITE/_blogroto/site).")
@click.option("--cache", "cache", type=click.Path(file_okay=False), default=None,
              help="Cache folder (default: algorotoscope.cache, else SITE/.blogroto-cache).")
@click.option("--drafts", is_flag=True, help="Also stylize documents in _drafts/.")
@click.option("--force", is_flag=True, help="Ignore the build manifest: re-read every file and re-check every "
              "output. Stylized images still come from the content-addressed cache.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Threads for I/O (fetching remote images). Stylizing runs one image at a time: "
              "TensorFlow already uses every core for each image.")
@click.option("--prune", is_flag=True, help="Afterwards remove cache entries and output images nothing references.")
@click.option("--quiet", "-q", is_flag=True, help="Print errors only.")
@click.option("--verbose", "-v", is_flag=True, help="Print every file written and image stylized.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1, listing the posts, if the output is not up "
              "to date or a post names a missing image or filter (for pull-request checks).")
@click.option("--strict", is_flag=True, help="Treat warnings (unreachable remote image, refused path, ...) as "
              "errors: exit 1.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout, and nothing else there.")
@click.option("--refresh-remote", is_flag=True, help="Fetch remote images again now: forget remembered failures "
              "and revalidate cached copies with the server.")
@click.option("--no-config", is_flag=True, help="Build SITE even though it has no _config.yml (Jekyll would).")
def command(site, out, cache, drafts, force, jobs, prune, quiet, verbose, check, strict, as_json, refresh_remote,
            no_config):
    """Build SITE into a copy whose algorotoscope posts show stylized images and credits.

    Exit status: 0 when everything built, 1 when some documents failed (the rest are built and
    the failed ones copied unchanged), 2 for usage or configuration errors.
    """
    from blogroto import ui
    from blogroto.build import Builder, BuildOptions
    from blogroto.locate import site_for_command

    ui.check_verbosity(quiet, verbose)
    log = (lambda msg: click.echo(msg, err=True)) if verbose else None
    options = BuildOptions(out=out, cache=cache, drafts=drafts, force=force, jobs=jobs, prune=prune,
                           progress=not quiet, log=log, refresh_remote=refresh_remote)
    if check or strict or as_json:
        from blogroto.publish import ci  # the CI flags: see blogroto/publish/ci.py

        sys.exit(ci.run(site, options, check=check, strict=strict, as_json=as_json, quiet=quiet, verbose=verbose,
                        no_config=no_config))
    site = site_for_command(site, no_config, note=None if quiet else ui.err)
    report = Builder(site, options).build()
    if not quiet:
        for message in report.warnings:
            ui.warning(message)
    for message in report.errors:
        ui.error(message)
    if verbose:
        for rel in report.written:
            click.echo(f"wrote {rel}", err=True)
        for rel in report.removed:
            click.echo(f"removed {rel}", err=True)
    if not quiet:
        line = report.summary()
        if prune:
            line += f", {report.pruned} pruned"
        click.echo(f"{line} -> {report.out_dir}")
    sys.exit(0 if report.ok else 1)
