"""Jekyll's Liquid for the preview: python-liquid with Jekyll's own filters and tags added.

    liquid = JekyllLiquid(baseurl="/blog", url="https://example.org", link=..., post_url=...)
    html = liquid.render(markdown_source, {"site": ..., "page": ...})

python-liquid is a maintained implementation of Shopify's Liquid (the language Jekyll uses), so
`for`/`if`/`case`/`capture`/whitespace control and the standard filters behave as in Jekyll. What
Jekyll adds is registered here: `relative_url`, `absolute_url`, `markdownify`, `slugify`,
`jsonify`, `where` (matching inside arrays, as Jekyll's does), the `date_to_*` filters, and the
`highlight`, `link` and `post_url` tags. Anything else a site relies on (its includes, a plugin's
tags or filters) is left out quietly: this is a preview, and its banner says so.

Sites are untrusted: the environment is lax (a broken tag renders nothing rather than failing the
page), and loops and output are bounded, so a hostile post cannot make the preview run forever or
fill the disk.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html as _html
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from blogroto.site.urls import as_datetime, slugify

MARKDOWN_EXTENSIONS = ["extra", "sane_lists", "toc"]
LOOP_LIMIT = 100_000  # iterations per render
OUTPUT_LIMIT = 20_000_000  # characters per render


def _text(value: Any) -> str:
    """A filter argument as the string Liquid would print (undefined and nil print nothing)."""
    from liquid import Undefined

    if value is None or isinstance(value, Undefined):
        return ""
    return str(value)


def _date_filter(fmt: str) -> Callable[[Any], Any]:
    def apply(value: Any, *_: Any) -> Any:
        when = _dt.datetime.now() if value in ("now", "today") else as_datetime(value)
        return value if when is None else when.strftime(fmt)

    return apply


def _markdownify(value: Any, *_: Any) -> str:
    import markdown

    return markdown.markdown(_text(value), extensions=MARKDOWN_EXTENSIONS)


def _where(value: Any, key: Any, target: Any = None) -> list:
    # Jekyll's `where` also matches when the property is an array that contains the target.
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [v for v in items if isinstance(v, dict)
            and (v.get(key) == target or (isinstance(v.get(key), list) and target in v.get(key)))]


_JEKYLL_FILTERS: dict[str, Callable] = {
    "date_to_string": _date_filter("%d %b %Y"),
    "date_to_long_string": _date_filter("%d %B %Y"),
    "date_to_rfc822": _date_filter("%a, %d %b %Y %H:%M:%S +0000"),
    "date_to_xmlschema": _date_filter("%Y-%m-%dT%H:%M:%S+00:00"),
    "slugify": lambda v, *_: slugify(_text(v)),
    "jsonify": lambda v, *_: json.dumps(v, default=str, ensure_ascii=False),
    "markdownify": _markdownify,
    "smartify": lambda v, *_: _text(v),
    "xml_escape": lambda v, *_: _html.escape(_text(v)),
    "cgi_escape": lambda v, *_: urllib.parse.quote_plus(_text(v)),
    "uri_escape": lambda v, *_: urllib.parse.quote(_text(v), safe="/:?#[]@!$&'()*+,;="),
    "number_of_words": lambda v, *_: len(_text(v).split()),
    "where": _where,
}


@functools.lru_cache(maxsize=1)
def _tag_classes() -> tuple[type, type]:
    """The `highlight` block and the `link`/`post_url` tags, built once python-liquid is imported."""
    from liquid import Tag
    from liquid.ast import Node
    from liquid.token import TOKEN_EOF, TOKEN_EXPRESSION, TOKEN_TAG

    class HighlightNode(Node):
        __slots__ = ("lang", "code")

        def __init__(self, token, lang: str, code: str):
            super().__init__(token)
            self.lang, self.code = lang, code

        def render_to_output(self, context, buffer) -> int:
            lang = _html.escape(self.lang)
            return buffer.write(f'<figure class="highlight"><pre><code class="language-{lang}" data-lang="{lang}">'
                                f"{_html.escape(self.code.strip(chr(10)))}</code></pre></figure>")

    class HighlightTag(Tag):
        """`{% highlight lang %}code{% endhighlight %}`: the code as written, escaped, in Jekyll's markup."""

        name, end = "highlight", "endhighlight"

        def parse(self, stream):
            # the code is taken from the source as written: Liquid inside a highlight is shown, not run
            token = stream.eat(TOKEN_TAG)
            args = ""
            header_end = token.source.find("%}", token.start_index) + 2
            if stream.current.kind == TOKEN_EXPRESSION:
                args = stream.current.value
                header_end = token.source.find("%}", stream.current.start_index) + 2
            while not (stream.current.kind == TOKEN_EOF or stream.current.is_tag(self.end)):
                next(stream)
            end = stream.current
            code_end = end.source.rfind("{%", 0, end.start_index) if end.kind != TOKEN_EOF else len(end.source)
            return HighlightNode(token, (args.split() or [""])[0], token.source[header_end:code_end])

    class LookupNode(Node):
        __slots__ = ("arg", "resolve")

        def __init__(self, token, arg: str, resolve: Callable[[str], str | None]):
            super().__init__(token)
            self.arg, self.resolve = arg, resolve

        def render_to_output(self, context, buffer) -> int:
            arg = self.arg
            if "{{" in arg:  # Jekyll allows `{% link {{ page.x }} %}`
                arg = context.env.from_string(arg).render(**context.globals)
            return buffer.write(self.resolve(arg.strip()) or "")

    def lookup_tag(tag_name: str, resolve: Callable[[str], str | None]) -> type:
        class LookupTag(Tag):
            """`{% link path %}` / `{% post_url name %}`: the URL of a page or post of the site."""

            name, block = tag_name, False

            def parse(self, stream):
                token = stream.eat(TOKEN_TAG)
                arg = stream.current.value if stream.current.kind == TOKEN_EXPRESSION else ""
                return LookupNode(token, arg, resolve)

        return LookupTag

    return HighlightTag, lookup_tag


class JekyllLiquid:
    """Renders a page's Liquid as Jekyll would, minus the site's includes and plugins."""

    def __init__(self, *, baseurl: str = "", url: str = "", link: Callable[[str], str | None] | None = None,
                 post_url: Callable[[str], str | None] | None = None):
        from liquid import Environment, Mode

        class PreviewEnvironment(Environment):
            loop_iteration_limit = LOOP_LIMIT
            output_stream_limit = OUTPUT_LIMIT

        self.baseurl = baseurl or ""
        self.url = (url or "").rstrip("/")
        # lax: an unknown tag or a broken one renders nothing; unknown filters pass the value on
        self.env = PreviewEnvironment(tolerance=Mode.LAX, strict_filters=False)
        self.env.filters.update(_JEKYLL_FILTERS)
        self.env.filters["relative_url"] = lambda v, *_: self.relative_url(v)
        self.env.filters["absolute_url"] = lambda v, *_: self.absolute_url(v)
        highlight, lookup_tag = _tag_classes()
        self.env.add_tag(highlight)
        self.env.add_tag(lookup_tag("link", link or (lambda _: None)))
        self.env.add_tag(lookup_tag("post_url", post_url or (lambda _: None)))

    def relative_url(self, value: Any) -> Any:
        from liquid import Undefined

        if value is None or isinstance(value, Undefined):
            return None
        text = str(value)
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//", text):
            return text
        return self.baseurl + "/" + text.lstrip("/") if text else (self.baseurl or "/")

    def absolute_url(self, value: Any) -> Any:
        rel = self.relative_url(value)
        return rel if rel is None or "://" in rel else self.url + rel

    def render(self, text: str, context: dict) -> str:
        """`text` rendered; the text unchanged where it is not valid Liquid (Jekyll would stop the build)."""
        if "{" not in text:
            return text
        from liquid.exceptions import LiquidError

        try:
            return self.env.from_string(text).render(**context)
        except LiquidError:
            return text
