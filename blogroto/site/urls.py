"""Jekyll's URLs for documents: permalinks (styles and placeholders, collections' own), dates taken
from front matter or file names, the output file a URL lands in, and links between pages; what
the catalog links to and where the preview writes each page."""

from __future__ import annotations

import datetime as _dt
import posixpath
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from blogroto.site.model import Site


_PERMALINK_STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
_POST_FILE_RE = re.compile(r"^(\d{2,4})-(\d{1,2})-(\d{1,2})-(.+)$")
_MARKUP_EXTS = {".md", ".markdown", ".mkdown", ".mkdn", ".mkd", ".mdown", ".mdwn", ".mdtxt", ".mdtext", ".html",
                ".htm", ".textile"}


def slugify(text: str, mode: str = "default", cased: bool = False) -> str:
    # Jekyll's Utils.slugify for the two modes its URL placeholders use.
    if mode == "pretty":
        out = re.sub(r"(?:[^\w._~!$&'()+,;=@]|_)+", "-", text)
    else:
        out = re.sub(r"[\W_]+", "-", text)
    out = out.strip("-")
    return out if cased else out.lower()


def as_datetime(value: Any) -> _dt.datetime | None:
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        m = re.match(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?", value)
        if m:
            parts = [int(x) if x else 0 for x in m.groups()]
            try:
                return _dt.datetime(*parts)
            except ValueError:
                return None
    return None


def _output_ext(rel: str) -> str:
    ext = posixpath.splitext(rel)[1].lower()
    return ".html" if ext in _MARKUP_EXTS else posixpath.splitext(rel)[1]


def _fill(template: str, values: Mapping[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name in values:
            return values[name]
        if name.endswith("_") and name[:-1] in values:
            return values[name[:-1]] + "_"
        return m.group(0)

    return re.sub(r":([a-z_]+)", sub, template)


def _clean_url(url: str) -> str:
    url = re.sub(r"/{2,}", "/", "/" + url)
    return url


def document_date(rel: str, kind: str, data: Mapping) -> _dt.datetime | None:
    """A post's date: front matter `date`, else the one in its file name."""
    when = as_datetime(data.get("date"))
    if when is None and kind in ("posts", "drafts"):
        m = _POST_FILE_RE.match(posixpath.basename(rel))
        if m:
            try:
                when = _dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                when = None
    return when


def document_url(site: Site, rel: str, kind: str, data: Mapping) -> str:
    """The URL (without baseurl) Jekyll gives document `rel` of `kind` with front matter `data`
    (defaults already merged in): Jekyll 4's permalink rules for posts, collections and pages."""
    config = site.config
    style = config.get("permalink") or "date"
    style_s = str(style)
    base = posixpath.basename(rel)
    stem, ext = posixpath.splitext(base)
    out_ext = _output_ext(rel)
    permalink = data.get("permalink")
    if kind in ("posts", "drafts"):
        m = _POST_FILE_RE.match(stem)
        slug = str(data.get("slug") or (m.group(4) if m else stem))
        when = document_date(rel, kind, data) or _dt.datetime(1970, 1, 1)
        parts = rel.split("/")
        folder_cats = [p for p in parts[: parts.index("_posts")]] if "_posts" in parts else []
        cats: list[str] = []
        for c in folder_cats + _categories(data):
            c = str(c).lower()
            if c not in cats:
                cats.append(c)
        values = {
            "year": f"{when.year:04d}", "month": f"{when.month:02d}", "i_month": str(when.month),
            "day": f"{when.day:02d}", "i_day": str(when.day), "short_year": f"{when.year % 100:02d}",
            "hour": f"{when.hour:02d}", "minute": f"{when.minute:02d}", "second": f"{when.second:02d}",
            "y_day": f"{when.timetuple().tm_yday:03d}", "week": f"{when.isocalendar()[1]:02d}",
            "short_day": when.strftime("%a"), "long_day": when.strftime("%A"),
            "short_month": when.strftime("%b"), "long_month": when.strftime("%B"),
            "title": slugify(slug, "pretty", cased=True), "slug": slugify(slug),
            "name": slugify(stem), "categories": "/".join(cats), "output_ext": out_ext,
            "collection": "posts", "path": posixpath.splitext(rel)[0],
        }
        template = permalink or _PERMALINK_STYLES.get(style_s, style_s)
        return _clean_url(_fill(str(template), values))
    if kind in site.collections:
        coll = site.collections[kind]
        inner = rel[len(coll.folder) + 1:] if rel.startswith(coll.folder + "/") else rel
        values = {"collection": kind, "path": posixpath.splitext(inner)[0], "name": slugify(stem),
                  "title": slugify(str(data.get("slug") or stem), "pretty", cased=True),
                  "slug": slugify(str(data.get("slug") or stem)), "output_ext": out_ext, "categories": ""}
        template = permalink or coll.meta.get("permalink") or _add_suffix("/:collection/:path", style_s)
        return _clean_url(_fill(str(template), values))
    # pages
    folder = posixpath.dirname(rel)
    values = {"path": folder, "basename": stem, "output_ext": out_ext, "categories": "",
              "title": slugify(stem, "pretty", cased=True), "slug": slugify(stem), "name": slugify(stem)}
    if permalink:
        return _clean_url(_fill(str(permalink), values))
    if out_ext != ".html":
        template = "/:path/:basename:output_ext"
    elif stem == "index":
        template = "/:path/"
    else:
        template = _add_suffix("/:path/:basename", style_s)
    return _clean_url(_fill(template, values))


def _add_suffix(template: str, style: str) -> str:
    if style == "pretty":
        return template + "/"
    if style in ("date", "ordinal", "none", "weekdate"):
        return template + ":output_ext"
    if style.endswith("/"):
        return template + "/"
    if style.endswith(":output_ext"):
        return template + ":output_ext"
    return template


def _categories(data: Mapping) -> list[str]:
    out: list[str] = []
    for key in ("category", "categories"):
        value = data.get(key)
        if isinstance(value, str):
            out.extend(value.split())
        elif isinstance(value, list):
            out.extend(str(v) for v in value)
    return out


def destination_path(url: str) -> str:
    """The file (relative to the built site) Jekyll writes for `url`."""
    path = url.lstrip("/")
    if not path or path.endswith("/"):
        return path + "index.html"
    if not posixpath.splitext(path)[1]:
        return path + ".html"
    return path


def default_title(rel: str, kind: str) -> str:
    """Jekyll's title for a post without one (its slug, titleized); else the file name."""
    stem = posixpath.splitext(posixpath.basename(rel))[0]
    m = _POST_FILE_RE.match(stem)
    if kind in ("posts", "drafts") and m:
        return " ".join(w.capitalize() for w in m.group(4).split("-") if w)
    return stem


def document_info(site: Site, rel: str, kind: str, data: Mapping | None = None) -> dict:
    """Title, URL and date of a document as the catalog lists it (data read from the file if None)."""
    if data is None:
        from blogroto.site.documents import read_document

        doc = read_document(site.root / rel, rel, kind)
        data = doc.data if doc is not None else {}
    merged = {**site.defaults_for(rel, kind), **data}
    when = document_date(rel, kind, merged)
    title = merged.get("title")
    return {
        "title": str(title) if title not in (None, "") else default_title(rel, kind),
        "url": document_url(site, rel, kind, merged),
        "date": when.strftime("%Y-%m-%d") if when else None,
        "kind": kind,
    }


def relative_link(from_url: str, to_url: str) -> str:
    """A relative link from page `from_url` to `to_url` (both site paths): baseurl-proof."""
    start = from_url if from_url.endswith("/") else posixpath.dirname(from_url) + "/"
    rel = posixpath.relpath(to_url, start)
    if to_url.endswith("/") and not rel.endswith("/"):
        rel = "./" if rel == "." else rel + "/"

    return urllib.parse.quote(rel, safe="/:@!$&'()*+,;=-._~")
