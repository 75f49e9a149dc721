"""`blogroto serve SITE`: `blogroto watch` plus a preview of the output in the browser."""

from __future__ import annotations

import shutil

import click

from blogroto.commands.watch import build_options, err_printer, site_options


@click.command("serve")
@click.argument("site", type=click.Path(exists=True, file_okay=False, dir_okay=True), default=".")
@click.option("--port", "-P", type=click.IntRange(1, 65535), default=4000, show_default=True)
@click.option("--host", "-H", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to show the preview to other machines).")
@click.option("--no-jekyll", is_flag=True, help="Use the built-in preview even when Jekyll is installed.")
@site_options
def command(site, port, host, no_jekyll, out, cache, drafts, verbose, quiet, no_config, refresh_remote):
    """Watch SITE (see `blogroto watch`) and serve the output for preview.

    With Jekyll installed this runs `jekyll serve` on the output folder, which regenerates the
    pages whenever blogroto rewrites them; otherwise the built-in preview serves it. Stop with
    Ctrl-C.
    """
    from blogroto.locate import site_for_command
    from blogroto.publish.serve import JekyllPreview, check_port, static_preview
    from blogroto.publish.watch import Watcher

    options = build_options(out, cache, drafts, verbose, refresh_remote, quiet)
    site = site_for_command(site, no_config, note=err_printer(quiet))
    check_port(host, port)  # before the initial build, which can take a while
    echo = click.echo
    watcher = Watcher(site, options, echo=echo, err=err_printer(quiet))
    settings = watcher.builder.site.settings if watcher.builder.site else None
    out_dir = settings.output if settings else watcher.root / "_blogroto" / "site"
    baseurl = watcher.builder.site.baseurl if watcher.builder.site else ""
    # Where `blogroto preview` renders too: inside the cache, which the watcher ignores.
    dest = settings.cache / "preview" if settings else None

    def fallback(reason="Jekyll is not installed"):
        return static_preview(out_dir, host, port, echo=echo, baseurl=baseurl, reason=reason, dest=dest)

    jekyll = None if no_jekyll else shutil.which("jekyll")
    if jekyll:
        watcher.preview = JekyllPreview(out_dir, host, port, echo=echo, baseurl=baseurl, jekyll=jekyll, drafts=drafts,
                                        fallback=fallback)
    else:
        watcher.preview = fallback("--no-jekyll" if no_jekyll else "Jekyll is not installed")
    watcher.run()
