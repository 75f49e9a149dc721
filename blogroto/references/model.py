"""What a reference is: its kind, the path's span in the body, and the context it sits in (so a
replacement parses back the same way); the opt-out class and attribute."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from blogroto.references.text import BACKSLASH_ESCAPE_RE, C0_AND_SPACE

MD_INLINE = "md-inline"
MD_REFERENCE = "md-reference"
HTML_SRC = "html-src"
HTML_SRCSET = "html-srcset"
HTML_POSTER = "html-poster"  # <video poster=…>: an image, but never a figure of its own
HTML_VIDEO = "html-video"  # <video src=…>, <source src=…>
# The class (kramdown IAL or HTML class attribute) and data attribute an author opts out with.
OPT_OUT_CLASS = "no-algorotoscope"
OPT_OUT_ATTR = "data-algorotoscope"
OFF_VALUES = frozenset({"off", "false", "no", "0"})
URL_NOISE_RE = re.compile(r"[\t\n\r]")
SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


@dataclass(frozen=True)
class Ctx:
    """Where a path sits, so a replacement can be made to parse back the same way."""

    base: str  # 'md-bare' | 'md-angle' | 'html-dq' | 'html-sq' | 'html-uq'
    srcset: bool = False
    liquid_quote: str = ""  # the quote of a Liquid string literal the path sits in, if any
    at_start: bool = True  # the path starts the URL token (nothing Liquid before it)
    at_end: bool = True


@dataclass(frozen=True)
class ImageRef:
    kind: str  # 'md-inline' | 'md-reference' (the definition) | 'html-src' | 'html-srcset' | 'html-poster' | 'html-video'
    raw: str  # the URL text exactly as written (may include Liquid)
    path: str  # the bare URL/path with any Liquid wrapper removed; == body[start:end]
    start: int
    end: int
    alt: str | None
    title: str | None
    opt_out: bool
    line: int  # 1-based line of `start`
    _ctx: Ctx = field(default=Ctx("md-bare"), repr=False, compare=False)
    # The span of the whole element, for inline Markdown images (IAL included) and <img> tags:
    # what a responsive rewrite replaces (blogroto.responsive). None for other kinds.
    element: tuple[int, int] | None = field(default=None, compare=False)
    # For a reference definition: each image that uses it, as (start, end, alt) of `![alt][label]{: …}`.
    uses: tuple[tuple[int, int, str], ...] = field(default=(), compare=False)

    @property
    def scheme(self) -> str | None:
        """'http', 'https', 'data', 'javascript', … or None for a plain path.

        Protocol-relative ``//host/x`` counts as 'https'. Tabs and newlines are ignored and leading
        control characters stripped, as browsers do, so ``java\\tscript:`` is still 'javascript'.
        """
        s = URL_NOISE_RE.sub("", self.path).lstrip(C0_AND_SPACE)
        if s.startswith("//"):
            return "https"
        m = SCHEME_RE.match(s)
        return m.group(1).lower() if m else None

    @property
    def is_remote(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def is_dynamic(self) -> bool:
        """The path is computed by Liquid we do not understand (e.g. ``{{ page.image }}``)."""
        return "{{" in self.path or "{%" in self.path

    @property
    def local_path(self) -> str | None:
        """The site path to look the file up by: escapes resolved, query and fragment dropped,
        percent-decoded. None for URLs with a scheme and for dynamic (Liquid) paths."""
        if self.scheme is not None or self.is_dynamic:
            return None
        s = self.path
        if self.kind in (MD_INLINE, MD_REFERENCE):
            s = BACKSLASH_ESCAPE_RE.sub(r"\1", s)
        s = html.unescape(s)
        s = s.split("#", 1)[0].split("?", 1)[0]
        return unquote(s)
