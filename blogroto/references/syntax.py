"""What the reference scanner matches: its patterns and limits, and the events it records while
scanning (an image found, a reference-style use, a link definition), resolved at the end
(blogroto.references.scanner)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from blogroto.references.model import (
    OFF_VALUES,
    OPT_OUT_ATTR,
    OPT_OUT_CLASS,
)
from blogroto.references.text import (
    BACKSLASH_ESCAPE_RE,
)

NL_RE = re.compile(r"\r\n|\r|\n")
NONBLANK_RE = re.compile(r"[^ \t]")
SPECIAL_RE = re.compile(r"[\\`<\[\]{]|!\[")
BACKTICKS_RE = re.compile(r"`+")
FENCE_RE = re.compile(r"`{3,}|~{3,}")
ORDERED_RE = re.compile(r"[0-9]{1,9}[.)]")
ATX_RE = re.compile(r"#{1,6}(?=[ \t]|$)", re.M)
HTML_BLOCK_RE = re.compile(r"<!--|<(?:pre|script|style|textarea)(?=[ \t>\r\n]|$)", re.I | re.M)
SETEXT_RE = re.compile(r"(?:=+|-+)[ \t]*$", re.M)
TAG_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
ATTR_NAME_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_.:-]*")
HTML_WS_RE = re.compile(r"[ \t\n\r\f]*")
CLOSE_TAG_RE = re.compile(r"</[A-Za-z][A-Za-z0-9-]*[ \t\n\r\f]*>")
AUTOLINK_RE = re.compile(r"<[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\x00-\x20<>]*>")
EMAIL_AUTOLINK_RE = re.compile(
    r"<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*>"
)
UNQUOTED_RUN_RE = re.compile(r"[^ \t\n\r\f>{]+")
BARE_RUN_RE = re.compile(r"[^\x00-\x20\x7f()\\{]+")
ANGLE_RUN_RE = re.compile(r"[^<>\\\n\r{]+")
LABEL_RUN_RE = re.compile(r"[^\[\]\\]+")
QUOTE_OR_LIQUID = {q: re.compile(re.escape(q) + r"|\{[{%]") for q in "\"'"}
TITLE_STOP = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]"), "(": re.compile(r"[()\\]")}
IAL_RE = re.compile(r"\{:((?:[^}\"'\n]|\"[^\"\n]*\"|'[^'\n]*')*)\}")
IAL_TOKEN_RE = re.compile(
    r"\.(?P<cls>[-\w]+)|(?P<key>[-\w:]+)=(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^\s}]+))"
)
RAW_ELEMENTS = ("pre", "code", "script", "style", "textarea")
RAW_CLOSE_RE = {
    name: re.compile(r"</" + name + r"[ \t\n\r\f]*>", re.I) for name in RAW_ELEMENTS
}
MIN_PAREN_DEPTH = 3  # what CommonMark guarantees; used once a paragraph's scan budget is spent
MAX_NESTING = 100  # block quotes/list items deeper than this are read as text
NOT_THEMATIC = {c: re.compile(r"[^ \t" + re.escape(c) + "]") for c in "-*_"}
SPACES_RE = re.compile(r"[ \t]*")
MAX_LABEL = 999


def normalize_label(label: str) -> str:
    return " ".join(label.split()).casefold()


def md_text(s: str) -> str:
    """Alt/title text of Markdown: backslash escapes and entities resolved."""
    if "\\" in s:
        s = BACKSLASH_ESCAPE_RE.sub(r"\1", s)
    return html.unescape(s) if "&" in s else s


@dataclass
class RefEvent:
    kind: str
    raw_s: int
    raw_e: int
    base: str
    # Markdown alt text is kept as a (start, end) span and only made a string for refs that are
    # reported: nested images ("![![![…") would otherwise copy O(n) text per level.
    alt: str | tuple[int, int] | None
    title: str | None
    opt_out: bool
    srcset: bool = False
    element: tuple[int, int] | None = None  # the whole `![..](..){: ..}` or `<img ..>`


@dataclass
class UseEvent:
    """``![alt][label]`` and friends: an image only if the label is defined somewhere."""

    label: str | None  # normalised; None when too long to match any definition
    alt: tuple[int, int]
    opt_out: bool
    nested_from: int  # events[nested_from:this] lie inside the alt text
    anchor: int  # where the "![" is
    end: int = 0  # after the label and any IAL


@dataclass
class Definition:
    dest_s: int
    dest_e: int
    base: str
    title: str | None


def html_base(quote: str) -> str:
    return {'"': "html-dq", "'": "html-sq"}.get(quote, "html-uq")


def attrs_opt_out(key: str, value: str) -> bool:
    if key == "class":
        return OPT_OUT_CLASS in value.split()
    if key == OPT_OUT_ATTR:
        return value.strip().lower() in OFF_VALUES
    return False
