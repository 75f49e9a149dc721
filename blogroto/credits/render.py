"""Credits for the artworks behind the filters: the one place that renders them.

Every stylized document credits the source work of each filter it used: as data
(`algorotoscope_credits:` in the front matter, see `credit_record`) so theme layouts can render it
themselves, and as HTML placed after the content or at the author's marker. Figure captions for
`figure: true` sites are rendered here too. The HTML comes from Jinja2 templates in `templates/`
that a site overrides in `_algorotoscope/` (or at the paths its config names).

Jinja2 is imported only when something is rendered, so a no-op build does not pay for it.
"""

from __future__ import annotations

import re
from pathlib import Path

from blogroto.credits.jsonld import jsonld_script
from blogroto.credits.templates import (
    BUILTIN_TEMPLATE_DIRS,
    inert_html,
    sandboxed_environment,
    template_dirs,
)
from blogroto.errors import ConfigError

CREDIT_TEMPLATE = "credit.html.j2"
FIGCAPTION_TEMPLATE = "figcaption.html.j2"
MARKER = "<!-- algorotoscope-credits -->"

_MARKER_LINE_RE = re.compile(r"^[ \t]{0,3}<!--\s*algorotoscope-credits\s*-->[ \t]*\r?$", re.M)
_FENCE_RE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})", re.M)


def front_matter_record(record: dict) -> dict:
    """A credit record for the `algorotoscope_credits:` front matter: its text as layouts print it
    (Jekyll does not escape `{{ credit.title }}`): HTML-escaped and Liquid-inert, like the block."""
    return {k: str(inert_html(v)) if isinstance(v, str) and k not in ("url", "licence_url", "filter") else v
            for k, v in record.items()}


def _compact(html: str) -> str:
    # Markdown ends an HTML block at a blank line, and indents of 4 spaces read as code: emit
    # one block with no blank or indented lines so kramdown passes it through untouched.
    return "\n".join(line.strip() for line in html.splitlines() if line.strip())


class CreditRenderer:
    """Renders credit blocks and figure captions from (site-overridable) Jinja2 templates."""

    def __init__(self, site_root: str | Path | None = None, *, credit_template: str | Path | None = None,
                 figcaption_template: str | Path | None = None):
        self.site_dir = template_dirs(site_root)[0]
        self._explicit = {CREDIT_TEMPLATE: credit_template, FIGCAPTION_TEMPLATE: figcaption_template}
        for name, path in self._explicit.items():
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"credit template not found: {path}", path)
        self._env = None

    def template_files(self) -> list[Path]:
        """The template files in use (their changes must invalidate cached builds)."""
        out = []
        for name in (CREDIT_TEMPLATE, FIGCAPTION_TEMPLATE):
            explicit = self._explicit[name]
            if explicit is not None:
                out.append(Path(explicit))
                continue
            dirs = ([self.site_dir] if self.site_dir else []) + BUILTIN_TEMPLATE_DIRS
            for d in dirs:
                if (d / name).is_file():
                    out.append(d / name)
                    break
        return out

    def _environment(self):
        if self._env is None:
            self._env = sandboxed_environment(self.site_dir)
        return self._env

    def _template(self, name: str):
        import jinja2

        explicit = self._explicit[name]
        env = self._environment()
        try:
            if explicit is not None:
                return env.from_string(Path(explicit).read_text(encoding="utf-8"))
            return env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"template error: {exc.message}", exc.filename or explicit or name, exc.lineno) from exc
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(f"credit template {name!r} not found (blogroto is not installed completely?)",
                              explicit or name) from exc

    def _render(self, name: str, **context) -> str:
        import jinja2

        try:
            return self._template(name).render(**context)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"template error: {exc}", self._explicit[name] or name,
                              getattr(exc, "lineno", None)) from exc

    def render_block(self, records: list[dict], *, document: dict | None = None,
                     jsonld: list[dict] | None = None) -> str:
        """The credits section for a document ('' when nothing was stylized). `jsonld`: schema.org
        objects (blogroto.credits.jsonld.document_jsonld) appended as a JSON-LD script; it is machine
        data, so it is not part of the (overridable) template."""
        if not records:
            return ""
        html = self._render(CREDIT_TEMPLATE, credits=records, document=document or {})
        html = _compact(html)  # credit text is Liquid-inert already (inert_html); no {% raw %} needed
        if jsonld:
            html += "\n" + jsonld_script(jsonld)  # escaped for HTML and Liquid by jsonld_script itself
        return html

    def render_figcaption(self, record: dict, *, alt: str | None = None, title: str | None = None) -> str:
        html = self._render(FIGCAPTION_TEMPLATE, credit=record, alt=alt or "", title=title or "")
        return _compact(html)

    def wrap_figure(self, element: str, record: dict, *, alt: str | None = None, title: str | None = None) -> str:
        """`element` (an <img> tag or a Markdown image) inside a <figure> with a credit caption."""
        # The caption's values are Liquid-inert (inert_html); the element is the author's own and
        # often needs Liquid ({{ site.baseurl }} in the rewritten path).
        caption = self.render_figcaption(record, alt=alt, title=title)
        if element.lstrip().startswith("!"):
            # kramdown does not parse Markdown inside an HTML block unless asked per element.
            return f'<figure class="algorotoscope-figure" markdown="1">\n{element}\n{caption}\n</figure>'
        return f'<figure class="algorotoscope-figure">{element}{caption}</figure>'


def place_credits(body: str, html: str, *, markdown: bool = True) -> str:
    """Insert `html` at the author's `<!-- algorotoscope-credits -->` marker line (outside fenced
    code), else after the content. The rest of the body is left byte-identical."""
    if not html:
        return body
    fences = _fenced_ranges(body) if markdown else []
    for m in _MARKER_LINE_RE.finditer(body):
        if not any(a <= m.start() < b for a, b in fences):
            return body[: m.start()] + html + body[m.end():]
    newline = "\r\n" if "\r\n" in body else "\n"
    sep = "" if body.endswith(("\n", "\r")) or not body else newline
    # A blank line first, so Markdown starts a new block rather than continuing a paragraph.
    return f"{body}{sep}{newline}{html}{newline}"


def _fenced_ranges(body: str) -> list[tuple[int, int]]:
    ranges = []
    pos = 0
    while True:
        m = _FENCE_RE.search(body, pos)
        if m is None:
            return ranges
        fence = m.group(1)
        close = re.compile(r"^[ \t]{0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*\r?$", re.M)
        end_line = body.find("\n", m.end())
        if end_line < 0:
            ranges.append((m.start(), len(body)))
            return ranges
        c = close.search(body, end_line + 1)
        end = c.end() if c else len(body)
        ranges.append((m.start(), end))
        pos = end
