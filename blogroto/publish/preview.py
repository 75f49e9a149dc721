"""A Ruby-free preview of the output site: Markdown + Jinja2 into plain HTML, served on localhost.

    dest = render_preview(out_dir, dest)          # HTML tree under dest/<baseurl>/
    serve_preview(dest, "127.0.0.1", 4000)        # blocks; block=False returns the running server

This is a preview, not a Jekyll clone, and every page says so in a banner. It renders documents
(posts, output collections, pages) with Python-Markdown into one built-in layout
(`templates/preview/layout.html.j2`, overridable in the site's `_algorotoscope/preview/`), at
the URLs Jekyll would give them (so links between pages, the catalog's included, keep working),
and copies static files. The site's own layouts, includes, Sass and plugins are not applied.

Liquid is rendered by python-liquid with Jekyll's filters and tags (`blogroto/publish/liquid.py`);
the site's includes and plugins' tags render nothing.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html as _html
import json
import os
import posixpath
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from blogroto.build import catalog as catalog_mod
from blogroto.credits.templates import render_template
from blogroto.errors import BlogrotoError, ConfigError
from blogroto.publish.liquid import MARKDOWN_EXTENSIONS, JekyllLiquid
from blogroto.site import urls

PREVIEW_MARKER = ".blogroto-preview"
LAYOUT_TEMPLATE = "preview/layout.html.j2"
BANNER = ("Preview by blogroto, not Jekyll: your theme's layouts, includes and plugins are not applied. "
          "Publish the output folder with Jekyll.")
# Jekyll's own default excludes: never part of a built site.
JEKYLL_EXCLUDES = ("Gemfile", "Gemfile.lock", "node_modules", "gemfiles", "vendor")
NAV_LIMIT = 8


# --------------------------------------------------------------------------------------------
# rendering the output site


def _link_or_copy(tree, src: Path, dst: Path) -> None:
    """`dst` (inside the preview folder `tree`) a hard link to, or copy of, `src`; written through
    blogroto.owned_tree.OwnedTree: never through a symlink, never outside the preview folder."""
    rel = tree.rel_of(dst)
    st = tree.lstat(rel)
    try:
        if st is not None and os.path.samefile(src, dst) and not os.path.islink(dst):
            return
    except OSError:
        pass
    tree.link_or_copy(src, rel)


def _write_if_changed(tree, path: Path, text: str) -> None:
    data, rel = text.encode("utf-8"), tree.rel_of(path)
    if not tree.holds(rel, data):
        tree.write_bytes(rel, data)


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _image_path(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("path") or value.get("image") or value.get("url")
    return value if isinstance(value, str) and value.strip() else None


def _load_data(root: Path, warnings: list[str] | None = None) -> dict:
    from blogroto.safeyaml import load_yaml_file

    data: dict = {}
    folder = root / "_data"
    if not folder.is_dir():
        return data
    for path in sorted(folder.iterdir()):
        try:
            if path.suffix in (".yml", ".yaml"):
                data[path.stem] = load_yaml_file(path)  # bounded nesting and alias expansion
            elif path.suffix == ".json":
                data[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except BlogrotoError as exc:
            if warnings is not None:
                warnings.append(f"{exc}; site.data.{path.stem} left empty")
        except (OSError, ValueError):
            continue
    return data


def render_preview(out_dir: str | Path, dest: str | Path, *, warnings: list[str] | None = None) -> Path:
    """Render the output site `out_dir` into `dest` (a folder blogroto owns); returns `dest`.

    The site lands in `dest/<baseurl>/` with a redirect at the top, so it is served at the same
    paths as on the real site: image URLs with the baseurl baked in keep working.
    """
    from blogroto.site.model import Site

    out_dir = Path(out_dir).resolve()
    dest = Path(dest).resolve()
    warn = warnings.append if warnings is not None else (lambda _m: None)
    tree = _claim_dest(out_dir, dest)
    # The output and cache named in the copied config are not this tree's business: point them away.
    site = Site(out_dir, output=dest / ".unused-output", cache=dest / ".unused-cache")
    baseurl = site.baseurl or ""
    root = dest / baseurl.strip("/") if baseurl else dest
    documents, statics = _collect(site, warn)
    ctx = _Context(site, documents, out_dir, warnings)

    written: set[Path] = {dest / PREVIEW_MARKER}
    # Posts first: pages listing them (the home page) may show their excerpts.
    for d in sorted(documents, key=lambda d: {"posts": 0, "pages": 2}.get(d["kind"], 1)):
        page = d["page"]
        if posixpath.splitext(page["path"])[1].lower() in (".scss", ".sass"):
            warn(f"{page['path']}: Sass is not compiled in the preview")
            continue
        target = root / urls.destination_path(page["url"])
        if not _is_within(target, root):
            warn(f"{page['path']}: permalink {page['url']!r} points outside the site; skipped")
            continue
        html = ctx.render(d, target)
        if target in written:
            warn(f"{page['path']}: another document already has the URL {page['url']}")
        _write_if_changed(tree, target, html)
        written.add(target)
    for rel, path in statics:
        target = root / rel
        if target in written:
            continue
        try:
            _link_or_copy(tree, path, target)
        except OSError as exc:
            warn(f"{rel}: cannot copy into the preview: {exc}")
            continue
        written.add(target)
    if baseurl:
        redirect = _html.escape(baseurl + "/")
        _write_if_changed(tree, dest / "index.html", f'<!DOCTYPE html><meta charset="utf-8"><title>Redirecting</title>'
                                                     f'<meta http-equiv="refresh" content="0; url={redirect}">'
                                                     f'<a href="{redirect}">{redirect}</a>')
        written.add(dest / "index.html")
    _remove_stale(tree, dest, written)
    return dest


def _claim_dest(out_dir: Path, dest: Path):
    """The preview folder, checked (outside the output, empty or ours) and marked as blogroto's."""
    from blogroto.owned_tree import OwnedTree

    if not out_dir.is_dir():
        raise ConfigError("the output site does not exist (run `blogroto build` first)", out_dir)
    if dest == out_dir or _is_within(dest, out_dir) or _is_within(out_dir, dest):
        raise ConfigError("the preview folder must be outside the output site", dest)
    if dest.exists() and any(dest.iterdir()) and not (dest / PREVIEW_MARKER).exists():
        raise ConfigError("the preview folder is not empty and was not made by blogroto", dest)
    dest.mkdir(parents=True, exist_ok=True)
    tree = OwnedTree(dest, "preview", autocreate=True)
    _write_if_changed(tree, dest / PREVIEW_MARKER, "Written by `blogroto preview`; deleted and rewritten freely.\n")
    return tree


def _collect(site, warn) -> tuple[list[dict], list[tuple[str, Path]]]:
    """The documents Jekyll would render (with their `page` variables) and the static files it copies."""
    from blogroto.site.documents import read_document

    documents: list[dict] = []
    statics: list[tuple[str, Path]] = []
    for sf in site.walk(False):
        rel, kind = sf.rel, sf.kind
        if sf.is_link or rel.split("/")[0] in JEKYLL_EXCLUDES:
            continue
        if kind is None:
            if not site.hidden_from_jekyll(rel):
                statics.append((rel, sf.path))
            continue
        if kind in site.collections and not site.collections[kind].output:
            continue
        try:
            doc = read_document(sf.path, rel, kind)
        except BlogrotoError as exc:
            warn(str(exc))
            continue
        if doc is None:
            if kind == "pages":
                statics.append((rel, sf.path))
            continue
        data = {**site.defaults_for(rel, kind), **doc.data}
        if data.get("published") is False:
            continue
        page = dict(data)
        page.update({"url": urls.document_url(site, rel, kind, data), "path": rel,
                     "collection": kind if kind not in ("pages",) else None,
                     "title": data.get("title") or (urls.default_title(rel, kind) if kind != "pages" else None),
                     "date": urls.document_date(rel, kind, data), "content": "", "excerpt": ""})
        documents.append({"doc": doc, "page": page, "kind": kind, "markdown": doc.is_markdown})
    return documents, statics


class _Context:
    """What every page of one preview shares: Jekyll's `site` variable, Liquid, the navigation, the layout."""

    def __init__(self, site, documents: list[dict], out_dir: Path, warnings: list[str] | None):
        self.site = site
        baseurl = site.baseurl or ""
        posts = sorted((d["page"] for d in documents if d["kind"] == "posts"),
                       key=lambda p: p["date"] or _dt.datetime.min, reverse=True)
        for i, p in enumerate(posts):
            p["previous"] = posts[i + 1] if i + 1 < len(posts) else None
            p["next"] = posts[i - 1] if i > 0 else None
        self.posts = posts
        ctx = dict(site.config)
        ctx.update({"baseurl": baseurl, "url": site.config.get("url") or "", "posts": posts,
                    "pages": [d["page"] for d in documents if d["kind"] == "pages"],
                    "documents": [d["page"] for d in documents], "data": _load_data(out_dir, warnings),
                    "time": _dt.datetime.now(), "categories": {}, "tags": {}})
        for label in site.collections:
            ctx[label] = [d["page"] for d in documents if d["kind"] == label]
        for p in posts:
            tags = p.get("tags")
            for tag in tags.split() if isinstance(tags, str) else tags if isinstance(tags, list) else []:
                ctx["tags"].setdefault(str(tag), []).append(p)
        self.site_ctx = ctx
        by_rel = {d["page"]["path"]: d["page"]["url"] for d in documents}
        by_post_name = {posixpath.splitext(posixpath.basename(p["path"]))[0]: p["url"] for p in posts}
        self.liquid = liquid = JekyllLiquid(
            baseurl=baseurl, url=ctx["url"],
            link=lambda target: liquid.relative_url(by_rel[target.strip("/")]) if target.strip("/") in by_rel else None,
            post_url=lambda name: liquid.relative_url(by_post_name[name]) if name in by_post_name else None)
        self.nav = self._navigation(documents)
        self.env = catalog_mod.environment(out_dir)

    def _navigation(self, documents: list[dict]) -> list[dict]:
        url = self.liquid.relative_url
        nav = [{"title": "Home", "url": url("/")}]
        for d in documents:
            p = d["page"]
            if d["kind"] == "pages" and p.get("title") and p["url"] != "/" and not p.get("algorotoscope_catalog") \
                    and urls.destination_path(p["url"]).endswith(".html") and len(nav) < NAV_LIMIT:
                nav.append({"title": p["title"], "url": url(p["url"])})
        for label, coll in self.site.collections.items():
            for p in self.site_ctx[label]:
                if coll.output and p.get("title") and len(nav) < NAV_LIMIT:
                    nav.append({"title": p["title"], "url": url(p["url"])})
        if any(d["page"].get("algorotoscope_catalog") == "index" for d in documents):
            nav.append({"title": "Filters", "url": url(catalog_mod.catalog_settings(self.site).path)})
        return nav

    def render(self, d: dict, target: Path) -> str:
        """One document's page: Liquid, then Markdown, then (for HTML pages with a layout) the layout."""
        import markdown
        from markupsafe import Markup

        from blogroto.site.config import FRONT_MATTER_KEY

        page, doc, url = d["page"], d["doc"], self.liquid.relative_url
        body = doc.body
        if page.get("render_with_liquid") is not False:
            body = self.liquid.render(body, {"site": self.site_ctx, "page": page, "paginator": None})
        if d["markdown"]:
            body = markdown.markdown(body, extensions=MARKDOWN_EXTENSIONS)
        page["content"] = body
        m = re.search(r"<p>.*?</p>", body, re.S)
        page["excerpt"] = m.group(0) if m else ""
        if target.suffix.lower() not in (".html", ".htm") or page.get("layout") in ("none", False) or \
                ("layout" in doc.data and doc.data["layout"] is None):
            return body
        image = _image_path(page.get("image"))
        is_home = page["url"] == "/"
        listed = [p for p in self.posts if is_home and f'href="{url(p["url"])}"' not in body]
        return render_template(
            self.env, LAYOUT_TEMPLATE,
            site={"title": self.site.config.get("title"), "description": self.site.config.get("description")},
            page={"title": page.get("title"),
                  "date": page["date"].strftime("%B %-d, %Y") if page["date"] and d["kind"] == "posts" else None,
                  "image": url(image) if image else None, "is_catalog": bool(page.get("algorotoscope_catalog")),
                  "stylized": bool(page.get(FRONT_MATTER_KEY))},
            content=Markup(body), nav=self.nav, banner=BANNER, home=url("/"),
            posts=[{"title": p["title"], "url": url(p["url"]), "date": p["date"].strftime("%Y-%m-%d") if p["date"] else ""}
                   for p in listed])


def _remove_stale(tree, dest: Path, keep: set[Path]) -> None:
    for folder, dirs, files in os.walk(dest, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder) / name
            if path not in keep:
                tree.remove(tree.rel_of(path))  # the entry itself, never through a symlink
        for name in dirs:
            try:
                (Path(folder) / name).rmdir()
            except OSError:
                pass


# --------------------------------------------------------------------------------------------
# serving


class _Handler(SimpleHTTPRequestHandler):
    """Static files, plus Jekyll's extensionless URLs (`/about` -> about.html), never cached."""

    def translate_path(self, path: str) -> str:
        local = super().translate_path(path)
        if not os.path.exists(local) and os.path.isfile(local + ".html"):
            return local + ".html"
        return local

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


def serve_preview(dest: str | Path, host: str = "127.0.0.1", port: int = 4000, *, block: bool = True,
                  verbose: bool = False) -> ThreadingHTTPServer:
    """Serve `dest` over HTTP on host:port (port 0 picks a free one; see `server.server_address`).

    block=True serves until Ctrl-C, then closes the server and returns it; block=False serves
    from a daemon thread and returns at once: call `server.shutdown()` when done.
    """
    handler = functools.partial(_Handler, directory=str(dest))
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise BlogrotoError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
    server.daemon_threads = True
    server.verbose = verbose
    if not block:
        threading.Thread(target=server.serve_forever, name="blogroto-preview", daemon=True).start()
        return server
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return server


def preview_url(server: ThreadingHTTPServer, baseurl: str = "") -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{baseurl}/"
