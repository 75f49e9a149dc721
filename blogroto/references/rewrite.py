"""The two entry points: find every image reference in a body, and rewrite their paths with each
replacement encoded to parse back the same way in its context."""

from __future__ import annotations

from typing import Callable

from blogroto.references.model import Ctx, ImageRef
from blogroto.references.scanner import Scanner
from blogroto.references.text import ASCII_PUNCT, HTML_WS, MAX_PAREN_DEPTH, pct


def find_image_refs(body: str) -> list[ImageRef]:
    """Every image reference in body, in order of appearance (of the rewritable path)."""
    scanner = Scanner(body)
    scanner.scan()
    return scanner.results()


def rewrite_image_refs(body: str, replace: Callable[[ImageRef], str | None]) -> str:
    """body with each ref's path replaced by ``replace(ref)`` (None keeps it).

    Opted-out refs are never passed to replace. Everything but the replaced paths stays
    byte-identical. A replacement is inserted as written, except that characters which would
    break the syntax around it are percent-encoded (a space in a bare Markdown destination, a
    quote inside a quoted attribute, …), so the result parses back to the same references.
    """
    out: list[str] = []
    last = 0
    for ref in find_image_refs(body):
        if ref.opt_out:
            continue
        new = replace(ref)
        if new is None or new == ref.path:
            continue
        if not isinstance(new, str):
            raise TypeError(f"replacement for {ref.path!r} must be str or None, not {type(new)}")
        if not new:
            raise ValueError(f"empty replacement path for {ref.path!r} (line {ref.line})")
        out.append(body[last:ref.start])
        out.append(encode_for(ref._ctx, new, body[ref.end:ref.end + 1]))
        last = ref.end
    out.append(body[last:])
    return "".join(out)


def encode_unescaped(s: str, chars: str) -> str:
    """Percent-encode `chars` where no Markdown backslash escapes them."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in ASCII_PUNCT:
            out.append(s[i:i + 2])
            i += 2
            continue
        out.append(pct(c) if c in chars else c)
        i += 1
    return "".join(out)


def parens_balanced(s: str) -> bool:
    depth, i = 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in ASCII_PUNCT:
            i += 2
            continue
        if c == "(":
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                return False
        elif c == ")":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def encode_for(ctx: Ctx, new: str, next_char: str) -> str:
    """Make `new` safe where `ctx` says the path sits. Every rule mirrors what the scanner
    refuses, so a path it found (the identity replacement) never changes."""
    if ctx.liquid_quote:
        # Inside a Liquid string only its quote and the tag's end can break out; the Liquid
        # block is opaque to everything around it.
        return new.replace(ctx.liquid_quote, pct(ctx.liquid_quote)).replace("}}", "%7D%7D")
    if ctx.base == "md-bare":
        new = "".join(pct(c) if c <= " " or c == "\x7f" else c for c in new)
        if ctx.at_start and new.startswith("<"):
            new = "%3C" + new[1:]
        if not parens_balanced(new):
            new = encode_unescaped(new, "()")
    elif ctx.base == "md-angle":
        new = encode_unescaped(new, "<>\r\n")
    elif ctx.base == "html-dq":
        new = new.replace('"', "%22")
    elif ctx.base == "html-sq":
        new = new.replace("'", "%27")
    else:  # unquoted attribute value
        new = "".join(pct(c) if c in HTML_WS or c == ">" else c for c in new)
        if ctx.at_start and new[0] in "\"'":
            new = pct(new[0]) + new[1:]
    if ctx.base.startswith("md"):
        # A trailing backslash would escape the punctuation that closes the destination.
        trail = len(new) - len(new.rstrip("\\"))
        if trail % 2 and next_char in ASCII_PUNCT:
            new = new[:-1] + "%5C"
    if ctx.srcset:
        new = "".join(pct(c) if c in HTML_WS else c for c in new)
        if ctx.at_start and new.startswith(","):
            new = "%2C" + new[1:]
        if ctx.at_end and new.endswith(","):
            new = new[:-1] + "%2C"
    return new
