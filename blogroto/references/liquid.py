"""Liquid in post bodies: the spans no image may be found in (raw, comment, highlight blocks, kramdown
comments), and the Liquid around a URL (`{{ site.baseurl }}/a.jpg`, `{{ "/a.jpg" | relative_url }}`)."""

from __future__ import annotations

import re

from blogroto.references.text import Finder

# Opaque masked regions are replaced by this inert character in the scanner's view of the text.
NEUTRAL = "\ue000"
LIQ_SITE_PREFIX_RE = re.compile(r"\{\{-?[ \t]*site\.(?:url|baseurl)[ \t]*-?\}\}")
LIQ_FILTER_RE = re.compile(
    r"\{\{-?[ \t]*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)')[ \t]*"
    r"(?:\|[ \t]*(?:relative_url|absolute_url|prepend:[ \t]*site\.(?:url|baseurl))[ \t]*)+"
    r"-?\}\}"
)
_MASK_OPEN_RE = re.compile(r"\{%-?[ \t\r\n]*(raw|comment|highlight)(?![A-Za-z0-9_])|\{::comment\}")
_MASK_END_RE = {
    name: re.compile(r"\{%-?[ \t\r\n]*end" + name + r"[ \t\r\n]*-?%\}")
    for name in ("raw", "comment", "highlight")
}
_KD_COMMENT_END_RE = re.compile(r"\{:/(?:comment)?\}")


def split_liquid(text: str, s: int, e: int) -> tuple[int, int, str]:
    """The span of the bare path inside the URL text[s:e], and the quote of the Liquid string
    literal it sits in ('' if none). Unrecognised Liquid leaves the whole URL as the path."""
    if text.find("{", s, e) < 0:
        return s, e, ""
    p = s
    while True:
        m = LIQ_SITE_PREFIX_RE.match(text, p, e)
        if m is None:
            break
        p = m.end()
    if text.find("{{", p, e) < 0 and text.find("{%", p, e) < 0:
        return p, e, ""
    m = LIQ_FILTER_RE.fullmatch(text, p, e)
    if m is not None:
        g = "dq" if m.group("dq") is not None else "sq"
        return m.start(g), m.end(g), '"' if g == "dq" else "'"
    return s, e, ""


def find_masks(body: str, finder: Finder) -> list[tuple[int, int, bool]]:
    """(start, end, opaque) regions. Raw blocks stay visible to the Markdown scan (their text does
    reach Markdown, e.g. a code span around ``{% raw %}{{ x }}{% endraw %}``) but nothing in them is
    reported; comment/highlight blocks never reach Markdown as such, so they are made opaque."""
    masks: list[tuple[int, int, bool]] = []
    pos = 0
    while True:
        m = _MASK_OPEN_RE.search(body, pos)
        if m is None:
            return masks
        name = m.group(1)
        if name is None:  # {::comment}
            hit = finder.search(_KD_COMMENT_END_RE, m.end())
            end = hit[1] if hit else len(body)
            masks.append((m.start(), end, True))
            pos = end
            continue
        tag_end = finder.find("%}", m.end())
        if tag_end < 0:  # a tag that never closes: Liquid itself would fail; nothing to mask
            return masks
        hit = finder.search(_MASK_END_RE[name], tag_end + 2)
        end = hit[1] if hit else len(body)  # Jekyll refuses an unclosed block; touch nothing
        masks.append((m.start(), end, name != "raw"))
        pos = end
