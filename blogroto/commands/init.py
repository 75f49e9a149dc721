"""`blogroto init SITE`: install the Jekyll plugin, so `jekyll build` / `jekyll serve` show stylized images."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from blogroto.ui import verbosity_options

PLUGIN = Path(__file__).resolve().parent.parent / "jekyll" / "blogroto.rb"
PLUGIN_REL = "_plugins/blogroto.rb"


def default_command() -> list[str]:
    """How Jekyll should start this blogroto: `blogroto` when that is the one on PATH, else this
    Python (`python -m blogroto`), so a virtual environment need not be activated for Jekyll."""
    found = shutil.which("blogroto")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return ["blogroto"]
    return [sys.executable, "-m", "blogroto"]


def install(site: Path, force: bool = False, command: list[str] | None = None) -> list[str]:
    """Write SITE/_plugins/blogroto.rb and add `blogroto_command` to the site's config file; returns
    what was done. Refuses symlinks (the files written must be the site's own), a TOML config (says
    what to add instead) and a changed plugin without `force`."""
    import json

    from blogroto.errors import BlogrotoError
    from blogroto.fsutil import atomic_write_bytes

    done = []
    folder = site / "_plugins"
    target = site / PLUGIN_REL
    # Jekyll reads the first of these that exists (as blogroto does): that is the one to extend
    config = next((site / n for n in ("_config.yml", "_config.yaml", "_config.toml") if (site / n).exists()),
                  site / "_config.yml")
    for path in (folder, target, config):
        if path.is_symlink():
            raise BlogrotoError("refusing to write through a symbolic link", path)
    if folder.exists() and not folder.is_dir():
        raise BlogrotoError("is not a folder (Jekyll's plugins folder must be)", folder)
    command = command or default_command()
    line = f"blogroto_command: {json.dumps(command)}"
    if config.suffix == ".toml":
        raise BlogrotoError(f"add this line (as TOML) yourself, then run init again: {line}", config)
    data = config.read_bytes() if config.exists() else b""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BlogrotoError("is not UTF-8 text; not changed", config) from exc
    folder.mkdir(exist_ok=True)
    plugin = PLUGIN.read_bytes()
    if not target.exists() or target.read_bytes() != plugin:
        if target.exists() and not force:
            raise BlogrotoError("a different blogroto.rb is installed; --force replaces it", target)
        atomic_write_bytes(target, plugin)
        done.append(f"wrote {target}")
    if not any(existing.startswith("blogroto_command:") for existing in text.splitlines()):
        newline = "\r\n" if "\r\n" in text else "\n"  # the file's own line endings
        block = newline.join(["", "# blogroto's Jekyll plugin (_plugins/blogroto.rb) runs this; see blogroto's docs/jekyll.md",
                              line, ""])
        atomic_write_bytes(config, (text + ("" if text.endswith("\n") or not text else newline) + block).encode("utf-8"))
        done.append(f"added blogroto_command to {config}")
    return done


@click.command("init")
@click.argument("site", type=click.Path(exists=True, file_okay=False, dir_okay=True), default=".")
@click.option("--force", is_flag=True, help="Replace a _plugins/blogroto.rb that differs from this version's.")
@verbosity_options
def command(site, force, quiet, verbose):
    """Install blogroto's Jekyll plugin into SITE (_plugins/blogroto.rb, and `blogroto_command` in
    _config.yml): `jekyll build` and `jekyll serve` then stylize as they go (docs/jekyll.md)."""
    from blogroto import ui

    ui.check_verbosity(quiet, verbose)
    done = install(Path(site), force=force)
    if quiet:
        return
    for line in done or ["already installed; nothing to do"]:
        click.echo(line)
    if done:
        click.echo("now run `jekyll serve` (or `jekyll build`) in the site as usual")
