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
    func = click.option("--verbose", "-v", is_flag=True, help="Also print every file written and image stylized.")(func)
    return func


def build_options(out, cache, drafts, verbose):
    from blogroto.build import BuildOptions

    log = (lambda msg: click.echo(msg, err=True)) if verbose else None
    # The stylizing bar only on a terminal: piped into a log it is noise.
    return BuildOptions(out=out, cache=cache, drafts=drafts, progress=sys.stderr.isatty(), log=log)


@click.command("watch")
@click.argument("site", type=click.Path(exists=True, file_okay=False, dir_okay=True), default=".")
@site_options
def command(site, out, cache, drafts, verbose):
    """Build SITE, then rebuild on every change to a post, image, filter, template or _config.yml.

    Only what a change affects is rebuilt, and the filter networks stay loaded between changes.
    A post that does not build (broken front matter, missing image) prints one line and is
    retried on its next change. Stop with Ctrl-C.
    """
    from blogroto.watch import Watcher

    Watcher(site, build_options(out, cache, drafts, verbose), echo=click.echo,
            err=lambda line: click.echo(line, err=True)).run()
