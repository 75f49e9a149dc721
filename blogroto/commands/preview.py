"""`blogroto preview SITE`: build, render the output as plain HTML, serve it; no Ruby needed."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("preview")
@click.argument("site", type=click.Path(exists=True, file_okay=False, dir_okay=True), default=".")
@click.option("--port", type=click.IntRange(0, 65535), default=4000, show_default=True, help="Port to serve on (0: any free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--no-serve", is_flag=True, help="Only build and render the preview; do not serve it.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the preview HTML (default: SITE's cache folder /preview).")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder of the build (as for `blogroto build`).")
@click.option("--cache", "cache", type=click.Path(file_okay=False), default=None,
              help="Cache folder of the build (as for `blogroto build`).")
@click.option("--drafts", is_flag=True, help="Also stylize documents in _drafts/.")
@click.option("--no-config", is_flag=True, help="Preview SITE even though it has no _config.yml.")
@click.option("--quiet", "-q", is_flag=True, help="Print errors only (and the preview's address).")
@click.option("--verbose", "-v", is_flag=True, help="Log every request.")
def command(site, port, host, no_serve, dest, out, cache, drafts, no_config, quiet, verbose):
    """Preview SITE without Jekyll: build it (a no-op when up to date), render the output site with
    Markdown into plain HTML pages with one simple layout, and serve them on localhost.

    It is a preview, not Jekyll: your theme's layouts, includes and plugins are not applied.
    """
    from blogroto import ui
    from blogroto.build import Builder, BuildOptions
    from blogroto.locate import site_for_command
    from blogroto.publish.preview import render_preview, serve_preview

    ui.check_verbosity(quiet, verbose)
    site = site_for_command(site, no_config, note=None if quiet else ui.err)
    builder = Builder(site, BuildOptions(out=out, cache=cache, drafts=drafts, progress=not quiet))
    report = builder.build()
    if not quiet:
        for message in report.warnings:
            ui.warning(message)
    for message in report.errors:
        ui.error(message)
    if not quiet:
        click.echo(report.summary(), err=True)
    builder_site = builder.site  # the site as this build saw it (--out/--cache applied)
    dest = dest or builder_site.settings.cache / "preview"
    warnings: list[str] = []
    folder = render_preview(report.out_dir, dest, warnings=warnings)
    for message in warnings if not quiet else ():
        ui.warning(message)
    baseurl = builder_site.baseurl or ""
    if no_serve:
        click.echo(str(folder / baseurl.strip("/")) if baseurl else str(folder))
        return
    import threading

    server = serve_preview(folder, host, port, block=False, verbose=verbose)
    bound = server.server_address[1]
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    click.echo(f"Preview (not Jekyll) at http://{shown}:{bound}{baseurl}/  (Ctrl-C to stop)", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
