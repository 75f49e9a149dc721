"""`blogroto watch SITE`: build, then rebuild what each change to the site affects until Ctrl-C."""

from __future__ import annotations

import sys

import click


def site_options(func):
    """The options `watch` and `serve` share with `build`."""
    func = click.option("--drafts", is_flag=True, help="Also stylize documents in _drafts/.")(func)
    func = click.option("--cache", "cache", type=click.Path(file_okay=False), default=None,
                        help="Cache folder (default: algorotoscope.cache, else SITE/.blogroto-cache).")(func)
    func = click.option("--out", "out", type=click.Path(file_okay=False), default=None,
                        help="Output folder (default: algorotoscope.output, else SITE/_blogroto/site).")(func)
    func = click.option("--refresh-remote", is_flag=True, help="On the first build, fetch remote images again: "
                        "forget remembered failures and revalidate cached copies.")(func)
    func = click.option("--no-config", is_flag=True, help="Watch SITE even though it has no _config.yml.")(func)
    func = click.option("--verbose", "-v", is_flag=True, help="Also print every file written and image stylized.")(func)
    func = click.option("--quiet", "-q", is_flag=True, help="Print only the line per build and errors.")(func)
    return func


def build_options(out, cache, drafts, verbose, refresh_remote=False, quiet=False):
    from blogroto import ui
    from blogroto.build import BuildOptions

    ui.check_verbosity(quiet, verbose)
    log = (lambda msg: click.echo(msg, err=True)) if verbose else None
    # The stylizing bar only on a terminal: piped into a log it is noise.
    return BuildOptions(out=out, cache=cache, drafts=drafts, progress=sys.stderr.isatty() and not quiet, log=log,
                        refresh_remote=refresh_remote)


def err_printer(quiet: bool):
    """The watcher's stderr: coloured prefixes; with --quiet, errors only."""
    from blogroto import ui

    def err(line: str) -> None:
        if not quiet or line.lstrip().startswith("error:"):
            ui.err(line)

    return err


@click.command("watch")
@click.argument("site", type=click.Path(exists=True, file_okay=False, dir_okay=True), default=".")
@site_options
def command(site, out, cache, drafts, verbose, quiet, no_config, refresh_remote):
    """Build SITE, then rebuild on every change to a post, image, filter, template or _config.yml.

    Only what a change affects is rebuilt, and the filter networks stay loaded between changes.
    A post that does not build (broken front matter, missing image) prints one line and is
    retried on its next change. Stop with Ctrl-C.
    """
    from blogroto.locate import site_for_command
    from blogroto.publish.watch import Watcher

    options = build_options(out, cache, drafts, verbose, refresh_remote, quiet)
    site = site_for_command(site, no_config, note=err_printer(quiet))
    Watcher(site, options, echo=click.echo, err=err_printer(quiet)).run()
