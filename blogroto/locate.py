"""Which site a command runs for, and the filter search path that follows from it.

Every command that looks a filter up (build, watch, serve, apply, filters, catalog, train
--teacher) uses the same search path: the site's filter folders when it runs on or inside a site,
then the per-user library, then the built-ins (`blogroto.filters.search_path`).

A site is a folder with a Jekyll config file (`_config.yml`, `.yaml` or `.toml`). Commands that
write a site's output (build, watch, serve, gc, preview) refuse a folder that is not one, unless
told `--no-config`, and never write inside an author's content folder: run in `_posts/` they build
the site around it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from blogroto.errors import ConfigError
from blogroto.site.config import CONFIG_NAMES, DEFAULT_FILTER_DIRS


def has_config(folder: Path) -> bool:
    return any((folder / name).is_file() for name in CONFIG_NAMES)


def find_site_root(start: str | Path = ".") -> Path | None:
    """The nearest folder at or above `start` that holds a Jekyll config file, or None."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if has_config(folder):
            return folder
    return None


def site_for_command(site: str | Path, no_config: bool = False,
                     note: Callable[[str], None] | None = None) -> Path:
    """The site folder a build-like command works on, given its SITE argument.

    SITE itself when it has a config file; the enclosing site when SITE lies inside one (said in
    `note`); SITE as it is with `no_config` when no folder above it is a site; otherwise a
    ConfigError (exit 2) that says what to do.
    """
    given = Path(site)
    folder = given.resolve()
    if has_config(folder):
        return given
    root = find_site_root(folder.parent) if folder.parent != folder else None
    if root is not None:
        # Inside a site (e.g. run in _posts/): building the folder as a site of its own would
        # write _blogroto/ and .blogroto-cache/ among the author's posts. Build the site instead.
        if note is not None:
            note(f"note: {folder} is inside the site {root}; building that site")
        return root
    if no_config:
        return given
    names = "/".join(CONFIG_NAMES)
    raise ConfigError(f"no _config.yml in {folder}: is this a Jekyll site? (looked for {names} there and in "
                      "every folder above; pass --no-config to build it anyway)")


def site_filter_dirs(root: Path | None, warn: Callable[[str], None] | None = None) -> list[Path]:
    """The filter folders of the site at `root` (its `algorotoscope.filters`, default `_filters/`).

    A config file that does not parse costs a warning, not the command: the default folder is used.
    """
    if root is None:
        return []
    from blogroto.site.model import Site

    try:
        return list(Site(root).settings.filter_dirs)
    except ConfigError as exc:
        if warn is not None:
            warn(f"warning: {exc} (looking for filters in {root / DEFAULT_FILTER_DIRS[0]} only)")
        return [root / d for d in DEFAULT_FILTER_DIRS]


def filter_library(extra=(), *, site: str | Path | None = None, warn: Callable[[str], None] | None = None):
    """The FilterLibrary a command without a SITE argument uses: --filters-dir folders, then the
    filter folders of the site around the current folder (or `site`), the user library, the
    built-ins."""
    from blogroto.filters import FilterLibrary

    root = find_site_root(site if site is not None else ".")
    return FilterLibrary(extra, site_dirs=site_filter_dirs(root, warn))
