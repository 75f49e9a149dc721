"""The filter catalog: pages that show the artworks behind the filters, and the contact sheet.

The build calls `write_catalog` at the end: it knows which documents use which filter. The
catalog is written into the output site as ordinary Jekyll pages (front matter with the site's
layout, a title and a permalink), so it takes the blog's own look:

    filters/index.html               every filter the site uses (or every available one: `all`)
    filters/<slug>/index.html        the artwork, its creator and licence, what the filter does,
                                     how it was trained, a before/after example, the posts using it
    filters/<slug>/artwork.jpg ...   copies (large ones shrunk) of the filter folder's pictures

Configured in `_config.yml`:

    algorotoscope:
      catalog: {enabled: true, path: /filters/, all: false, layout: default}

The pages come from Jinja2 templates `catalog/index.html.j2` and `catalog/filter.html.j2`; a site
overrides either with its own file in `_algorotoscope/catalog/` (the same folder credit templates
are overridden in; `{% extends "builtin/catalog/filter.html.j2" %}` reaches the built-in one).

Links inside the pages are relative, so they work under any `baseurl` (also one given only at
`jekyll serve` time) and in `blogroto preview`. Text from filter metadata is HTML-escaped and its
braces written as entities, so Liquid never runs anything from a filter folder.

A no-op build must not import Jinja2 or Pillow: everything the pages show is summarised in a
signature kept in the build manifest, and only a changed signature (or a catalog file changed
or deleted behind the build's back) renders the pages again.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blogroto.build.training_record import describe_training, training_details
from blogroto.credits.templates import (
    liquid_inert,
    render_template,
    sandboxed_environment,
    template_dirs,
    template_files,
)
from blogroto.errors import BlogrotoError, ConfigError, FilterError
from blogroto.site.urls import (
    default_title,
    document_info,
    relative_link,
)

if TYPE_CHECKING:  # pragma: no cover

    from blogroto.filters import Filter, FilterLibrary
    from blogroto.site.model import Site

CATALOG_FORMAT = 1  # bump when the pages' content changes for the same inputs
INDEX_TEMPLATE = "catalog/index.html.j2"
FILTER_TEMPLATE = "catalog/filter.html.j2"
SETTINGS_KEYS = ("enabled", "path", "all", "layout")
# The filter folder's pictures shown on its page: key in Filter.file -> output base name.
PICTURES = {"artwork": "artwork", "example_before": "example-before", "example_after": "example-after",
            "preview": "preview", "loss_plot": "loss", "contact_sheet": "progress"}
MAX_PICTURE_SIDE = 1600  # larger pictures are shrunk: a catalog page is not the place for a 40 MP scan
PICTURE_FORMATS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif"}

_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9~-][A-Za-z0-9._~-]*/)+$")


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class CatalogSettings:
    enabled: bool = True
    path: str = "/filters/"  # site path of the index page (the baseurl comes on top)
    all: bool = False  # list every available filter, not only those the site uses
    layout: str | None = "default"

    @property
    def folder(self) -> str:
        """The output folder of the catalog, relative to the site root ('filters')."""
        return self.path.strip("/")


def catalog_settings(site: Site) -> CatalogSettings:
    """`algorotoscope: catalog:` from the site's configuration (`catalog: false` turns it off)."""
    section = site.config.get("algorotoscope") or {}
    value = section.get("catalog", {}) if isinstance(section, dict) else {}
    where = site.config_path or site.root / "_config.yml"
    if value is None or value is True:
        value = {}
    if value is False:
        return CatalogSettings(enabled=False)
    if not isinstance(value, dict):
        raise ConfigError(f"algorotoscope.catalog must be a mapping or true/false, not {value!r}", where)
    unknown = [k for k in value if k not in SETTINGS_KEYS]
    if unknown:
        raise ConfigError(f"unknown algorotoscope.catalog setting {unknown[0]!r} (known: {', '.join(SETTINGS_KEYS)})",
                          where)
    for key in ("enabled", "all"):
        if key in value and not isinstance(value[key], bool):
            raise ConfigError(f"algorotoscope.catalog.{key} must be true or false, not {value[key]!r}", where)
    path = value.get("path", CatalogSettings.path)
    if not isinstance(path, str):
        raise ConfigError(f"algorotoscope.catalog.path must be a site path like /filters/, not {path!r}", where)
    path = "/" + path.strip().strip("/") + "/"
    if not _PATH_RE.match(path) or any(part in (".", "..") for part in path.split("/")):
        # Jekyll ignores folders starting with '_' or '.', so the pages would silently vanish.
        raise ConfigError(f"algorotoscope.catalog.path must be a site path like /filters/ whose folders do not "
                          f"start with '_' or '.', not {value.get('path')!r}", where)
    layout = value.get("layout", CatalogSettings.layout)
    if layout is not None and not isinstance(layout, str):
        raise ConfigError(f"algorotoscope.catalog.layout must be a layout name, not {layout!r}", where)
    return CatalogSettings(enabled=value.get("enabled", True), path=path, all=value.get("all", False),
                           layout=layout or None)


# --------------------------------------------------------------------------------------------
# templates


def environment(site_root: str | Path | None):
    """The sandboxed template environment with the site's overrides (blogroto.credits.templates)."""
    return sandboxed_environment(template_dirs(site_root)[0])


# --------------------------------------------------------------------------------------------
# writing the catalog


@dataclass
class CatalogResult:
    state: dict = field(default_factory=dict)  # keep in the build manifest; pass back as `previous`
    files: list[str] = field(default_factory=list)  # output paths (relative to the output) the catalog owns
    rendered: bool = False  # False: nothing changed, nothing was rendered or read
    warnings: list[str] = field(default_factory=list)
    pages: dict[str, bytes] = field(default_factory=dict)  # what to write (when rendered): path -> bytes

    def record_written(self, out_stat: Callable[[str], os.stat_result | None]) -> None:
        """Once `pages` are written: the stats that tell the next build its files are as written."""
        self.state["files"] = {rel: _stat_sig(out_stat(rel)) for rel in self.files}


def _json_sig(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _stat_sig(st: os.stat_result | None) -> list[int] | None:
    return [st.st_size, st.st_mtime_ns, st.st_ino] if st is not None else None


def _default_filter_sig(library: FilterLibrary, slug: str):
    for base in library.search_dirs:
        folder = base / slug
        if (folder / "filter.yaml").is_file():
            try:
                return [str(folder), sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns]
                                            for e in os.scandir(folder) if e.is_file())]
            except OSError:
                return [str(folder), None]
    return None


def _front_matter(fields: dict) -> str:
    # JSON strings are valid YAML scalars: titles with colons or quotes cannot break the block.
    # Layouts print page.title unescaped (Jekyll does not escape), so no markup may get in, and
    # the same Liquid-inert encoding as credit text (credits.templates.liquid_inert) keeps braces and % harmless.
    lines = ["---"]
    for key, value in fields.items():
        if isinstance(value, str):
            value = liquid_inert(value.replace("<", "").replace(">", ""))
        if value is not None:
            lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def _picture_bytes(path: Path) -> tuple[bytes, str]:
    """A filter picture for the web: its own bytes, or a shrunk copy when it is very large."""
    data = path.read_bytes()
    from PIL import Image

    with Image.open(path) as im:
        fmt = (im.format or "").lower()
        size = im.size
        if fmt in PICTURE_FORMATS and max(size) <= MAX_PICTURE_SIDE and len(data) <= 4 << 20:
            return data, PICTURE_FORMATS[fmt]
        im.thumbnail((MAX_PICTURE_SIDE, MAX_PICTURE_SIDE))
        import io

        out = io.BytesIO()
        if im.mode in ("RGBA", "LA", "P") and fmt == "png":
            im.save(out, "PNG", optimize=True)
            return out.getvalue(), ".png"
        im.convert("RGB").save(out, "JPEG", quality=88, progressive=True, optimize=True)
        return out.getvalue(), ".jpg"


def render_catalog(
    site: Site,
    uses: Mapping[str, tuple[str, Any, str]],
    *,
    library: FilterLibrary,
    previous: dict | None = None,
    base_signature: str = "",
    filter_sig: Callable[[str], Any] | None = None,
    out_stat: Callable[[str], os.stat_result | None],
    taken: Iterable[str] | Mapping = (),
) -> CatalogResult:
    """The catalog pages and pictures to write (`result.pages`); the catalog itself writes nothing.

    `uses`: document path (relative to the site) -> (filter slug, the document's stat signature,
    its kind) for every document with stylized images. `previous` is the `state` of the last
    result; when nothing the pages show has changed and its files are as written (`out_stat`
    stats an output file), this returns at once without reading or rendering anything. `taken`
    holds the site's own paths, which the catalog never replaces. Once the pages are written,
    `result.record_written(out_stat)` completes the state to keep.
    """
    result = CatalogResult()
    settings = catalog_settings(site)
    if not settings.enabled:
        return result
    used_by: dict[str, list[str]] = {}
    for rel, (slug, _sig, _kind) in uses.items():
        used_by.setdefault(slug, []).append(rel)
    slugs = sorted(set(used_by) | (set(library.names()) if settings.all else set()))
    if not slugs:
        return result  # nothing to show: no catalog at all
    filter_sig = filter_sig or (lambda slug: _default_filter_sig(library, slug))
    signature = _json_sig([
        CATALOG_FORMAT, base_signature, asdict(settings), site.baseurl, site.config.get("title"),
        sorted([rel, slug, list(sig)] for rel, (slug, sig, _kind) in uses.items()),
        {slug: filter_sig(slug) for slug in slugs},
        [[str(p), _stat_sig(_safe_stat(p))] for p in template_files(site.root, "catalog")],
    ])
    prev = previous if isinstance(previous, dict) else {}
    prev_files = prev.get("files") if isinstance(prev.get("files"), dict) else {}
    if prev.get("sig") == signature and prev_files and all(
            _stat_sig(out_stat(rel)) == sig for rel, sig in prev_files.items()):
        result.state, result.files = prev, list(prev_files)
        return result

    # -- something changed: gather and render -----------------------------------------------
    result.rendered = True
    docs = _documents(site, uses, prev, result.warnings)
    taken_set = taken if isinstance(taken, Mapping) else set(taken)

    def claim(rel: str, data: bytes) -> bool:
        stem = posixpath.splitext(rel)[0]
        clash = [t for t in (rel, *(stem + e for e in (".md", ".markdown", ".html", ".htm"))) if t in taken_set]
        if clash:
            result.warnings.append(f"catalog: not writing {rel}: the site has its own {clash[0]}")
            return False
        result.pages[rel] = data
        return True

    env = environment(site.root)
    site_ctx = {"title": site.config.get("title"), "baseurl": site.baseurl, "url": site.config.get("url")}
    entries = []
    for slug in slugs:
        try:
            flt = library.get(slug)
        except (FilterError, BlogrotoError) as exc:
            result.warnings.append(f"catalog: filter {slug!r} left out: {exc}")
            continue
        documents = [docs[rel] for rel in used_by.get(slug, [])]
        entries.append(_filter_page(env, settings, site_ctx, flt, documents, claim, result.warnings))

    claim(f"{settings.folder}/index.html", _index_page(env, settings, site_ctx, entries))
    result.files = sorted(result.pages)
    result.state = {"sig": signature, "files": {}, "docs": docs}
    return result


def _index_page(env, settings: CatalogSettings, site_ctx: dict, entries: list[dict]) -> bytes:
    """The index: a card per filter, with its artwork and an example, linking to its page."""
    cards = [{**e, "url": f"{e['slug']}/",
              "thumbnail": f"{e['slug']}/{e['pictures']['artwork']}" if e["pictures"].get("artwork") else None,
              "after": f"{e['slug']}/{e['pictures']['example_after'] or e['pictures']['preview']}"
              if (e["pictures"].get("example_after") or e["pictures"].get("preview")) else None}
             for e in entries]
    body = render_template(env, INDEX_TEMPLATE, filters=cards, site=site_ctx, all=settings.all)
    return (_front_matter({"layout": settings.layout, "title": "Filters", "permalink": settings.path,
                           "algorotoscope_catalog": "index"}) + body).encode("utf-8")


def _documents(site: Site, uses: Mapping[str, tuple[str, Any, str]], prev: dict, warnings: list[str]) -> dict:
    """Title, URL, date and kind of every document using a filter; unchanged ones (same stat, same
    filter) from the previous state, without reading them."""
    prev_docs = prev.get("docs") if isinstance(prev.get("docs"), dict) else {}
    docs: dict[str, dict] = {}
    for rel, (slug, sig, kind) in uses.items():
        old = prev_docs.get(rel)
        if isinstance(old, dict) and old.get("st") == list(sig) and old.get("filter") == slug:
            docs[rel] = old
            continue
        try:
            info = document_info(site, rel, kind)
        except (BlogrotoError, OSError) as exc:
            warnings.append(f"catalog: cannot read {rel}: {exc}")
            info = {"title": default_title(rel, kind), "url": None, "date": None, "kind": kind}
        docs[rel] = {**info, "st": list(sig), "filter": slug}
    return docs


def _filter_page(env, settings: CatalogSettings, site_ctx: dict, flt: Filter, documents: list[dict],
                 claim: Callable[[str, bytes], bool], warnings: list[str]) -> dict:
    """One filter's page and pictures (claimed for writing); its entry for the index."""
    slug, index_url = flt.slug, settings.path
    page_url = f"{index_url}{slug}/"
    pictures: dict[str, str | None] = {}
    for key, base in PICTURES.items():
        pictures[key] = None
        try:
            path = flt.file(key)
        except FilterError as exc:  # a symlink, or a file outside the folder: never published
            warnings.append(f"catalog: {exc}; picture left out")
            continue
        if path is None:
            continue
        try:
            data, ext = _picture_bytes(path)
        except Exception as exc:  # Pillow raises many types on a broken picture; leave it out
            warnings.append(f"catalog: {path}: cannot use this picture: {exc}")
            continue
        if claim(f"{settings.folder}/{slug}/{base}{ext}", data):
            pictures[key] = f"{base}{ext}"
    links = sorted(({"title": d["title"], "date": d.get("date"), "kind": d.get("kind"),
                     "url": relative_link(page_url, d["url"]) if d.get("url") else None} for d in documents),
                   key=lambda d: (d["date"] or "", d["title"]), reverse=True)
    src = flt.source
    entry = {
        "slug": slug,
        "display_name": flt.display_name,
        "description": flt.description,
        "source": src,
        "credit_line": flt.credit_line(),
        "licence_url": _safe(src.get("licence_url")),
        "source_url": _safe(src.get("url")),
        "training": flt.training,
        "training_summary": describe_training(flt.training),
        "training_details": training_details(flt.training),
        "network": flt.network.as_dict(),
        "pictures": pictures,
        "documents": links,
        "used": bool(documents),
    }
    body = render_template(env, FILTER_TEMPLATE, filter=entry, site=site_ctx, index_url=relative_link(page_url, index_url))
    page = _front_matter({"layout": settings.layout, "title": f"{flt.display_name}: a filter learned from "
                          f"{src.get('title') or 'an artwork'}", "permalink": page_url,
                          "algorotoscope_catalog": "filter", "algorotoscope_filter": slug}) + body
    claim(f"{settings.folder}/{slug}/index.html", page.encode("utf-8"))
    return entry


def write_catalog(site: Site, uses: Mapping[str, tuple[str, Any, str]], *, library: FilterLibrary,
                  out_dir: str | Path | None = None, previous: dict | None = None, **kwargs) -> CatalogResult:
    """`render_catalog`, its pages written into `out_dir` (only files whose bytes differ), outside a
    build. The build writes them through its own output tree instead (blogroto.build.finish)."""
    from blogroto.fsutil import atomic_write_bytes

    out = Path(out_dir) if out_dir is not None else site.settings.output

    def out_stat(rel: str) -> os.stat_result | None:
        try:
            return os.stat(out / rel, follow_symlinks=False)
        except OSError:
            return None

    result = render_catalog(site, uses, library=library, previous=previous, out_stat=out_stat, **kwargs)
    for rel, data in result.pages.items():
        dst = out / rel
        try:
            if dst.is_file() and dst.stat().st_size == len(data) and dst.read_bytes() == data:
                continue
        except OSError:
            pass
        atomic_write_bytes(dst, data)
    if result.rendered:
        result.record_written(out_stat)
    return result


def _safe(value):
    from blogroto.credits.record import safe_url

    return safe_url(value)


def _safe_stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None
