"""Where a site's output and cache folders may lie: outside the site, or inside it only in a folder
of blogroto's own that Jekyll never reads. Anywhere else the build (or gc) would write into, and
delete from, the author's files, or Jekyll would publish the output twice. Checked when a `Site`
is read; a refusal is a ConfigError naming `_config.yml` and the line of the setting."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from blogroto.errors import ConfigError
from blogroto.site.config import DEFAULT_CACHE, DEFAULT_OUTPUT, SITE_TEMPLATE_DIR

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.site.model import Site


def check_output_locations(site: Site) -> None:
    """The output and cache may live inside the site only in a folder of blogroto's own that
    Jekyll never reads: a top-level '_' or '.' folder that is not author content (not _posts,
    _drafts, _layouts, _includes, _data, _sass, _plugins, a collection, a filter or template
    folder, `_site`, `.git`, an `include:`d folder). Anywhere else the build (or gc) would write
    into, and delete from, the author's files, or Jekyll would publish the output twice."""
    s = site.settings
    root = site.root
    where = site.config_path or root
    for what, path in (("output", s.output), ("cache", s.cache)):
        if path == root or is_within(root, path):
            raise ConfigError(f"the {what} folder {path} must not contain the site itself", where)
    if s.output == s.cache or is_within(s.cache, s.output) or is_within(s.output, s.cache):
        # the build deletes output files it did not write: the cache must not be among them
        raise ConfigError(f"the output folder {s.output} and the cache folder {s.cache} must be separate", where)
    for what, path in (("output", s.output), ("cache", s.cache)):
        if not is_within(path, root):
            continue
        rel = path.relative_to(root).as_posix()
        reason = author_content(site, rel)
        if reason:
            raise ConfigError(f"the {what} folder {rel!r} is inside the site's own content ({reason}); "
                              f"blogroto would write into and delete from the author's files. Use a folder "
                              f"outside the site, or a folder of its own such as {DEFAULT_OUTPUT!r} / "
                              f"{DEFAULT_CACHE!r}", where, site._section_lines.get(what))


def author_content(site: Site, rel: str) -> str | None:
    """Why the site folder `rel` holds (or is) the author's content; None when it is a folder
    blogroto may own (a top-level '_'/'.' folder with no role in Jekyll or blogroto)."""
    parts = rel.split("/")
    top = parts[0]
    if not top.startswith(("_", ".")):
        return "Jekyll publishes it"
    if top in site.include or rel in site.include:
        return "it is in 'include:'"
    reserved = {"_posts", "_drafts", "_layouts", "_includes", "_data", "_sass", "_plugins", "_config.yml",
                SITE_TEMPLATE_DIR, ".git", ".github", ".hg", ".svn", ".jekyll-cache", ".sass-cache",
                ".bundle", "_vendor", "vendor", "node_modules"}
    reserved.update(f"_{label}" for label in site.collections)
    if site.collections_dir:
        reserved.add(site.collections_dir.split("/")[0])
    for d in site.settings.filter_dirs:
        d = Path(d)
        if is_within(d, site.root):
            reserved.add(d.relative_to(site.root).parts[0])
    if is_within(site.destination, site.root) or site.destination == site.root:
        reserved.add(site.destination.relative_to(site.root).parts[0] if site.destination != site.root else "")
    if top in reserved:
        return f"{top!r} is a Jekyll or blogroto folder"
    if "_posts" in parts or "_drafts" in parts:
        return "it is a posts folder"
    return None


def is_within(path: Path, folder: Path) -> bool:
    """Whether `path` lies strictly inside `folder` (lexically: both already resolved)."""
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return path != folder
