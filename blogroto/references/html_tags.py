"""HTML in posts for the reference scanner: tags and their attributes (`<img src/srcset>`, `<source>`,
`<video src/poster>`), comments and raw elements (`<pre>`, `<code>`, ...) whose insides are not
Markdown."""

from __future__ import annotations

import html

from blogroto.references.model import (
    HTML_POSTER,
    HTML_SRC,
    HTML_SRCSET,
    HTML_VIDEO,
    OPT_OUT_ATTR,
)
from blogroto.references.syntax import (
    ATTR_NAME_RE,
    AUTOLINK_RE,
    CLOSE_TAG_RE,
    EMAIL_AUTOLINK_RE,
    HTML_WS_RE,
    QUOTE_OR_LIQUID,
    RAW_CLOSE_RE,
    TAG_NAME_RE,
    UNQUOTED_RUN_RE,
    RefEvent,
    attrs_opt_out,
    html_base,
)
from blogroto.references.text import (
    HTML_WS,
)


class HtmlScanner:
    """The HTML half of `Scanner` (a mixin: the state lives in Scanner.__init__)."""

    # ---------------------------------------------------------------- HTML
    def _html(self, pos: int, pe: int) -> int | None:
        """End of the HTML construct at pos ('<'), or None if it is none. An excluded region
        (comment, <pre>, <code>, …) may end past pe, or at the end of the text if unclosed."""
        text, finder = self.text, self.finder
        nxt = text[pos + 1] if pos + 1 < pe else ""
        if nxt == "!":
            if text.startswith("<!--", pos):
                if text.startswith(">", pos + 4):
                    return pos + 5
                if text.startswith("->", pos + 4):
                    return pos + 6
                r = finder.find("-->", pos + 4)
                return self.n if r < 0 else r + 3
            if text.startswith("<![CDATA[", pos):
                r = finder.find("]]>", pos + 9)
                return r + 3 if 0 <= r and r + 3 <= pe else None
            if pos + 2 < pe and text[pos + 2].isascii() and text[pos + 2].isalpha():
                r = finder.find(">", pos + 2)
                return r + 1 if 0 <= r < pe else None
            return None
        if nxt == "?":
            r = finder.find("?>", pos + 2)
            return r + 2 if 0 <= r and r + 2 <= pe else None
        if nxt == "/":
            m = CLOSE_TAG_RE.match(text, pos, pe)
            return m.end() if m else None
        if not (nxt.isascii() and nxt.isalpha()):
            return None
        m = AUTOLINK_RE.match(text, pos, pe) or EMAIL_AUTOLINK_RE.match(text, pos, pe)
        if m is not None:
            return m.end()
        tag = self._open_tag(pos, pe)
        if tag is None:
            return None
        name, attrs, end = tag
        if name in RAW_CLOSE_RE:
            hit = finder.search(RAW_CLOSE_RE[name], end)
            return self.n if hit is None else hit[1]
        if name in ("img", "source", "video"):
            self._html_image(name, attrs, text, (pos, end))
        return end

    def _open_tag(self, pos: int, pe: int):
        """(lower-case name, [(name, value start, value end, quote)], end) or None.

        Liquid ``{{ … }}``/``{% … %}`` is atomic anywhere in a tag: Jekyll renders it before the
        Markdown parser sees the tag, so ``src="{{ "/a.jpg" | relative_url }}"`` is one value.
        """
        text = self.text
        m = TAG_NAME_RE.match(text, pos + 1, pe)
        p = m.end()
        if p >= pe or text[p] not in " \t\n\r\f/>":
            return None
        name = m.group().lower()
        attrs: list[tuple[str, int, int, str | None]] = []
        visited: list[int] = []
        fail = self._tag_fail
        while True:
            # The scan from an attribute boundary does not depend on where the tag began: if it
            # failed once from here, it fails again. Remembering that keeps retries linear.
            if p in fail:
                break
            visited.append(p)
            p = HTML_WS_RE.match(text, p, pe).end()
            if p >= pe:
                break
            c = text[p]
            if c == ">":
                return name, attrs, p + 1
            if c == "/":
                if text.startswith("/>", p) and p + 2 <= pe:
                    return name, attrs, p + 2
                p += 1
                continue
            if c == "{":
                r = self._liquid_end(p, pe)
                if r is None:
                    break
                p = r
                continue
            am = ATTR_NAME_RE.match(text, p, pe)
            if am is None:
                break
            aname = am.group().lower()
            p = am.end()
            q = HTML_WS_RE.match(text, p, pe).end()
            if q < pe and text[q] == "=":
                q = HTML_WS_RE.match(text, q + 1, pe).end()
                if q >= pe:
                    break
                quote = text[q]
                if quote in "\"'":
                    close = self._quoted_end(q + 1, pe, quote)
                    if close is None:
                        break
                    attrs.append((aname, q + 1, close, quote))
                    p = close + 1
                else:
                    e = self._unquoted_end(q, pe)
                    if e == q:
                        break
                    attrs.append((aname, q, e, ""))
                    p = e
            else:
                attrs.append((aname, p, p, None))
        fail.update(visited)
        return None

    def _quoted_end(self, p: int, pe: int, quote: str) -> int | None:
        text, stop = self.text, QUOTE_OR_LIQUID[quote]
        while True:
            m = stop.search(text, p, pe)
            if m is None:
                return None
            if text[m.start()] == quote:
                return m.start()
            p = self._liquid_end(m.start(), pe) or m.start() + 1

    def _unquoted_end(self, p: int, pe: int) -> int:
        text = self.text
        while p < pe:
            m = UNQUOTED_RUN_RE.match(text, p, pe)
            if m is not None:
                p = m.end()
                if p >= pe:
                    break
            if text[p] != "{":
                break
            p = self._liquid_end(p, pe) or p + 1
        return p

    def _html_image(self, name: str, attrs: list, text: str, element: tuple[int, int]) -> None:
        first: dict[str, tuple] = {}
        for a in attrs:  # as browsers do, the first of a repeated attribute wins
            first.setdefault(a[0], a)

        def value(key: str) -> str | None:
            a = first.get(key)
            return None if a is None or a[3] is None else html.unescape(self.body[a[1]:a[2]])

        opt = any(attrs_opt_out(k, value(k) or "") for k in ("class", OPT_OUT_ATTR) if k in first)
        alt, title = value("alt"), value("title")
        # <source src> only means something in <video>/<audio> (<picture> sources use srcset);
        # audio is told apart by its bytes, in the build.
        kinds = {"img": (("src", HTML_SRC),), "video": (("poster", HTML_POSTER), ("src", HTML_VIDEO)),
                 "source": (("src", HTML_VIDEO),)}[name]
        for key, kind in kinds:
            src = first.get(key)
            if src is None or src[3] is None:
                continue
            s, e = src[1], src[2]
            while s < e and text[s] in HTML_WS:  # browsers strip these around a URL
                s += 1
            while e > s and text[e - 1] in HTML_WS:
                e -= 1
            self.events.append(RefEvent(kind, s, e, html_base(src[3]), alt, title, opt,
                                         element=element if kind == HTML_SRC else None))
        srcset = first.get("srcset")
        if srcset is not None and srcset[3] is not None:
            for s, e in self._srcset_urls(srcset[1], srcset[2]):
                self.events.append(RefEvent(
                    HTML_SRCSET, s, e, html_base(srcset[3]), alt, title, opt, srcset=True))

    def _srcset_urls(self, p: int, end: int) -> list[tuple[int, int]]:
        """URL spans of a srcset value, per the HTML spec's parsing (descriptors skipped)."""
        text = self.text
        out = []
        while True:
            while p < end and (text[p] in HTML_WS or text[p] == ","):
                p += 1
            if p >= end:
                return out
            s = p
            while p < end and text[p] not in HTML_WS:
                p = self._liquid_end(p, end) or p + 1
            e = p
            if text[e - 1] == ",":
                while e > s and text[e - 1] == ",":
                    e -= 1
            else:
                depth = 0  # descriptors run to the next comma outside parentheses
                while p < end:
                    c = text[p]
                    if c == "(":
                        depth += 1
                    elif c == ")":
                        depth = max(0, depth - 1)
                    elif c == "," and depth == 0:
                        break
                    p += 1
            if e > s:
                out.append((s, e))

