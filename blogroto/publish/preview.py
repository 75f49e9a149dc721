"""A Ruby-free preview of the output site: Markdown + Jinja2 into plain HTML, served on localhost.

    dest = render_preview(out_dir, dest)          # HTML tree under dest/<baseurl>/
    serve_preview(dest, "127.0.0.1", 4000)        # blocks; block=False returns the running server

This is a preview, not a Jekyll clone, and every page says so in a banner. It renders documents
(posts, output collections, pages) with Python-Markdown into one built-in layout
(`templates/preview/layout.html.j2`, overridable in the site's `_algorotoscope/preview/`), at
the URLs Jekyll would give them (so links between pages, the catalog's included, keep working),
and copies static files. The site's own layouts, includes, Sass and plugins are not applied.

Liquid is handled minimally: output tags with variables and common filters (`relative_url`,
`absolute_url`, `date`, `default`, `escape`, ...), `raw`, `comment`, `assign`, `capture`, `for`,
`if`/`elsif`/`else`/`unless`, `highlight`, `link` and `post_url`. Any other tag is dropped.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html as _html
import json
import math
import os
import posixpath
import re
import shutil
import stat
import threading
import urllib.parse
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from blogroto.build import catalog as catalog_mod
from blogroto.errors import BlogrotoError, ConfigError

PREVIEW_MARKER = ".blogroto-preview"
LAYOUT_TEMPLATE = "preview/layout.html.j2"
BANNER = ("Preview by blogroto, not Jekyll: your theme's layouts, includes and plugins are not applied. "
          "Publish the output folder with Jekyll.")
MARKDOWN_EXTENSIONS = ["extra", "sane_lists", "toc"]
# Jekyll's own default excludes: never part of a built site.
JEKYLL_EXCLUDES = ("Gemfile", "Gemfile.lock", "node_modules", "gemfiles", "vendor")
NAV_LIMIT = 8


# --------------------------------------------------------------------------------------------
# Liquid, minimally


_TOKEN_RE = re.compile(
    r"(?P<raw>\{%-?\s*raw\s*-?%\}(?P<rawbody>.*?)\{%-?\s*endraw\s*-?%\})"
    r"|(?P<out>\{\{-?(?P<expr>.*?)-?\}\})"
    r"|(?P<tag>\{%-?\s*(?P<name>\w+)(?P<args>.*?)-?%\})",
    re.S,
)
_BLOCKS = {"for": ("endfor",), "if": ("endif",), "unless": ("endunless",), "case": ("endcase",),
           "capture": ("endcapture",), "comment": ("endcomment",), "highlight": ("endhighlight",)}
_BRANCHES = {"if": ("elsif", "else"), "unless": ("elsif", "else"), "case": ("when", "else"), "for": ("else",)}


class _Undefined:
    pass


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, buf, quote = [], [], None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif text.startswith(sep, i):
            parts.append("".join(buf))
            buf = []
            i += len(sep)
            continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def _to_s(value: Any) -> str:
    if value is None or isinstance(value, _Undefined):
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S +0000")
    if isinstance(value, list):
        return "".join(_to_s(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


def _truthy(value: Any) -> bool:
    # Liquid: only nil and false are false (an empty string is true).
    return not (value is None or value is False or isinstance(value, _Undefined))


def _empty(value: Any) -> bool:
    return value is None or value is False or isinstance(value, _Undefined) or value == "" or value == [] or value == {}


class Liquid:
    """Enough Liquid to preview Markdown posts; not a Liquid implementation."""

    def __init__(self, *, baseurl: str = "", url: str = "", link: Callable[[str], str | None] | None = None,
                 post_url: Callable[[str], str | None] | None = None):
        self.baseurl = baseurl or ""
        self.url = (url or "").rstrip("/")
        self._link = link
        self._post_url = post_url

    # -- parsing ----------------------------------------------------------------------------

    def _tokens(self, text: str) -> list[tuple]:
        tokens: list[tuple] = []
        pos = 0
        for m in _TOKEN_RE.finditer(text):
            tokens.append(("text", text[pos:m.start()]))
            whole = m.group(0)
            lstrip, rstrip = whole[2:3] == "-", whole[-3:-2] == "-"
            if m.group("raw"):
                tokens.append(("text!", m.group("rawbody")))
            elif m.group("out"):
                tokens.append(("out", m.group("expr").strip(), lstrip, rstrip))
            else:
                tokens.append(("tag", m.group("name"), m.group("args").strip(), lstrip, rstrip))
            pos = m.end()
        tokens.append(("text", text[pos:]))
        # whitespace control: {%- / -%} eat the whitespace beside them
        for i, tok in enumerate(tokens):
            if tok[0] in ("out", "tag"):
                if tok[-2] and i > 0 and tokens[i - 1][0] == "text":
                    tokens[i - 1] = ("text", tokens[i - 1][1].rstrip())
                if tok[-1] and i + 1 < len(tokens) and tokens[i + 1][0] == "text":
                    tokens[i + 1] = ("text", tokens[i + 1][1].lstrip())
        return tokens

    def parse(self, text: str) -> list:
        tokens = self._tokens(text)
        nodes, _ = self._parse(tokens, 0, ())
        return nodes

    def _parse(self, tokens: list, i: int, stops: tuple) -> tuple[list, int]:
        nodes: list = []
        while i < len(tokens):
            tok = tokens[i]
            if tok[0] in ("text", "text!"):
                nodes.append(("text", tok[1]))
            elif tok[0] == "out":
                nodes.append(("out", tok[1]))
            else:
                name, args = tok[1], tok[2]
                if name in stops:
                    return nodes, i
                if name in _BLOCKS:
                    end = _BLOCKS[name][0]
                    if name in ("comment", "highlight"):
                        j = i + 1
                        while j < len(tokens) and not (tokens[j][0] == "tag" and tokens[j][1] == end):
                            j += 1
                        if name == "highlight":
                            body = "".join(_token_text(t) for t in tokens[i + 1:j])
                            nodes.append(("highlight", args, body))
                        i = j + 1
                        continue
                    branches = []
                    cond, j = args, i + 1
                    while True:
                        body, j = self._parse(tokens, j, (end, *_BRANCHES.get(name, ())))
                        branches.append((cond, body))
                        if j >= len(tokens):
                            break
                        stop = tokens[j]
                        if stop[1] == end:
                            break
                        cond = ("else",) if stop[1] == "else" else (stop[1], stop[2])
                        j += 1
                    nodes.append(("block", name, branches))
                    i = j + 1
                    continue
                nodes.append(("tag", name, args))
            i += 1
        return nodes, i

    # -- rendering --------------------------------------------------------------------------

    def render(self, text: str, context: dict) -> str:
        if "{" not in text:
            return text
        scopes = [dict(context)]
        out: list[str] = []
        self._render(self.parse(text), scopes, out)
        return "".join(out)

    def _render(self, nodes: list, scopes: list[dict], out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "out":
                out.append(_to_s(self.evaluate(node[1], scopes)))
            elif kind == "highlight":
                lang = node[1].split()[0] if node[1].split() else ""
                code = _html.escape(node[2].strip("\n"))
                out.append(f'<figure class="highlight"><pre><code class="language-{_html.escape(lang)}" '
                           f'data-lang="{_html.escape(lang)}">{code}</code></pre></figure>')
            elif kind == "tag":
                self._tag(node[1], node[2], scopes, out)
            elif kind == "block":
                self._block(node[1], node[2], scopes, out)

    def _tag(self, name: str, args: str, scopes: list[dict], out: list[str]) -> None:
        if name == "assign":
            var, _, expr = args.partition("=")
            scopes[-1][var.strip()] = self.evaluate(expr.strip(), scopes)
        elif name == "link" and self._link:
            out.append(self._link(self._arg_text(args, scopes)) or "")
        elif name == "post_url" and self._post_url:
            out.append(self._post_url(self._arg_text(args, scopes)) or "")
        # anything else (include, seo, feed_meta, plugins' tags) is dropped: this is a preview

    def _arg_text(self, args: str, scopes) -> str:
        # `{% link {{ page.x }} %}` is allowed in Jekyll: resolve embedded output tags first.
        return re.sub(r"\{\{(.*?)\}\}", lambda m: _to_s(self.evaluate(m.group(1).strip(), scopes)), args).strip()

    def _block(self, name: str, branches: list, scopes: list[dict], out: list[str]) -> None:
        if name in ("if", "unless"):
            for cond, body in branches:
                if cond == ("else",):
                    hit = True
                elif isinstance(cond, tuple):  # elsif
                    hit = self.condition(cond[1], scopes)
                else:
                    hit = self.condition(cond, scopes)
                    hit = not hit if name == "unless" else hit
                if hit:
                    self._render(body, scopes, out)
                    return
        elif name == "case":
            subject = self.evaluate(branches[0][0], scopes)
            for cond, body in branches[1:]:
                if cond == ("else",) or any(self.evaluate(v.strip(), scopes) == subject
                                            for v in re.split(r",|\bor\b", cond[1])):
                    self._render(body, scopes, out)
                    return
        elif name == "capture":
            buf: list[str] = []
            self._render(branches[0][1], scopes, buf)
            scopes[-1][branches[0][0].strip()] = "".join(buf)
        elif name == "for":
            self._for(branches, scopes, out)

    def _for(self, branches, scopes, out) -> None:
        header, body = branches[0]
        m = re.match(r"^(\w+)\s+in\s+(\([^)]*\)|\S+)(.*)$", header.strip())
        if not m:
            return
        var, source, rest = m.groups()
        items = self.evaluate(source, scopes)
        if isinstance(items, dict):
            items = [[k, v] for k, v in items.items()]
        if not isinstance(items, list) or not items:
            if len(branches) > 1:
                self._render(branches[1][1], scopes, out)
            return
        opts = dict(re.findall(r"(\w+)\s*:\s*(\S+)", rest))
        if "reversed" in rest.split():
            items = list(reversed(items))
        offset = int(self.evaluate(opts["offset"], scopes) or 0) if "offset" in opts else 0
        items = items[offset:]
        if "limit" in opts:
            items = items[: int(self.evaluate(opts["limit"], scopes) or 0)]
        n = len(items)
        for i, item in enumerate(items):
            loop = {"index": i + 1, "index0": i, "rindex": n - i, "rindex0": n - i - 1, "first": i == 0,
                    "last": i == n - 1, "length": n}
            scopes.append({var: item, "forloop": loop})
            try:
                self._render(body, scopes, out)
            finally:
                scopes.pop()

    # -- expressions ------------------------------------------------------------------------

    def condition(self, text: str, scopes) -> bool:
        # Liquid evaluates and/or right to left, without precedence.
        parts = re.split(r"\s+(and|or)\s+", text.strip())
        result = self._compare(parts[-1], scopes)
        for i in range(len(parts) - 2, 0, -2):
            left = self._compare(parts[i - 1], scopes)
            result = (left and result) if parts[i] == "and" else (left or result)
        return result

    def _compare(self, text: str, scopes) -> bool:
        m = re.match(r"^(.+?)\s*(==|!=|<>|>=|<=|>|<|\bcontains\b)\s*(.+)$", text.strip())
        if not m:
            return _truthy(self.evaluate(text, scopes))
        a, op, b = self.evaluate(m.group(1), scopes), m.group(2), m.group(3).strip()
        if b in ("empty", "blank"):
            return _empty(a) if op == "==" else not _empty(a)
        bv = self.evaluate(b, scopes)
        try:
            if op == "==":
                return a == bv
            if op in ("!=", "<>"):
                return a != bv
            if op == "contains":
                if isinstance(a, str):
                    return _to_s(bv) in a
                return isinstance(a, (list, dict)) and bv in a
            return {">": a > bv, "<": a < bv, ">=": a >= bv, "<=": a <= bv}[op]
        except TypeError:
            return False

    def evaluate(self, expr: str, scopes) -> Any:
        parts = _split_outside_quotes(expr, "|")
        value = self._value(parts[0].strip(), scopes)
        for part in parts[1:]:
            name, _, raw_args = part.partition(":")
            args = [self._value(a.strip(), scopes) for a in _split_outside_quotes(raw_args, ",")] \
                if raw_args.strip() else []
            value = self._filter(name.strip(), value, args)
        return value

    def _value(self, token: str, scopes) -> Any:
        if not token:
            return None
        if token[0] in "'\"" and token[-1] == token[0] and len(token) >= 2:
            return token[1:-1]
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if re.fullmatch(r"-?\d+\.\d+", token):
            return float(token)
        if token in ("true", "false"):
            return token == "true"
        if token in ("nil", "null"):
            return None
        if token in ("empty", "blank"):
            return ""
        m = re.fullmatch(r"\((\S+)\.\.(\S+)\)", token)
        if m:
            lo, hi = self._value(m.group(1), scopes), self._value(m.group(2), scopes)
            return list(range(int(lo or 0), int(hi or 0) + 1))
        path = re.findall(r"\[([^\]]*)\]|([^.\[\]]+)", token)
        value: Any = _Undefined()
        for i, (bracket, name) in enumerate(path):
            key: Any = self._value(bracket.strip(), scopes) if bracket else name
            if i == 0:
                value = next((s[key] for s in reversed(scopes) if isinstance(key, str) and key in s), _Undefined())
                continue
            value = _lookup(value, key)
        return None if isinstance(value, _Undefined) else value

    # -- filters ----------------------------------------------------------------------------

    def relative_url(self, value: Any) -> Any:
        if value is None:
            return None
        text = str(value)
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//", text):
            return text
        return self.baseurl + "/" + text.lstrip("/") if text else (self.baseurl or "/")

    def _filter(self, name: str, value: Any, args: list) -> Any:
        a0 = args[0] if args else None
        if name == "relative_url":
            return self.relative_url(value)
        if name == "absolute_url":
            rel = self.relative_url(value)
            return rel if rel is None or "://" in rel else self.url + rel
        if name == "default":
            allow_false = len(args) > 1 and args[1] is True
            return a0 if (_empty(value) and not (allow_false and value is False)) else value
        if name.startswith("date"):
            return _date_filter(name, value, a0)
        simple = _SIMPLE_FILTERS.get(name)
        if simple is None:
            return value  # a filter we do not know (a plugin's): leave the value as it is
        try:
            return simple(value, *args)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError, ZeroDivisionError):
            return value


def _token_text(tok: tuple) -> str:
    if tok[0] in ("text", "text!"):
        return tok[1]
    if tok[0] == "out":
        return "{{ " + tok[1] + " }}"
    return "{% " + tok[1] + " " + tok[2] + " %}"


def _lookup(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        if key in value:
            return value[key]
        if key == "size":
            return len(value)
        return _Undefined()
    if isinstance(value, (list, str)):
        if key == "size":
            return len(value)
        if isinstance(value, list) and key == "first":
            return value[0] if value else None
        if isinstance(value, list) and key == "last":
            return value[-1] if value else None
        if isinstance(key, int) and -len(value) <= key < len(value):
            return value[key]
    return _Undefined()


def _as_date(value: Any) -> _dt.datetime | None:
    if isinstance(value, str) and value in ("now", "today"):
        return _dt.datetime.now()
    return catalog_mod._as_datetime(value)


def _date_filter(name: str, value: Any, fmt: Any) -> Any:
    when = _as_date(value)
    if when is None:
        return value
    formats = {"date_to_string": "%d %b %Y", "date_to_long_string": "%d %B %Y",
               "date_to_rfc822": "%a, %d %b %Y %H:%M:%S +0000"}
    if name == "date_to_xmlschema":
        return when.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    if name in formats:
        return when.strftime(formats[name])
    if name == "date" and fmt:
        try:
            return when.strftime(str(fmt))
        except ValueError:
            return value
    return value


def _slug(value, *_):
    return catalog_mod._slugify(str(value))


def _markdownify(value, *_):
    import markdown

    return markdown.markdown(_to_s(value), extensions=MARKDOWN_EXTENSIONS)


def _where(value, key, target=None):
    return [v for v in value if isinstance(v, dict) and (v.get(key) == target or
                                                         (isinstance(v.get(key), list) and target in v.get(key)))]


_SIMPLE_FILTERS: dict[str, Callable] = {
    "escape": lambda v, *_: _html.escape(_to_s(v)),
    "xml_escape": lambda v, *_: _html.escape(_to_s(v)),
    "escape_once": lambda v, *_: _html.escape(_html.unescape(_to_s(v))),
    "cgi_escape": lambda v, *_: urllib.parse.quote_plus(_to_s(v)),
    "uri_escape": lambda v, *_: urllib.parse.quote(_to_s(v), safe="/:?#[]@!$&'()*+,;="),
    "url_encode": lambda v, *_: urllib.parse.quote_plus(_to_s(v)),
    "upcase": lambda v, *_: _to_s(v).upper(),
    "downcase": lambda v, *_: _to_s(v).lower(),
    "capitalize": lambda v, *_: _to_s(v).capitalize(),
    "strip": lambda v, *_: _to_s(v).strip(),
    "lstrip": lambda v, *_: _to_s(v).lstrip(),
    "rstrip": lambda v, *_: _to_s(v).rstrip(),
    "strip_html": lambda v, *_: re.sub(r"<[^>]*>", "", _to_s(v)),
    "strip_newlines": lambda v, *_: _to_s(v).replace("\n", "").replace("\r", ""),
    "newline_to_br": lambda v, *_: _to_s(v).replace("\n", "<br />\n"),
    "append": lambda v, s="", *_: _to_s(v) + _to_s(s),
    "prepend": lambda v, s="", *_: _to_s(s) + _to_s(v),
    "replace": lambda v, a, b="", *_: _to_s(v).replace(_to_s(a), _to_s(b)),
    "replace_first": lambda v, a, b="", *_: _to_s(v).replace(_to_s(a), _to_s(b), 1),
    "remove": lambda v, a, *_: _to_s(v).replace(_to_s(a), ""),
    "remove_first": lambda v, a, *_: _to_s(v).replace(_to_s(a), "", 1),
    "split": lambda v, sep=" ", *_: _to_s(v).split(_to_s(sep)) if sep else list(_to_s(v)),
    "join": lambda v, sep=" ", *_: _to_s(sep).join(_to_s(x) for x in v) if isinstance(v, list) else v,
    "size": lambda v, *_: len(v) if isinstance(v, (list, str, dict)) else 0,
    "first": lambda v, *_: v[0] if v else None,
    "last": lambda v, *_: v[-1] if v else None,
    "reverse": lambda v, *_: list(reversed(v)) if isinstance(v, list) else v,
    "sort": lambda v, key=None, *_: sorted(v, key=(lambda x: (x.get(key) is None, x.get(key))) if key else None),
    "uniq": lambda v, *_: list(dict.fromkeys(v)),
    "compact": lambda v, *_: [x for x in v if x is not None],
    "concat": lambda v, other=None, *_: list(v or []) + list(other or []),
    "map": lambda v, key, *_: [x.get(key) if isinstance(x, dict) else None for x in v],
    "where": _where,
    "truncate": lambda v, n=50, end="...", *_: _to_s(v) if len(_to_s(v)) <= int(n)
    else _to_s(v)[: max(0, int(n) - len(_to_s(end)))] + _to_s(end),
    "truncatewords": lambda v, n=15, end="...", *_: " ".join(_to_s(v).split()[: int(n)])
    + (_to_s(end) if len(_to_s(v).split()) > int(n) else ""),
    "number_of_words": lambda v, *_: len(_to_s(v).split()),
    "slice": lambda v, start, length=1, *_: v[int(start): int(start) + int(length)],
    "plus": lambda v, n, *_: (v or 0) + n,
    "minus": lambda v, n, *_: (v or 0) - n,
    "times": lambda v, n, *_: (v or 0) * n,
    "divided_by": lambda v, n, *_: (v // n) if isinstance(v, int) and isinstance(n, int) else v / n,
    "modulo": lambda v, n, *_: v % n,
    "abs": lambda v, *_: abs(v),
    "round": lambda v, n=0, *_: round(float(v), int(n)) if n else round(float(v)),
    "ceil": lambda v, *_: math.ceil(float(v)),
    "floor": lambda v, *_: math.floor(float(v)),
    "slugify": _slug,
    "jsonify": lambda v, *_: json.dumps(v, default=str, ensure_ascii=False),
    "markdownify": _markdownify,
    "smartify": lambda v, *_: _to_s(v),
    "absolute": lambda v, *_: v,
}


# --------------------------------------------------------------------------------------------
# rendering the output site


def _link_or_copy(tree, src: Path, dst: Path) -> None:
    """`dst` (inside the preview folder `tree`) a hard link to, or copy of, `src`; written through
    blogroto.fsutil.OwnedTree: never through a symlink, never outside the preview folder."""
    rel = tree.rel_of(dst)
    st = tree.lstat(rel)
    try:
        if st is not None and os.path.samefile(src, dst) and not os.path.islink(dst):
            return
    except OSError:
        pass
    try:
        tree.link(src, rel)
    except OSError:
        with open(src, "rb") as fin, tree.writer(rel) as fout:
            shutil.copyfileobj(fin, fout)


def _write_if_changed(tree, path: Path, text: str) -> None:
    data = text.encode("utf-8")
    rel = tree.rel_of(path)
    st = tree.lstat(rel)
    try:
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == len(data) and tree.read_bytes(rel) == data:
            return
    except (OSError, BlogrotoError):
        pass
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
    import markdown
    from markupsafe import Markup

    from blogroto.site.config import FRONT_MATTER_KEY
    from blogroto.site.documents import read_document
    from blogroto.site.model import Site

    out_dir = Path(out_dir).resolve()
    dest = Path(dest).resolve()
    warn = warnings.append if warnings is not None else (lambda _m: None)
    if not out_dir.is_dir():
        raise ConfigError("the output site does not exist (run `blogroto build` first)", out_dir)
    if dest == out_dir or _is_within(dest, out_dir) or _is_within(out_dir, dest):
        raise ConfigError("the preview folder must be outside the output site", dest)
    if dest.exists() and any(dest.iterdir()) and not (dest / PREVIEW_MARKER).exists():
        raise ConfigError("the preview folder is not empty and was not made by blogroto", dest)
    dest.mkdir(parents=True, exist_ok=True)
    from blogroto.fsutil import OwnedTree

    tree = OwnedTree(dest, "preview", autocreate=True)
    _write_if_changed(tree, dest / PREVIEW_MARKER, "Written by `blogroto preview`; deleted and rewritten freely.\n")

    # The output and cache named in the copied config are not this tree's business: point them away.
    site = Site(out_dir, output=dest / ".unused-output", cache=dest / ".unused-cache")
    baseurl = site.baseurl or ""
    root = dest / baseurl.strip("/") if baseurl else dest

    documents: list[dict] = []
    statics: list[tuple[str, Path]] = []
    for sf in site.walk(False):
        rel = sf.rel
        if sf.is_link or rel.split("/")[0] in JEKYLL_EXCLUDES:
            continue
        kind = sf.kind
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
        url = catalog_mod.document_url(site, rel, kind, data)
        page = dict(data)
        page.update({"url": url, "path": rel, "collection": kind if kind not in ("pages",) else None,
                     "title": data.get("title") or (catalog_mod.default_title(rel, kind) if kind != "pages" else None),
                     "date": catalog_mod.document_date(rel, kind, data), "content": "", "excerpt": ""})
        documents.append({"doc": doc, "page": page, "kind": kind, "markdown": doc.is_markdown})

    posts = sorted((d["page"] for d in documents if d["kind"] == "posts"),
                   key=lambda p: p["date"] or _dt.datetime.min, reverse=True)
    for i, p in enumerate(posts):
        p["previous"] = posts[i + 1] if i + 1 < len(posts) else None
        p["next"] = posts[i - 1] if i > 0 else None
    by_rel = {d["page"]["path"]: d["page"]["url"] for d in documents}
    by_post_name = {posixpath.splitext(posixpath.basename(p["path"]))[0]: p["url"] for p in posts}
    site_ctx = dict(site.config)
    site_ctx.update({"baseurl": baseurl, "url": site.config.get("url") or "", "posts": posts,
                     "pages": [d["page"] for d in documents if d["kind"] == "pages"],
                     "documents": [d["page"] for d in documents], "data": _load_data(out_dir, warnings),
                     "time": _dt.datetime.now(), "categories": {}, "tags": {}})
    for label, coll in site.collections.items():
        site_ctx[label] = [d["page"] for d in documents if d["kind"] == label]
    for p in posts:
        tags = p.get("tags")
        for tag in tags.split() if isinstance(tags, str) else tags if isinstance(tags, list) else []:
            site_ctx["tags"].setdefault(str(tag), []).append(p)
    liquid = Liquid(baseurl=baseurl, url=site_ctx["url"],
                    link=lambda target: liquid.relative_url(by_rel.get(target.strip("/"))) if target.strip("/") in by_rel else None,
                    post_url=lambda name: liquid.relative_url(by_post_name[name]) if name in by_post_name else None)

    catalog = catalog_mod.catalog_settings(site)
    catalog_url = catalog.path if any(d["page"].get("algorotoscope_catalog") == "index" for d in documents) else None
    nav = [{"title": "Home", "url": liquid.relative_url("/")}]
    for d in documents:
        p = d["page"]
        if d["kind"] == "pages" and p.get("title") and p["url"] != "/" and not p.get("algorotoscope_catalog") \
                and catalog_mod.destination_path(p["url"]).endswith(".html") and len(nav) < NAV_LIMIT:
            nav.append({"title": p["title"], "url": liquid.relative_url(p["url"])})
    for label, coll in site.collections.items():
        for p in site_ctx[label]:
            if coll.output and p.get("title") and len(nav) < NAV_LIMIT:
                nav.append({"title": p["title"], "url": liquid.relative_url(p["url"])})
    if catalog_url:
        nav.append({"title": "Filters", "url": liquid.relative_url(catalog_url)})

    env = catalog_mod.environment(out_dir)
    written: set[Path] = {dest / PREVIEW_MARKER}
    # Posts first: pages listing them (the home page) may show their excerpts.
    order = sorted(documents, key=lambda d: {"posts": 0, "pages": 2}.get(d["kind"], 1))
    for d in order:
        page, doc = d["page"], d["doc"]
        ext = posixpath.splitext(page["path"])[1].lower()
        if ext in (".scss", ".sass"):
            warn(f"{page['path']}: Sass is not compiled in the preview")
            continue
        body = doc.body
        if page.get("render_with_liquid") is not False:
            body = liquid.render(body, {"site": site_ctx, "page": page, "paginator": None})
        if d["markdown"]:
            body = markdown.markdown(body, extensions=MARKDOWN_EXTENSIONS)
        page["content"] = body
        m = re.search(r"<p>.*?</p>", body, re.S)
        page["excerpt"] = m.group(0) if m else ""
        target = root / catalog_mod.destination_path(page["url"])
        if not _is_within(target, root):
            warn(f"{page['path']}: permalink {page['url']!r} points outside the site; skipped")
            continue
        if target.suffix.lower() in (".html", ".htm") and page.get("layout") not in ("none", False) and \
                not ("layout" in doc.data and doc.data["layout"] is None):
            image = _image_path(page.get("image"))
            is_home = page["url"] == "/"
            listed = [p for p in posts if is_home and f'href="{liquid.relative_url(p["url"])}"' not in body]
            html = catalog_mod.render_template(
                env, LAYOUT_TEMPLATE, site={"title": site.config.get("title"), "description": site.config.get("description")},
                page={"title": page.get("title"), "date": page["date"].strftime("%B %-d, %Y") if page["date"] and d["kind"] == "posts" else None,
                      "image": liquid.relative_url(image) if image else None, "is_catalog": bool(page.get("algorotoscope_catalog")),
                      "stylized": bool(page.get(FRONT_MATTER_KEY))},
                content=Markup(body), nav=nav, banner=BANNER, home=liquid.relative_url("/"),
                posts=[{"title": p["title"], "url": liquid.relative_url(p["url"]),
                        "date": p["date"].strftime("%Y-%m-%d") if p["date"] else ""} for p in listed])
        else:
            html = body
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
        redirect = baseurl + "/"
        _write_if_changed(tree, dest / "index.html", f'<!DOCTYPE html><meta charset="utf-8"><title>Redirecting</title>'
                                               f'<meta http-equiv="refresh" content="0; url={_html.escape(redirect)}">'
                                               f'<a href="{_html.escape(redirect)}">{_html.escape(redirect)}</a>')
        written.add(dest / "index.html")
    _remove_stale(tree, dest, written)
    return dest


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
